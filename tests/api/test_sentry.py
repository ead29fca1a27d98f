"""Issue 11: with SENTRY_DSN set, a real 500 reaches a local Sentry stand-in as one event,
scrubbed of tokens, cookies, the Authorization header, the OIDC code and local secrets."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sentry_sdk
from aiohttp import web

from api.app import create_app
from coordinator.settings import Secret
from tests.conftest import make_settings


class SentryStandin(ThreadingHTTPServer):
    """Receives envelopes on ``POST /api/<project>/envelope/`` (loopback only)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[bytes] = []
        self.paths: list[str] = []

    @property
    def dsn(self) -> str:
        return f"http://public-key@127.0.0.1:{self.server_address[1]}/1"

    def items(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(item header, item payload) of every JSON item received."""
        found = []
        for body in self.bodies:
            lines = body.split(b"\n")[1:]  # the envelope's own header first
            for header, payload in zip(lines[::2], lines[1::2], strict=False):
                try:
                    found.append((json.loads(header), json.loads(payload)))
                except ValueError:
                    continue
        return found


class _Handler(BaseHTTPRequestHandler):
    server: SentryStandin

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.bodies.append(body)
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_standin() -> Iterator[SentryStandin]:
    server = SentryStandin()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        client = sentry_sdk.get_client()
        client.close(timeout=2)
        sentry_sdk.get_global_scope().set_client(None)  # later tests report nothing
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsZWFrZWQifQ.c2lnbmF0dXJlLXZhbHVl"
# Built at run time: Sentry sends the source lines around the failure, and a secret is never
# in the source.
LOCAL_PASSWORD = "-".join(("local", "password", "value", "1234"))


async def explode(request: web.Request) -> web.Response:
    token = JWT  # a local variable Sentry would show
    password = LOCAL_PASSWORD
    raise RuntimeError(f"deliberate failure holding {token} and {password[:0]}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_500_reaches_sentry_once_and_scrubbed(
    aiohttp_client: Any, database_url: str, sentry_standin: SentryStandin
) -> None:
    settings = make_settings(
        database_url, sentry_dsn=Secret(sentry_standin.dsn), sentry_environment="staging"
    )
    app = create_app(settings)
    app.router.add_get("/api/v1.0/explode/", explode)  # the deliberately failing route
    client = await aiohttp_client(app)
    secrets = {
        "bearer": "bearer-credential-5678",
        "session cookie": "session-cookie-value-9012",
        "csrf": "csrf-token-value-3456",
        "OIDC code": "oidc-code-value-7890",
        "OIDC state": "oidc-state-value-1357",
        "JWT": JWT,
        "local password": LOCAL_PASSWORD,
    }
    response = await client.get(
        "/api/v1.0/explode/?code=oidc-code-value-7890&state=oidc-state-value-1357",
        headers={
            "Authorization": "Bearer bearer-credential-5678",
            "Cookie": "sessionid=session-cookie-value-9012; csrftoken=csrf-token-value-3456",
            "X-CSRFToken": "csrf-token-value-3456",
            "X-Request-ID": "sentry-req-1",
        },
    )
    assert response.status == 500
    assert await response.json() == {"detail": "A server error occurred."}
    sentry_sdk.flush(timeout=5)
    events = [
        payload for header, payload in sentry_standin.items() if header.get("type") == "event"
    ]
    assert len(events) == 1, [h for h, _ in sentry_standin.items()]
    [event] = events
    assert sentry_standin.paths[0].startswith("/api/1/envelope/")
    assert event["environment"] == "staging" and event["release"] == settings.version
    assert event["tags"]["application"] == "backend"
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert "deliberate failure" in exception["value"]
    assert event["request"]["url"].endswith("/api/v1.0/explode/")
    raw = b"\n".join(sentry_standin.bodies).decode()
    for what, secret in secrets.items():
        assert secret not in raw, what
    headers = {k.lower() for k in event["request"].get("headers", {})}
    assert not headers & {"authorization", "cookie", "x-csrftoken"}
