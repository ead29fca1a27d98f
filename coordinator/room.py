"""The room state machine: ``decide(state, command, now) -> Decision``, pure and synchronous.

``decide`` never awaits, never reads the clock and never performs I/O: it returns the new state,
the effects the shell must run (in order) and the reply for the caller. The shell
(``coordinator.actor``) commits the state before running any effect.

Webhook rules (DESIGN §3, guarantee 4):
- events are deduplicated by ``id``;
- a ``participant_left`` only removes the participant session (``sid``) it names, so a stale
  leave never removes a newer join; a join for a session already seen leaving is ignored;
- track events arriving before their participant's join create the participant entry;
- egress statuses only move forward in the lifecycle order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, assert_never

from coordinator.media import Egress, Participant, Track, WebhookEvent, egress_rank
from coordinator.tokens import participant_color

LOBBY_WAITING_SECONDS = 3.0
LOBBY_ACCEPTED_SECONDS = 21600.0
LOBBY_DENIED_SECONDS = 5.0
SEEN_EVENTS_KEPT = 64
DEPARTED_KEPT = 64
IN_FLIGHT = frozenset({"initiated", "active"})
METADATA_STATUS = {
    "EGRESS_ACTIVE": "started",
    "EGRESS_ENDING": "saving",
    "EGRESS_ABORTED": "aborted",
}
LIMIT_MESSAGES = {
    "screen_recording": "screenRecordingLimitReached",
    "transcript": "transcriptionLimitReached",
}
LOBBY_NOTIFICATION = {"type": "participantWaiting"}
LOBBY_NOTIFICATION_INTERVAL = 1.0  # at most one participantWaiting per room per second


# -- state -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LobbyEntry:
    participant_id: str
    username: str
    color: str
    status: str  # waiting, accepted, denied
    expires_at: float
    identity: str = ""  # the LiveKit identity the person will join as (sub or participant id)

    def as_json(self) -> dict[str, str]:
        return {
            "status": self.status,
            "username": self.username,
            "id": self.participant_id,
            "color": self.color,
        }


@dataclass(frozen=True, slots=True)
class RecordingState:
    id: uuid.UUID
    mode: str
    status: str
    egress_id: str | None = None
    egress_status: str | None = None


@dataclass(frozen=True, slots=True)
class RoomState:
    name: str
    participants: Mapping[str, Participant] = field(default_factory=dict)
    lobby: Mapping[str, LobbyEntry] = field(default_factory=dict)
    recording: RecordingState | None = None
    seen_events: tuple[str, ...] = ()
    departed: Mapping[str, int] = field(default_factory=dict)  # session sid → left at
    last_activity: float = 0.0
    # participantWaiting coalescing: when the last went out, and whether a newcomer since then
    # still awaits one (sent at the next request-entry past the interval: guests poll each second).
    lobby_notified_at: float = float("-inf")
    lobby_notification_pending: bool = False
    commands: int = 0
    webhooks: int = 0
    starting: bool = False  # a recording start of this actor is under way
    listed_at_ms: int = 0  # when LiveKit's participant list last replaced ours (unix ms)
    listed_sids: frozenset[str] = frozenset()  # the sessions that list held


def live_lobby(state: RoomState, now: float) -> dict[str, LobbyEntry]:
    return {pid: e for pid, e in state.lobby.items() if e.expires_at > now}


def is_idle(state: RoomState, now: float, idle_after: float) -> bool:
    return (
        not state.participants
        and state.recording is None
        and not live_lobby(state, now)
        and now - state.last_activity >= idle_after
    )


# -- commands ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recover:
    """Activation: what the database and LiveKit say the room holds."""

    participants: tuple[Participant, ...]
    recording: RecordingState | None


@dataclass(frozen=True, slots=True)
class RestoreLobby:
    """Lobby entries kept outside the actor (the Ray engine's database rows), given back to a
    re-activated room; entries the room already holds win."""

    entries: tuple[LobbyEntry, ...]


@dataclass(frozen=True, slots=True)
class ParticipantsListed:
    """LiveKit's participant list, asked for at ``listed_at_ms`` (unix ms, the shell's clock).

    It is authoritative for presence: a session it lacks that joined before it was asked for
    has left (a webhook replayed later cannot bring it back)."""

    participants: tuple[Participant, ...]
    listed_at_ms: int


@dataclass(frozen=True, slots=True)
class ApplyWebhook:
    """A verified webhook; for egress events the shell attaches the recording it concerns."""

    event: WebhookEvent
    recording: RecordingState | None = None


@dataclass(frozen=True, slots=True)
class RecordingLoaded:
    """The recording an egress event refers to, read from the database by the shell."""

    recording: RecordingState | None


@dataclass(frozen=True, slots=True)
class RequestEntry:
    participant_id: str
    username: str
    identity: str = ""


@dataclass(frozen=True, slots=True)
class DecideEntry:
    participant_id: str
    allow: bool


@dataclass(frozen=True, slots=True)
class ListWaiting:
    pass


@dataclass(frozen=True, slots=True)
class MuteParticipant:
    identity: str
    track_sid: str


@dataclass(frozen=True, slots=True)
class RemoveParticipant:
    identity: str


@dataclass(frozen=True, slots=True)
class ParticipantRemoved:
    identity: str


@dataclass(frozen=True, slots=True)
class UpdateParticipant:
    identity: str
    metadata: str | None = None
    attributes: Mapping[str, str] | None = None
    name: str | None = None
    permission: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CheckPresence:
    identity: str


@dataclass(frozen=True, slots=True)
class SyncRoomSettings:
    """A room's configuration or access level changed: merge it into the LiveKit metadata."""

    changes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TrackRecording:
    """The recording in flight changed outside the actor's webhooks (started/stopped)."""

    recording: RecordingState | None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    pass


