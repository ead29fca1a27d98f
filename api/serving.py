"""``serve``'s listener: a flood of connections never locks the other clients out.

- At start the open-file soft limit is raised to the hard limit.
- Connections are capped (``MEET_MAX_CONNECTIONS``, never more than the open-file limit less a
  reserve for the database, LiveKit and files). At the cap the oldest idle connection (no
  request in progress) is closed to make room; when every connection is busy, accepting waits.
- A connection that has not sent a complete request head within ``MEET_HEADER_TIMEOUT_SECONDS``
  is closed (aiohttp's keep-alive timeout only closes connections idle after a response).
- A failed accept (out of descriptors...) sheds an idle connection, backs off up to a second,
  and is logged once per interval with a count. asyncio's own accept loop logs every failure
  with a traceback and, on Python 3.11, multiplies its retries (144,000 lines in 15 s).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_log import AccessLogger

log = logging.getLogger(__name__)

# Descriptors kept for everything but client connections: database pool, LiveKit/OIDC HTTP
# connector (100 by default), static files, logs.
FD_RESERVE = 192
MAX_BACKOFF_SECONDS = 1.0
REPORT_EVERY_SECONDS = 10.0
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_TRANSIENT_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EAGAIN, errno.EPERM})


def raise_open_file_limit() -> int:
    """Raise ``RLIMIT_NOFILE``'s soft limit to the hard one; returns the limit in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit to %d: %s", target, exc)
    return soft


def connection_cap(configured: int | None, open_files: int) -> int:
    """``configured`` (if any), within what ``open_files`` descriptors leave for clients."""
    reserve = min(FD_RESERVE, open_files // 2)
    allowed = max(1, open_files - reserve)
    return allowed if configured is None else max(1, min(configured, allowed))


BURST = 64  # connections accepted in one turn of the loop, at most


class _Connection(asyncio.Protocol):
    """Forwards to aiohttp's request handler, made when the first bytes arrive.

    A socket that sends nothing costs a transport and this object only. The connection
    knows whether it is idle (sheddable) and closes itself when its request head is overdue.
    """

    def __init__(self, make_handler: Callable[[], Any], guard: ConnectionGuard) -> None:
        self.make_handler = make_handler
        self.handler: Any = None
        self.guard = guard
        self.transport: asyncio.Transport | None = None
        self.shed = False
        self._head_due: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's does not derive from asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self._head_due = loop.call_later(self.guard.header_timeout, self._check_head)
        self.guard.opened(self)

    def data_received(self, data: bytes) -> None:
        if self.handler is None:
            if self.shed:
                return
            self.handler = self.make_handler()
            assert self.transport is not None
            self.handler.connection_made(self.transport)
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        if self.handler is None:
            return None  # nothing asked: close
        result: bool | None = self.handler.eof_received()
        return result

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_due is not None:
            self._head_due.cancel()
        self.guard.closed(self)
        if self.handler is not None:
            self.handler.connection_lost(exc)

    def idle(self) -> bool:
        """No request being handled nor parsed and waiting (aiohttp's handler state)."""
        handler = self.handler
        return handler is None or (
            getattr(handler, "_current_request", None) is None
            and not getattr(handler, "_messages", ())
        )

    def close(self) -> None:
        if not self.shed:
            self.shed = True
            self.guard.closing(self)
        if self.transport is not None:
            self.transport.close()

    def _check_head(self) -> None:
        self._head_due = None
        if self.handler is None or getattr(self.handler, "_request_count", 1) == 0:
            self.guard.head_timeouts += 1
            self.close()


class ConnectionGuard:
    """Counts open connections and sheds the oldest idle one at the cap."""

    def __init__(self, *, cap: int, header_timeout: float) -> None:
        self.cap = cap
        self.header_timeout = header_timeout
        self.head_timeouts = 0
        self.shed_count = 0
        self._open: dict[_Connection, None] = {}  # oldest first
        self._closing = 0  # of those, closed by us and not yet gone
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, connection: _Connection) -> None:
        self._open[connection] = None
        if self._live() >= self.cap and not self.shed_one(keep=connection):
            self._room.clear()

    def closing(self, connection: _Connection) -> None:
        if connection in self._open:
            self._closing += 1

    def closed(self, connection: _Connection) -> None:
        if connection in self._open:
            del self._open[connection]
            if connection.shed:
                self._closing -= 1
        if self._live() < self.cap:
            self._room.set()

    def shed_one(self, *, keep: _Connection | None = None) -> bool:
        for connection in self._open:
            if connection is not keep and not connection.shed and connection.idle():
                self.shed_count += 1
                connection.close()
                return True
        return False

    async def wait_for_room(self) -> None:
        await self._room.wait()

    def room_for(self) -> int:
        """How many more connections fit under the cap."""
        return self.cap - self._live()

    def _live(self) -> int:
        return len(self._open) - self._closing


