"""Webhook signing and delivery, mirroring ``livekit/protocol/webhook/url_notifier.go``.

Wire format (what :func:`sign_webhook` produces and the emitter sends):

* body: ``json_format.MessageToJson(event, indent=None)`` (camelCase, enums as
  names, int64 as strings, zero values omitted);
* ``Authorization: <jwt>`` (no ``Bearer``), HS256, claims ``iss``, ``sha256``
  (base64 of the body's SHA-256), ``iat``, ``nbf`` and ``exp`` (5 minutes);
* ``Content-Type: application/webhook+json`` and ``User-Agent: LiveKit``.

Delivery contract of :class:`WebhookEmitter`:

* every emitted event is kept in :attr:`WebhookEmitter.events`, delivered or not;
* deliveries are queued per (url, key), the key being the egress id, else the room
  name, else the participant identity, else the track sid (like Go); order is kept
  within a key, not across keys;
* connection errors, timeouts, 429 and 5xx (except 501) are retried up to
  ``max_retries`` times with short exponential waits; every attempt is recorded in
  :attr:`WebhookEmitter.deliveries`;
* :meth:`WebhookEmitter.hold` / :meth:`WebhookEmitter.release` pause a key, which
  reorders events across keys deterministically; :meth:`WebhookEmitter.duplicate`
  and :meth:`WebhookEmitter.redeliver` re-send an event with the same ``id``;
* :meth:`WebhookEmitter.drain` waits until every non-held queue is empty.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
import jwt
from google.protobuf import json_format
from livekit.protocol.models import WebhookConfig
from livekit.protocol.webhook import WebhookEvent

from .auth import DEFAULT_API_KEY, DEFAULT_API_SECRET
from .ids import EVENT_PREFIX, new_id

WEBHOOK_CONTENT_TYPE = "application/webhook+json"
WEBHOOK_USER_AGENT = "LiveKit"
WEBHOOK_TTL_SECONDS = 300

SignVariant = Literal[
    "valid", "tampered", "expired", "wrong_key", "wrong_secret", "bearer", "no_sha256", "hex_sha256"
]


def encode_webhook_body(event: WebhookEvent) -> str:
    """The Go-faithful JSON body of ``event``."""
    return json_format.MessageToJson(event, indent=None)


def sign_body(
    body: str, api_key: str, api_secret: str, *, now: float | None = None, sha256: str | None = None
) -> str:
    """The raw JWT for ``body`` (``sha256`` overrides the computed claim)."""
    issued = int(time.time() if now is None else now)
    digest = sha256 or base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    claims = {
        "iss": api_key,
        "sha256": digest,
        "iat": issued,
        "nbf": issued,
        "exp": issued + WEBHOOK_TTL_SECONDS,
    }
    return jwt.encode(claims, api_secret, algorithm="HS256")


def webhook_headers(token: str) -> dict[str, str]:
    """The headers the Go notifier sends with ``token``."""
    return {
        "Authorization": token,
        "Content-Type": WEBHOOK_CONTENT_TYPE,
        "User-Agent": WEBHOOK_USER_AGENT,
    }


def sign_webhook(
    event: WebhookEvent,
    api_key: str = DEFAULT_API_KEY,
    api_secret: str = DEFAULT_API_SECRET,
    *,
    variant: SignVariant = "valid",
) -> tuple[str, dict[str, str]]:
    """Return ``(body, headers)`` for posting ``event`` to a webhook handler.

    Needs no running server; the key pair defaults to the stand-in's default pair.

    ``variant`` builds the negative cases a handler must reject: ``tampered``
    (body changed after signing), ``expired`` (token expired 10 minutes ago),
    ``wrong_key`` (another ``iss``), ``wrong_secret`` (another secret), ``bearer`` (``Bearer``
    prefix), ``no_sha256`` (token without the claim), ``hex_sha256`` (hex digest).
    Fills ``id`` and ``created_at`` when unset (on a copy).
    """
    ev = WebhookEvent()
    ev.CopyFrom(event)
    if not ev.id:
        ev.id = new_id(EVENT_PREFIX)
    if not ev.created_at:
        ev.created_at = int(time.time())
    body = encode_webhook_body(ev)
    if variant == "no_sha256":
        now = int(time.time())
        claims = {"iss": api_key, "iat": now, "nbf": now, "exp": now + WEBHOOK_TTL_SECONDS}
        token = jwt.encode(claims, api_secret, algorithm="HS256")
    elif variant == "expired":
        token = sign_body(body, api_key, api_secret, now=time.time() - 2 * WEBHOOK_TTL_SECONDS)
    elif variant == "wrong_key":
        token = sign_body(body, api_key + "-other", api_secret)
    elif variant == "wrong_secret":
        token = sign_body(body, api_key, api_secret[::-1] + "-other")
    elif variant == "hex_sha256":
        token = sign_body(
            body, api_key, api_secret, sha256=hashlib.sha256(body.encode()).hexdigest()
        )
    else:
        token = sign_body(body, api_key, api_secret)
    if variant == "tampered":
        body = body.replace(ev.id, ev.id + "x", 1)
    if variant == "bearer":
        token = "Bearer " + token
    return body, webhook_headers(token)


def event_key(event: WebhookEvent) -> str:
    """Go ``eventKey``: the ordering key of an event."""
    if event.HasField("egress_info"):
        return event.egress_info.egress_id
    if event.HasField("ingress_info"):
        return event.ingress_info.ingress_id
    if event.HasField("room"):
        return event.room.name
    if event.HasField("participant"):
        return event.participant.identity
    if event.HasField("track"):
        return event.track.sid
    return "default"


@dataclass(frozen=True)
class WebhookTarget:
    """Where and how to deliver: URL plus the signing key pair."""

    url: str
    api_key: str
    api_secret: str


@dataclass
class WebhookDelivery:
    """One HTTP attempt. ``status`` is ``None`` on a connection error (see ``error``)."""

    event_id: str
    event: str
    key: str
    url: str
    body: str
    headers: dict[str, str]
    attempt: int
    status: int | None
    error: str | None = None
    redelivery: bool = False

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Job:
    event: WebhookEvent
    body: str
    target: WebhookTarget
    key: str
    redelivery: bool = False
    copies: int = 1


@dataclass
class _Queue:
    pending: deque[_Job] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None


class WebhookEmitter:
    """Signs and delivers webhook events; see the module docstring for the contract."""

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        secret_for: Callable[[str], str | None],
        url: str | None = None,
        max_retries: int = 4,
        retry_delay: float = 0.02,
        timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.api_secret = api_secret
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.events: list[WebhookEvent] = []
        self.deliveries: list[WebhookDelivery] = []
        self._secret_for = secret_for
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._held: set[str] = set()
        self._duplicates: list[tuple[str | None, int]] = []
        self._sent: dict[str, tuple[WebhookEvent, str, list[WebhookTarget]]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP session; before this, events are recorded but not delivered."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        """Cancel pending deliveries and close the session."""
        workers = [q.worker for q in self._queues.values() if q.worker is not None]
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        self._queues.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ----------------------------------------------------------------- emission
    def emit(self, event: WebhookEvent, *, extra: Sequence[WebhookConfig] = ()) -> WebhookEvent:
        """Record ``event`` (filling ``id``/``created_at``) and queue its deliveries.

        ``extra`` are per-request ``WebhookConfig`` targets (egress ``webhooks``),
        signed with ``signing_key`` (an API key of this server) or the default key.
        """
        if not event.id:
            event.id = new_id(EVENT_PREFIX)
        if not event.created_at:
            event.created_at = int(time.time())
        self.events.append(event)
        targets = self._targets(extra)
        body = encode_webhook_body(event)
        self._sent[event.id] = (event, body, targets)
        copies = 1 + self._take_duplicate(event.event)
        for target in targets:
            self._enqueue(_Job(event, body, target, event_key(event), copies=copies))
        return event

    def _targets(self, extra: Sequence[WebhookConfig]) -> list[WebhookTarget]:
        targets = []
        if self.url:
            targets.append(WebhookTarget(self.url, self.api_key, self.api_secret))
        for cfg in extra:
            if not cfg.url:
                continue
            key = cfg.signing_key or self.api_key
            secret = self._secret_for(key)
            if secret:
                targets.append(WebhookTarget(cfg.url, key, secret))
        return targets

    def _take_duplicate(self, name: str) -> int:
        for i, (wanted, times) in enumerate(self._duplicates):
            if wanted is None or wanted == name:
                if times <= 1:
                    self._duplicates.pop(i)
                else:
                    self._duplicates[i] = (wanted, times - 1)
                return 1
        return 0

    def duplicate(self, event: str | None = None, *, times: int = 1) -> None:
        """Deliver the next ``times`` events named ``event`` (any if ``None``) twice."""
        self._duplicates.append((event, times))

    def redeliver(self, event_id: str) -> None:
        """Queue another delivery of an already emitted event (same body, same ``id``)."""
        event, body, targets = self._sent[event_id]
        for target in targets:
            self._enqueue(_Job(event, body, target, event_key(event), redelivery=True))

    # ----------------------------------------------------------------- ordering
    def hold(self, key: str) -> None:
        """Pause deliveries for ``key`` (after the one in flight) until :meth:`release`."""
        self._held.add(key)

    def release(self, key: str) -> None:
        """Resume deliveries for ``key``."""
        self._held.discard(key)
        for qkey in list(self._queues):
            if qkey[1] == key:
                self._kick(qkey)

    def _enqueue(self, job: _Job) -> None:
        if self._session is None:
            return
        qkey = (job.target.url, job.key)
        self._queues.setdefault(qkey, _Queue()).pending.append(job)
        self._kick(qkey)

    def _kick(self, qkey: tuple[str, str]) -> None:
        queue = self._queues.get(qkey)
        if queue is None or queue.worker is not None or not queue.pending:
            return
        if qkey[1] in self._held:
            return
        queue.worker = asyncio.get_running_loop().create_task(self._run(qkey, queue))

    async def _run(self, qkey: tuple[str, str], queue: _Queue) -> None:
        try:
            while queue.pending and qkey[1] not in self._held:
                job = queue.pending.popleft()
                for copy in range(job.copies):
                    await self._deliver(job, redelivery=job.redelivery or copy > 0)
        finally:
            queue.worker = None

    async def _deliver(self, job: _Job, *, redelivery: bool) -> None:
        assert self._session is not None
        token = sign_body(job.body, job.target.api_key, job.target.api_secret)
        headers = webhook_headers(token)
        for attempt in range(1, self.max_retries + 2):
            status: int | None = None
            error: str | None = None
            try:
                async with self._session.post(
                    job.target.url, data=job.body.encode(), headers=headers
                ) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.deliveries.append(
                WebhookDelivery(
                    event_id=job.event.id,
                    event=job.event.event,
                    key=job.key,
                    url=job.target.url,
                    body=job.body,
                    headers=dict(headers),
                    attempt=attempt,
                    status=status,
                    error=error,
                    redelivery=redelivery,
                )
            )
            retry = status is None or status == 429 or (status >= 500 and status != 501)
            if not retry or attempt > self.max_retries:
                return
            await asyncio.sleep(min(self.retry_delay * 2 ** (attempt - 1), 1.0))

    async def drain(self, max_wait: float = 15.0) -> None:
        """Wait until every queue that is not held is empty and idle.

        Raises ``TimeoutError`` after ``max_wait`` seconds.
        """
        async with asyncio.timeout(max_wait):
            while True:
                workers = [q.worker for q in self._queues.values() if q.worker is not None]
                if not workers:
                    return
                await asyncio.wait(workers)

    # ----------------------------------------------------------------- queries
    def named(self, event: str) -> list[WebhookEvent]:
        """Emitted events whose ``event`` field equals ``event``, in emission order."""
        return [e for e in self.events if e.event == event]

    def delivered(self, event: str | None = None) -> list[WebhookDelivery]:
        """Successful (2xx) deliveries, optionally only of events named ``event``."""
        return [d for d in self.deliveries if d.ok and (event is None or d.event == event)]