@dataclass(frozen=True, slots=True)
class StartRecording:
    mode: str
    options: Mapping[str, Any]
    user_id: uuid.UUID
    # Set by engines that may run a command twice (Ray): the recording's id, derived from the
    # command's id, so the database sees a re-run as the same recording.
    recording_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class StartSettled:
    """The start step of this actor ended; ``unsure``: LiveKit may still create its egress
    (the call timed out), so the room's egresses are swept now and after ``recheck_after``."""

    unsure: bool = False
    recheck_after: float = 0.0


@dataclass(frozen=True, slots=True)
class StopRecording:
    pass


@dataclass(frozen=True, slots=True)
class FinishRecording:
    """The recording's file is saved (storage hook): complete it."""

    recording_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ReconcileRecording:
    """Compare the recording in flight with LiveKit's egress and repair drift; stop or adopt
    the room's egresses no recording tracks (``egresses``: the ones to look at, None = ask)."""

    egresses: tuple[Egress, ...] | None = None
    after: float = 0.0  # > 0: look again that many seconds from now


Command = (
    Recover
    | RestoreLobby
    | ParticipantsListed
    | ApplyWebhook
    | RecordingLoaded
    | RequestEntry
    | DecideEntry
    | ListWaiting
    | MuteParticipant
    | RemoveParticipant
    | ParticipantRemoved
    | UpdateParticipant
    | CheckPresence
    | SyncRoomSettings
    | TrackRecording
    | Snapshot
    | StartRecording
    | StartSettled
    | StopRecording
    | FinishRecording
    | ReconcileRecording
)


# -- effects -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendData:
    payload: Mapping[str, Any]
    required: bool = False  # False: failures are logged, not raised


@dataclass(frozen=True, slots=True)
class MergeMetadata:
    changes: Mapping[str, Any]
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CallLiveKit:
    """A LiveKit call whose failure is the caller's error; ``then`` runs after success."""

    method: str
    arguments: Mapping[str, Any]
    then: Command | None = None


