"""``python -m tests.summary_standin`` starts, answers, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_cli_serves_until_sigterm() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.summary_standin",
        "--port",
        str(port),
        "--token",
        "cli-token",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(15):
            line = (await proc.stdout.readline()).decode()
        assert line.strip() == f"listening on http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}/api/v2/async-jobs/transcribe/"
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": "Bearer cli-token"}
            async with session.post(url, json={"user_sub": "s"}, headers=headers) as resp:
                assert resp.status == 200
                assert "job_id" in await resp.json()
            async with session.post(url, json={}) as resp:
                assert resp.status == 401
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGTERM)
        async with asyncio.timeout(10):
            out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert b"stopped after 2 call(s)" in out


async def test_cli_reports_a_busy_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.summary_standin",
            "--port",
            str(port),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(15):
            _, err = await proc.communicate()
    assert proc.returncode == 2 and b"error:" in err
