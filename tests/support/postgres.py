"""A throwaway PostgreSQL cluster made with the machine's ``initdb``/``pg_ctl`` on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bindir() -> Path | None:
    """The PostgreSQL server binaries: ``pg_config --bindir``, then the Debian layout."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for initdb in ("initdb",):
        found = shutil.which(initdb)
        if found:
            candidates.append(Path(found).resolve().parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """Start with :meth:`start`, stop with :meth:`stop` (by PID if ``pg_ctl`` cannot)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="meet-pg-"))
        self.data = self.root / "data"
        self.pid: int | None = None
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:  # initdb refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}\n{result.stderr}")

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        self.start_server()

    def start_server(self) -> None:
        """Start the (initialised) cluster's server; :meth:`start` calls it, tests may again."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop_server(self) -> None:
        """Stop the server, closing its clients' connections; the data stays for a restart.

        ``fast``, not ``immediate``: the cluster runs with ``synchronous_commit=off``, so a
        crash would lose the last commits (the test's own setup among them).
        """
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.pid = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        try:
            if self.pid is not None:
                try:
                    self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
                except (RuntimeError, subprocess.TimeoutExpired):
                    os.kill(self.pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    try:
                        os.kill(self.pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.05)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
