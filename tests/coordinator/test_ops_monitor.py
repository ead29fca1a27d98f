"""The actors' events (``room_events``) and the dashboard's counters (``OpsMonitor``)."""

from __future__ import annotations

from coordinator.events import Event, EventBus, room_events
from coordinator.media import Participant, WebhookEvent
from coordinator.ops import OpsMonitor
from coordinator.room import ApplyWebhook, Command, RequestEntry, RoomState, decide


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def joined(identity: str) -> ApplyWebhook:
    participant = Participant(identity=identity, sid=f"PA_{identity}", joined_at=990)
    return ApplyWebhook(
        WebhookEvent(
            id=f"EV_{identity}", event="participant_joined", created_at=999, room_name="r",
            participant=participant,
        )
    )  # fmt: skip


def apply(state: RoomState, command: Command, now: float) -> tuple[RoomState, list[Event]]:
    decision = decide(state, command, now)
    return decision.state, room_events("r", command, state, decision.state, decision.reply, now)


def test_events_of_a_join_and_a_lobby_knock() -> None:
    state = RoomState(name="r")
    state, events = apply(state, joined("ada"), 10.0)
    assert [e["type"] for e in events] == ["webhook", "participant_joined"]
    assert events[0]["result"] == "applied" and events[1]["summary"]["participants"] == 1
    state, events = apply(state, joined("ada"), 10.5)  # the same event id again
    assert [(e["type"], e["result"]) for e in events] == [("webhook", "duplicate")]
    state, events = apply(state, RequestEntry("g1", "Guest"), 11.0)
    assert [e["type"] for e in events] == ["lobby"]
    assert events[0]["summary"]["lobby_waiting"] == [3.0]
    state, events = apply(state, RequestEntry("g1", "Guest"), 12.0)  # polls again
    assert [e["type"] for e in events] == ["room_summary"]


def test_monitor_counts_and_lets_lobby_entries_expire() -> None:
    wall, mono = Clock(), Clock()
    monitor = OpsMonitor(clock=wall, monotonic=mono)
    bus = EventBus()
    bus.listen(monitor.on_event)
    state = RoomState(name="r")
    commands: list[Command] = [joined("ada"), RequestEntry("g1", "Guest")]
    for command in commands:
        decision = decide(state, command, mono.now)
        for event in room_events("r", command, state, decision.state, decision.reply, mono.now):
            bus.publish(event)
        state = decision.state
    [room] = monitor.room_list()
    assert (room["participants"], room["lobby"]) == (1, 1)
    mono.now += 3.5  # the guest stopped polling
    wall.now += 3.5
    assert monitor.room_list()[0]["lobby"] == 0
    assert monitor.totals()["webhooks"] == 1
    series = monitor.series(10)
    assert sum(series["webhooks"]) == 1 and series["participants"][-1] == 1
    monitor.on_livekit_call("ListParticipants", 0.02, None)
    monitor.on_livekit_call("ListParticipants", 0.5, "LiveKitUnavailable")
    [calls] = monitor.livekit()
    assert (calls["calls"], calls["errors"], calls["last_error"]) == (2, 1, "LiveKitUnavailable")
    monitor.forget_rooms([])
    assert monitor.room_list() == []


def test_event_logs_read_back_what_was_published_in_a_compact_form() -> None:
    """30 events of each of 300 live rooms: each kept as a tuple behind shared keys (3.7 MB
    as dicts, 1.6 now), read back as the dicts published (without their summary)."""
    import tracemalloc

    from coordinator.ops import ROOM_EVENTS

    wall = Clock()
    monitor = OpsMonitor(clock=wall, monotonic=Clock())
    summary = {"participants": 1, "lobby_waiting": [], "recording": None}
    published: dict[str, list[Event]] = {}
    rooms = [f"room-{r:04d}" for r in range(300)]  # the actors' names
    tracemalloc.start()
    try:
        for n in range(ROOM_EVENTS + 2):
            for room in rooms:
                # As parsed from each webhook's JSON: a new string per event.
                name = "".join(["track_", "published"])
                event = {"type": "webhook", "room": room, "at": wall.now + n, "event": name}
                event |= {"result": "applied", "lag": 0.001 * n, "summary": summary}
                monitor.on_event(event)
                if room in ("room-0007", "room-0299"):
                    published.setdefault(room, []).append(event)
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept < 2_500_000
    expected = [
        {k: v for k, v in e.items() if k != "summary"} for e in published["room-0007"][-30:]
    ]
    assert monitor.room_events("room-0007") == expected
    assert monitor.recent_events(1) == [
        {k: v for k, v in published["room-0299"][-1].items() if k != "summary"}
    ]
    assert monitor.room_list()[0]["last_event_at"] == wall.now + ROOM_EVENTS + 1
    monitor.on_event({"type": "lobby", "room": "room-0007", "at": 5.0, "waiting": 2})
    assert monitor.room_events("room-0007")[-1] == {
        "type": "lobby", "room": "room-0007", "at": 5.0, "waiting": 2
    }  # fmt: skip
