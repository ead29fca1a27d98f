"""A Ray cluster of two raylets on one machine, front ends served on it, stand-ins beside it.

For ``tests/test_ray_serve.py`` and ``bench/engines.py``. Per ``/work/shared/reference/ray.md``:
each raylet on its own loopback address (127.0.0.2 for the head, 127.0.0.3 for the second),
token authentication off (``RAY_AUTH_MODE=disabled``: loopback only, for tests), the temporary
directory in the caller's; every process is stopped by its PID (never ``ray stop``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text

from api.session import SessionCodec
from coordinator.cache import LookupCache
from coordinator.ray_nodes import RayNode
from coordinator.sessions import LoginSessions
from storage.engine import create_engine, create_sessionmaker
from storage.models import Base
from storage.records import RoomRecord
from tests.support.factories import Factory
from tests.support.postgres import free_port

T = TypeVar("T")
HEAD_IP = "127.0.0.2"
SECOND_IP = "127.0.0.3"
NO_AUTH = {"RAY_AUTH_MODE": "disabled"}
REPO = Path(__file__).resolve().parents[2]


class LoopThread:
    """An event loop in a daemon thread: stand-ins live there while the caller blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the loop's thread (the stand-ins are not thread-safe)."""
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(function(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class TwoNodeCluster:
    """A head on 127.0.0.2 and a second raylet on 127.0.0.3, one CPU each."""

    def __init__(self, temp_dir: Path | None = None) -> None:
        # Short: Ray's Unix socket paths live under it (at most 107 bytes).
        self.temp_dir = temp_dir or Path(tempfile.mkdtemp(prefix="mr-", dir="/tmp"))
        self.head = RayNode(node_ip=HEAD_IP, temp_dir=self.temp_dir, num_cpus=1, env=NO_AUTH)
        self.second: RayNode | None = None

    @property
    def address(self) -> str:
        return self.head.address

    def start(self) -> TwoNodeCluster:
        """Both raylets started; the second joins as soon as the head's GCS answers."""
        self.head.start()
        self.head.wait_gcs()
        self.second = RayNode(
            node_ip=SECOND_IP,
            temp_dir=self.temp_dir,
            head_address=self.head.address,
            num_cpus=1,
            env=NO_AUTH,
        ).start()
        return self

    def wait_ready(self) -> None:
        assert self.second is not None
        self.head.wait_ready()
        self.second.wait_ready()

    def stop(self) -> None:
        if self.second is not None:
            self.second.stop()
        self.head.stop()

    def host_pids(self, node_ip: str) -> list[int]:
        """The room-host processes (``ray::RoomHost``) on this cluster's raylet at ``node_ip``."""
        raylets = set()
        hosts: list[tuple[int, int]] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            text = b" ".join(argv).decode(errors="replace")
            if argv and argv[0].endswith(b"raylet") and f"node_ip_address={node_ip}" in text:
                if str(self.temp_dir) in text:
                    raylets.add(int(entry.name))
            elif text.startswith("ray::RoomHost"):
                hosts.append((int(entry.name), ppid))
        return sorted(pid for pid, parent in hosts if parent in raylets)


def front_end_env(base: Mapping[str, str], *, address: str, namespace: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE", "RAY_"))}
    env.update(NO_AUTH)
    env.update(base)
    env.update(MEET_ENGINE="ray", RAY_ADDRESS=address, RAY_NAMESPACE=namespace)
    return env


class Served:
    """``meet-coordinator serve --engine ray --workers N`` as a process; logs in files."""

    def __init__(
        self,
        env: Mapping[str, str],
        workers: int,
        log_dir: Path,
        *extra: str,
        engine: str = "ray",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.stdout_path = log_dir / f"serve-{self.port}.out"
        self.stderr_path = log_dir / f"serve-{self.port}.err"
        command = [sys.executable, "-m", "coordinator.cli", "serve", "--engine", engine]
        command += ["--port", str(self.port), "--workers", str(workers), *extra]
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                command, env=dict(env), stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO
            )

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Every worker says it runs (or the one process answers its heartbeat)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.output()}")
            text = self.output()
            if self.workers > 1:
                running = sum(f"worker {i}: ======== Running" in text for i in range(1, 99))
                if running >= self.workers:
                    return
            else:
                try:
                    urllib.request.urlopen(f"{self.url}/__lbheartbeat__", timeout=2).close()
                    return
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve not ready in {timeout:g} s:\n{text[-3000:]}")
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


TABLES = ", ".join(table.name for table in reversed(Base.metadata.sorted_tables))


async def seed(
    url: str, count: int, secret_key: str, *, truncate: bool = True
) -> tuple[str, list[RoomRecord]]:
    """An owner with a session cookie, and ``count`` restricted rooms (their lobby, snapshot
    and recording commands go through the room's actor)."""
    engine = create_engine(url)
    if truncate:
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    factory = Factory(create_sessionmaker(engine))
    owner = await factory.user()
    rooms = [
        await factory.room(
            owner=owner, name=f"ray room {uuid.uuid4().hex[:10]}", access_level="restricted"
        )
        for _ in range(count)
    ]
    key = await LoginSessions(factory.sessionmaker, LookupCache(0)).open(owner.id, max_age=3600)
    await engine.dispose()
    cookie = SessionCodec(secret_key, max_age=3600).encode(
        {"sid": key, "uid": str(owner.id), "exp": int(time.time()) + 3600}
    )
    return cookie, rooms
