"""The room actor shell and the local engine (``LocalDirectory``).

``RoomActor`` contract: commands apply one at a time in arrival order; the state a command
decides is committed before any of its effects runs; effects run in the order ``decide``
returned them, and an effect's follow-up command (``CallLiveKit.then``) applies before the next
queued command. A mailbox task exists only while the room has queued work, so idle rooms cost
only their state. On activation the actor rebuilds its state from the database (the recording
in flight) and from LiveKit (participants, active egress), never from assumptions.

``RoomDirectory`` is the only way ``api/`` reaches a room; ``LocalDirectory`` hosts every actor
in this process. A Ray engine implements the same protocol.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from coordinator.errors import CoordinatorError
from coordinator.media import Egress, Participant, RoomInfo
from coordinator.room import (
    ApplyWebhook,
    CallLiveKit,
    Command,
    CompleteRecording,
    MergeMetadata,
    PersistRecordingStatus,
    RecordingLoaded,
    RecordingState,
    RecordingStep,
    Recover,
    RoomState,
    SendData,
    StepResult,
    decide,
    is_idle,
)

log = logging.getLogger(__name__)


class MediaPort(Protocol):
    """The LiveKit calls the actors make (``coordinator.livekit.LiveKitAdapter``)."""

    async def list_participants(self, room: str) -> list[Participant]: ...
    async def list_egress(
        self, *, room: str | None = None, egress_id: str | None = None, active: bool = False
    ) -> list[Egress]: ...
    async def get_room(self, room: str) -> RoomInfo | None: ...
    async def get_participant(self, room: str, identity: str) -> Participant | None: ...
    async def remove_participant(self, room: str, identity: str) -> None: ...
    async def mute_track(self, room: str, identity: str, track_sid: str) -> None: ...
    async def update_participant(
        self,
        room: str,
        identity: str,
        *,
        metadata: str | None = None,
        attributes: dict[str, str] | None = None,
        name: str | None = None,
        permission: dict[str, Any] | None = None,
    ) -> Participant: ...
    async def send_data(self, room: str, payload: dict[str, Any]) -> None: ...
    async def merge_room_metadata(
        self, room: str, changes: dict[str, Any], *, remove: tuple[str, ...] = ()
    ) -> bool: ...


class RecordingPort(Protocol):
    """Recording persistence the actors need (``coordinator.recordings``)."""

    async def in_flight(self, room: str) -> RecordingState | None: ...
    async def by_egress(self, egress_id: str) -> RecordingState | None: ...
    async def set_status(
        self, recording_id: uuid.UUID, status: str, only_from: tuple[str, ...]
    ) -> bool: ...
    async def complete(self, recording_id: uuid.UUID, egress: Egress) -> None: ...
    async def begin(
        self, room: str, *, mode: str, options: dict[str, Any], user_id: uuid.UUID
    ) -> StepResult: ...
    async def end(self, room: str) -> StepResult: ...
    async def finish(self, room: str, *, recording_id: uuid.UUID) -> StepResult: ...
    async def reconcile(self, room: str) -> StepResult: ...


class RoomDirectory(Protocol):
    async def call(self, room: str, command: Command) -> Any: ...
    async def close(self) -> None: ...


class RoomActor:
    def __init__(
        self,
        name: str,
        media: MediaPort,
        recordings: RecordingPort,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = RoomState(name=name, last_activity=clock())
        self._media = media
        self._recordings = recordings
        self._clock = clock
        # Both exist only while the room has queued work: idle rooms cost only their state.
        self._mailbox: deque[tuple[Command, asyncio.Future[Any]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._activated = False
        self._livekit_recovered = False
        self._deferred: list[Any] = []

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def busy(self) -> bool:
        return bool(self._mailbox) or (self._task is not None and not self._task.done())

    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Queue ``command``; the future resolves with its reply (or its error)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._mailbox is None:
            self._mailbox = deque()
        self._mailbox.append((command, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"room:{self.name}")
        return future

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._mailbox:
            _, future = self._mailbox.popleft()
            if not future.done():
                future.cancel()
        self._mailbox = None

    async def _drain(self) -> None:
        try:
            await self._drain_mailbox()
        finally:
            if not self._mailbox:
                self._mailbox = None
                self._task = None

    async def _drain_mailbox(self) -> None:
        while self._mailbox:
            command, future = self._mailbox.popleft()
            if future.cancelled():
                continue
            try:
                if not self._activated or not self._livekit_recovered:
                    await self._activate()
                result = await self._handle(command)
            except asyncio.CancelledError:
                if not future.done():
                    future.cancel()
                raise
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                await self._run_deferred()

    async def _run_deferred(self) -> None:
        """Best-effort effects whose outcome the caller does not wait for (metadata merges,
        lobby notifications) run after the reply, still before the room's next command."""
        while self._deferred:
            await self._run(self._deferred.pop(0))

    async def _activate(self) -> None:
        if not self._activated:
            recording = await self._recordings.in_flight(self.name)
            participants: tuple[Participant, ...] = ()
            recording = await self._observe_egress(recording)
            try:
                participants = tuple(await self._media.list_participants(self.name))
                self._livekit_recovered = True
            except CoordinatorError as exc:
                log.warning("room %s: recovery from LiveKit postponed: %s", self.name, exc)
            self._apply(Recover(participants, recording))
            self._activated = True
            return
        try:
            participants = tuple(await self._media.list_participants(self.name))
        except CoordinatorError:
            return
        self._livekit_recovered = True
        self._apply(Recover(participants, await self._observe_egress(self.state.recording)))

    async def _observe_egress(self, recording: RecordingState | None) -> RecordingState | None:
        if recording is None or not recording.egress_id:
            return recording
        try:
            egresses = await self._media.list_egress(egress_id=recording.egress_id)
        except CoordinatorError as exc:
            log.warning("room %s: egress state unknown: %s", self.name, exc)
            return recording
        for egress in egresses:
            return replace(recording, egress_status=egress.status)
        return recording

    def _apply(self, command: Command) -> Any:
        decision = decide(self.state, command, self._clock())
        self.state = decision.state
        return decision

    async def _handle(self, command: Command) -> Any:
        if isinstance(command, ApplyWebhook) and command.event.egress is not None:
            egress_id = command.event.egress.egress_id
            current = self.state.recording
            if current is None or current.egress_id != egress_id:
                known = await self._recordings.by_egress(egress_id)
                self._apply(RecordingLoaded(known))  # adopts it if it is in flight
                command = replace(command, recording=known)
        decision = self._apply(command)  # state committed before the first await
        result = decision.reply
        for effect in decision.effects:
            if _best_effort(effect):
                self._deferred.append(effect)
                continue
            outcome = await self._run(effect)
            if isinstance(effect, CallLiveKit):
                result = outcome
                if effect.then is not None:
                    await self._handle(effect.then)
            elif isinstance(effect, RecordingStep):
                assert isinstance(outcome, StepResult)
                result = outcome.reply
                if outcome.then is not None:
                    await self._handle(outcome.then)
        return result

    async def _run(self, effect: Any) -> Any:
        room = self.name
        match effect:
            case SendData():
                try:
                    if effect.required or await self._media.get_room(room) is not None:
                        await self._media.send_data(room, dict(effect.payload))
                except CoordinatorError as exc:
                    if effect.required:
                        raise
                    log.info("room %s: data message not sent: %s", room, exc)
            case MergeMetadata():
                try:
                    await self._media.merge_room_metadata(
                        room, dict(effect.changes), remove=effect.remove
                    )
                except CoordinatorError as exc:
                    log.warning("room %s: metadata not updated: %s", room, exc)
            case CallLiveKit():
                method = getattr(self._media, effect.method)
                return await method(room, **effect.arguments)
            case PersistRecordingStatus():
                await self._recordings.set_status(
                    effect.recording_id, effect.status, effect.only_from
                )
            case CompleteRecording():
                await self._recordings.complete(effect.recording_id, effect.egress)
            case RecordingStep():
                return await getattr(self._recordings, effect.action)(room, **effect.arguments)
        return None


