"""``serve --workers/--engine`` refusals and the supervisor of the worker processes.

The refusals run the real command (exit status 2, one line naming what to change). The
supervisor is driven here with small Python children (each a process that records its pid and
sleeps, or dies) so its restarts, its signal forwarding and its crash-loop limit cost a second;
``tests/test_ray_serve.py`` runs it with real front ends on Ray.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.test_cli import COMMAND, env_for


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], env=env_for(tmp_path, **env), capture_output=True, text=True, timeout=60
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_local_engine_refuses_several_workers_pointing_at_ray(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--port", "1", "--workers", "2")
    assert result.returncode == 2
    line = one_error_line(result)
    assert "--workers 2" in line and "--engine ray" in line


def test_local_engine_from_the_environment_refuses_too(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--port", "1", "--workers", "3", MEET_ENGINE="local")
    assert result.returncode == 2 and "--engine ray" in one_error_line(result)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="auto is 1 worker on one core")
def test_workers_auto_is_one_per_core_and_refused_by_the_local_engine(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--port", "1", "--workers", "auto")
    assert result.returncode == 2
    assert f"--workers {len(os.sched_getaffinity(0))} " in one_error_line(result)


@pytest.mark.parametrize("value", ["0", "-1", "two", ""])
def test_bad_worker_counts_are_usage_errors(tmp_path: Path, value: str) -> None:
    result = run_cli(tmp_path, "serve", "--port", "1", "--workers", value)
    assert result.returncode == 2 and "--workers" in result.stderr


def test_ray_engine_refuses_sqlite_naming_database_url(tmp_path: Path) -> None:
    """Refused before anything starts: no Ray is joined nor started (the address is dead)."""
    started = time.monotonic()
    result = run_cli(
        tmp_path, "serve", "--engine", "ray", "--ray-address", "127.0.0.1:1", "--workers", "2"
    )
    assert result.returncode == 2
    line = one_error_line(result)
    assert "DATABASE_URL" in line and "PostgreSQL" in line
    assert time.monotonic() - started < 30


def test_ray_engine_without_address_refuses_sqlite_before_starting_ray(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--port", "1", MEET_ENGINE="ray")
    assert result.returncode == 2 and "DATABASE_URL" in one_error_line(result)
    assert "starting a local Ray" not in result.stdout


def test_ray_hosts_needs_an_address(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        "ray-hosts",
        "--count",
        "2",
        DATABASE_URL="postgresql://meet@127.0.0.1:1/meet",
    )
    assert result.returncode == 2 and "--ray-address" in one_error_line(result)


# -- the supervisor, with plain child processes --------------------------------------------

SUPERVISOR = """
import logging, os, sys
from coordinator.supervisor import Supervisor
logging.basicConfig(level=logging.INFO)
child, count = sys.argv[1], int(sys.argv[2])
command = lambda i: [sys.executable, "-c", child, str(i)]
sys.exit(Supervisor(command, count, os.environ, grace=5, first_delay=0.05).run())
"""


def child_script(body: str, directory: Path) -> str:
    """A child that writes ``<index>.<pid>`` in ``directory``, then runs ``body``."""
    return textwrap.dedent(
        f"""
        import os, signal, sys, time
        index = sys.argv[1]
        open(os.path.join({str(directory)!r}, index + "." + str(os.getpid())), "w").close()
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        """
    ) + textwrap.dedent(body)


def start_supervisor(child: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, child, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )


def pids_of(directory: Path, count: int, *, timeout: float = 20.0) -> dict[str, list[int]]:
    """Every child started so far by index, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, list[int]] = {}
        for entry in directory.iterdir():
            index, _, pid = entry.name.partition(".")
            found.setdefault(index, []).append(int(pid))
        if sum(len(v) for v in found.values()) >= count:
            return found
        assert time.monotonic() < deadline, f"only {found} started"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive"
        time.sleep(0.02)


def test_sigterm_is_forwarded_to_every_worker_and_all_exit(tmp_path: Path) -> None:
    process = start_supervisor(child_script("time.sleep(60)", tmp_path), 2)
    pids = pids_of(tmp_path, 2)
    assert sorted(pids) == ["1", "2"]
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    for [pid] in pids.values():
        wait_gone(pid)
    assert "SIGTERM: stopping 2 worker(s)" in stderr


def test_a_dead_worker_is_reported_and_restarted(tmp_path: Path) -> None:
    process = start_supervisor(child_script("time.sleep(60)", tmp_path), 2)
    try:
        first = pids_of(tmp_path, 2)
        os.kill(first["2"][0], signal.SIGKILL)
        again = pids_of(tmp_path, 3)
        assert again["1"] == first["1"] and len(again["2"]) == 2
        assert alive(next(p for p in again["2"] if p != first["2"][0]))
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0
    assert f"worker 2 (pid {first['2'][0]}) was killed by SIGKILL: restarting" in stderr


def test_a_worker_refusing_its_configuration_stops_everything_with_status_2(
    tmp_path: Path,
) -> None:
    child = child_script("if index == '2': sys.exit(2)\ntime.sleep(60)", tmp_path)
    process = start_supervisor(child, 2)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "refused its configuration" in stderr
    # Worker 1 may be stopped before it even wrote its file (a loaded machine): its pid is
    # taken from the supervisor's log, which names every worker it started.
    started = re.findall(r"worker 1 started \(pid (\d+)\)", stderr)
    assert started, stderr
    for pid in started:
        wait_gone(int(pid))


def test_a_worker_dying_again_and_again_stops_the_supervisor(tmp_path: Path) -> None:
    process = start_supervisor(child_script("sys.exit(1)", tmp_path), 1)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "dead 5 times" in stderr


def test_workers_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    process = start_supervisor(child_script("time.sleep(60)", tmp_path), 2)
    pids = pids_of(tmp_path, 2)
    process.kill()
    process.communicate(timeout=10)
    for [pid] in pids.values():
        wait_gone(pid)