@dataclass(frozen=True, slots=True)
class PersistRecordingStatus:
    recording_id: uuid.UUID
    status: str
    only_from: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompleteRecording:
    """The egress ended with a file: hand the recording to the completion step."""

    recording_id: uuid.UUID
    egress: Egress


@dataclass(frozen=True, slots=True)
class RecordingStep:
    """A recording lifecycle step run by the recordings port (``RecordingPort.<action>``).

    It returns a ``StepResult``: the caller's reply and an optional follow-up command.
    """

    action: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    detached: bool = False  # True: the command's reply does not wait for it


@dataclass(frozen=True, slots=True)
class Later:
    """Apply ``command`` to the room after ``seconds`` (a timer of the shell)."""

    seconds: float
    command: Command


@dataclass(frozen=True, slots=True)
class StepResult:
    reply: Any = None
    then: Command | None = None


Effect = (
    SendData
    | MergeMetadata
    | CallLiveKit
    | PersistRecordingStatus
    | CompleteRecording
    | RecordingStep
    | Later
)

RECORDING_CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class Decision:
    state: RoomState
    effects: tuple[Effect, ...] = ()
    reply: Any = None


# -- decide ------------------------------------------------------------------------------


def decide(state: RoomState, command: Command, now: float) -> Decision:
    """The room's next state, the effects to run, and the caller's reply."""
    if isinstance(command, ApplyWebhook):  # the hot path: its counters in its own replace
        return _webhook(state, command.event, command.recording, now)
    state = replace(state, commands=state.commands + 1, last_activity=now)
    match command:
        case Recover():
            participants = {p.identity: p for p in command.participants if p.present}
            recovered = replace(state, participants=participants, recording=command.recording)
            if command.recording is not None and command.recording.status in IN_FLIGHT:
                # Its egress may have moved (or, for ``initiated``, been created) meanwhile.
                return Decision(recovered, (RecordingStep("reconcile", detached=True),))
            return Decision(recovered)
        case RestoreLobby():
            lobby = {e.participant_id: e for e in command.entries if e.expires_at > now}
            lobby.update(live_lobby(state, now))
            return Decision(replace(state, lobby=lobby))
        case ParticipantsListed():
            return Decision(_listed(state, command))
        case ApplyWebhook():  # decided above
            return _webhook(state, command.event, command.recording, now)
        case RecordingLoaded():
            if command.recording is not None and command.recording.status in IN_FLIGHT:
                return Decision(replace(state, recording=command.recording))
            return Decision(state)
        case RequestEntry():
            return _request_entry(state, command, now)
        case DecideEntry():
            return _decide_entry(state, command, now)
        case ListWaiting():
            waiting = [e for e in live_lobby(state, now).values() if e.status == "waiting"]
            return Decision(state, reply=[e.as_json() for e in waiting])
        case MuteParticipant():
            mute = {"identity": command.identity, "track_sid": command.track_sid}
            return Decision(state, (CallLiveKit("mute_track", mute),))
        case RemoveParticipant():
            effect = CallLiveKit(
                "remove_participant",
                {"identity": command.identity},
                then=ParticipantRemoved(command.identity),
            )
            return Decision(state, (effect,))
        case ParticipantRemoved():
            participants = dict(state.participants)
            participants.pop(command.identity, None)
            lobby = {
                pid: entry
                for pid, entry in state.lobby.items()
                if pid != command.identity and entry.identity != command.identity
            }
            return Decision(replace(state, participants=participants, lobby=lobby))
        case UpdateParticipant():
            changes: dict[str, Any] = {"identity": command.identity}
            for name in ("metadata", "attributes", "name", "permission"):
                value = getattr(command, name)
                if value is not None:
                    changes[name] = dict(value) if isinstance(value, Mapping) else value
            return Decision(state, (CallLiveKit("update_participant", changes),))
        case CheckPresence():
            who = {"identity": command.identity}
            return Decision(state, (CallLiveKit("get_participant", who),))
        case SyncRoomSettings():
            return Decision(state, (MergeMetadata(dict(command.changes)),))
        case TrackRecording():
            effects: tuple[Effect, ...] = ()
            if command.metadata:
                effects = (MergeMetadata(dict(command.metadata)),)
            recording = command.recording
            if recording is not None and recording.status not in IN_FLIGHT:
                recording = None
            return Decision(replace(state, recording=recording), effects)
        case Snapshot():
            return Decision(state, reply=snapshot(state, now))
        case StartRecording():
            # A recovered ``initiated`` recording is being resolved by a reconcile step that
            # runs first; the database's partial unique index decides after it.
            replay = state.recording is not None and state.recording.id == command.recording_id
            if state.starting or (
                state.recording is not None and state.recording.status == "active" and not replay
            ):
                return Decision(state, reply=RECORDING_CONFLICT)
            state = replace(state, starting=True)
            arguments: dict[str, Any] = {
                "mode": command.mode,
                "options": dict(command.options),
                "user_id": command.user_id,
            }
            if command.recording_id is not None:  # a re-run finds its recording (begin)
                arguments["recording_id"] = command.recording_id
            return Decision(state, (RecordingStep("begin", arguments),))
        case StartSettled():
            state = replace(state, starting=False)
            if not command.unsure:
                return Decision(state)
            sweep = RecordingStep("reconcile", detached=True)
            return Decision(state, (sweep, Later(command.recheck_after, ReconcileRecording())))
        case StopRecording():
            # The recording in flight as this actor knows it: the stop needs no re-read.
            known = {"recording": state.recording} if state.recording is not None else {}
            return Decision(state, (RecordingStep("end", known),))
        case FinishRecording():
            return Decision(
                state, (RecordingStep("finish", {"recording_id": command.recording_id}),)
            )
        case ReconcileRecording() if command.after > 0:
            return Decision(state, (Later(command.after, replace(command, after=0.0)),))
        case ReconcileRecording():
            arguments = {} if command.egresses is None else {"egresses": command.egresses}
            return Decision(state, (RecordingStep("reconcile", arguments),))
        case _:
            assert_never(command)


