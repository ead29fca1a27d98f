"""The summary-service stand-in: the two task endpoints Meet calls, on 127.0.0.1.

* ``POST /api/v1/tasks/`` (v1) and ``POST /api/v2/async-jobs/transcribe/`` (v2), with or
  without the trailing slash, require ``Authorization: Bearer <token>`` (else 401).
* Every request to them is recorded in :attr:`SummaryStandin.calls` (headers included, so an
  ``Idempotency-Key`` is visible), authorised or not, before any reply is chosen.
* Authorised calls get the next scripted reply (see :mod:`.script`) or the default.
* :meth:`SummaryStandin.go_down` closes the listening socket and every connection but keeps
  the port reserved (a bound, non-listening socket), so clients get "connection refused";
  :meth:`SummaryStandin.come_back` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from .records import ApiVersion, ReceivedCall
from .script import Reply, ReplyScript

HOST = "127.0.0.1"
DEFAULT_TOKEN = "summary-standin-token"
V1_PATH = "/api/v1/tasks/"
V2_PATH = "/api/v2/async-jobs/transcribe/"


def _bind(port: int) -> socket.socket:
    """A TCP socket bound to 127.0.0.1:<port> that shares the port with its siblings."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((HOST, port))
    except BaseException:
        sock.close()
        raise
    return sock


