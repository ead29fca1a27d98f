"""The media proxy of compose.yaml, run: nginx with deploy/nginx's template in front of the real
coordinator and an S3 stand-in, downloading recordings as a browser does.

Needs an nginx binary (``NGINX_BINARY`` or ``nginx`` on PATH); skipped, saying so, without one.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from api import keys
from api.app import create_app
from coordinator.settings import S3Settings, Secret
from storage.records import UserRecord
from tests.conftest import make_settings
from tests.support.factories import Factory, login
from tests.support.postgres import free_port
from tests.support.recordings import make_recording
from tests.support.sigv4 import S3Config, sign_get_headers

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx" / "templates" / "default.conf.template"
NGINX = os.environ.get("NGINX_BINARY") or shutil.which("nginx")
BUCKET = "meet-media-storage"
BODY = b"\x00\x00\x00\x18ftypmp42 a recording"

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="no nginx binary (set NGINX_BINARY): SKIPPED"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@dataclass
class S3StandIn:
    """Answers GETs of the objects it holds and keeps every request it got."""

    objects: dict[str, bytes] = field(default_factory=dict)
    requests: list[web.Request] = field(default_factory=list)
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        body = self.objects.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="video/mp4")


def render(s3_port: int, api_port: int, proxy_port: int) -> str:
    values = {
        "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
    }
    text = re.sub(r"\$\{(AWS_[A-Z0-9_]+)\}", lambda m: values[m[1]], TEMPLATE.read_text())
    text = text.replace("server coordinator:8071;", f"server 127.0.0.1:{api_port};")
    assert "listen 8083;" in text
    return text.replace("listen 8083;", f"listen 127.0.0.1:{proxy_port};")


@pytest.fixture
def nginx_process(tmp_path: Path) -> Iterator[Any]:
    """``start(s3_port, api_port)`` -> the proxy's port; nginx is stopped by its PID."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(s3_port: int, api_port: int) -> int:
        assert NGINX is not None
        port = free_port()
        (tmp_path / "default.conf").write_text(render(s3_port, api_port, port))
        temp = "".join(
            f"  {kind}_temp_path {tmp_path}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (tmp_path / "nginx.conf").write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
            f"http {{\n  access_log off;\n{temp}  include {tmp_path}/default.conf;\n}}\n"
        )
        process = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (tmp_path / "error.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.02)

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Stack:
    proxy: str
    s3: S3StandIn
    config: S3Config
    factory: Factory
    cookie_for: Any


@pytest.fixture
async def stack(
    aiohttp_client: Any,
    aiohttp_server: Any,
    database_url: str,
    factory: Factory,
    nginx_process: Any,
) -> AsyncIterator[Stack]:
    s3 = S3StandIn()
    s3_app = web.Application()
    s3_app.router.add_route("*", "/{tail:.*}", s3.handle)
    s3_server = await aiohttp_server(s3_app)
    settings = S3Settings(
        endpoint_url=f"http://127.0.0.1:{s3_server.port}",
        bucket=BUCKET,
        access_key="meet",
        secret_key=Secret("minio-secret-for-the-proxy-test"),
        region="us-east-1",
    )
    app = create_app(make_settings(database_url, s3=settings))
    api = await aiohttp_client(app)
    proxy_port = nginx_process(s3_server.port, api.port)
    config = S3Config(
        settings.endpoint_url, BUCKET, settings.access_key, settings.secret_key, settings.region
    )

    async def cookie_for(user: UserRecord) -> str:
        """The session cookie of a real login of ``user`` (a browser's, sent to the proxy)."""
        login(api, app[keys.SESSIONS], user)
        await api.get("/__lbheartbeat__")  # the session row is written
        cookies = api.session.cookie_jar.filter_cookies(api.make_url("/"))
        return "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())

    yield Stack(f"http://127.0.0.1:{proxy_port}", s3, config, factory, cookie_for)


async def recording(stack: Stack, role: str | None) -> tuple[uuid.UUID, UserRecord]:
    """A saved screen recording of someone else's room, its file in the bucket, and a user
    holding ``role`` on it (None: no access)."""
    owner, user = await stack.factory.user(), await stack.factory.user()
    room = await stack.factory.room(owner=owner)
    accesses = [(owner, "owner"), *([(user, role)] if role else [])]
    record = await make_recording(stack.factory.sessionmaker, room, accesses=accesses)
    stack.s3.objects[f"/{BUCKET}/recordings/{record.id}.mp4"] = BODY
    return record.id, user


async def download(stack: Stack, path: str, **headers: str) -> tuple[int, bytes, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{stack.proxy}{path}", headers=headers) as response,
    ):
        return response.status, await response.read(), response.headers


async def test_the_owner_downloads_the_file_through_the_signed_proxy(stack: Stack) -> None:
    recording_id, user = await recording(stack, "owner")
    cookie = await stack.cookie_for(user)
    path = f"/media/recordings/{recording_id}.mp4"
    status, body, headers = await download(stack, f"{path}?download=1", Cookie=cookie)
    assert status == 200 and body == BODY
    assert headers["Content-Disposition"] == "attachment"
    (sent,) = stack.s3.requests
    key = f"recordings/{recording_id}.mp4"
    # MinIO gets the bucket's object path, no query, and exactly the headers media-auth
    # signed: recomputing the signature for that key and instant gives the same one.
    assert sent.path == f"/{BUCKET}/{key}" and sent.query_string == ""
    signed_at = datetime.strptime(sent.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expected = sign_get_headers(stack.config, key, signed_at)
    for name, value in expected.items():
        assert sent.headers[name] == value, name
    assert "Cookie" not in sent.headers


async def test_downloads_refused_by_media_auth_never_reach_the_bucket(stack: Stack) -> None:
    recording_id, member = await recording(stack, "member")
    path = f"/media/recordings/{recording_id}.mp4"
    status, _, _ = await download(stack, path)
    assert status == 401  # anonymous
    status, _, _ = await download(stack, path, Cookie=await stack.cookie_for(member))
    assert status == 403  # a member may not retrieve the recording
    # A forged X-Original-URL naming the caller's own recording is replaced by the proxy.
    own_id, owner = await recording(stack, "owner")
    forged = f"http://x/media/recordings/{own_id}.mp4"
    cookie = await stack.cookie_for(owner)
    status, _, _ = await download(stack, path, Cookie=cookie, **{"X-Original-URL": forged})
    assert status == 403
    assert stack.s3.requests == []
    # Its own file comes through.
    status, body, _ = await download(stack, f"/media/recordings/{own_id}.mp4", Cookie=cookie)
    assert (status, body) == (200, BODY)
