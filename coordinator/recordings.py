"""The recording lifecycle (reference §4), run by the room actors through ``RecordingPort``.

Start: one transaction inserts the Recording (``initiated``) and the caller's ``owner``
RecordingAccess (the partial unique index turns a race into 409), then the egress starts: success
→ ``active`` with the egress id, failure → ``failed_to_start`` and 502. Stop maps StopEgress's
status (ENDING → stopped, ABORTED → aborted, other → failed_to_stop; errors → failed_to_stop and
500). Completion, in one transaction: ``saved`` plus the outbox rows of its notifications.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from coordinator.errors import Conflict, CoordinatorError, NotFound, UpstreamError
from coordinator.integrations import start_metadata_collector
from coordinator.livekit import LiveKitAdapter
from coordinator.media import Egress
from coordinator.notifications import notification_targets, summary_idempotency_key
from coordinator.recording_abilities import recording_key as object_key
from coordinator.room import RecordingState, StepResult, TrackRecording
from coordinator.settings import Settings
from coordinator.slugs import parse_uuid
from storage import outbox as outbox_store
from storage import recordings as store
from storage.engine import SessionMaker
from storage.models import utcnow
from storage.recordings import RecordingRecord

log = logging.getLogger(__name__)
SAVABLE = ("active", "stopped")
STOP_STATUS = {"EGRESS_ENDING": "stopped", "EGRESS_ABORTED": "aborted"}


class RecordingFailedToStop(CoordinatorError):
    status = 500  # the contract's answer; the recording is marked failed_to_stop


def recording_state(record: RecordingRecord | None) -> RecordingState | None:
    if record is None:
        return None
    return RecordingState(
        id=record.id, mode=record.mode, status=record.status, egress_id=record.worker_id
    )


def recording_key(settings: Settings, recording_id: uuid.UUID, mode: str) -> str:
    return object_key(settings.recording_output_folder, recording_id, mode)


class RecordingLifecycle:
    """The ``RecordingPort`` over the database, LiveKit's egress and the outbox."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: SessionMaker,
        media: LiveKitAdapter,
        *,
        wake_outbox: Callable[[], None] = lambda: None,
        slug_of: Callable[[str], Awaitable[str]] | None = None,
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._media = media
        self.wake_outbox = wake_outbox
        self._slug_of = slug_of

    async def _slug(self, room: str) -> str:
        return await self._slug_of(room) if self._slug_of is not None else room

    # -- reads used by the actor ---------------------------------------------------------

    async def in_flight(self, room: str) -> RecordingState | None:
        room_id = parse_uuid(room)
        if room_id is None or str(room_id) != room:
            return None  # unregistered rooms (named by slug) never record
        async with self._sessionmaker() as session:
            return recording_state(await store.in_flight_recording(session, room_id))

    async def by_egress(self, egress_id: str) -> RecordingState | None:
        async with self._sessionmaker() as session:
            return recording_state(await store.recording_by_worker(session, egress_id))

    async def set_status(
        self, recording_id: uuid.UUID, status: str, only_from: tuple[str, ...]
    ) -> bool:
        async with self._sessionmaker.begin() as session:
            return await store.set_status(session, recording_id, status, only_from=only_from)

    # -- start and stop ------------------------------------------------------------------

    async def begin(
        self, room: str, *, mode: str, options: dict[str, Any], user_id: uuid.UUID
    ) -> StepResult:
        room_id = uuid.UUID(room)
        slug = await self._slug(room)
        recording_id = uuid.uuid4()
        try:
            async with self._sessionmaker.begin() as session:
                await store.create_recording(
                    session,
                    recording_id=recording_id,
                    room_id=room_id,
                    mode=mode,
                    options=options,
                    owner_id=user_id,
                )
        except IntegrityError:
            raise Conflict(
                body={"error": f"A recording is already in progress for room {slug}"}
            ) from None
        try:
            egress = await self._media.start_recording_egress(
                room,
                filepath=recording_key(self._settings, recording_id, mode),
                audio_only=mode == "transcript",
                s3=self._settings.s3,
                encoding=self._settings.encoding,
            )
        except CoordinatorError as exc:
            log.warning("room %s: recording %s failed to start: %s", room, recording_id, exc)
            await self.set_status(recording_id, "failed_to_start", ("initiated",))
            raise UpstreamError(
                body={"error": f"Recording failed to start for room {slug}"}
            ) from exc
        async with self._sessionmaker.begin() as session:
            await store.set_status(
                session,
                recording_id,
                "active",
                only_from=("initiated",),
                worker_id=egress.egress_id,
            )
        await start_metadata_collector(  # issue 8: best effort, never raises
            self._settings,
            self._sessionmaker,
            self._media,
            room=room,
            recording_id=recording_id,
            options=options,
        )
        state = RecordingState(recording_id, mode, "active", egress.egress_id, egress.status)
        metadata = {
            "recording_mode": options.get("original_mode") or mode,
            "recording_status": "starting",
        }
        reply = {"message": f"Recording successfully started for room {slug}"}
        return StepResult(reply, TrackRecording(state, metadata))

    async def end(self, room: str) -> StepResult:
        slug = await self._slug(room)
        room_id = parse_uuid(room)
        record = None
        if room_id is not None:
            async with self._sessionmaker() as session:
                record = await store.in_flight_recording(session, room_id)
        if record is None or record.status != "active" or not record.worker_id:
            raise NotFound("No active recording found for this room.")
        try:
            egress = await self._media.stop_egress(record.worker_id)
        except CoordinatorError as exc:
            log.warning("room %s: recording %s failed to stop: %s", room, record.id, exc)
            await self.set_status(record.id, "failed_to_stop", ("active",))
            raise RecordingFailedToStop(
                body={"error": f"Recording failed to stop for room {slug}"}
            ) from exc
        status = STOP_STATUS.get(egress.status, "failed_to_stop")
        await self.set_status(record.id, status, ("active",))
        reply = {"message": f"Recording stopped for room {slug}."}
        return StepResult(reply, TrackRecording(None))

    # -- completion ----------------------------------------------------------------------

    async def complete(self, recording_id: uuid.UUID, egress: Egress) -> None:
        """The egress_ended fallback: only when storage events are off (§3.4, §4.6)."""
        if self._settings.recording_storage_event_enable:
            return
        outcome = await self.save(recording_id)
        if outcome != "saved":
            log.info("recording %s not completed from egress_ended: %s", recording_id, outcome)

    async def finish(self, room: str, *, recording_id: uuid.UUID) -> StepResult:
        outcome = await self.save(recording_id)
        then = None
        if outcome == "saved":
            then = TrackRecording(None)
        return StepResult(outcome, then)

    async def save(self, recording_id: uuid.UUID) -> str:
        """``saved`` + notification rows in one transaction: "saved", "not_savable", "not_found"."""
        async with self._sessionmaker.begin() as session:
            record = await store.get_recording(session, recording_id, for_update=True)
            if record is None:
                return "not_found"
            if record.status not in SAVABLE:
                return "not_savable"
            await store.set_status(session, recording_id, "saved", only_from=SAVABLE)
            await self._enqueue_notifications(session, record)
        self.wake_outbox()
        return "saved"

    async def _enqueue_notifications(self, session: Any, record: RecordingRecord) -> None:
        targets = notification_targets(record.mode, record.options)
        summary = self._settings.summary
        if "summary" in targets:
            configured = bool(summary.endpoint and summary.api_token)
            await outbox_store.enqueue(
                session,
                kind="summary",
                recording_id=record.id,
                idempotency_key=summary_idempotency_key(record.id),
                payload={},
                failed_reason=None if configured else "summary service not configured",
            )
        if "email" in targets:
            owners = await store.owner_ids(session, record.id)
            if not owners:
                await outbox_store.enqueue(
                    session,
                    kind="recording_email",
                    recording_id=record.id,
                    idempotency_key=f"recording-{record.id}-email",
                    payload={},
                    failed_reason="the recording has no owner",
                )
            for owner_id in owners:
                await outbox_store.enqueue(
                    session,
                    kind="recording_email",
                    recording_id=record.id,
                    idempotency_key=f"recording-{record.id}-email-{owner_id}",
                    payload={"user_id": str(owner_id)},
                )

    # -- reconciliation ------------------------------------------------------------------

    async def reconcile(self, room: str) -> StepResult:
        """Repair drift between the recording in flight and its egress; logs every repair."""
        room_id = parse_uuid(room)
        if room_id is None:
            return StepResult(None)
        async with self._sessionmaker() as session:
            record = await store.in_flight_recording(session, room_id)
        if record is None:
            return StepResult(None, TrackRecording(None))
        if not record.worker_id:
            stuck_for = (utcnow() - record.created_at).total_seconds()
            if stuck_for > self._settings.recording_stuck_initiated_seconds:
                await self.set_status(record.id, "failed_to_start", ("initiated",))
                log.warning(
                    "reconcile: recording %s stuck in initiated for %.0f s -> failed_to_start",
                    record.id,
                    stuck_for,
                )
                return StepResult("failed_to_start", TrackRecording(None))
            return StepResult(None)
        egresses = await self._media.list_egress(egress_id=record.worker_id)
        egress = egresses[0] if egresses else None
        repair = _repair(record, egress)
        if repair is None:
            return StepResult(None, TrackRecording(recording_state(record)))
        await self.set_status(record.id, repair, (record.status,))
        log.warning(
            "reconcile: recording %s was %s but egress %s is %s -> %s",
            record.id,
            record.status,
            record.worker_id,
            egress.status if egress else "unknown to LiveKit",
            repair,
        )
        if egress is not None and egress.status in ("EGRESS_COMPLETE", "EGRESS_LIMIT_REACHED"):
            await self.complete(record.id, egress)
        updated = recording_state(record)
        assert updated is not None
        return StepResult(repair, TrackRecording(replace(updated, status=repair)))


def _repair(record: RecordingRecord, egress: Egress | None) -> str | None:
    """The status the recording should have given its egress, or None when consistent."""
    if egress is None:
        return "failed_to_stop"
    status = egress.status
    if status in ("EGRESS_COMPLETE", "EGRESS_LIMIT_REACHED", "EGRESS_ENDING"):
        return "stopped"
    if status == "EGRESS_ABORTED":
        return "aborted"
    if status == "EGRESS_FAILED":
        return "failed_to_stop" if record.status == "active" else "failed_to_start"
    if status == "EGRESS_ACTIVE" and record.status == "initiated":
        return "active"
    return None
