"""A webhook receiver for tests: verifies with the real ``livekit.api.WebhookReceiver``.

:class:`WebhookSink` serves ``POST /webhook`` on 127.0.0.1 (ephemeral port). Each
request is verified exactly like an application should (``await request.text()``
and the raw ``Authorization`` header) and recorded as a :class:`ReceivedWebhook`.
Valid events are answered 200 (or a scripted failure status), invalid ones 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol.webhook import WebhookEvent


@dataclass
class ReceivedWebhook:
    """One request: ``event`` is ``None`` when verification failed (see ``error``)."""

    body: str
    headers: dict[str, str]
    status: int
    event: WebhookEvent | None = None
    error: str | None = None


class WebhookSink:
    """A loopback webhook endpoint; use as an async context manager."""

    def __init__(self, api_key: str, api_secret: str, *, path: str = "/webhook") -> None:
        self.receiver = WebhookReceiver(TokenVerifier(api_key, api_secret))
        self.path = path
        self.received: list[ReceivedWebhook] = []
        self._failures: list[int] = []
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        """The URL to give the stand-in (valid once started)."""
        return f"http://127.0.0.1:{self._port}{self.path}"

    @property
    def events(self) -> list[WebhookEvent]:
        """Verified events, in arrival order (re-deliveries included)."""
        return [r.event for r in self.received if r.event is not None]

    def names(self) -> list[str]:
        """``event`` names of the verified events, in arrival order."""
        return [e.event for e in self.events]

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` valid deliveries with ``status``."""
        self._failures.extend([status] * count)

    async def start(self) -> WebhookSink:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WebhookSink:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        headers = dict(request.headers)
        try:
            event = self.receiver.receive(body, request.headers.get("Authorization", ""))
        except Exception as exc:  # PyJWT errors, "hash mismatch", ParseError
            record = ReceivedWebhook(body, headers, 401, error=f"{type(exc).__name__}: {exc}")
        else:
            status = self._failures.pop(0) if self._failures else 200
            record = ReceivedWebhook(body, headers, status, event=event)
        self.received.append(record)
        async with self._changed:
            self._changed.notify_all()
        return web.Response(status=record.status, text="ok" if record.status == 200 else "no")

    async def wait_for(
        self, predicate: Callable[[list[WebhookEvent]], bool], max_wait: float = 5.0
    ) -> list[WebhookEvent]:
        """Wait until ``predicate(self.events)`` holds; return the events."""
        async with asyncio.timeout(max_wait):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.events))
        return self.events
