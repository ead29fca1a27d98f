"""Ray nodes run as ``ray start --block`` processes, stopped by their PID (never ``ray stop``).

``serve --engine ray`` without ``--ray-address`` starts a one-machine head here and stops it
when it exits; the multi-node test and ``bench.engines`` start a head and a second raylet, each
on its own loopback address (``/work/shared/reference/ray.md``: Ray otherwise advertises the
machine's external address). This module runs the ``ray`` command; it does not import ``ray``
(only ``coordinator.engines.ray`` does).

Authentication: a head started with :func:`local_head` uses Ray's token mode with a fresh
random token, given to the head and, through :attr:`RayNode.client_env`, to every driver
(front end) and host; another local user cannot join the cluster without it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from coordinator import supervisor

READY_LINE = "Ray runtime started."
LOCAL_IP = "127.0.0.1"
# Not inherited by a node we start: our settings, and the single-node loopback switch (a
# raylet joining a head refuses it; the local head sets it again through ``env``).
_RAY_VARIABLES = ("RAY_ADDRESS", "RAY_NAMESPACE", "RAY_HOSTS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


class RayStartError(RuntimeError):
    """``ray start`` exited or did not become ready; carries the end of its log."""


def ray_executable() -> str:
    """The ``ray`` command beside this interpreter (the venv's), else on ``PATH``."""
    beside = Path(sys.executable).with_name("ray")
    if beside.is_file():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise RayStartError("the `ray` command is not installed (pip install ray)")
    return found


def free_port(host: str = LOCAL_IP) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RayNode:
    """One ``ray start --block`` process: a head (``head_address`` None) or a raylet joining it.

    :meth:`start` returns without waiting; :meth:`wait_ready` waits for Ray's "started" line.
    :meth:`stop` sends SIGTERM to the process (``ray start`` then stops its own children) and
    SIGKILL after ``grace`` seconds.
    """

    def __init__(
        self,
        *,
        node_ip: str,
        temp_dir: Path,
        head_address: str | None = None,
        num_cpus: int | None = None,
        resources: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.node_ip = node_ip
        self.temp_dir = temp_dir
        self.head_address = head_address
        self.port = free_port(node_ip) if head_address is None else None
        self.num_cpus = num_cpus
        self.resources = resources
        self.extra_env = dict(env or {})
        self.log_path = temp_dir / f"ray-start-{node_ip}-{os.getpid()}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The cluster's address (the head's GCS) for ``RAY_ADDRESS``."""
        if self.head_address is not None:
            return self.head_address
        return f"{self.node_ip}:{self.port}"

    @property
    def client_env(self) -> dict[str, str]:
        """What a driver of this cluster needs in its environment (besides ``RAY_ADDRESS``)."""
        return {k: v for k, v in self.extra_env.items() if k.startswith("RAY_")}

    def command(self) -> list[str]:
        command = [ray_executable(), "start", "--block", f"--node-ip-address={self.node_ip}"]
        command += [
            f"--dashboard-agent-listen-port={free_port(self.node_ip)}",
            "--disable-usage-stats",
        ]
        if self.head_address is None:
            command += [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--temp-dir={self.temp_dir}",
            ]
        else:
            command.append(f"--address={self.head_address}")
        if self.num_cpus is not None:
            command.append(f"--num-cpus={self.num_cpus}")
        if self.resources is not None:
            command.append(f"--resources={self.resources}")
        return command

    def start(self, *, die_with_parent: bool = False) -> RayNode:
        """Start ``ray start``; ``die_with_parent`` (for single-threaded callers: it runs in the
        child before exec) makes it stop when this process dies, however it dies."""
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _RAY_VARIABLES}
        # On SIGTERM Ray 2.60 first "drains" the node for up to 30 s, waiting for every worker
        # lease to come back: detached hosts never give theirs back, so stopping took 30 s.
        env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
        env.update(self.extra_env)
        if die_with_parent:
            supervisor.prepare_die_with_parent()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl+C meant for the server reaches it through us
                preexec_fn=supervisor.die_with_parent if die_with_parent else None,
            )
        return self

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 90.0) -> RayNode:
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if READY_LINE in self.log_path.read_text(errors="replace"):
                    return self
            except OSError:
                pass
            if self.process.poll() is not None:
                raise RayStartError(
                    f"ray start exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RayStartError(f"ray start not ready in {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def wait_gcs(self, timeout: float = 60.0) -> None:
        """Wait until the head's GCS port accepts connections (a raylet can then join)."""
        host, _, port = self.address.rpartition(":")
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return
            except OSError:
                if self.process is not None and self.process.poll() is not None:
                    raise RayStartError(f"ray start exited:\n{self.log_tail()}") from None
                if time.monotonic() > deadline:
                    raise RayStartError(f"no GCS on {self.address}:\n{self.log_tail()}") from None
                time.sleep(0.05)

    def stop(self, grace: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only its processes
            process.wait()


def token_env() -> dict[str, str]:
    """Ray's token authentication with a fresh random token."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def local_head(num_cpus: int | None = None) -> tuple[RayNode, Path]:
    """A started one-machine head on 127.0.0.1 with its own token and temporary directory.

    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps every Ray address on loopback (ray.md).
    The caller stops the node and removes the directory.
    """
    temp_dir = Path(tempfile.mkdtemp(prefix="meet-ray-"))
    env = {**token_env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    node = RayNode(node_ip=LOCAL_IP, temp_dir=temp_dir, num_cpus=num_cpus, env=env)
    try:
        node.start(die_with_parent=True).wait_ready()
    except BaseException:
        node.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return node, temp_dir
