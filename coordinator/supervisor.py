"""``serve --workers N``: N front-end processes on one port, and the parent supervising them.

Each worker is a whole ``meet-coordinator serve`` process (the same aiohttp application behind
the same flood-safe listener) bound with ``SO_REUSEPORT``: the kernel spreads new connections
over the workers. The parent:

- holds the port (bound with ``SO_REUSEPORT``, never listening, so it gets no connection) so
  it stays ours while a worker restarts, and a port of 0 becomes one port shared by all;
- forwards SIGTERM and SIGINT to every worker, waits for them (``grace`` seconds, then
  SIGKILL) and exits 0;
- restarts a worker that dies, after a delay that doubles while it keeps dying (0.5 s to 10 s),
  and logs each death with its exit status; a worker dying ``MAX_DEATHS`` times within
  ``DEATH_WINDOW`` seconds stops the others and the parent exits 1, and a worker refusing its
  configuration (exit status 2) stops everything at once with status 2;
- makes the workers die with it (``PR_SET_PDEATHSIG``) should it be killed outright.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger(__name__)

CONFIGURATION_ERROR = 2  # the exit status of a refused configuration (coordinator.cli)
FIRST_DELAY = 0.5
MAX_DELAY = 10.0
STEADY_AFTER = 30.0  # a worker that ran this long starts again from FIRST_DELAY when it dies
MAX_DEATHS = 5
DEATH_WINDOW = 60.0
POLL_SECONDS = 0.1
_PR_SET_PDEATHSIG = 1


def worker_count(value: str) -> int:
    """``--workers``: a positive number, or ``auto`` (one per core this process may run on)."""
    if value == "auto":
        return len(os.sched_getaffinity(0))
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"--workers must be a number or 'auto', not {value!r}") from None
    if count < 1:
        raise ValueError(f"--workers must be at least 1, not {count}")
    return count


def hold_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT`` and not listening.

    Binding fails at once when another program owns the port; the workers bind the same port
    (``port`` 0: the one chosen here). A socket that does not listen gets no connection.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux; elsewhere a no-op).

    Call :func:`prepare_die_with_parent` in the parent first: the child then only calls libc.
    """
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def prepare_die_with_parent() -> None:
    _prctl()


@dataclass
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    delay: float = FIRST_DELAY
    deaths: list[float] = field(default_factory=list)


class Supervisor:
    """Runs ``count`` workers (``command(index)`` with ``env``) until a signal stops them."""

    def __init__(
        self,
        command: Callable[[int], Sequence[str]],
        count: int,
        env: Mapping[str, str],
        *,
        grace: float = 30.0,
        first_delay: float = FIRST_DELAY,
        clock: Callable[[], float] = time.monotonic,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self._command = command
        self._on_exit = on_exit  # told the pid of every worker that ended
        self._env = dict(env)
        self._grace = grace
        self._clock = clock
        self._first_delay = first_delay
        self._slots = [_Slot(index, delay=first_delay) for index in range(1, count + 1)]
        self._signal: int | None = None

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process is not None]

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT (0), a crash loop (1) or a refused configuration (2)."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for slot in self._slots:
                self._start(slot)
            status = self._watch()
            self._stop_all()
            return status
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        self._signal = signum

    def _start(self, slot: _Slot) -> None:
        prepare_die_with_parent()
        slot.process = subprocess.Popen(
            list(self._command(slot.index)),
            env=self._env,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # the parent has no other thread: fork is safe
        )
        slot.started_at = self._clock()
        slot.restart_at = None
        log.info("worker %d started (pid %d)", slot.index, slot.process.pid)

    def _watch(self) -> int:
        while self._signal is None:
            now = self._clock()
            for slot in self._slots:
                if slot.process is None:
                    if slot.restart_at is not None and now >= slot.restart_at:
                        self._start(slot)
                    continue
                code = slot.process.poll()
                if code is None:
                    continue
                status = self._died(slot, code, now)
                if status is not None:
                    return status
            time.sleep(POLL_SECONDS)
        log.info("%s: stopping %d worker(s)", signal.Signals(self._signal).name, len(self.pids))
        return 0

    def _died(self, slot: _Slot, code: int, now: float) -> int | None:
        """Schedule the restart of a dead worker, or return the status to exit with."""
        assert slot.process is not None
        pid, slot.process = slot.process.pid, None
        if self._on_exit is not None:
            self._on_exit(pid)
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        if code == CONFIGURATION_ERROR:
            log.error("worker %d (pid %d) refused its configuration: stopping", slot.index, pid)
            return CONFIGURATION_ERROR
        slot.deaths = [t for t in slot.deaths if now - t < DEATH_WINDOW] + [now]
        if len(slot.deaths) >= MAX_DEATHS:
            log.error(
                "worker %d (pid %d) %s, dead %d times in %g s: stopping",
                slot.index,
                pid,
                how,
                len(slot.deaths),
                DEATH_WINDOW,
            )
            return 1
        if now - slot.started_at >= STEADY_AFTER:
            slot.delay = self._first_delay
        slot.restart_at = now + slot.delay
        log.warning("worker %d (pid %d) %s: restarting in %g s", slot.index, pid, how, slot.delay)
        slot.delay = min(slot.delay * 2, MAX_DELAY)
        return None

    def _stop_all(self) -> None:
        signum = self._signal or signal.SIGTERM
        running = [s.process for s in self._slots if s.process is not None]
        for process in running:
            try:
                process.send_signal(signum)
            except ProcessLookupError:
                pass
        deadline = self._clock() + self._grace
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in %g s: killed", process.pid, self._grace)
                process.kill()
                process.wait()
            if self._on_exit is not None:
                self._on_exit(process.pid)
        for slot in self._slots:
            slot.process = None
