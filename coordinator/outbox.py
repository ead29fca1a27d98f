"""The outbox dispatcher: delivers notifications with retries, never silently dropping one.

Contract: a message is claimed under a lease (``storage.outbox.claim``) so no two dispatchers
send it at once; each attempt carries the message's idempotency key; a failed attempt is
retried after an exponential backoff with jitter (``base * 2**attempts``, capped, times 0.5 to 1.5);
after ``max_attempts`` the message is marked ``failed`` with its last error, for operators.
A recording whose notifications all succeeded becomes ``notification_succeeded``. Pending
messages survive restarts: they are rows, and the next process claims them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from coordinator.errors import CoordinatorError
from coordinator.notifications import (
    EmailConfig,
    LinkConfig,
    MetadataCollectorConfig,
    OutgoingEmail,
    OwnerInfo,
    RecordingInfo,
    SummaryServiceConfig,
    invitation_email,
    recording_ready_email,
    summary_request_headers,
    summary_v1_payload,
    summary_v2_job_id,
    summary_v2_keys,
    summary_v2_payload,
)
from coordinator.object_storage import ObjectStorage
from coordinator.recordings import recording_key
from coordinator.settings import Settings
from coordinator.telemetry import Metrics
from storage import outbox as outbox_store
from storage import recording_context
from storage.engine import SessionMaker, is_outage, outage_summary
from storage.outbox import OutboxRecord
from storage.recordings import RecordingRecord
from storage.records import UserRecord

log = logging.getLogger(__name__)


OUTBOX_KINDS = frozenset({"summary", "recording_email", "invitation"})


class DeliveryFailed(Exception):
    """One attempt failed; the message will be retried (or marked failed)."""


Timestamps = Callable[[str], Awaitable[tuple[datetime | None, datetime | None]]]
Contexts = dict[uuid.UUID, tuple[RecordingRecord, str, list[UserRecord]]]


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    result: Any = None
    error: str = ""


class OutboxDispatcher:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: SessionMaker,
        http: aiohttp.ClientSession,
        *,
        egress_times: Timestamps | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        storage: ObjectStorage | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        # The application's object-storage client; without one, a client of our own is
        # started at the first signed URL and closed by stop().
        self._storage = storage
        self._owns_storage = storage is None
        self._config = settings.outbox
        self._sessionmaker = sessionmaker
        self._http = http
        self._egress_times = egress_times
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.worker_id = uuid.uuid4().hex[:8]
        self.delivered = 0
        self.failed_attempts = 0
        self.given_up = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-dispatcher")

    def wake(self) -> None:
        self._wake.set()

    async def _object_storage(self) -> ObjectStorage:
        if self._storage is None:
            self._storage = ObjectStorage(self._settings.s3)
            await self._storage.start()
        return self._storage

    async def stop(self, *, grace: float = 10.0) -> None:
        """Let the pass in progress finish (its outcomes recorded), then stop."""
        try:
            await self._stop_task(grace)
        finally:
            if self._owns_storage and self._storage is not None:
                storage, self._storage = self._storage, None
                await storage.close()

    async def _stop_task(self, grace: float) -> None:
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()  # leases expire: the messages are claimed again later
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                handled = await self.run_once()
            except Exception as exc:
                if is_outage(exc):  # one line a pass, no traceback (nor parameters)
                    log.warning("outbox pass: database unavailable: %s", outage_summary(exc))
                else:
                    log.exception("outbox pass failed")
                handled = 0
            if handled or self._stopping:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._config.poll_seconds)
            except TimeoutError:
                pass

    # -- one pass ------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim and deliver one batch of due messages; returns how many were attempted.

        One transaction claims the batch, one query reads what the messages need, the
        deliveries run concurrently, and one transaction records every outcome.
        """
        async with self._sessionmaker.begin() as session:
            batch = await outbox_store.claim(
                session, limit=self._config.batch_size, lease_seconds=self._config.lease_seconds
            )
        if not batch:
            return 0
        recording_ids = list({m.recording_id for m in batch if m.recording_id is not None})
        async with self._sessionmaker() as session:
            contexts = await recording_context.load_many(session, recording_ids)
        outcomes = await asyncio.gather(*(self._attempt(message, contexts) for message in batch))
        await self._record(batch, outcomes)
        return len(batch)

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: exponential, capped, with jitter."""
        exponential: float = self._config.base_delay_seconds * 2 ** min(attempts, 30)
        return min(self._config.max_delay_seconds, exponential) * self._rng.uniform(0.5, 1.5)

    async def _attempt(self, message: OutboxRecord, contexts: Contexts) -> Outcome:
        try:
            return Outcome(True, await self._deliver(message, contexts))
        except Exception as exc:  # every failure is recorded; nothing escapes silently
            return Outcome(False, error=f"{type(exc).__name__}: {exc}")

    async def _record(self, batch: list[OutboxRecord], outcomes: list[Outcome]) -> None:
        succeeded = [m for m, o in zip(batch, outcomes, strict=True) if o.ok]
        async with self._sessionmaker.begin() as session:
            await outbox_store.mark_succeeded(session, *(m.id for m in succeeded))
            await recording_context.set_external_process_ids(
                session,
                [
                    (m.recording_id, str(o.result))
                    for m, o in zip(batch, outcomes, strict=True)
                    if o.ok and m.kind == "summary" and o.result and m.recording_id is not None
                ],
            )
            for message, outcome in zip(batch, outcomes, strict=True):
                self._count(message, outcome)
                if outcome.ok:
                    continue
                attempts = message.attempts + 1
                retry_at = None
                if attempts < self._config.max_attempts:
                    delay = self.backoff(message.attempts)
                    retry_at = datetime.now(UTC) + timedelta(seconds=delay)
                await outbox_store.mark_attempt_failed(
                    session, message.id, error=outcome.error, retry_at=retry_at
                )
                if retry_at is None:
                    self.given_up += 1
                    log.error(
                        "outbox %s (%s) failed for good after %d attempts: %s",
                        message.id,
                        message.kind,
                        attempts,
                        outcome.error,
                    )
                else:
                    self.failed_attempts += 1
                    log.warning(
                        "outbox %s (%s) attempt %d failed: %s",
                        message.id,
                        message.kind,
                        attempts,
                        outcome.error,
                    )
            recordings = list({m.recording_id for m in succeeded if m.recording_id is not None})
            await outbox_store.promote_recordings(session, recordings)
        self.delivered += len(succeeded)

    def _count(self, message: OutboxRecord, outcome: Outcome) -> None:
        """``meet_outbox_attempts_total{kind, outcome}``: delivered, retry or failed."""
        if self._metrics is None:
            return
        if outcome.ok:
            result = "delivered"
        elif message.attempts + 1 < self._config.max_attempts:
            result = "retry"
        else:
            result = "failed"
        kind = message.kind if message.kind in OUTBOX_KINDS else "other"
        self._metrics.observe_outbox_attempt(kind, result)

    async def _deliver(self, message: OutboxRecord, contexts: Contexts) -> Any:
        match message.kind:
            case "summary":
                return await self._summary(message, contexts)
            case "recording_email":
                await self._recording_email(message, contexts)
            case "invitation":
                await self._invitation(message)
            case _:
                raise DeliveryFailed(f"unknown outbox kind {message.kind!r}")
        return None

    # -- deliveries ----------------------------------------------------------------------

    async def _context(
        self, contexts: Contexts, recording_id: uuid.UUID | None, owner_id: uuid.UUID | None = None
    ) -> tuple[RecordingInfo, OwnerInfo]:
        context = contexts.get(recording_id) if recording_id is not None else None
        if context is None:
            raise DeliveryFailed("the recording no longer exists")
        record, room_name, owners = context
        owner = next((o for o in owners if owner_id is None or o.id == owner_id), None)
        if owner is None:
            raise DeliveryFailed("the recording's owner no longer exists")
        started_at = ended_at = None
        if record.worker_id and self._egress_times is not None:
            started_at, ended_at = await self._egress_times(record.worker_id)
        info = RecordingInfo(
            id=record.id,
            mode=record.mode,
            key=recording_key(self._settings, record.id, record.mode),
            room_id=record.room_id,
            room_name=room_name,
            created_at=record.created_at,
            options=record.options,
            started_at=started_at,
            ended_at=ended_at,
        )
        return info, OwnerInfo(
            id=owner.id,
            email=owner.email or "",
            sub=owner.sub,
            language=owner.language,
            timezone=owner.timezone,
        )

    def _links(self) -> LinkConfig:
        return LinkConfig(
            recording_download_base_url=self._settings.recording_download_base_url,
            transcription_satisfaction_form_base_url=(
                self._settings.transcription_satisfaction_form_base_url
            ),
        )

    def _collector(self) -> MetadataCollectorConfig:
        return MetadataCollectorConfig(
            enabled=self._settings.metadata_collector_enabled,
            output_folder=self._settings.metadata_collector_output_folder,
        )

    def _email_config(self) -> EmailConfig:
        email = self._settings.email
        return EmailConfig(
            from_email=email.from_email,
            brand_name=email.brand_name,
            support_email=email.support_email,
            logo_img=email.logo_img,
            domain=email.domain,
            app_base_url=email.app_base_url,
        )

    async def _summary(self, message: OutboxRecord, contexts: Contexts) -> str | None:
        summary = self._settings.summary
        recording, owner = await self._context(contexts, message.recording_id)
        config = SummaryServiceConfig(
            endpoint=summary.endpoint,
            api_token=summary.api_token,
            version=2 if summary.version >= 2 else 1,
            signed_url_expiry_seconds=summary.signed_url_expiry_seconds,
        )
        if config.version == 2:
            collector = self._collector()
            storage = await self._object_storage()
            expiry = summary.signed_url_expiry_seconds
            try:
                urls = {
                    key: await storage.presigned_get_url(key, expiry)
                    for key in summary_v2_keys(recording, collector)
                }
            except CoordinatorError as exc:
                raise DeliveryFailed(f"cannot sign the recording URL: {exc.message}") from exc
            payload = summary_v2_payload(
                recording,
                owner,
                links=self._links(),
                collector=collector,
                signed_url=lambda key, _seconds: urls[key],
                expiry_seconds=expiry,
                request_language=self._settings.language_code,
            )
        else:
            payload = summary_v1_payload(
                recording, owner, links=self._links(), collector=self._collector()
            )
        headers = summary_request_headers(config, idempotency_key=message.idempotency_key)
        timeout = aiohttp.ClientTimeout(total=summary.timeout_seconds)
        try:
            async with self._http.post(
                summary.endpoint, json=payload, headers=headers, timeout=timeout
            ) as response:
                body: Any = None
                if response.content_type == "application/json":
                    body = await response.json()
                if response.status // 100 != 2:
                    raise DeliveryFailed(f"summary service answered {response.status}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryFailed(f"summary service unreachable: {type(exc).__name__}") from exc
        if config.version == 2:
            job_id = summary_v2_job_id(body)
            if job_id is None:
                raise DeliveryFailed("summary service answered 2xx without a job_id")
            return job_id
        return None

    async def _send(self, email: OutgoingEmail, message: OutboxRecord) -> None:
        settings = self._settings.email
        mime = email.to_message(message_id=f"<{message.idempotency_key}@meet-coordinator>")
        import aiosmtplib  # on the first e-mail: a server that sends none never loads it

        try:
            await aiosmtplib.send(
                mime,
                hostname=settings.host,
                port=settings.port,
                username=settings.user or None,
                password=settings.password.get() or None,
                use_tls=settings.use_ssl,
                start_tls=settings.use_tls,
                timeout=settings.timeout_seconds,
                recipients=list(email.recipients),
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryFailed(f"SMTP: {exc}") from exc

    async def _recording_email(self, message: OutboxRecord, contexts: Contexts) -> None:
        owner_id = uuid.UUID(str(message.payload["user_id"]))
        recording, owner = await self._context(contexts, message.recording_id, owner_id)
        if not owner.email:
            raise DeliveryFailed("the owner has no e-mail address")
        email = recording_ready_email(
            recording,
            owner,
            email=self._email_config(),
            links=self._links(),
            expiration_days=self._settings.recording_expiration_days,
            default_language=self._settings.language_code,
        )
        await self._send(email, message)

    async def _invitation(self, message: OutboxRecord) -> None:
        payload = message.payload
        email = invitation_email(
            room_slug=str(payload["room_slug"]),
            sender_email=str(payload["sender_email"]),
            recipients=[str(r) for r in payload["recipients"]],
            email=self._email_config(),
            language=str(payload.get("language") or self._settings.language_code),
        )
        await self._send(email, message)


async def enqueue_invitation(
    sessionmaker: SessionMaker,
    *,
    room_slug: str,
    sender_email: str,
    recipients: list[str],
    language: str,
) -> None:
    async with sessionmaker.begin() as session:
        await outbox_store.enqueue(
            session,
            kind="invitation",
            idempotency_key=f"invitation-{uuid.uuid4()}",
            payload={
                "room_slug": room_slug,
                "sender_email": sender_email,
                "recipients": recipients,
                "language": language,
            },
        )


def egress_times_from(media: Any) -> Timestamps:
    """Start/end of an egress's first file (ns → UTC), or (None, None) on any error (§4.7)."""

    async def times(egress_id: str) -> tuple[datetime | None, datetime | None]:
        try:
            egresses = await asyncio.wait_for(media.list_egress(egress_id=egress_id), 10)
        except (CoordinatorError, TimeoutError):
            return None, None
        for egress in egresses:
            for file in egress.files:
                return _from_ns(file.started_at_ns), _from_ns(file.ended_at_ns)
        return None, None

    return times


def _from_ns(value: int) -> datetime | None:
    return datetime.fromtimestamp(value / 1e9, UTC) if value else None