def snapshot(state: RoomState, now: float) -> dict[str, Any]:
    recording = state.recording
    return {
        "room": state.name,
        "participants": [
            {
                "identity": p.identity,
                "name": p.name,
                "sid": p.sid,
                "joined_at": p.joined_at,
                "attributes": dict(p.attributes),
                "tracks": [t.as_json() for t in p.tracks],
            }
            for p in sorted(state.participants.values(), key=lambda p: (p.joined_at, p.identity))
        ],
        "lobby": [
            e.as_json() | {"expires_in": round(e.expires_at - now, 1)}
            for e in live_lobby(state, now).values()
        ],
        "recording": None
        if recording is None
        else {
            "id": str(recording.id),
            "mode": recording.mode,
            "status": recording.status,
            "egress_id": recording.egress_id,
            "egress_status": recording.egress_status,
        },
        "counters": {"commands": state.commands, "webhooks": state.webhooks},
    }


# -- lobby -------------------------------------------------------------------------------


def _request_entry(state: RoomState, command: RequestEntry, now: float) -> Decision:
    lobby = live_lobby(state, now)
    entry = lobby.get(command.participant_id)
    pending = state.lobby_notification_pending
    if entry is None:
        entry = LobbyEntry(
            participant_id=command.participant_id,
            username=command.username,
            color=participant_color(command.participant_id),
            status="waiting",
            expires_at=now + LOBBY_WAITING_SECONDS,
            identity=command.identity or command.participant_id,
        )
        pending = True
    elif entry.status == "waiting":
        entry = replace(entry, username=command.username, expires_at=now + LOBBY_WAITING_SECONDS)
    lobby[command.participant_id] = entry
    pending = pending and any(e.status == "waiting" for e in lobby.values())
    state = replace(state, lobby=lobby, lobby_notification_pending=pending)
    effects: tuple[Effect, ...] = ()
    if pending and now - state.lobby_notified_at >= LOBBY_NOTIFICATION_INTERVAL:
        effects = (SendData(LOBBY_NOTIFICATION),)
        state = replace(state, lobby_notified_at=now, lobby_notification_pending=False)
    return Decision(state, effects, reply=entry)


