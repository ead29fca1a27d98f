"""The ``meet-coordinator`` command: migrate, serve, and refusing a bad configuration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.postgres import free_port

COMMAND = [sys.executable, "-m", "coordinator.cli"]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'meet.db'}",
        SECRET_KEY="c" * 40,
        LIVEKIT_API_SECRET="l" * 40,
    )
    env.update(extra)
    return env


@pytest.mark.parametrize("loop", [None, "asyncio"])
def test_migrate_then_serve(tmp_path: Path, loop: str | None) -> None:
    """Served on uvloop by default (a fifth more requests per second of CPU), or on asyncio's
    own loop when asked."""
    env = env_for(tmp_path)
    migrated = subprocess.run([*COMMAND, "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    chosen = [] if loop is None else ["--event-loop", loop]
    server = subprocess.Popen(
        [*COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port), *chosen],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts slowly
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1.0/config/") as resp:
                    assert json.load(resp)["resource"]["default_access_level"] == "public"
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/__heartbeat__") as resp:
            assert json.load(resp) == {"database": "ok"}
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
        assert server.stdout is not None and server.stderr is not None
        server.stdout.close()
        logged = server.stderr.read().decode()
        server.stderr.close()
    assert f"{loop or 'uvloop'} loop" in logged, logged


def test_bad_configuration_fails_at_start_naming_the_variable(tmp_path: Path) -> None:
    env = env_for(tmp_path, RESOURCE_DEFAULT_ACCESS_LEVEL="everyone")
    result = subprocess.run(
        [*COMMAND, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "RESOURCE_DEFAULT_ACCESS_LEVEL" in result.stderr
    assert "c" * 40 not in result.stderr + result.stdout
