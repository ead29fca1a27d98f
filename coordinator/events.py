"""The room actors' event stream: a small in-process publish/subscribe bus.

Contract: ``publish`` never blocks and never raises into the actor that calls it. Listeners
(``listen``) are synchronous callbacks run inline, for cheap counters; a failing one is logged
and kept. Subscribers (``subscribe``) get a bounded queue each: one that falls ``maxsize``
events behind is dropped (its iteration ends) rather than slowing the actors or the other
subscribers. Events are plain JSON-ready dicts with at least ``type``, ``room`` and ``at``
(unix seconds); :func:`room_events` derives them from one applied command.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from coordinator.room import ApplyWebhook, Command, RoomState

log = logging.getLogger(__name__)

Event = dict[str, Any]
Listener = Callable[[Event], None]
SUBSCRIBER_QUEUE = 512
SUMMARY = "room_summary"  # a room's summary changed without anything worth a log line


class Subscription:
    """One subscriber's bounded queue; iterate it, ``close()`` it (or leave ``with``)."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.dropped = False
        self.closed = False

    def _offer(self, event: Event) -> bool:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def _end(self) -> None:
        while not self._queue.empty():  # make room for the end marker
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def get(self) -> Event | None:
        """The next event; None when the subscription has ended."""
        if self.closed and self._queue.empty():
            return None
        event = await self._queue.get()
        if event is None:
            self.closed = True
        return event

    def poll(self) -> Event | None:
        """The next event if one is queued, else None (without waiting)."""
        if self._queue.empty():
            return None
        event = self._queue.get_nowait()
        if event is None:
            self.closed = True  # the next ``get`` answers None
        return event

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
        self._bus._unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while (event := await self.get()) is not None:
            yield event


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._subscribers: set[Subscription] = set()
        self.published = 0
        self.dropped_subscribers = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def subscribe(self, maxsize: int = SUBSCRIBER_QUEUE) -> Subscription:
        subscription = Subscription(self, maxsize)
        self._subscribers.add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def close(self) -> None:
        """End every subscription (the server is shutting down)."""
        for subscription in list(self._subscribers):
            self._subscribers.discard(subscription)
            subscription._end()

    def publish(self, event: Event) -> None:
        self.published += 1
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event.get("type"))
        slow = [s for s in self._subscribers if not s._offer(event)]
        for subscription in slow:
            self._subscribers.discard(subscription)
            subscription.dropped = True
            subscription._end()
            self.dropped_subscribers += 1
            log.warning("event subscriber dropped: %d events behind", subscription._queue.maxsize)


def room_summary(state: RoomState, now: float) -> dict[str, Any]:
    """What a room list shows of a room: counts, lobby expiries and the recording."""
    lobby = [e for e in state.lobby.values() if e.expires_at > now]
    recording = state.recording
    return {
        "participants": len(state.participants),
        "lobby_waiting": [
            round(e.expires_at - now, 2) for e in lobby if e.status == "waiting"
        ],  # seconds each waiting entry has left
        "recording": None
        if recording is None
        else {
            "status": recording.status,
            "mode": recording.mode,
            "egress_status": recording.egress_status,
        },
    }


def room_events(
    room: str,
    command: Command,
    before: RoomState,
    after: RoomState,
    reply: Any,
    now: float,
) -> list[Event]:
    """The events one applied command produced (empty when it changed nothing visible)."""
    at = time.time()
    events: list[Event] = []
    if isinstance(command, ApplyWebhook):
        webhook = command.event
        events.append(
            {
                "type": "webhook",
                "room": room,
                "at": at,
                "event": webhook.event,
                "result": reply if isinstance(reply, str) else "applied",
                "lag": round(max(0.0, at - webhook.created_at), 3) if webhook.created_at else None,
            }
        )
    if before.participants is not after.participants:
        events.extend(_presence(room, at, command, before, after))
    if before.lobby is not after.lobby:
        waiting_before = {p for p, e in before.lobby.items() if e.status == "waiting"}
        waiting_after = {p for p, e in after.lobby.items() if e.status == "waiting"}
        if waiting_before != waiting_after or len(before.lobby) != len(after.lobby):
            events.append({"type": "lobby", "room": room, "at": at, "waiting": len(waiting_after)})
        else:  # a guest polled again: only the expiries moved (kept out of the event logs)
            events.append({"type": SUMMARY, "room": room, "at": at})
    if _recording_key(before) != _recording_key(after):
        recording = after.recording
        events.append(
            {
                "type": "recording",
                "room": room,
                "at": at,
                "status": recording.status if recording else None,
                "egress_status": recording.egress_status if recording else None,
            }
        )
    if events:
        summary = room_summary(after, now)
        for event in events:
            event["summary"] = summary
    return events


def _presence(
    room: str, at: float, command: Command, before: RoomState, after: RoomState
) -> list[Event]:
    """Who joined and who left; a webhook about one participant compares only that one
    (the hot path: no diff of the whole room per event)."""
    if isinstance(command, ApplyWebhook) and command.event.participant is not None:
        who = command.event.participant.identity
        now_in, was_in = who in after.participants, who in before.participants
        joined = [who] if now_in and not was_in else []
        left = [who] if was_in and not now_in else []
    else:
        joined = list(after.participants.keys() - before.participants.keys())
        left = list(before.participants.keys() - after.participants.keys())
    events: list[Event] = [
        {
            "type": "participant_joined",
            "room": room,
            "at": at,
            "identity": identity,
            "name": after.participants[identity].name,
        }
        for identity in joined
    ]
    events.extend(
        {"type": "participant_left", "room": room, "at": at, "identity": identity}
        for identity in left
    )
    return events


def _recording_key(state: RoomState) -> tuple[str, str | None] | None:
    recording = state.recording
    return None if recording is None else (recording.status, recording.egress_status)
