"""Connection floods against the real ``meet-coordinator serve`` process.

The server runs under a lowered open-file limit (set in the child before it starts); one client
holds far more idle sockets than that limit. Other clients are still answered at once, idle
sockets are closed when their request head is overdue, and the log stays a few lines long.
"""

from __future__ import annotations

import http.client
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.serving import FD_RESERVE, connection_cap
from coordinator.errors import ConfigurationError
from coordinator.settings import Settings
from tests.support.postgres import free_port
from tests.test_cli import COMMAND, env_for

HEADER_TIMEOUT = 2.0
FD_LIMIT = 256


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str, *, timeout: float = 5.0) -> tuple[int, float]:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            status = connection.getresponse().status
        finally:
            connection.close()
        return status, time.monotonic() - started

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


def _serve(
    tmp_path: Path, soft: int, hard: int, loop: str = "uvloop", **env: str
) -> Iterator[Served]:
    environment = env_for(tmp_path, MEET_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT), **env)
    migrated = subprocess.run([*COMMAND, "migrate"], env=environment, capture_output=True)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    log = tmp_path / "serve.log"

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*COMMAND, "serve", "--port", str(port), "--event-loop", loop],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_files,
        )
    served = Served(process, port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if served.get("/__lbheartbeat__", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(params=["uvloop", "asyncio"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    """``serve`` on either event loop (uvloop, the default, or asyncio's own)."""
    yield from _serve(tmp_path, FD_LIMIT, FD_LIMIT, loop=request.param)


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_socket_flood_does_not_lock_out_other_clients(served: Served) -> None:
    flood: list[socket.socket] = []
    stop = threading.Event()

    def keep_flooding() -> None:  # the attacker keeps opening sockets (500 a second)
        while not stop.is_set():
            try:
                flood.append(socket.create_connection(("127.0.0.1", served.port), timeout=1))
            except OSError:
                pass
            if len(flood) > 6 * FD_LIMIT:
                flood.pop(0).close()
            time.sleep(0.002)

    for _ in range(4 * FD_LIMIT):  # 1,024 idle sockets against a 256 descriptor limit
        flood.append(socket.create_connection(("127.0.0.1", served.port)))
    attacker = threading.Thread(target=keep_flooding, daemon=True)
    attacker.start()
    try:
        timings = []
        for _ in range(20):
            status, elapsed = served.get("/api/v1.0/config/")
            assert status == 200
            timings.append(elapsed)
            time.sleep(0.1)
        assert max(timings) < 2.0, timings  # locked out before: no answer at all
    finally:
        stop.set()
        attacker.join(timeout=10)
        for sock in flood:
            sock.close()
    assert served.process.poll() is None
    lines = served.log_lines()
    assert len(lines) < 60, lines[-20:]
    assert not any("Traceback" in line for line in lines), lines[-20:]


def test_a_connection_without_a_request_head_is_closed(served: Served) -> None:
    silent = socket.create_connection(("127.0.0.1", served.port))
    partial = socket.create_connection(("127.0.0.1", served.port))
    partial.sendall(b"GET /api/v1.0/config/ HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    assert _closed_by_peer(silent, HEADER_TIMEOUT + 2)
    assert _closed_by_peer(partial, HEADER_TIMEOUT + 2)
    assert time.monotonic() - started < HEADER_TIMEOUT + 2
    silent.close()
    partial.close()


def test_a_kept_alive_connection_outlives_the_header_timeout(served: Served) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    connection.request("GET", "/api/v1.0/config/")
    response = connection.getresponse()
    assert response.status == 200
    response.read()
    time.sleep(HEADER_TIMEOUT + 1)
    connection.request("GET", "/api/v1.0/config/")  # same socket: not closed by the guard
    assert connection.getresponse().status == 200
    connection.close()


def test_serve_raises_the_open_file_soft_limit_to_the_hard_limit(tmp_path: Path) -> None:
    for served in _serve(tmp_path, 256, 4096):
        limits = Path(f"/proc/{served.process.pid}/limits").read_text().splitlines()
        (line,) = [line for line in limits if line.startswith("Max open files")]
        assert line.split()[3:5] == ["4096", "4096"], line


def test_connection_cap_leaves_descriptors_for_everything_else() -> None:
    assert connection_cap(None, 1024) == 1024 - FD_RESERVE
    assert connection_cap(None, 256) == 128
    assert connection_cap(100, 1024) == 100
    assert connection_cap(5000, 1024) == 1024 - FD_RESERVE  # never beyond the limit
    assert connection_cap(None, 1) == 1


def test_flood_settings_are_read_and_checked() -> None:
    base = {"SECRET_KEY": "c" * 40, "LIVEKIT_API_SECRET": "l" * 40}
    default = Settings.from_env(base)
    assert (default.header_timeout_seconds, default.max_connections) == (10.0, None)
    tuned = Settings.from_env(
        {**base, "MEET_HEADER_TIMEOUT_SECONDS": "2.5", "MEET_MAX_CONNECTIONS": "300"}
    )
    assert (tuned.header_timeout_seconds, tuned.max_connections) == (2.5, 300)
    for name, value in (("MEET_HEADER_TIMEOUT_SECONDS", "0"), ("MEET_MAX_CONNECTIONS", "0")):
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_env({**base, name: value})