class SummaryStandin:
    """An in-process summary service for tests (see the module docstring)."""

    def __init__(self, *, token: str = DEFAULT_TOKEN, port: int = 0) -> None:
        self.token = token
        self.calls: list[ReceivedCall] = []
        self.script = ReplyScript()
        self._port = port
        self._reserve: socket.socket | None = None
        self._runner: web.AppRunner | None = None
        self._interrupt = asyncio.Event()
        self._changed = asyncio.Condition()

    # ------------------------------------------------------------------ addresses
    @property
    def port(self) -> int:
        """The port (reserved from :meth:`start` to :meth:`stop`, even while down)."""
        return self._port

    @property
    def url(self) -> str:
        if self._reserve is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://{HOST}:{self._port}"

    @property
    def v1_url(self) -> str:
        """What to set as SUMMARY_SERVICE_ENDPOINT for version 1."""
        return self.url + V1_PATH

    @property
    def v2_url(self) -> str:
        """What to set as SUMMARY_SERVICE_ENDPOINT for version 2."""
        return self.url + V2_PATH

    @property
    def is_up(self) -> bool:
        return self._runner is not None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> SummaryStandin:
        """Reserve the port and start listening. Returns ``self``."""
        if self._reserve is not None:
            raise RuntimeError("already started")
        self._reserve = _bind(self._port)
        self._port = int(self._reserve.getsockname()[1])
        try:
            await self.come_back()
        except BaseException:
            self._reserve.close()
            self._reserve = None
            raise
        return self

    async def stop(self) -> None:
        """Stop listening, drop stalled requests and connections, release the port."""
        if self._reserve is None:
            return
        await self.go_down()
        self._reserve.close()
        self._reserve = None

    async def go_down(self) -> None:
        """Refuse connections from now on (the port stays reserved); stalled calls drop."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._interrupt.set()
        await runner.cleanup()

    async def come_back(self) -> None:
        """Listen again on the same port."""
        if self._reserve is None:
            raise RuntimeError("the stand-in is not started")
        if self._runner is not None:
            return
        app = web.Application()
        for path in (V1_PATH, V1_PATH.rstrip("/")):
            app.router.add_post(path, self._handler("v1"))
        for path in (V2_PATH, V2_PATH.rstrip("/")):
            app.router.add_post(path, self._handler("v2"))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        listener = _bind(self._port)
        try:
            listener.listen(128)
            listener.setblocking(False)
            await web.SockSite(runner, listener).start()
        except BaseException:
            listener.close()
            await runner.cleanup()
            raise
        self._interrupt.clear()
        self._runner = runner

    async def __aenter__(self) -> SummaryStandin:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ scripting
    def add_reply(self, reply: Reply) -> None:
        """Queue a :class:`Reply` for the next authorised calls."""
        self.script.add(reply)

    def reply_job(self, job_id: str | None = None, *, status: int = 200, times: int = 1) -> None:
        self.add_reply(Reply.job(job_id, status=status, times=times))

    def reply_without_job_id(self, body: Any = None, *, status: int = 200, times: int = 1) -> None:
        """2xx whose body has no ``job_id`` (default ``{"message": "Task created"}``)."""
        payload = body if body is not None else {"message": "Task created"}
        self.add_reply(Reply.json(payload, status=status, times=times))

    def reply_error(self, status: int = 500, body: Any = None, *, times: int = 1) -> None:
        self.add_reply(Reply.error(status, body, times=times))

    def stall(self, seconds: float, *, times: int = 1) -> None:
        self.add_reply(Reply.stall(seconds, times=times))

    def drop(self, *, times: int = 1) -> None:
        self.add_reply(Reply.drop(times=times))

    def fail_next(self, count: int, *, status: int = 503) -> None:
        """The next ``count`` authorised calls answer ``status``."""
        self.reply_error(status, {"detail": "Service Unavailable"}, times=count)

    def clear(self) -> None:
        """Forget recorded calls and scripted replies."""
        self.calls.clear()
        self.script.clear()

    # ------------------------------------------------------------------ inspection
    def accepted(self) -> list[ReceivedCall]:
        """Authorised calls, in arrival order."""
        return [call for call in self.calls if call.authorized]

    def payloads(self) -> list[Any]:
        """Decoded bodies of the authorised calls."""
        return [call.json for call in self.accepted()]

    def unique_payloads(self) -> list[Any]:
        """:meth:`payloads` without repeats of an ``Idempotency-Key`` (first one kept);
        calls without the header all count."""
        seen: set[str] = set()
        unique: list[Any] = []
        for call in self.accepted():
            key = call.idempotency_key
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            unique.append(call.json)
        return unique

    async def wait_for_calls(self, count: int, max_wait: float = 5.0) -> list[ReceivedCall]:
        """Wait until at least ``count`` calls were received (answered or not yet)."""
        async with asyncio.timeout(max_wait), self._changed:
            await self._changed.wait_for(lambda: len(self.calls) >= count)
        return list(self.calls)

    # ------------------------------------------------------------------ handlers
    def _handler(self, api: ApiVersion) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(api, request)

        return handle

    async def _handle(self, api: ApiVersion, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            decoded, valid = json.loads(body), True
        except (ValueError, RecursionError):
            decoded, valid = None, False
        call = ReceivedCall(
            api=api,
            method=request.method,
            path=request.path,
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            body=body,
            json=decoded,
            json_valid=valid,
            authorized=request.headers.get("Authorization") == f"Bearer {self.token}",
            reply="pending",
        )
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()
        return await self._answer(api, call, request)

    async def _answer(
        self, api: ApiVersion, call: ReceivedCall, request: web.Request
    ) -> web.StreamResponse:
        if not call.authorized:
            detail = "Invalid token" if "Authorization" in call.headers else "Not authenticated"
            return self._json(call, "unauthorized", 401, {"detail": detail})
        if not call.json_valid:
            return self._json(call, "invalid", 422, {"detail": "Invalid JSON body"})
        reply = self.script.take()
        if reply is None:
            return self._json(call, "default", 200, self._default_body(api))
        if reply.kind == "drop":
            return self._drop(call, request)
        if reply.kind == "stall":
            try:
                await asyncio.wait_for(self._interrupt.wait(), reply.seconds)
            except TimeoutError:
                return self._json(call, "stall", 200, self._default_body(api))
            return self._drop(call, request)
        if reply.kind == "job":
            job_body = {"job_id": reply.job_id or str(uuid.uuid4())}
            return self._json(call, "job", reply.status, job_body)
        return self._json(call, reply.kind, reply.status, reply.body)

    @staticmethod
    def _default_body(api: ApiVersion) -> dict[str, str]:
        job_id = str(uuid.uuid4())
        if api == "v1":
            return {"id": job_id, "message": "Task created"}
        return {"job_id": job_id, "type": "transcript", "status": "pending"}

    @staticmethod
    def _json(call: ReceivedCall, kind: str, status: int, body: Any) -> web.Response:
        call.reply, call.status, call.response = kind, status, body
        return web.json_response(body, status=status)

    @staticmethod
    def _drop(call: ReceivedCall, request: web.Request) -> web.Response:
        call.reply, call.status = "drop", None
        if request.transport is not None:
            request.transport.close()
        # Written to a closed transport: aiohttp discards it (ConnectionError is handled).
        return web.Response(status=500)
