"""``python -m tests.livekit_standin`` starts, answers, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from livekit import api

from tests.livekit_standin import WebhookSink

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "cli-key", "cli-secret-that-is-long-enough-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_cli_serves_until_sigterm(session: aiohttp.ClientSession) -> None:
    port = _free_port()
    async with WebhookSink(KEY, SECRET) as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.livekit_standin",
            "--port",
            str(port),
            "--keys",
            f"{KEY}:{SECRET}",
            "--webhook-url",
            sink.url,
            "--egress-mode",
            "auto",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(15):
                line = (await proc.stdout.readline()).decode()
            assert f"listening on http://127.0.0.1:{port}" in line
            url = f"http://127.0.0.1:{port}"
            lk = api.LiveKitAPI(url, KEY, SECRET, session=session)
            room = await lk.room.create_room(api.CreateRoomRequest(name="demo"))
            assert room.sid.startswith("RM_")
            async with session.post(
                f"{url}/_fake/join", json={"room": "demo", "identity": "alice"}
            ) as resp:
                assert resp.status == 200
            await sink.wait_for(lambda events: len(events) >= 2)
            assert sink.names() == ["room_started", "participant_joined"]
        finally:
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGTERM)
            async with asyncio.timeout(10):
                code = await proc.wait()
    assert code == 0


async def test_cli_rejects_short_secret() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.livekit_standin",
        "--port",
        "0",
        "--keys",
        "devkey:secret",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(15):
        _, err = await proc.communicate()
    assert proc.returncode == 2 and b"32 bytes" in err
