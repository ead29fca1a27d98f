"""The recording lifecycle (reference §4), run by the room actors through ``RecordingPort``.

Start: one transaction inserts the Recording (``initiated``) and the caller's ``owner``
RecordingAccess (the partial unique index turns a race into 409), then the egress starts: success
→ ``active`` with the egress id, failure → ``failed_to_start`` and 502 (LiveKit answered an error)
or 503 (unreachable, timed out). Stop maps StopEgress's status (ENDING → stopped, ABORTED →
aborted, other → failed_to_stop; errors → failed_to_stop and 502/503, DESIGN §5). Completion, in
one transaction: ``saved`` plus the outbox rows of its notifications.

Reconciliation (every pass, at actor activation, after a start that timed out, and when a webhook
names an egress no recording tracks) repairs the recording in flight from its egress, resolves an
``initiated`` recording left by a dead process (adopting the egress that writes its file, else
``failed_to_start``), and stops every other live egress of the room no recording tracks: no
egress records a room without a recording the API shows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from coordinator.errors import Conflict, CoordinatorError, NotFound, Unavailable, UpstreamError
from coordinator.integrations import start_metadata_collector
from coordinator.livekit import LiveKitAdapter
from coordinator.media import Egress
from coordinator.notifications import notification_targets, summary_idempotency_key
from coordinator.recording_abilities import recording_key as object_key
from coordinator.room import (
    IN_FLIGHT,
    ReconcileRecording,
    RecordingState,
    StepResult,
    TrackRecording,
)
from coordinator.settings import Settings
from coordinator.slugs import parse_uuid
from storage import outbox as outbox_store
from storage import reads
from storage import recordings as store
from storage import rooms as room_store
from storage.engine import SessionMaker
from storage.models import utcnow
from storage.recordings import RecordingRecord

log = logging.getLogger(__name__)
SAVABLE = ("active", "stopped")
STOP_STATUS = {"EGRESS_ENDING": "stopped", "EGRESS_ABORTED": "aborted"}


LIVE_EGRESS = ("EGRESS_STARTING", "EGRESS_ACTIVE")
# Recordings past a successful stop (the egress was ENDING or beyond by then).
STOPPED = frozenset(
    {
        "stopped",
        "aborted",
        "saved",
        "notification_succeeded",
        "external_process_successful",
        "external_process_failed",
    }
)
ENDED_KEPT = 1000  # stopped egresses remembered for their late webhooks (``by_egress``)
START_MARGIN_SECONDS = 2.0  # beyond the LiveKit timeout, no live start is still initiated


def livekit_failure(exc: CoordinatorError, body: dict[str, Any]) -> CoordinatorError:
    """503 when LiveKit was unreachable or timed out, 502 for any answered error."""
    if isinstance(exc, Unavailable):
        return Unavailable(body=body)
    return UpstreamError(body=body)


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
        # Egresses this process started whose id is not written yet (``begin``), and the
        # last ones it stopped (``end``): their webhooks need no read. An ended recording
        # never comes back in flight, so what this says of it stays true for the actor.
        self._starting: dict[str, RecordingState] = {}
        self._ended: dict[str, RecordingState] = {}

    async def _slug(self, room: str) -> str:
        return await self._slug_of(room) if self._slug_of is not None else room

    # -- reads used by the actor ---------------------------------------------------------

    async def in_flight(self, room: str) -> RecordingState | None:
        room_id = parse_uuid(room)
        if room_id is None or str(room_id) != room:
            return None  # unregistered rooms (named by slug) never record
        source = reads.reader(self._sessionmaker)
        return recording_state(await store.read_in_flight(source, room_id))

    async def by_egress(self, egress_id: str) -> RecordingState | None:
        known = self._starting.get(egress_id) or self._ended.get(egress_id)
        if known is not None:
            return known
        source = reads.reader(self._sessionmaker)
        state = recording_state(await store.read_by_worker(source, egress_id))
        if state is not None and state.egress_status is None and state.status in STOPPED:
            # Stopped: its egress was at least ending, so a late STARTING or ACTIVE event
            # is stale (it must not turn the room's ``saving`` back to ``started``).
            state = replace(state, egress_status="EGRESS_ENDING")
        return state

    async def set_status(
        self, recording_id: uuid.UUID, status: str, only_from: tuple[str, ...]
    ) -> bool:
        async with self._sessionmaker.begin() as session:
            return await store.set_status(session, recording_id, status, only_from=only_from)

    # -- start and stop ------------------------------------------------------------------

    async def begin(
        self,
        room: str,
        *,
        mode: str,
        options: dict[str, Any],
        user_id: uuid.UUID,
        recording_id: uuid.UUID | None = None,
    ) -> StepResult:
        """``recording_id``: given by an engine that may run the command twice; a re-run
        answers from the recording the first run made instead of starting another one.

        Two writes of one round trip each (the recording with its owner access, then
        ``active`` with the egress id): no read on the way, even for a re-run (its insert
        fails on the primary key, and only then is the first run's recording read)."""
        room_id = uuid.UUID(room)
        slug = await self._slug(room)
        replayable = recording_id is not None
        if recording_id is None:
            recording_id = uuid.uuid4()
        try:
            await store.insert_recording(
                self._sessionmaker,
                recording_id=recording_id,
                room_id=room_id,
                mode=mode,
                options=options,
                owner_id=user_id,
            )
        except IntegrityError:
            if replayable:
                async with self._sessionmaker() as session:
                    earlier = await store.get_recording(session, recording_id)
                if earlier is not None:
                    return self._replayed(earlier, slug, options)
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
            await store.write_status(
                self._sessionmaker, recording_id, "failed_to_start", only_from=("initiated",)
            )
            body = {"error": f"Recording failed to start for room {slug}"}
            raise livekit_failure(exc, body) from exc
        # Until the egress id is written, the database cannot name this recording for the
        # egress's first webhooks (they often arrive meanwhile): this process can.
        self._starting[egress.egress_id] = RecordingState(
            recording_id, mode, "initiated", egress.egress_id, egress.status
        )
        try:
            await store.write_status(
                self._sessionmaker,
                recording_id,
                "active",
                only_from=("initiated",),
                worker_id=egress.egress_id,
            )
        finally:
            del self._starting[egress.egress_id]
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

    def _replayed(self, earlier: RecordingRecord, slug: str, options: dict[str, Any]) -> StepResult:
        """The answer to a start command run again: the first run's, or 503 while unknown."""
        if earlier.status == "initiated":  # the first run died mid-way: reconciliation decides
            raise Unavailable(body={"error": f"Recording is starting for room {slug}"})
        if earlier.status in ("failed_to_start",):
            raise Unavailable(body={"error": f"Recording failed to start for room {slug}"})
        reply = {"message": f"Recording successfully started for room {slug}"}
        if earlier.status != "active" or not earlier.worker_id:
            return StepResult(reply)
        state = RecordingState(earlier.id, earlier.mode, "active", earlier.worker_id)
        metadata = {"recording_mode": options.get("original_mode") or earlier.mode}
        return StepResult(reply, TrackRecording(state, metadata))

    async def end(self, room: str, *, recording: RecordingState | None = None) -> StepResult:
        """Stop the room's active recording: ``recording`` is the actor's view of the one in
        flight (no read then); without it, the database says."""
        slug = await self._slug(room)
        room_id = parse_uuid(room)
        if recording is None and room_id is not None:
            async with self._sessionmaker() as session:
                recording = recording_state(await store.in_flight_recording(session, room_id))
        if recording is None or recording.status != "active" or not recording.egress_id:
            raise NotFound("No active recording found for this room.")
        recording_id = recording.id
        try:
            egress = await self._media.stop_egress(recording.egress_id)
        except CoordinatorError as exc:
            log.warning("room %s: recording %s failed to stop: %s", room, recording_id, exc)
            await store.write_status(
                self._sessionmaker, recording_id, "failed_to_stop", only_from=("active",)
            )
            body = {"error": f"Recording failed to stop for room {slug}"}
            raise livekit_failure(exc, body) from exc
        status = STOP_STATUS.get(egress.status, "failed_to_stop")
        await store.write_status(self._sessionmaker, recording_id, status, only_from=("active",))
        self._remember_ended(replace(recording, status=status, egress_status=egress.status))
        reply = {"message": f"Recording stopped for room {slug}."}
        return StepResult(reply, TrackRecording(None))

    def _remember_ended(self, recording: RecordingState) -> None:
        assert recording.egress_id and recording.status not in IN_FLIGHT
        self._ended.pop(recording.egress_id, None)
        self._ended[recording.egress_id] = recording
        while len(self._ended) > ENDED_KEPT:
            del self._ended[next(iter(self._ended))]

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

    async def reconcile(
        self, room: str, *, egresses: tuple[Egress, ...] | None = None
    ) -> StepResult:
        """Repair drift between the room's recordings and its egresses; logs every repair.

        ``egresses``: the room's egresses to look at (None: ask LiveKit for its live ones)."""
        room_id = parse_uuid(room)
        if room_id is None or str(room_id) != room:
            return StepResult(None)  # unregistered rooms never record
        async with self._sessionmaker() as session:
            record = await store.in_flight_recording(session, room_id)
        if egresses is None:
            egresses = tuple(await self._media.list_egress(room=room, active=True))
        outcome: str | None = None
        then: Any = None
        if record is not None and not record.worker_id:
            outcome, then, record = await self._resolve_initiated(record, egresses)
        elif record is not None:
            outcome, then = await self._repair_active(record, egresses)
            if outcome is not None:
                record = None
        tracked = record.worker_id if record is not None else None
        stopped = await self._stop_untracked(room, room_id, egresses, tracked)
        if outcome is None and stopped:
            outcome = "stopped_untracked_egress"
        if then is None:
            then = TrackRecording(recording_state(record))
        return StepResult(outcome, then)

    async def _resolve_initiated(
        self, record: RecordingRecord, egresses: tuple[Egress, ...]
    ) -> tuple[str | None, Any, RecordingRecord | None]:
        """An ``initiated`` recording this actor is not starting: a start died mid-way."""
        key = recording_key(self._settings, record.id, record.mode)
        egress = next(
            (e for e in egresses if e.status in LIVE_EGRESS and key in egress_files(e)), None
        )
        if egress is not None:
            async with self._sessionmaker.begin() as session:
                adopted = await store.set_status(
                    session,
                    record.id,
                    "active",
                    only_from=("initiated",),
                    worker_id=egress.egress_id,
                )
            if adopted:
                log.warning(
                    "reconcile: recording %s left initiated adopts egress %s (file %s)",
                    record.id,
                    egress.egress_id,
                    key,
                )
                record = replace(record, status="active", worker_id=egress.egress_id)
                state = recording_state(record)
                assert state is not None
                state = replace(state, egress_status=egress.status)
                return "adopted", TrackRecording(state), record
            return None, None, record
        age = (utcnow() - record.created_at).total_seconds()
        limit = min(
            self._settings.recording_stuck_initiated_seconds,
            self._settings.livekit.timeout_seconds + START_MARGIN_SECONDS,
        )
        if age <= limit:
            # Maybe still being started by a live process: look again once it cannot be.
            return None, ReconcileRecording(after=limit - age + 0.1), record
        await self.set_status(record.id, "failed_to_start", ("initiated",))
        log.warning(
            "reconcile: recording %s initiated for %.0f s with no egress -> failed_to_start",
            record.id,
            age,
        )
        return "failed_to_start", TrackRecording(None), None

    async def _repair_active(
        self, record: RecordingRecord, egresses: tuple[Egress, ...]
    ) -> tuple[str | None, Any]:
        assert record.worker_id
        egress = next((e for e in egresses if e.egress_id == record.worker_id), None)
        if egress is None:
            found = await self._media.list_egress(egress_id=record.worker_id)
            egress = found[0] if found else None
        repair = _repair(record, egress)
        if repair is None:
            state = recording_state(record)
            assert state is not None
            if egress is not None:
                state = replace(state, egress_status=egress.status)
            return None, TrackRecording(state)
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
        return repair, TrackRecording(replace(updated, status=repair))

    async def _stop_untracked(
        self,
        room: str,
        room_id: uuid.UUID,
        egresses: tuple[Egress, ...],
        tracked: str | None,
    ) -> int:
        """Stop the room's live egresses that no recording in flight tracks."""
        live = [e for e in egresses if e.status in LIVE_EGRESS and e.egress_id != tracked]
        if not live:
            return 0
        async with self._sessionmaker() as session:
            if await room_store.get_room(session, room_id=room_id) is None:
                return 0  # not one of our rooms: not ours to stop
            owners = {
                e.egress_id: await store.recording_by_worker(session, e.egress_id) for e in live
            }
        stopped = 0
        for egress in live:
            known = owners[egress.egress_id]
            if known is not None and known.status in IN_FLIGHT:
                continue  # tracked (by a recording in flight)
            try:
                await self._media.stop_egress(egress.egress_id)
            except CoordinatorError as exc:
                log.warning("reconcile: untracked egress %s not stopped: %s", egress.egress_id, exc)
                continue
            stopped += 1
            log.warning(
                "reconcile: room %s: stopped untracked egress %s (files %s, recording %s)",
                room,
                egress.egress_id,
                ", ".join(egress_files(egress)) or "none",
                f"{known.id} is {known.status}" if known is not None else "none",
            )
        return stopped


def egress_files(egress: Egress) -> tuple[str, ...]:
    return tuple(f.filename for f in egress.files if f.filename)


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
