"""``serve --engine --ray-address --workers`` and ``ray-hosts``: how many processes serve, where.

- The local engine (the default) serves in this one process: one process owns every room, so
  ``--workers`` above 1 is refused (exit 2) with a message pointing at ``--engine ray``.
- ``--engine ray`` joins the Ray cluster at ``--ray-address`` (``RAY_ADDRESS``); without an
  address this process starts a one-machine Ray head (``coordinator.ray_nodes``) and stops it
  when it exits. Ray mode refuses SQLite (the settings name ``DATABASE_URL``; exit 2).
- ``--workers N`` (``auto``: one per core) above 1 runs N front-end processes on one port
  (``SO_REUSEPORT``) under :class:`coordinator.supervisor.Supervisor`. They are stateless: the
  rooms live on the Ray hosts, and what runs once per cluster (the outbox dispatcher, the
  reconciliation's repairs) is safe in N processes (leased claims, conditional updates).
- ``ray-hosts --count K`` creates the K room hosts (a front end creates missing ones too).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from coordinator import supervisor
from coordinator.settings import Settings

if TYPE_CHECKING:
    from coordinator.ray_nodes import RayNode

log = logging.getLogger(__name__)

ServeHere = Callable[[argparse.Namespace, int | None], int]
LOCAL_ADDRESSES = (None, "", "local")


def _workers(value: str) -> int:
    try:
        return supervisor.worker_count(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {value!r}")
    return count


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        help="where rooms live: this process (local, the default) or Ray hosts (MEET_ENGINE)",
    )
    parser.add_argument(
        "--ray-address",
        help="the Ray cluster to join (RAY_ADDRESS); none: start one on this machine",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="front-end processes sharing the port ('auto': one per core; above 1: --engine ray)",
    )
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the parent


def refuse(message: str) -> int:
    print(f"meet-coordinator: configuration error: {message}", file=sys.stderr)
    return supervisor.CONFIGURATION_ERROR


def settings_from_environment() -> Settings:
    """The settings, or exit 2 with a one-line message naming the variable."""
    from coordinator.cli import _settings

    return _settings()


def stay_on_loopback(address: str | None) -> None:
    """A cluster at 127.0.0.1: Ray would otherwise rewrite the address to the machine's external
    one and dial that (ray.md); the variable keeps it, and the hosts, on loopback."""
    host = (address or "").rpartition(":")[0]
    if host in ("127.0.0.1", "localhost"):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def run_serve(args: argparse.Namespace, serve_here: ServeHere) -> int:
    """``serve``: in this process, or N supervised workers; with a local Ray head if asked."""
    if args.engine:
        os.environ["MEET_ENGINE"] = args.engine  # the workers and the Ray hosts read it too
    if args.ray_address:
        os.environ["RAY_ADDRESS"] = args.ray_address
    settings = settings_from_environment()
    stay_on_loopback(settings.ray_address)
    if args.worker_index is not None:
        return serve_here(args, args.worker_index)
    if settings.engine == "local" and args.workers > 1:
        return refuse(
            f"--workers {args.workers} needs --engine ray (MEET_ENGINE=ray): the local engine "
            "keeps every room in one process, so a second process would hold other copies."
        )
    head = None
    if settings.engine == "ray" and settings.ray_address in LOCAL_ADDRESSES:
        head = _start_local_ray()
    try:
        if args.workers == 1:
            return serve_here(args, None)
        return _supervise(args)
    finally:
        if head is not None:
            node, temp_dir = head
            node.stop()
            shutil.rmtree(temp_dir, ignore_errors=True)


def _start_local_ray() -> tuple[RayNode, Path]:
    from coordinator.ray_nodes import RayStartError, local_head

    print("meet-coordinator: starting a local Ray (no --ray-address)", flush=True)
    try:
        node, temp_dir = local_head()
    except RayStartError as exc:
        print(f"meet-coordinator: could not start a local Ray: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    os.environ.update(node.client_env)
    os.environ["RAY_ADDRESS"] = node.address
    print(f"meet-coordinator: local Ray at {node.address}", flush=True)
    return node, temp_dir


def _supervise(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [supervisor] %(name)s %(message)s"
    )
    try:
        holder = supervisor.hold_port(args.host, args.port)
    except OSError as exc:
        print(f"meet-coordinator: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = holder.getsockname()[1]

    def command(index: int) -> list[str]:
        argv = [sys.executable, "-m", "coordinator.cli", "serve", "--host", args.host]
        argv += ["--port", str(port), "--worker-index", str(index)]
        argv += ["--event-loop", args.event_loop]
        return argv + (["--no-access-log"] if args.no_access_log else [])

    print(
        f"meet-coordinator: {args.workers} workers on http://{args.host}:{port} "
        f"(supervisor pid {os.getpid()})",
        flush=True,
    )
    from coordinator.telemetry import mark_process_dead

    # One /metrics for all workers: each writes its values to files of this directory and the
    # one answering a scrape aggregates them (prometheus-client's multi-process mode).
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or ""
    own_metrics_dir = not metrics_dir
    if own_metrics_dir:
        metrics_dir = tempfile.mkdtemp(prefix="meet-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    else:
        os.makedirs(metrics_dir, exist_ok=True)
        for stale in Path(metrics_dir).glob("*.db"):  # values of an earlier run
            stale.unlink()
    try:
        return supervisor.Supervisor(
            command,
            args.workers,
            os.environ,
            on_exit=lambda pid: mark_process_dead(pid, metrics_dir),
        ).run()
    finally:
        holder.close()
        if own_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def cmd_ray_hosts(args: argparse.Namespace) -> int:
    """Create (or find) the room hosts in the cluster; print each with its process id."""
    os.environ["MEET_ENGINE"] = "ray"
    if args.ray_address:
        os.environ["RAY_ADDRESS"] = args.ray_address
    settings = settings_from_environment()
    stay_on_loopback(settings.ray_address)
    if settings.ray_address in LOCAL_ADDRESSES:
        return refuse("ray-hosts needs the cluster's address: --ray-address or RAY_ADDRESS.")
    count = args.count or settings.ray_hosts
    from coordinator.engines import ray as ray_engine

    ray_engine.connect(settings.ray_address, namespace=settings.ray_namespace)
    names = ray_engine.ensure_hosts(count, dict(os.environ), namespace=settings.ray_namespace)
    pids = ray_engine.host_pids(names, namespace=settings.ray_namespace)
    for name in names:
        print(f"{name} pid {pids[name]}")
    if count != settings.ray_hosts:
        print(f"meet-coordinator: set RAY_HOSTS={count} for the front ends", file=sys.stderr)
    return 0


def register_ray_hosts(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hosts = commands.add_parser("ray-hosts", help="create the Ray room hosts (MEET_ENGINE=ray)")
    hosts.add_argument("--count", type=_positive, help="how many hosts (default: RAY_HOSTS)")
    hosts.add_argument("--ray-address", help="the Ray cluster (default: RAY_ADDRESS)")
    hosts.set_defaults(func=cmd_ray_hosts)