def _decide_entry(state: RoomState, command: DecideEntry, now: float) -> Decision:
    lobby = live_lobby(state, now)
    entry = lobby.get(command.participant_id)
    if entry is None:
        return Decision(replace(state, lobby=lobby), reply=None)
    if command.allow:
        entry = replace(entry, status="accepted", expires_at=now + LOBBY_ACCEPTED_SECONDS)
    else:
        entry = replace(entry, status="denied", expires_at=now + LOBBY_DENIED_SECONDS)
    lobby[command.participant_id] = entry
    return Decision(replace(state, lobby=lobby), reply=entry)


# -- webhooks ----------------------------------------------------------------------------


def _webhook(
    state: RoomState, event: WebhookEvent, recording: RecordingState | None, now: float
) -> Decision:
    commands = state.commands + 1
    if event.id and event.id in state.seen_events:
        return Decision(replace(state, commands=commands, last_activity=now), reply="duplicate")
    seen = (*state.seen_events[-(SEEN_EVENTS_KEPT - 1) :], event.id) if event.id else ()
    state = replace(
        state,
        commands=commands,
        last_activity=now,
        seen_events=seen or state.seen_events,
        webhooks=state.webhooks + 1,
    )
    kind = event.event
    if kind == "participant_joined" and event.participant is not None:
        if _before_listing(state, event.participant):
            return Decision(state, reply="stale")
        return Decision(_joined(state, event.participant), reply="applied")
    if kind == "participant_left" and event.participant is not None:
        return Decision(_left(state, event.participant, event.created_at), reply="applied")
    if kind in ("track_published", "track_unpublished") and event.participant and event.track:
        published = kind == "track_published"
        if published and _before_listing(state, event.participant):
            return Decision(state, reply="stale")
        return Decision(_track(state, event.participant, event.track, published), reply="applied")
    if kind == "room_finished":
        return Decision(replace(state, participants={}, lobby={}), reply="applied")
    if kind in ("egress_started", "egress_updated", "egress_ended") and event.egress:
        return _egress_event(state, kind, event.egress, recording)
    return Decision(state, reply="ignored")


def _joined_at_ms(participant: Participant) -> int:
    if participant.joined_at_ms:
        return participant.joined_at_ms
    return (participant.joined_at + 1) * 1000 if participant.joined_at else 0  # seconds only


def _before_listing(state: RoomState, who: Participant) -> bool:
    """A session LiveKit's last list lacked although it joined before that list was asked
    for: it has left since (a replayed or late webhook)."""
    if not state.listed_at_ms or not who.sid or who.sid in state.listed_sids:
        return False
    joined = _joined_at_ms(who)
    return 0 < joined < state.listed_at_ms


def _listed(state: RoomState, command: ParticipantsListed) -> RoomState:
    participants = {
        p.identity: p
        for p in command.participants
        if p.present and not (p.sid and p.sid in state.departed)  # left since it was listed
    }
    listed = replace(
        state,
        listed_at_ms=command.listed_at_ms,
        listed_sids=frozenset(p.sid for p in participants.values() if p.sid),
    )
    for identity, current in state.participants.items():
        # Applied from webhooks meanwhile: kept when newer than the list.
        if identity not in participants and not _before_listing(listed, current):
            participants[identity] = current
    return replace(listed, participants=participants)