class Listener:
    """Accepts on ``sock`` for aiohttp's ``web.Server``, within the guard's limits."""

    def __init__(self, server: web.Server, guard: ConnectionGuard) -> None:
        self._server = server
        self._guard = guard
        self._failures = 0
        self._last_report = 0.0

    async def accept_forever(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.0
        while True:
            await self._guard.wait_for_room()
            try:
                client, _ = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in _TRANSIENT_ERRNOS:
                    continue
                if exc.errno not in _RESOURCE_ERRNOS:
                    raise
                self._guard.shed_one()
                self._report(exc)
                delay = min(max(delay * 2, 0.01), MAX_BACKOFF_SECONDS)
                await asyncio.sleep(delay)
                continue
            delay = 0.0
            # The rest of a burst, while it fits under the cap, is taken in the same turn and
            # made concurrently: one loop turn per connection made 64 new clients wait up to
            # ~0.3 s under load (the p99 of bench.rooms). At the cap, one at a time: each is
            # counted (and may shed an older one) before the next accept, so a burst never
            # sheds its own newest, busy members.
            burst = [client]
            while len(burst) < BURST and self._guard.room_for() > len(burst):
                try:
                    more, _ = sock.accept()
                except OSError:
                    break  # nothing more waiting (or a failure the next await will meet)
                burst.append(more)
            results = await asyncio.gather(
                *(loop.connect_accepted_socket(self._factory, c) for c in burst),
                return_exceptions=True,
            )
            for accepted, result in zip(burst, results, strict=True):
                if isinstance(result, OSError):
                    accepted.close()
                elif isinstance(result, BaseException):
                    raise result

    def _factory(self) -> _Connection:
        return _Connection(self._server, self._guard)

    def _report(self, exc: OSError) -> None:
        self._failures += 1
        now = time.monotonic()
        if now - self._last_report >= REPORT_EVERY_SECONDS:
            log.warning(
                "accept failed %d time(s) (%s) with %d connections open; backing off",
                self._failures,
                errno.errorcode.get(exc.errno or 0, exc.errno),
                len(self._guard),
            )
            self._failures = 0
            self._last_report = now


async def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    access_log: logging.Logger | None,
    access_log_class: type[AbstractAccessLogger] = AccessLogger,
    header_timeout: float,
    max_connections: int | None,
    print_: Callable[[str], None] = print,
    reuse_port: bool = False,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM.

    ``reuse_port``: bind with ``SO_REUSEPORT`` so several processes (``serve --workers N``)
    listen on one port, the kernel spreading new connections over them.
    """
    open_files = raise_open_file_limit()
    cap = connection_cap(max_connections, open_files)
    runner = web.AppRunner(
        app, access_log=access_log, access_log_class=access_log_class, handle_signals=False
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    sock = socket.create_server((host, port), backlog=1024, reuse_port=reuse_port)
    sock.setblocking(False)
    assert runner.server is not None
    guard = ConnectionGuard(cap=cap, header_timeout=header_timeout)
    accepting = loop.create_task(Listener(runner.server, guard).accept_forever(sock))
    log.info(
        "open-file limit %d, at most %d connections, request heads due within %g s, %s loop",
        open_files,
        cap,
        header_timeout,
        type(loop).__module__.partition(".")[0],  # uvloop or asyncio
    )
    print_(f"======== Running on http://{host}:{port} ========\n(Press CTRL+C to quit)")
    try:
        done, _ = await asyncio.wait(
            [accepting, loop.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if accepting in done:
            accepting.result()  # the listener died: say why
    finally:
        accepting.cancel()
        sock.close()
        await runner.cleanup()
