"""The room actor shell and the local engine (``LocalDirectory``).

``RoomActor`` contract: commands apply one at a time in arrival order; the state a command
decides is committed before any of its effects runs; a command's effects run in the order
``decide`` returned them, and effects on the same target (a participant, the room, the
recording) in the order their commands were decided. The mailbox is never held across a
LiveKit call: calls run beside it and their follow-up commands (``CallLiveKit.then``,
``StepResult.then``) are fed back ahead of queued commands, so lobby, webhook and snapshot
commands never wait behind a hung LiveKit. Each command's deadline (queued at + the LiveKit
timeout) bounds its wait in the queue and its LiveKit calls. A mailbox task exists only while
the room has queued work, so idle rooms cost only their state; a participant or track webhook
to an idle, activated room is decided by ``submit`` itself, as the task would do next (the
ingestion hot path: no task, no wake-up). On activation the actor rebuilds
its state from the database (the recording in flight, reconciled with its egresses) and from
LiveKit (``ListParticipants``, authoritative for presence), never from assumptions.

``RoomDirectory`` is the only way ``api/`` reaches a room; ``LocalDirectory`` hosts every actor
in this process. A Ray engine implements the same protocol.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, Protocol

from coordinator.deadlines import CALL_DEADLINE
from coordinator.errors import CoordinatorError, Unavailable
from coordinator.events import EventBus, room_events
from coordinator.media import Egress, Participant, RoomInfo
from coordinator.room import (
    ApplyWebhook,
    CallLiveKit,
    Command,
    CompleteRecording,
    Later,
    MergeMetadata,
    ParticipantsListed,
    PersistRecordingStatus,
    RecordingLoaded,
    RecordingState,
    RecordingStep,
    Recover,
    RoomState,
    SendData,
    Snapshot,
    StartSettled,
    StepResult,
    decide,
    is_idle,
)
from coordinator.telemetry import REQUEST_ID, EngineStats, Metrics

log = logging.getLogger(__name__)
effect_log = logging.getLogger("meet.effects")
COMMAND: ContextVar[str | None] = ContextVar("command", default=None)  # the one being applied


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
    async def end(self, room: str, *, recording: RecordingState | None = None) -> StepResult: ...
    async def finish(self, room: str, *, recording_id: uuid.UUID) -> StepResult: ...
    async def reconcile(
        self, room: str, *, egresses: tuple[Egress, ...] | None = None
    ) -> StepResult: ...


class RoomDirectory(Protocol):
    async def call(self, room: str, command: Command) -> Any: ...
    async def close(self) -> None: ...


Entry = tuple[Command, "asyncio.Future[Any] | None", float | None]  # command, reply, deadline
BUSY_MESSAGE = "The room is busy; try again."
SIDE_EFFECTS_KEPT = 1000  # best-effort effects queued per room beyond which new ones are dropped
LISTING_RETRY_SECONDS = 5.0
_SKIPPED = object()


class RoomActor:
    """One room: a mailbox applied one command at a time, and lanes for what waits on LiveKit.

    The mailbox task only decides, commits and runs database effects; it never awaits LiveKit.
    A command's LiveKit calls run in tasks of their own, ordered per target (participant
    identity, the room, the recording), their follow-up commands fed back to the mailbox ahead
    of queued commands; best-effort effects (metadata merges, lobby notifications) run in a
    side lane. Every command has a deadline (queued at + the LiveKit timeout): one still queued
    past it answers 503 without running, and its LiveKit calls never wait beyond it.
    """

    def __init__(
        self,
        name: str,
        media: MediaPort,
        recordings: RecordingPort,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 5.0,
        wall_clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.state = RoomState(name=name, last_activity=clock())
        self._metrics = metrics
        self.events = events
        # The request id each queued command came with, set again when it applies.
        self._origins: dict[asyncio.Future[Any], str] = {}
        self._media = media
        self._recordings = recordings
        self._clock = clock
        self._wall_clock = wall_clock
        self.timeout = timeout
        # All of these exist only while the room has work: idle rooms cost only their state.
        self._mailbox: deque[Entry] | None = None
        self._internal: deque[Entry] | None = None  # follow-ups, applied before the mailbox
        self._task: asyncio.Task[None] | None = None
        self._activated = False
        self._listed = False
        self._listing: asyncio.Task[None] | None = None
        self._listing_retry_at = 0.0
        self._after_listing: list[Entry] = []
        self._recovering: set[asyncio.Task[Any]] = set()
        self._chains: dict[str, asyncio.Task[Any]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._side: deque[tuple[Any, float | None, Origin]] | None = None
        self._side_task: asyncio.Task[None] | None = None
        self._replies: dict[str, asyncio.Task[Any]] = {}  # request id → its reply (pending)
        self._stopped = False

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def busy(self) -> bool:
        return (
            bool(self._mailbox)
            or bool(self._internal)
            or bool(self._background)
            or (self._task is not None and not self._task.done())
        )

    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Queue ``command``; the future resolves with its reply (or its error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._metrics is not None:
            self._metrics.track_command(command, future)
        if self._apply_now(command, future, loop):
            return future
        if self._mailbox is None:
            self._mailbox = deque()
        self._mailbox.append((command, future, loop.time() + self.timeout))
        self._remember_origin(future)
        self._ensure_drain()
        return future

    def _apply_now(
        self, command: Command, future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop
    ) -> bool:
        """A webhook that needs no await, applied at once when nothing is queued before it.

        This is what the drain task would do next, without the task: an idle, activated room
        decides a participant or track webhook synchronously (the state committed, the
        events published, best-effort effects queued, the reply set). One whose decision
        waits on LiveKit or the database, an egress event (its recording may need a lookup)
        or any other command takes the mailbox; so does anything while a command is queued
        or applying, which keeps the arrival order."""
        if (
            not isinstance(command, ApplyWebhook)
            or command.event.egress is not None
            or not self._activated
            or self._stopped
            or self._mailbox
            or self._internal
            or (self._task is not None and not self._task.done())
        ):
            return False
        try:
            decision = decide(self.state, command, self._clock())
        except Exception as exc:
            future.set_exception(exc)  # as the drain task would
            return True
        if not all(_best_effort(effect) for effect in decision.effects):
            return False  # decided again by the drain task (decide is pure)
        if not self._listed and self._listing is None and loop.time() >= self._listing_retry_at:
            self._start_listing()  # as the drain task does before each command
        token = COMMAND.set("ApplyWebhook")
        try:
            prior = self.state
            self.state = decision.state
            if self.events is not None:
                self._publish(command, prior, decision.reply)
            for effect in decision.effects:
                self._side_effect(effect)
        finally:
            COMMAND.reset(token)
        future.set_result(decision.reply)
        return True

    def _remember_origin(self, future: asyncio.Future[Any]) -> None:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            self._origins[future] = request_id

    def _enter(self, command: Command, future: asyncio.Future[Any] | None) -> None:
        """The drain task takes on the request id and name of the command it applies; the
        effect tasks it spawns copy them."""
        request_id = self._origins.pop(future, None) if future is not None else None
        REQUEST_ID.set(request_id)
        COMMAND.set(type(command).__name__)

    def queue_stats(self, now: float) -> tuple[int, float]:
        """(commands queued, seconds the oldest has waited) at loop time ``now``."""
        queued = len(self._mailbox or ()) + len(self._internal or ())
        deadlines = [d for _, _, d in self._mailbox or () if d is not None]
        waited = now - (min(deadlines) - self.timeout) if deadlines else 0.0
        return queued, max(0.0, waited)

    def _ensure_drain(self) -> None:
        if self._stopped:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"room:{self.name}")

    def _follow(self, command: Command) -> None:
        """Queue a follow-up command ahead of the queued ones, without waiting for it to apply.

        The effect's reply goes out meanwhile (a recording start's answer does not wait for
        the mailbox to take its ``TrackRecording`` and ``StartSettled``): whatever the mailbox
        takes after this call, a command or a webhook, is applied after the follow-up."""
        if not self._stopped:
            self._queue_follow_up(command).add_done_callback(self._follow_failed)

    def _follow_failed(self, done: asyncio.Future[Any]) -> None:
        if not done.cancelled() and (exc := done.exception()) is not None:
            log.warning("room %s: follow-up command failed: %r", self.name, exc)

    async def _feed(self, command: Command) -> Any:
        """Apply a follow-up command ahead of the queued ones; wait until it has applied."""
        if self._stopped:
            raise asyncio.CancelledError()
        return await self._queue_follow_up(command)

    def _queue_follow_up(self, command: Command) -> asyncio.Future[Any]:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._internal is None:
            self._internal = deque()
        self._internal.append((command, done, None))
        self._remember_origin(done)
        self._ensure_drain()
        return done

    async def stop(self) -> None:
        self._stopped = True
        tasks = [t for t in (self._task, *self._background) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except BaseException:  # cancelled or failed: the actor is going away
                pass
        for queue in (self._mailbox, self._internal, self._after_listing):
            while queue:
                _, future, _ = queue.pop()
                if future is not None and not future.done():
                    future.cancel()
        self._mailbox = self._internal = None
        self._origins.clear()

    def _next(self) -> Entry | None:
        if self._internal:
            return self._internal.popleft()
        if self._mailbox:
            return self._mailbox.popleft()
        return None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (entry := self._next()) is not None:
                command, future, deadline = entry
                self._enter(command, future)
                if future is not None and future.done():
                    continue  # its caller gave up
                try:
                    if not self._activated:
                        await self._activate()
                    elif not self._listed and self._listing is None:
                        if loop.time() >= self._listing_retry_at:
                            self._start_listing()
                    await self._handle(command, future, deadline)
                except asyncio.CancelledError:
                    if future is not None and not future.done():
                        future.cancel()
                    raise
                except Exception as exc:
                    if future is not None and not future.done():
                        future.set_exception(exc)
                    else:
                        log.exception("room %s: %s failed", self.name, type(command).__name__)
        finally:
            if not self._mailbox and not self._internal:
                self._mailbox = self._internal = None
                self._task = None

    async def _activate(self) -> None:
        """Rebuild from the database now, from LiveKit in the background (DESIGN §3.5)."""
        recording = await self._recordings.in_flight(self.name)
        self._activated = True
        await self._handle(Recover((), recording), None, None)
        reconcile = self._chains.get("recording")  # the recording's check, if one is in flight
        if reconcile is not None:
            self._recovering.add(reconcile)
            reconcile.add_done_callback(self._recovered)
        self._start_listing()

    def _start_listing(self) -> None:
        self._listing = self._spawn(self._list_participants(), detached=True)
        self._recovering.add(self._listing)
        self._listing.add_done_callback(self._recovered)

    def _recovered(self, task: asyncio.Task[Any]) -> None:
        """Snapshots asked for while recovering are answered once recovery has applied."""
        self._recovering.discard(task)
        if self._recovering or not self._after_listing:
            return
        waiting, self._after_listing = self._after_listing, []
        if self._internal is None:
            self._internal = deque()
        self._internal.extend(waiting)
        self._ensure_drain()

    async def _list_participants(self) -> None:
        listed_at_ms = int(self._wall_clock() * 1000)
        try:
            participants = await self._media.list_participants(self.name)
        except CoordinatorError as exc:
            log.warning("room %s: recovery from LiveKit postponed: %s", self.name, exc)
            self._listing_retry_at = asyncio.get_running_loop().time() + LISTING_RETRY_SECONDS
        else:
            await self._feed(ParticipantsListed(tuple(participants), listed_at_ms))
            self._listed = True
        finally:
            self._listing = None

    def _apply(self, command: Command) -> Any:
        decision = decide(self.state, command, self._clock())
        self.state = decision.state
        return decision

    async def _handle(
        self, command: Command, future: asyncio.Future[Any] | None, deadline: float | None
    ) -> None:
        if isinstance(command, Snapshot) and self._recovering and future is not None:
            self._after_listing.append((command, future, deadline))  # answered once listed
            self._remember_origin(future)
            return
        if isinstance(command, ApplyWebhook) and command.event.egress is not None:
            egress_id = command.event.egress.egress_id
            current = self.state.recording
            if current is None or current.egress_id != egress_id:
                known = await self._recordings.by_egress(egress_id)
                self._apply(RecordingLoaded(known))  # adopts it if it is in flight
                command = replace(command, recording=known)
        decision = decide(self.state, command, self._clock())
        if (
            deadline is not None
            and asyncio.get_running_loop().time() > deadline
            and any(_waits_on_livekit(e) for e in decision.effects)
        ):
            # Queued past its deadline: it answers 503 without running (nothing committed).
            raise Unavailable(BUSY_MESSAGE)
        prior = self.state
        self.state = decision.state  # committed before the first await
        if self.events is not None:
            self._publish(command, prior, decision.reply)
        pending: list[Any] = []
        for effect in decision.effects:
            if _best_effort(effect):
                self._side_effect(effect)
            elif not pending and isinstance(effect, PersistRecordingStatus | CompleteRecording):
                with effect_span(self.name, effect):
                    await self._run(effect)  # the database, in order, inside the mailbox
            else:
                pending.append(effect)
        if not pending:
            if future is not None and not future.done():
                future.set_result(decision.reply)
            return
        attached: list[tuple[Any, asyncio.Task[Any]]] = []
        previous: asyncio.Task[Any] | None = None
        for effect in pending:
            detached = isinstance(effect, Later) or getattr(effect, "detached", False)
            key = _chain_key(effect)
            before = self._chains.get(key) if key else None
            task = self._spawn(
                self._run_async(effect, previous, before, None if detached else deadline),
                detached=detached,
            )
            if key:
                self._chains[key] = task
                task.add_done_callback(lambda t, k=key: self._unchain(k, t))
            previous = task
            if not detached:
                attached.append((effect, task))
        if future is not None:
            self._owe_reply(self._spawn(self._reply(future, decision.reply, attached)))

    def _owe_reply(self, reply: asyncio.Task[Any]) -> None:
        """The best-effort effects this request's command causes on its way (the metadata
        of a recording start) wait for its reply: they are not on the request path."""
        request_id = REQUEST_ID.get()
        if request_id is None:
            return
        self._replies[request_id] = reply

        def paid(task: asyncio.Task[Any]) -> None:
            if self._replies.get(request_id) is task:
                del self._replies[request_id]

        reply.add_done_callback(paid)

    def _unchain(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._chains.get(key) is task:
            del self._chains[key]

    async def _reply(
        self,
        future: asyncio.Future[Any],
        reply: Any,
        attached: list[tuple[Any, asyncio.Task[Any]]],
    ) -> None:
        try:
            for effect, task in attached:
                outcome = await task
                if outcome is not _SKIPPED and isinstance(effect, CallLiveKit | RecordingStep):
                    reply = outcome
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(reply)

    async def _run_async(
        self,
        effect: Any,
        previous: asyncio.Task[Any] | None,
        before: asyncio.Task[Any] | None,
        deadline: float | None,
    ) -> Any:
        """One effect outside the mailbox, after the command's previous effect and after the
        previous effect on the same target; never waiting or calling LiveKit past ``deadline``."""
        starting = isinstance(effect, RecordingStep) and effect.action == "begin"
        ran = False
        try:
            waits = {t for t in (previous, before) if t is not None and not t.done()}
            if waits:
                loop = asyncio.get_running_loop()
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                _, late = await asyncio.wait(waits, timeout=timeout)
                if late:
                    raise Unavailable(BUSY_MESSAGE)
                if (
                    previous is None
                    and before in waits
                    and (before.cancelled() or before.exception() is not None)
                    and deadline is not None
                    and deadline - loop.time() < self.timeout / 2
                ):
                    # Its turn came after another command's call on the same target failed
                    # (LiveKit hangs), too late for a call of its own (at least half a
                    # timeout, deadlines.time_left) to end by its deadline: it answers 503 now
                    # instead of half a timeout later (nothing of it ran). After a slow call
                    # that succeeded, it runs.
                    raise Unavailable(BUSY_MESSAGE)
            if previous is not None and (previous.cancelled() or previous.exception()):
                return _SKIPPED  # the command failed on an earlier effect
            CALL_DEADLINE.set(deadline)  # this task's own context
            ran = True
            outcome: Any = None
            then: Command | None = None
            with effect_span(self.name, effect):
                match effect:
                    case Later():
                        await asyncio.sleep(effect.seconds)
                        then = effect.command
                    case CallLiveKit():
                        method = getattr(self._media, effect.method)
                        outcome = await method(self.name, **effect.arguments)
                        then = effect.then
                    case RecordingStep():
                        method = getattr(self._recordings, effect.action)
                        result = await method(self.name, **effect.arguments)
                        assert isinstance(result, StepResult)
                        outcome, then = result.reply, result.then
                    case _:
                        await self._run(effect)
            if then is not None:
                self._follow(then)
            return outcome
        except Exception as exc:
            if starting:
                starting = False
                unsure = ran and isinstance(exc, Unavailable)
                self._follow(StartSettled(unsure=unsure, recheck_after=2 * self.timeout))
            raise
        finally:
            if starting:
                self._follow(StartSettled())

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], *, detached: bool = False) -> Any:
        if self._stopped:
            coroutine.close()
            raise asyncio.CancelledError()
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(lambda t: self._settled(t, detached))
        return task

    def _settled(self, task: asyncio.Task[Any], detached: bool) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here so an unawaited failure is never lost
        if exc is not None and detached:
            log.warning("room %s: background effect failed: %s", self.name, exc)

    def _side_effect(self, effect: Any) -> None:
        if self._side is None:
            self._side = deque()
        if len(self._side) >= SIDE_EFFECTS_KEPT:
            log.warning("room %s: side effect dropped (%d queued)", self.name, len(self._side))
            return
        # A notification that could not go out within a timeout is no longer worth sending.
        deadline = None
        if isinstance(effect, SendData):
            deadline = asyncio.get_running_loop().time() + self.timeout
        self._side.append((effect, deadline, (REQUEST_ID.get(), COMMAND.get())))
        if self._side_task is None:
            self._side_task = self._spawn(self._drain_side(), detached=True)

    async def _drain_side(self) -> None:
        """Best-effort effects, in order, one at a time, never in the mailbox's way."""
        try:
            while self._side:
                effect, deadline, (request_id, command) = self._side.popleft()
                owed = self._replies.get(request_id) if request_id is not None else None
                waits = {owed} if owed is not None and not owed.done() else set()
                if isinstance(effect, MergeMetadata):
                    # Room metadata is for the other participants: every answer the room owes
                    # goes first (a webhook's merge while a recording stop writes its status).
                    waits.update(t for t in self._replies.values() if not t.done())
                if waits:
                    await asyncio.wait(waits, timeout=self.timeout)  # the answers go first
                if isinstance(effect, MergeMetadata):
                    # A reply set just before (a start's, whose follow-up asked for this
                    # merge) wakes its request handler: one turn of the loop lets it write
                    # the answer before the merge's work begins.
                    await asyncio.sleep(0)
                CALL_DEADLINE.set(deadline)
                REQUEST_ID.set(request_id)
                COMMAND.set(command)
                try:
                    with effect_span(self.name, effect):
                        await self._run(effect)
                except Exception as exc:
                    log.warning("room %s: best-effort effect failed: %s", self.name, exc)
        finally:
            self._side_task = None
            self._side = None

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
            case PersistRecordingStatus():
                await self._recordings.set_status(
                    effect.recording_id, effect.status, effect.only_from
                )
            case CompleteRecording():
                await self._recordings.complete(effect.recording_id, effect.egress)
        return None

    def _publish(self, command: Command, before: RoomState, reply: Any) -> None:
        """What the command changed, to the event bus (never in the command's way)."""
        assert self.events is not None
        try:
            for event in room_events(self.name, command, before, self.state, reply, self._clock()):
                self.events.publish(event)
        except Exception:
            log.exception("room %s: event not published", self.name)


