"""``python -m tests.oidc_provider``: a real process on a free port, stopped by PID."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.oidc_provider import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.oidc_provider.__main__ import READY_PREFIX, build_parser, parse_user

REPO_ROOT = Path(__file__).resolve().parents[2]
CALLBACK = "http://127.0.0.1:8071/api/v1.0/callback/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def running_cli(
    args: Sequence[str], stderr: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Start the CLI; yield (process, issuer) once it is ready; kill it if still running."""
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.oidc_provider",
            *args,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode()
        assert line.startswith(READY_PREFIX), f"CLI not ready, see {stderr}: {line!r}"
        yield proc, line.split()[-1]
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_cli_serves_the_flow_until_signalled(
    tmp_path: Path, http: aiohttp.ClientSession, signum: signal.Signals
) -> None:
    port = free_port()
    secret = "cli-demo-secret-that-is-definitely-long-enough-1234"
    args = [
        "--port",
        str(port),
        "--client-id",
        "demo",
        "--client-secret",
        secret,
        "--redirect-uri",
        CALLBACK,
        "--user",
        "alice:alice@example.com:Alice:Liddell",
    ]
    async with running_cli(args, tmp_path / "stderr.log") as (proc, issuer):
        assert issuer == f"http://127.0.0.1:{port}"
        async with http.get(f"{issuer}/.well-known/openid-configuration") as resp:
            assert (await resp.json())["issuer"] == issuer
        query = {
            "client_id": "demo",
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": "openid",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "prompt": "none",
        }
        async with http.get(f"{issuer}/authorize", params=query, allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.headers["Location"].startswith(CALLBACK + "?code=")
        form = {
            "grant_type": "authorization_code",
            "code": resp.headers["Location"].split("code=")[1].split("&")[0],
            "redirect_uri": CALLBACK,
            "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        }
        basic = {"Authorization": aiohttp.encode_basic_auth("demo", secret)}
        async with http.post(f"{issuer}/token", data=form, headers=basic) as resp:
            assert resp.status == 200, await resp.text()
            access_token = (await resp.json())["access_token"]
        headers = {"Authorization": f"Bearer {access_token}"}
        async with http.get(f"{issuer}/userinfo", headers=headers) as resp:
            assert (await resp.json())["given_name"] == "Alice"

        os.kill(proc.pid, signum)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()


def test_cli_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 8083)
    assert (args.client_id, args.client_secret) == (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    assert args.user is None and args.redirect_uris is None


def test_parse_user() -> None:
    assert parse_user("bob:bob@example.com:Bob:Marley") == {
        "sub": "bob",
        "email": "bob@example.com",
        "given_name": "Bob",
        "usual_name": "Marley",
    }
    assert parse_user("bob") == {"sub": "bob"}
    assert parse_user("bob::Bob") == {"sub": "bob", "given_name": "Bob"}