def _remember_departed(state: RoomState, sid: str, when: int) -> Mapping[str, int]:
    departed = dict(state.departed)
    departed[sid] = when
    while len(departed) > DEPARTED_KEPT:
        departed.pop(next(iter(departed)))
    return departed


def _joined(state: RoomState, joined: Participant) -> RoomState:
    if joined.sid and joined.sid in state.departed:
        return state  # a stale join: this session already left
    current = state.participants.get(joined.identity)
    if current is not None and current.sid != joined.sid and current.joined_at > joined.joined_at:
        return state  # an older session's join arriving after a newer one
    tracks = current.tracks if current is not None and current.sid == joined.sid else ()
    participants = dict(state.participants)
    participants[joined.identity] = replace(joined, tracks=tracks or joined.tracks)
    return replace(state, participants=participants)


def _left(state: RoomState, left: Participant, when: int) -> RoomState:
    current = state.participants.get(left.identity)
    departed = _remember_departed(state, left.sid, when) if left.sid else state.departed
    if current is None or (left.sid and current.sid and current.sid != left.sid):
        return replace(state, departed=departed)  # a stale leave of an older session
    participants = dict(state.participants)
    del participants[left.identity]
    return replace(state, participants=participants, departed=departed)


def _track(state: RoomState, who: Participant, track: Track, published: bool) -> RoomState:
    if who.sid and who.sid in state.departed:
        return state
    current = state.participants.get(who.identity)
    if current is not None and who.sid and current.sid and current.sid != who.sid:
        return state  # the track belongs to another session of this identity
    if current is None:
        if not published:
            return state
        current = Participant(identity=who.identity, sid=who.sid)
    tracks = tuple(t for t in current.tracks if t.sid != track.sid)
    if published:
        tracks = (*tracks, track)
    participants = dict(state.participants)
    participants[who.identity] = replace(current, tracks=tracks)
    return replace(state, participants=participants)


def _egress_event(
    state: RoomState, kind: str, egress: Egress, known: RecordingState | None
) -> Decision:
    in_flight = state.recording
    recording = in_flight if in_flight and in_flight.egress_id == egress.egress_id else known
    if recording is None or recording.egress_id != egress.egress_id:
        if egress.status not in ("EGRESS_STARTING", "EGRESS_ACTIVE"):
            return Decision(state, reply="unknown_recording")
        # An egress no recording tracks records the room: adopt it or stop it.
        sweep = RecordingStep("reconcile", {"egresses": (egress,)}, detached=True)
        return Decision(state, (sweep,), reply="unknown_recording")
    if recording.egress_status is not None and egress_rank(egress.status) < egress_rank(
        recording.egress_status
    ):
        return Decision(state, reply="stale")
    recording = replace(recording, egress_status=egress.status)
    effects: list[Effect] = []
    if kind == "egress_ended":
        effects.append(MergeMetadata({}, remove=("recording_mode", "recording_status")))
        if egress.status == "EGRESS_LIMIT_REACHED" and recording.status == "active":
            effects.append(PersistRecordingStatus(recording.id, "stopped", ("active",)))
            message = LIMIT_MESSAGES.get(recording.mode, LIMIT_MESSAGES["screen_recording"])
            effects.append(SendData({"type": message}, required=True))
            recording = replace(recording, status="stopped")
        if egress.status in ("EGRESS_COMPLETE", "EGRESS_LIMIT_REACHED"):
            # The shell completes it when storage events are off (the egress_ended fallback).
            effects.append(CompleteRecording(recording.id, egress))
    else:
        status = METADATA_STATUS.get(egress.status)
        if status is not None:
            effects.append(MergeMetadata({"recording_status": status}))
    if in_flight is not None and in_flight.id == recording.id:
        in_flight = recording if recording.status in IN_FLIGHT else None
    return Decision(replace(state, recording=in_flight), tuple(effects), reply="applied")
