"""``make demo``: the server with the project's LiveKit and OIDC stand-ins, and some traffic.

    python -m bench.demo [--port 8071] [--seconds 300] [--linger 600]

Everything listens on 127.0.0.1 and lives in a temporary directory (a fresh SQLite database,
generated secrets). A staff user is created and its login printed; the traffic script
(``bench.demo_traffic``) runs for ``--seconds``, then the processes stay up until Ctrl-C or
``--linger`` more seconds. A demonstration, not a deployment: the stand-ins accept any login
and fake LiveKit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench import demo_traffic

ROOT = Path(__file__).resolve().parent.parent
STAFF = {"sub": "ops", "email": "ops@example.com", "full_name": "On Call", "short_name": "On"}
CLIENT_ID = "meet-coordinator"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{' '.join(map(str, process.args))} exited ({process.returncode})")  # type: ignore[arg-type]
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


async def create_staff(database_url: str) -> None:
    from storage import users as user_store
    from storage.engine import create_engine, create_sessionmaker

    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            await user_store.create_user(session, is_staff=True, **STAFF)
    finally:
        await engine.dispose()


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in reversed(started):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run(args: argparse.Namespace) -> None:
    python = sys.executable
    server = f"http://127.0.0.1:{args.port}"
    livekit_port, oidc_port = free_port(), free_port()
    livekit, provider = f"http://127.0.0.1:{livekit_port}", f"http://127.0.0.1:{oidc_port}"
    livekit_key, livekit_secret = "devkey", secrets.token_urlsafe(40)
    client_secret, ops_token = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    quiet = None if args.verbose else subprocess.DEVNULL
    with tempfile.TemporaryDirectory(prefix="meet-demo-") as tmp, processes() as started:
        database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}"
        env = os.environ | {
            "DATABASE_URL": database_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "MEET_ENGINE": "local",
            "LIVEKIT_API_KEY": livekit_key,
            "LIVEKIT_API_SECRET": livekit_secret,
            "LIVEKIT_API_URL": livekit,
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": client_secret,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{provider}/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{provider}/token",
            "OIDC_OP_USER_ENDPOINT": f"{provider}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{provider}/jwks",
            "OIDC_OP_LOGOUT_ENDPOINT": f"{provider}/logout",
            "OIDC_OP_ISSUER": provider,
            "RECORDING_ENABLE": "true",
            "OPS_TOKEN": ops_token,
            # No SMTP server here: recording e-mails fail fast and show as failed notifications
            # on the dashboard, with their "retry now".
            "EMAIL_PORT": str(free_port()),
            "MEET_OUTBOX_MAX_ATTEMPTS": "2",
        }
        cwd = str(ROOT)
        subprocess.run(
            [python, "-m", "coordinator.cli", "migrate"], env=env, cwd=cwd, check=True, stdout=quiet
        )
        asyncio.run(create_staff(database_url))
        started.append(
            subprocess.Popen(
                [
                    python, "-m", "tests.livekit_standin", "--port", str(livekit_port),
                    "--keys", f"{livekit_key}:{livekit_secret}", "--egress-mode", "auto",
                    "--webhook-url", f"{server}/api/v1.0/rooms/webhooks-livekit/",
                ],
                cwd=cwd, stdout=quiet, stderr=quiet,
            )
        )  # fmt: skip
        started.append(
            subprocess.Popen(
                [
                    python, "-m", "tests.oidc_provider", "--port", str(oidc_port),
                    "--client-id", CLIENT_ID, "--client-secret", client_secret,
                    "--redirect-uri", f"{server}/api/v1.0/callback/",
                ],
                cwd=cwd, stdout=quiet, stderr=quiet,
            )
        )  # fmt: skip
        wait_for(f"{livekit}/_fake/state", started[0])
        wait_for(f"{provider}/.well-known/openid-configuration", started[1])
        started.append(
            subprocess.Popen(
                [python, "-m", "coordinator.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(args.port), "--no-access-log"],
                env=env, cwd=cwd, stdout=quiet,
            )
        )  # fmt: skip
        wait_for(f"{server}/__lbheartbeat__", started[2])
        print(
            f"""
  meet-coordinator demo (a demonstration, not a deployment) is up on loopback:

    dashboard   {server}/ops/
                log in on the test provider's form as  sub: {STAFF["sub"]}   email: {STAFF["email"]}
                (a staff account; any other sub logs in as a non-staff user)
    first run   {server}/
    automation  curl -H 'Authorization: Bearer {ops_token}' {server}/ops/api/state/
    stand-ins   LiveKit {livekit}   OIDC {provider}

  Traffic runs for {args.seconds:.0f} s (rooms, joins and leaves through signed webhooks, a lobby,
  a recording); everything stops at Ctrl-C or {args.linger:.0f} s after it.
""",
            flush=True,
        )
        asyncio.run(demo_traffic.main(demo_traffic.build_parser().parse_args([
            "--server", server, "--livekit", livekit, "--provider", provider,
            "--seconds", str(args.seconds),
        ])))  # fmt: skip
        print(f"traffic over; the servers stay up {args.linger:.0f} s more (Ctrl-C stops them)")
        time.sleep(args.linger)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description="meet-coordinator demo on loopback")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8071)))
    parser.add_argument("--seconds", type=float, default=300.0, help="traffic duration")
    parser.add_argument("--linger", type=float, default=600.0, help="then stay up this long")
    parser.add_argument("--verbose", action="store_true", help="show the processes' output")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # stopped like Ctrl-C: the children stop too
    try:
        run(args)
    except KeyboardInterrupt:
        print("\nstopping the demo")


if __name__ == "__main__":
    main()