def _best_effort(effect: Any) -> bool:
    return isinstance(effect, MergeMetadata) or (
        isinstance(effect, SendData) and not effect.required
    )


class LocalDirectory:
    """Every room actor in this process; idle rooms are deactivated by a sweeper."""

    def __init__(
        self,
        media: MediaPort,
        recordings: RecordingPort,
        *,
        idle_after: float = 300.0,
        sweep_every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._media = media
        self._recordings = recordings
        self._clock = clock
        self.idle_after = idle_after
        self._sweep_every = sweep_every
        self._actors: dict[str, RoomActor] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="room-sweeper")

    def actor(self, room: str) -> RoomActor:
        actor = self._actors.get(room)
        if actor is None:
            actor = RoomActor(room, self._media, self._recordings, clock=self._clock)
            self._actors[room] = actor
        return actor

    async def call(self, room: str, command: Command) -> Any:
        return await self.actor(room).submit(command)

    def active_rooms(self) -> list[str]:
        return list(self._actors)

    async def drop(self, room: str) -> None:
        """Forget a room's actor as a crash would; its next command re-activates it."""
        actor = self._actors.pop(room, None)
        if actor is not None:
            await actor.stop()

    def sweep(self) -> int:
        """Deactivate idle rooms; returns how many were dropped."""
        now = self._clock()
        idle = [
            name
            for name, actor in self._actors.items()
            if not actor.busy and is_idle(actor.state, now, self.idle_after)
        ]
        for name in idle:
            del self._actors[name]
        return len(idle)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_every)
            try:
                dropped = self.sweep()
                if dropped:
                    log.debug("deactivated %d idle rooms", dropped)
            except Exception:
                log.exception("room sweeper failed")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
        for actor in list(self._actors.values()):
            await actor.stop()
        self._actors.clear()