Origin = tuple[str | None, str | None]  # request id, command name


def effect_name(effect: Any) -> str:
    """``CallLiveKit.remove_participant``, ``RecordingStep.begin``, ``SendData``..."""
    detail = getattr(effect, "method", None) or getattr(effect, "action", None)
    name = type(effect).__name__
    return f"{name}.{detail}" if isinstance(detail, str) else name


@contextmanager
def effect_span(room: str, effect: Any) -> Iterator[None]:
    """One log line per effect run: room, command, effect, duration, outcome (the request
    id is added by the log formatter from the context). ``Later`` (a timer) is not logged."""
    if isinstance(effect, Later):
        yield
        return
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    except CoordinatorError as exc:
        outcome = type(exc).__name__
        raise
    finally:
        effect_log.info(
            "effect",
            extra={
                "fields": {
                    "room": room,
                    "command": COMMAND.get(),
                    "effect": effect_name(effect),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "outcome": outcome,
                }
            },
        )


def _best_effort(effect: Any) -> bool:
    return isinstance(effect, MergeMetadata) or (
        isinstance(effect, SendData) and not effect.required
    )


def _waits_on_livekit(effect: Any) -> bool:
    if isinstance(effect, CallLiveKit):
        return True
    if isinstance(effect, SendData):
        return effect.required
    return isinstance(effect, RecordingStep) and not effect.detached


