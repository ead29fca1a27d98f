"""Egress lifecycle engine (room-composite and track-composite egress).

Lifecycle (``EgressStatus``) and webhooks, as reconstructed from livekit/egress:

* Start → STARTING (``egress_started``): ``started_at``/``updated_at`` now (ns),
  request echoed with credentials redacted, ``file_results`` pre-filled.
* STARTING → ACTIVE (``egress_updated``): file type resolved (OGG without video).
* StopEgress: STARTING → ABORTED (412 "Stop called before pipeline could start",
  ``egress_ended``); ACTIVE → ENDING "End reason: StopEgress API"
  (``egress_updated``); ENDING → unchanged; final → ``failed_precondition``.
* Room closed: STARTING → ABORTED, ACTIVE → ENDING "End reason: Source closed".
* COMPLETE / LIMIT_REACHED (``egress_ended``): ``ended_at`` and ``file_results``
  filled (filename, location, duration ns, size); LIMIT_REACHED has error
  "Session limit reached" / 413. FAILED: ``error``, ``error_code`` (default 500),
  details "End reason: Failure".

Modes: ``manual`` (default): only StopEgress, room closure, scripts and
:meth:`EgressEngine.advance` move an egress. ``auto``: STARTING → ACTIVE after
``start_delay`` once the room has an ACTIVE participant; ENDING → COMPLETE after
``finalize_delay``; optionally ACTIVE → LIMIT_REACHED after ``max_duration``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from livekit.protocol import egress as eg
from livekit.protocol import models
from livekit.protocol.webhook import WebhookEvent

from .egress_files import Composite, FilePlan, invalid, location, plan_outputs, redacted_copy
from .ids import EGRESS_PREFIX, new_id
from .rooms import RoomManager
from .twirp import TwirpError

Status = eg.EgressStatus
EgressMode = Literal["manual", "auto"]
Outcome = Literal["failed", "aborted", "limit_reached", "complete"]

FINAL = frozenset(
    {
        Status.EGRESS_COMPLETE,
        Status.EGRESS_FAILED,
        Status.EGRESS_ABORTED,
        Status.EGRESS_LIMIT_REACHED,
    }
)
ABORTED_ERROR = "Stop called before pipeline could start"
LIMIT_ERROR = "Session limit reached"
STOP_DETAILS = "End reason: StopEgress API"
SOURCE_CLOSED_DETAILS = "End reason: Source closed"
FAILURE_DETAILS = "End reason: Failure"

EmitEgress = Callable[[WebhookEvent, Sequence[models.WebhookConfig]], object]


@dataclass(frozen=True)
class EgressTiming:
    """Delays of the ``auto`` mode, in seconds."""

    start_delay: float = 0.05
    finalize_delay: float = 0.05
    max_duration: float | None = None


@dataclass(frozen=True)
class EgressScript:
    """A scripted fate for an egress.

    ``reject`` refuses the Start call itself (only meaningful for the *next* egress).
    Otherwise ``outcome`` is applied ``after`` seconds (once the egress exists, or
    once the script is attached to an existing egress), unless it is final by then.
    """

    reject: TwirpError | None = None
    outcome: Outcome | None = None
    error: str | None = None
    error_code: int | None = None
    after: float = 0.0

    @classmethod
    def reject_start(cls, code: str, message: str, *, status: int | None = None) -> EgressScript:
        """Refuse StartXxxEgress with a Twirp error (e.g. ``unavailable``)."""
        return cls(reject=TwirpError(code, message, status=status))

    @classmethod
    def fail(
        cls, error: str = "pipeline failed", *, error_code: int = 500, after: float = 0.0
    ) -> EgressScript:
        """End with EGRESS_FAILED."""
        return cls(outcome="failed", error=error, error_code=error_code, after=after)

    @classmethod
    def abort(cls, *, after: float = 0.0) -> EgressScript:
        """End with EGRESS_ABORTED."""
        return cls(outcome="aborted", after=after)

    @classmethod
    def limit_reached(cls, *, after: float = 0.0) -> EgressScript:
        """End with EGRESS_LIMIT_REACHED (going through ACTIVE if still STARTING)."""
        return cls(outcome="limit_reached", after=after)


@dataclass
class _Egress:
    info: eg.EgressInfo
    plans: list[FilePlan]
    has_video: bool
    webhooks: list[models.WebhookConfig]
    active_since: int = 0
    start_scheduled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _copy(info: eg.EgressInfo) -> eg.EgressInfo:
    out = eg.EgressInfo()
    out.CopyFrom(info)
    return out


class EgressEngine:
    """Egress records and their lifecycle; see the module docstring."""

    def __init__(
        self,
        rooms: RoomManager,
        emit: EmitEgress,
        *,
        mode: EgressMode = "manual",
        timing: EgressTiming | None = None,
        output_dir: Path | None = None,
    ) -> None:
        self.rooms = rooms
        self.mode: EgressMode = mode
        self.timing = timing or EgressTiming()
        self.output_dir = output_dir
        self._emit = emit
        self._egresses: dict[str, _Egress] = {}
        self._next_scripts: list[EgressScript] = []
        self._tasks: set[asyncio.Task[None]] = set()
        rooms.listeners.append(self)

    # ------------------------------------------------------------------ tasks
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel every pending timer."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ queries
    def _get(self, egress_id: str) -> _Egress:
        record = self._egresses.get(egress_id)
        if record is None:
            raise TwirpError("not_found", "egress does not exist")
        return record

    def info(self, egress_id: str) -> eg.EgressInfo:
        """A copy of the current EgressInfo (``KeyError`` if unknown)."""
        record = self._egresses.get(egress_id)
        if record is None:
            raise KeyError(egress_id)
        return _copy(record.info)

    def all_egresses(self) -> list[eg.EgressInfo]:
        """Copies of every egress, in creation order."""
        return [_copy(r.info) for r in self._egresses.values()]

    def list_egress(
        self, room_name: str = "", egress_id: str = "", active: bool = False
    ) -> list[eg.EgressInfo]:
        """ListEgress: ``egress_id`` selects exactly one (or ``not_found``)."""
        if egress_id:
            return [_copy(self._get(egress_id).info)]
        return [
            _copy(r.info)
            for r in self._egresses.values()
            if (not room_name or r.info.room_name == room_name)
            and (not active or r.info.status not in FINAL)
        ]

    # ------------------------------------------------------------------ scripts
    def script_next(self, script: EgressScript) -> None:
        """Apply ``script`` to the next egress started (scripts queue up)."""
        self._next_scripts.append(script)

    def script(self, egress_id: str, script: EgressScript) -> None:
        """Apply ``script``'s outcome to an existing egress."""
        self._spawn(self._run_script(self._get(egress_id), script))

    async def _run_script(self, record: _Egress, script: EgressScript) -> None:
        if script.after > 0:
            await asyncio.sleep(script.after)
        if record.info.status in FINAL or script.outcome is None:
            return
        if (
            script.outcome in ("limit_reached", "complete")
            and record.info.status == Status.EGRESS_STARTING
        ):
            self._transition(record, Status.EGRESS_ACTIVE)
        status = {
            "failed": Status.EGRESS_FAILED,
            "aborted": Status.EGRESS_ABORTED,
            "limit_reached": Status.EGRESS_LIMIT_REACHED,
            "complete": Status.EGRESS_COMPLETE,
        }[script.outcome]
        self._transition(record, status, error=script.error, error_code=script.error_code)

    # ------------------------------------------------------------------- starts
    def _reject_if_scripted(self) -> None:
        if self._next_scripts and self._next_scripts[0].reject is not None:
            reject = self._next_scripts.pop(0).reject
            assert reject is not None
            raise reject

    def start_room_composite(self, req: eg.RoomCompositeEgressRequest) -> eg.EgressInfo:
        """StartRoomCompositeEgress."""
        room = self.rooms.get(req.room_name).room
        self._reject_if_scripted()
        if req.custom_base_url and urlsplit(req.custom_base_url).scheme not in ("http", "https"):
            raise invalid("template base url")
        if req.audio_only and req.video_only:
            raise invalid("audio_only and video_only")
        info = eg.EgressInfo(source_type=eg.EgressSourceType.EGRESS_SOURCE_TYPE_WEB)
        info.room_composite.CopyFrom(redacted_copy(req))
        return self._create(info, req, room, has_video=not req.audio_only)

    def start_track_composite(self, req: eg.TrackCompositeEgressRequest) -> eg.EgressInfo:
        """StartTrackCompositeEgress."""
        room = self.rooms.get(req.room_name).room
        self._reject_if_scripted()
        if not req.audio_track_id and not req.video_track_id:
            raise invalid("track ids")
        info = eg.EgressInfo(source_type=eg.EgressSourceType.EGRESS_SOURCE_TYPE_SDK)
        info.track_composite.CopyFrom(redacted_copy(req))
        has_video = bool(req.video_track_id)
        return self._create(info, req, room, has_video=has_video)

    def _create(
        self,
        info: eg.EgressInfo,
        req: Composite,
        room: models.Room,
        *,
        has_video: bool,
    ) -> eg.EgressInfo:
        now = time.time_ns()
        now_dt = datetime.now()
        plans, _ = plan_outputs(req, room.name, room.sid, now_dt)
        script = self._next_scripts.pop(0) if self._next_scripts else None
        info.egress_id = new_id(EGRESS_PREFIX)
        info.room_id = room.sid
        info.room_name = room.name
        info.status = Status.EGRESS_STARTING
        info.started_at = now
        info.updated_at = now
        for plan in plans:
            name = plan.resolve(has_video, now_dt) if plan.known_type else plan.filepath
            info.file_results.add(filename=name)
        streams = [u for s in req.stream_outputs for u in s.urls]
        if req.WhichOneof("output") == "stream":
            streams = list(req.stream.urls)
        for url in streams:
            info.stream_results.add(url=url, started_at=now)
        segments = list(req.segment_outputs)
        if req.WhichOneof("output") == "segments":
            segments = [req.segments]
        for seg in segments:
            info.segment_results.add(playlist_name=seg.playlist_name, started_at=now)
        if len(plans) == 1 and not streams and not segments and not req.image_outputs:
            info.file.CopyFrom(info.file_results[0])  # deprecated single-result field
        record = _Egress(info=info, plans=plans, has_video=has_video, webhooks=list(req.webhooks))
        self._egresses[info.egress_id] = record
        self._changed(record, "egress_started")
        self._maybe_schedule_start(record)
        if script is not None and script.outcome is not None:
            self._spawn(self._run_script(record, script))
        return _copy(info)

    # --------------------------------------------------------------- lifecycle
    def stop(self, egress_id: str) -> eg.EgressInfo:
        """StopEgress semantics (see the module docstring)."""
        record = self._get(egress_id)
        status = record.info.status
        if status == Status.EGRESS_STARTING:
            self._transition(record, Status.EGRESS_ABORTED)
        elif status == Status.EGRESS_ACTIVE:
            self._transition(record, Status.EGRESS_ENDING, details=STOP_DETAILS)
        elif status != Status.EGRESS_ENDING:
            name = Status.Name(status)
            raise TwirpError("failed_precondition", f"egress with status {name} cannot be stopped")
        return _copy(record.info)

    def update_layout(self, egress_id: str, layout: str) -> eg.EgressInfo:
        """UpdateLayout: records the layout on the echoed room-composite request."""
        record = self._get(egress_id)
        if record.info.status in FINAL:
            name = Status.Name(record.info.status)
            raise TwirpError("failed_precondition", f"egress with status {name} cannot be updated")
        if record.info.HasField("room_composite"):
            record.info.room_composite.layout = layout
        return _copy(record.info)

    def advance(
        self,
        egress_id: str,
        status: eg.EgressStatus,
        *,
        error: str | None = None,
        error_code: int | None = None,
        details: str | None = None,
        duration: float | None = None,
        size: int | None = None,
    ) -> eg.EgressInfo:
        """Test control: move an egress to ``status`` and emit the matching webhook.

        Allowed: STARTING → ACTIVE; STARTING/ACTIVE → ENDING; any non-final → any
        final status. ``duration`` (seconds) and ``size`` (bytes) override the file
        results of COMPLETE / LIMIT_REACHED. Raises ``KeyError`` for an unknown id
        and ``ValueError`` for a transition the real egress cannot make.
        """
        record = self._egresses.get(egress_id)
        if record is None:
            raise KeyError(egress_id)
        current = record.info.status
        if current in FINAL:
            raise ValueError(f"egress {egress_id} is already {Status.Name(current)}")
        if status == Status.EGRESS_STARTING or status == current:
            raise ValueError(f"cannot move {Status.Name(current)} to {Status.Name(status)}")
        if status == Status.EGRESS_ACTIVE and current != Status.EGRESS_STARTING:
            raise ValueError(f"cannot move {Status.Name(current)} to EGRESS_ACTIVE")
        record.extra.update({"duration": duration, "size": size})
        self._transition(record, status, error=error, error_code=error_code, details=details)
        return _copy(record.info)

    def _transition(
        self,
        record: _Egress,
        status: eg.EgressStatus,
        *,
        error: str | None = None,
        error_code: int | None = None,
        details: str | None = None,
    ) -> None:
        info = record.info
        now = time.time_ns()
        info.status = status
        info.updated_at = now
        if status == Status.EGRESS_ACTIVE:
            record.active_since = now
            for plan, result in zip(record.plans, info.file_results, strict=False):
                result.filename = plan.resolve(record.has_video, datetime.now())
                result.started_at = now
            self._sync_legacy_file(info)
            self._changed(record, "egress_updated")
            self._schedule_limit(record)
            return
        if status == Status.EGRESS_ENDING:
            info.details = details or SOURCE_CLOSED_DETAILS
            self._changed(record, "egress_updated")
            if self.mode == "auto":
                self._spawn(self._finalize_later(record))
            return
        info.ended_at = now
        if status == Status.EGRESS_ABORTED:
            info.error = error or ABORTED_ERROR
            info.error_code = error_code or 412
        elif status == Status.EGRESS_LIMIT_REACHED:
            info.error = error or LIMIT_ERROR
            info.error_code = error_code or 413
        elif status == Status.EGRESS_FAILED:
            info.error = error or "pipeline failed"
            info.error_code = error_code or 500
            info.details = details or info.details or FAILURE_DETAILS
        if details is not None:
            info.details = details
        if status in (Status.EGRESS_COMPLETE, Status.EGRESS_LIMIT_REACHED):
            self._finalize_files(record, now)
        self._changed(record, "egress_ended")

    def _finalize_files(self, record: _Egress, now: int) -> None:
        info = record.info
        duration_s = record.extra.get("duration")
        size = record.extra.get("size")
        started = record.active_since or info.started_at
        ended = started + int(duration_s * 1e9) if duration_s is not None else now
        for plan, result in zip(record.plans, info.file_results, strict=False):
            result.filename = plan.resolve(record.has_video, datetime.now())
            result.started_at = started
            result.ended_at = ended
            result.duration = ended - started
            seconds = result.duration / 1e9
            result.size = (
                size
                if size is not None
                else 1024 + int(seconds * (250_000 if record.has_video else 16_000))
            )
            result.location = location(plan.output, result.filename)
            if self.output_dir is not None and plan.output.WhichOneof("output") is None:
                path = self.output_dir / result.filename.lstrip("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\0" * result.size)
                result.location = str(path)
        for stream in info.stream_results:
            stream.ended_at = now
            stream.duration = now - stream.started_at
            stream.status = eg.StreamInfo.Status.FINISHED
        self._sync_legacy_file(info)

    @staticmethod
    def _sync_legacy_file(info: eg.EgressInfo) -> None:
        if info.HasField("file") and info.file_results:
            info.file.CopyFrom(info.file_results[0])

    def _changed(self, record: _Egress, event_name: str) -> None:
        info = record.info
        active = any(
            r.info.status not in FINAL
            for r in self._egresses.values()
            if r.info.room_name == info.room_name
        )
        self.rooms.set_active_recording(info.room_name, active)
        event = WebhookEvent(
            event=event_name,
            room=models.Room(sid=info.room_id, name=info.room_name),
            egress_info=_copy(info),
        )
        self._emit(event, record.webhooks)

    # -------------------------------------------------------------- auto mode
    def _room_populated(self, room_name: str) -> bool:
        state = self.rooms.rooms.get(room_name)
        active = models.ParticipantInfo.State.ACTIVE
        return state is not None and any(p.state == active for p in state.participants.values())

    def _maybe_schedule_start(self, record: _Egress) -> None:
        if (
            self.mode == "auto"
            and not record.start_scheduled
            and record.info.status == Status.EGRESS_STARTING
            and self._room_populated(record.info.room_name)
        ):
            record.start_scheduled = True
            self._spawn(self._start_later(record))

    async def _start_later(self, record: _Egress) -> None:
        await asyncio.sleep(self.timing.start_delay)
        if record.info.status == Status.EGRESS_STARTING:
            self._transition(record, Status.EGRESS_ACTIVE)

    def _schedule_limit(self, record: _Egress) -> None:
        if self.mode == "auto" and self.timing.max_duration is not None:
            self._spawn(self._limit_later(record, self.timing.max_duration))

    async def _limit_later(self, record: _Egress, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if record.info.status == Status.EGRESS_ACTIVE:
            self._transition(record, Status.EGRESS_LIMIT_REACHED)

    async def _finalize_later(self, record: _Egress) -> None:
        await asyncio.sleep(self.timing.finalize_delay)
        if record.info.status == Status.EGRESS_ENDING:
            self._transition(record, Status.EGRESS_COMPLETE)

    # --------------------------------------------------------- RoomListener
    def participant_active(self, room_name: str) -> None:
        """A participant became ACTIVE: auto-mode egresses of the room may start."""
        for record in list(self._egresses.values()):
            if record.info.room_name == room_name:
                self._maybe_schedule_start(record)

    def room_closed(self, room_name: str) -> None:
        """The room closed: STARTING → ABORTED, ACTIVE → ENDING "Source closed"."""
        for record in list(self._egresses.values()):
            if record.info.room_name != room_name:
                continue
            if record.info.status == Status.EGRESS_STARTING:
                self._transition(record, Status.EGRESS_ABORTED)
            elif record.info.status == Status.EGRESS_ACTIVE:
                self._transition(record, Status.EGRESS_ENDING, details=SOURCE_CLOSED_DETAILS)
