"""``decide`` tables: no loop, no I/O (webhook dedup and reordering, lobby, egress order)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace

from coordinator.media import Egress, Participant, Track, WebhookEvent
from coordinator.room import (
    ApplyWebhook,
    CompleteRecording,
    DecideEntry,
    ListWaiting,
    MergeMetadata,
    ParticipantRemoved,
    PersistRecordingStatus,
    RecordingState,
    Recover,
    RequestEntry,
    RoomState,
    SendData,
    Snapshot,
    decide,
    is_idle,
)

ROOM = "6a0c2c4e-0b0e-4a53-9d5a-2d1f3b1c7e11"
_ids = iter(range(10**6))


def event(
    kind: str,
    *,
    created_at: int = 100,
    participant: Participant | None = None,
    track: Track | None = None,
    egress: Egress | None = None,
) -> ApplyWebhook:
    return ApplyWebhook(
        WebhookEvent(
            id=f"EV_{next(_ids)}",
            event=kind,
            created_at=created_at,
            room_name=ROOM,
            participant=participant,
            track=track,
            egress=egress,
        )
    )


def ada(sid: str = "PA_1", joined_at: int = 10) -> Participant:
    return Participant(identity="ada", sid=sid, name="Ada", joined_at=joined_at)


def test_join_then_leave() -> None:
    state = decide(RoomState(ROOM), event("participant_joined", participant=ada()), 0).state
    assert list(state.participants) == ["ada"]
    state = decide(state, event("participant_left", participant=ada()), 1).state
    assert state.participants == {}


def test_duplicate_event_is_applied_once() -> None:
    joined = event("participant_joined", participant=ada())
    state = decide(RoomState(ROOM), joined, 0).state
    state = decide(state, event("participant_left", participant=ada()), 1).state
    again = decide(state, joined, 2)
    assert again.reply == "duplicate"
    assert again.state.participants == {}


def test_stale_leave_of_an_older_session_keeps_the_newer_join() -> None:
    state = decide(RoomState(ROOM), event("participant_joined", participant=ada("PA_old")), 0).state
    state = decide(state, event("participant_joined", participant=ada("PA_new", 20)), 1).state
    state = decide(state, event("participant_left", participant=ada("PA_old")), 2).state
    assert state.participants["ada"].sid == "PA_new"


def test_leave_delivered_before_its_join_wins() -> None:
    state = decide(RoomState(ROOM), event("participant_left", participant=ada()), 0).state
    state = decide(state, event("participant_joined", participant=ada()), 1).state
    assert state.participants == {}


def test_track_before_join_is_kept_and_merged() -> None:
    track = Track(sid="TR_1", kind="AUDIO", source="MICROPHONE")
    partial = Participant(identity="ada", sid="PA_1")
    state = decide(
        RoomState(ROOM), event("track_published", participant=partial, track=track), 0
    ).state
    state = decide(state, event("participant_joined", participant=ada()), 1).state
    assert state.participants["ada"].name == "Ada"
    assert [t.sid for t in state.participants["ada"].tracks] == ["TR_1"]
    state = decide(state, event("track_unpublished", participant=partial, track=track), 2).state
    assert state.participants["ada"].tracks == ()


def test_room_finished_clears_participants_and_lobby() -> None:
    state = decide(RoomState(ROOM), event("participant_joined", participant=ada()), 0).state
    state = decide(state, RequestEntry("p1", "Bob"), 0).state
    state = decide(state, event("room_finished"), 1).state
    assert state.participants == {} and state.lobby == {}


def test_lobby_lifecycle() -> None:
    first = decide(RoomState(ROOM), RequestEntry("p1", "Bob"), 0.0)
    assert first.reply.status == "waiting"
    assert first.effects == (SendData({"type": "participantWaiting"}),)
    assert first.reply.color.startswith("hsl(")
    polled = decide(first.state, RequestEntry("p1", "Bob"), 2.0)
    assert polled.effects == ()  # no new notification while waiting
    assert decide(polled.state, ListWaiting(), 4.9).reply == [polled.reply.as_json()]
    assert decide(polled.state, ListWaiting(), 5.1).reply == []  # 3 s after the last poll
    accepted = decide(polled.state, DecideEntry("p1", True), 3.0)
    assert accepted.reply.status == "accepted"
    later = decide(accepted.state, RequestEntry("p1", "Bob"), 3.0 + 6 * 3600 - 1)
    assert later.reply.status == "accepted"
    denied = decide(first.state, DecideEntry("p1", False), 1.0)
    assert decide(denied.state, RequestEntry("p1", "Bob"), 2.0).reply.status == "denied"
    requeued = decide(denied.state, RequestEntry("p1", "Bob"), 7.0)
    assert requeued.reply.status == "waiting"
    assert decide(first.state, DecideEntry("unknown", True), 1.0).reply is None


def test_removal_clears_lobby_entries_by_identity() -> None:
    state = decide(RoomState(ROOM), RequestEntry("p-anon", "Anon"), 0).state
    state = decide(state, RequestEntry("p-auth", "Auth", identity="sub-auth"), 0).state
    state = decide(state, ParticipantRemoved("p-anon"), 1).state
    state = decide(state, ParticipantRemoved("sub-auth"), 1).state
    assert state.lobby == {}


def recording_state(mode: str = "transcript") -> RoomState:
    recording = RecordingState(id=uuid.uuid4(), mode=mode, status="active", egress_id="EG_1")
    return RoomState(ROOM, recording=recording)


def test_egress_updates_map_to_metadata_and_never_go_back() -> None:
    state = recording_state()
    active = Egress("EG_1", ROOM, "EGRESS_ACTIVE")
    ending = Egress("EG_1", ROOM, "EGRESS_ENDING")
    decision = decide(state, event("egress_updated", egress=ending), 0)
    assert decision.effects == (MergeMetadata({"recording_status": "saving"}),)
    stale = decide(decision.state, event("egress_updated", egress=active), 1)
    assert stale.reply == "stale" and stale.effects == ()


def test_limit_reached_stops_and_notifies() -> None:
    state = recording_state(mode="screen_recording")
    assert state.recording is not None
    egress = Egress("EG_1", ROOM, "EGRESS_LIMIT_REACHED")
    decision = decide(state, event("egress_ended", egress=egress), 0)
    assert decision.effects == (
        MergeMetadata({}, remove=("recording_mode", "recording_status")),
        PersistRecordingStatus(state.recording.id, "stopped", ("active",)),
        SendData({"type": "screenRecordingLimitReached"}, required=True),
        CompleteRecording(state.recording.id, egress),
    )
    assert decision.state.recording is None


def test_recover_and_idleness() -> None:
    present = ada()
    gone = Participant(identity="bob", sid="PA_2", state="DISCONNECTED")
    state = decide(RoomState(ROOM), Recover((present, gone), None), 10).state
    assert list(state.participants) == ["ada"]
    assert not is_idle(state, 1000, 60)
    empty = decide(state, event("participant_left", participant=present), 20).state
    assert not is_idle(empty, 30, 60) and is_idle(empty, 81, 60)


def test_snapshot_shape() -> None:
    state = decide(RoomState(ROOM), event("participant_joined", participant=ada()), 0).state
    snap = decide(state, Snapshot(), 1).reply
    assert snap["participants"][0] == {
        "identity": "ada",
        "name": "Ada",
        "sid": "PA_1",
        "joined_at": 10,
        "attributes": {},
        "tracks": [],
    }
    assert snap["lobby"] == [] and snap["recording"] is None


def test_lobby_notifications_are_coalesced_to_one_per_second() -> None:
    """A flood of newcomers sends at most one participantWaiting per room per second (issue 9)."""
    state = RoomState(ROOM)
    sent = []
    for index in range(600):  # 600 newcomers in 2.4 s
        now = index * 0.004
        decision = decide(state, RequestEntry(f"p{index}", "G"), now)
        state = decision.state
        if decision.effects:
            assert decision.effects == (SendData({"type": "participantWaiting"}),)
            sent.append(now)
    assert len(sent) == 3 and sent[0] == 0.0
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(sent))


def test_a_coalesced_newcomer_is_announced_at_the_next_poll() -> None:
    state = decide(RoomState(ROOM), RequestEntry("p1", "A"), 0.0).state
    second = decide(state, RequestEntry("p2", "B"), 0.5)
    assert second.effects == ()  # within the second: held back
    early = decide(second.state, RequestEntry("p1", "A"), 0.9)
    assert early.effects == ()
    due = decide(early.state, RequestEntry("p2", "B"), 1.5)  # any poll past the interval
    assert due.effects == (SendData({"type": "participantWaiting"}),)
    assert decide(due.state, RequestEntry("p1", "A"), 3.0).effects == ()  # nothing pending


def session(identity: str, sid: str, joined_at_ms: int) -> Participant:
    return Participant(identity=identity, sid=sid, joined_at_ms=joined_at_ms)


def test_livekit_listing_is_authoritative_for_sessions_that_joined_before_it() -> None:
    from coordinator.room import ParticipantsListed

    listed_at = 5_000
    # Applied from webhooks while the list was asked for: a replayed old join, a new session.
    state = decide(
        RoomState(ROOM), event("participant_joined", participant=session("old", "PA_o", 1_000)), 0
    ).state
    state = decide(
        state, event("participant_joined", participant=session("new", "PA_n", 6_000)), 0
    ).state
    state = decide(
        state, event("participant_left", participant=session("bob", "PA_b", 2_000)), 0
    ).state
    listing = (session("bob", "PA_b", 2_000), session("cy", "PA_c", 3_000))
    state = decide(state, ParticipantsListed(listing, listed_at), 1).state
    # old: joined before the list, absent from it (left); bob: listed but his leave came later.
    assert sorted(state.participants) == ["cy", "new"]
    replay = decide(
        state, event("participant_joined", participant=session("old", "PA_o", 1_000)), 2
    )
    assert replay.reply == "stale" and "old" not in replay.state.participants
    track = Track(sid="TR_1", kind="AUDIO", source="MICROPHONE")
    stale_track = decide(
        state, event("track_published", participant=session("old", "PA_o", 1_000), track=track), 2
    )
    assert stale_track.reply == "stale"
    fresh = decide(
        state, event("participant_joined", participant=session("old", "PA_o2", 7_000)), 2
    )
    assert fresh.reply == "applied" and fresh.state.participants["old"].sid == "PA_o2"
    listed = decide(state, event("participant_joined", participant=session("cy", "PA_c", 3_000)), 2)
    assert listed.reply == "applied"  # a session the list holds is never stale


def test_one_start_at_a_time_and_untracked_egresses_are_swept() -> None:
    from coordinator.room import RecordingStep, StartRecording, StartSettled

    start = StartRecording("transcript", {}, uuid.uuid4())
    first = decide(RoomState(ROOM), start, 0)
    assert first.effects[0] == RecordingStep(
        "begin", {"mode": "transcript", "options": {}, "user_id": start.user_id}
    )
    assert decide(first.state, start, 1).reply == "conflict"
    settled = decide(first.state, StartSettled(unsure=True, recheck_after=2.0), 2)
    assert not settled.state.starting
    assert [type(e).__name__ for e in settled.effects] == ["RecordingStep", "Later"]
    assert decide(settled.state, start, 3).effects  # free again
    live = Egress(egress_id="EG_x", room_name=ROOM, status="EGRESS_ACTIVE")
    unknown = decide(RoomState(ROOM), event("egress_started", egress=live), 4)
    assert unknown.reply == "unknown_recording"
    assert unknown.effects == (RecordingStep("reconcile", {"egresses": (live,)}, detached=True),)
    ended = replace(live, status="EGRESS_COMPLETE")
    assert decide(RoomState(ROOM), event("egress_ended", egress=ended), 5).effects == ()