def _chain_key(effect: Any) -> str | None:
    """Effects with the same key run one after another, in the order they were decided."""
    if isinstance(effect, CallLiveKit):
        identity = effect.arguments.get("identity")
        return f"participant:{identity}" if identity else "room"
    if isinstance(effect, SendData):
        return "room"
    if isinstance(effect, Later):
        return None
    return "recording"  # recording steps and the database effects that follow them


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
        timeout: float = 5.0,
        metrics: Metrics | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.timeout = timeout  # a command's deadline: the LiveKit timeout
        self._metrics = metrics
        self.events = events  # the actors' event stream (coordinator.events)
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
            actor = RoomActor(
                room,
                self._media,
                self._recordings,
                clock=self._clock,
                timeout=self.timeout,
                metrics=self._metrics,
                events=self.events,
            )
            self._actors[room] = actor
        return actor

    async def call(self, room: str, command: Command) -> Any:
        """The command's reply (or 503 when its deadline passed before it could run)."""
        return await self.actor(room).submit(command)

    async def settle(self, room: str) -> None:
        """Wait until the room has no queued command and no effect still running."""
        actor = self._actors.get(room)
        while actor is not None and actor.busy:  # noqa: ASYNC110 - a poll for tests and tools
            await asyncio.sleep(0.005)

    def active_rooms(self) -> list[str]:
        return list(self._actors)

    def stats(self) -> EngineStats:
        """Actors, live rooms, participants and mailboxes, for the metrics."""
        now = asyncio.get_running_loop().time()
        rooms_live = participants = queued = 0
        oldest = 0.0
        for actor in self._actors.values():
            present = len(actor.state.participants)
            participants += present
            rooms_live += present > 0
            waiting, waited = actor.queue_stats(now)
            queued += waiting
            oldest = max(oldest, waited)
        return EngineStats(len(self._actors), rooms_live, participants, queued, oldest)

    def is_active(self, room: str) -> bool:
        return room in self._actors

    async def health(self) -> dict[str, Any]:
        """The engine's load, as the ops dashboard shows it (one host: this process)."""
        return {"engine": "local", "hosts": [self.host_health(socket.gethostname())]}

    def host_health(self, name: str) -> dict[str, Any]:
        now = asyncio.get_running_loop().time()
        queued, oldest = 0, None
        for actor in self._actors.values():
            waiting, waited = actor.queue_stats(now)
            if waiting:
                queued += waiting
                oldest = waited if oldest is None else max(oldest, waited)
        return {
            "name": name,
            "alive": True,
            "rooms": len(self._actors),
            "queued": queued,
            "oldest_queued_seconds": oldest,
        }

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
