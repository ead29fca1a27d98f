"""Webhook event sets for ``bench.actors``: realistic participants, tracks, and what they imply.

Each room gets ``P`` participant sessions. Every session joins and publishes one track; every
other session also leaves. So a room receives ``2P + P // 2`` events and must end up holding
the ``P - P // 2`` sessions that did not leave, each with its one track, whatever the order the
events arrive in (DESIGN §3 guarantee 4: a leave seen before its join makes the join stale, a
track seen before its join creates the entry the join then completes, a track seen after the
leave is ignored). The events are shuffled across rooms and within them, so the HTTP run checks
that order independence under load as well as that nothing is lost.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field

from livekit import api
from livekit.protocol import models

from coordinator.media import Participant, Track, WebhookEvent
from tests.livekit_standin import sign_webhook

FIRST_NAMES = ("Alice", "Bruno", "Chloé", "Driss", "Emma", "Farid", "Gaëlle", "Hugo", "Inès")
LAST_NAMES = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand")
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def livekit_id(rng: random.Random, prefix: str) -> str:
    """``PA_``/``TR_``/``EV_``/``RM_`` + 12 shortuuid characters, as the LiveKit server makes."""
    return prefix + "".join(rng.choices(ALPHABET, k=12))


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


@dataclass(frozen=True)
class SignedEvent:
    room: str
    body: bytes
    authorization: str


@dataclass
class EventSet:
    """Signed events (shuffled) and, per room, identity → the track sids that must remain."""

    events: list[SignedEvent] = field(default_factory=list)
    expected: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)

    @property
    def participants(self) -> int:
        return sum(len(room) for room in self.expected.values())


def session(
    rng: random.Random, joined_at: int, *, video: bool
) -> tuple[models.ParticipantInfo, models.TrackInfo]:
    """A participant session as LiveKit describes it, and its camera or microphone track."""
    info = models.ParticipantInfo(
        identity=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        sid=livekit_id(rng, "PA_"),
        name=person(rng),
        state=models.ParticipantInfo.State.ACTIVE,
        joined_at=joined_at,
        attributes={"role": rng.choice(("member", "owner")), "handRaised": "false"},
        kind=models.ParticipantInfo.Kind.STANDARD,
    )
    track = models.TrackInfo(
        sid=livekit_id(rng, "TR_"),
        type=models.TrackType.VIDEO if video else models.TrackType.AUDIO,
        source=models.TrackSource.CAMERA if video else models.TrackSource.MICROPHONE,
        name="camera" if video else "microphone",
        width=1280 if video else 0,
        height=720 if video else 0,
    )
    return info, track


def sessions_per_room(events_per_room: int) -> int:
    """``P`` such that ``2P + P // 2`` is close to ``events_per_room``."""
    return max(2, round(events_per_room / 2.5))


def signed_events(
    rooms: list[str], events_per_room: int, key: str, secret: str, *, seed: int
) -> EventSet:
    """``participant_joined``/``track_published``/``participant_left`` events, signed now."""
    rng = random.Random(seed)
    result = EventSet()
    now = int(time.time())
    sessions = sessions_per_room(events_per_room)
    pending: list[tuple[str, api.WebhookEvent]] = []
    for room_name in rooms:
        room = models.Room(name=room_name, sid=livekit_id(rng, "RM_"))
        kept: dict[str, frozenset[str]] = {}
        for n in range(sessions):
            info, track = session(rng, now - rng.randrange(600), video=n % 2 == 0)
            kinds = ["participant_joined", "track_published"]
            if n % 2 == 0:
                kinds.append("participant_left")
            else:
                kept[info.identity] = frozenset({track.sid})
            for kind in kinds:
                event = api.WebhookEvent(
                    event=kind,
                    id=livekit_id(rng, "EV_"),
                    created_at=now,
                    room=room,
                    participant=info,
                )
                if kind == "track_published":
                    event.track.CopyFrom(track)
                pending.append((room_name, event))
        result.expected[room_name] = kept
    return shuffled_and_signed(rng, pending, result, key, secret)


def shuffled_and_signed(
    rng: random.Random,
    pending: list[tuple[str, api.WebhookEvent]],
    result: EventSet,
    key: str,
    secret: str,
) -> EventSet:
    """``pending`` (room, event) shuffled, signed now and appended to ``result``."""
    rng.shuffle(pending)
    for room_name, event in pending:
        body, headers = sign_webhook(event, key, secret)
        result.events.append(SignedEvent(room_name, body.encode(), headers["Authorization"]))
    return result


# -- in-memory events (no protobuf, no signature) for the in-process benchmarks ----------


def participant(rng: random.Random, room: str, n: int, tracks: int) -> Participant:
    """A participant as ``coordinator.livekit.webhook_event`` would build it from LiveKit."""
    made = tuple(
        Track(
            sid=livekit_id(rng, "TR_"),
            kind="VIDEO" if t else "AUDIO",
            source="CAMERA" if t else "MICROPHONE",
            name="camera" if t else "microphone",
        )
        for t in range(tracks)
    )
    return Participant(
        identity=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        sid=livekit_id(rng, "PA_"),
        name=person(rng),
        joined_at=1_700_000_000 + n,
        tracks=made,
        attributes={"role": "member", "handRaised": "false"},
    )


def event(rng: random.Random, kind: str, room: str, who: Participant, n: int) -> WebhookEvent:
    track = who.tracks[0] if kind == "track_published" and who.tracks else None
    bare = Participant(
        identity=who.identity,
        sid=who.sid,
        name=who.name,
        joined_at=who.joined_at,
        attributes=who.attributes,
    )
    return WebhookEvent(
        id=livekit_id(rng, "EV_"),
        event=kind,
        created_at=1_700_000_000 + n,
        room_name=room,
        room_sid="RM_bench",
        participant=bare,
        track=track,
    )


def churn(rng: random.Random, room: str, count: int, present: int = 8) -> list[WebhookEvent]:
    """``count`` distinct events for one room: join, publish, and the leave of the session
    ``present`` joins earlier — so the room holds about ``present`` participants throughout."""
    people: list[Participant] = []
    events: list[WebhookEvent] = []
    for n in range(count):
        i, phase = divmod(n, 3)
        if phase == 0:
            people.append(participant(rng, room, i, 1))
            events.append(event(rng, "participant_joined", room, people[i], n))
        elif phase == 1:
            events.append(event(rng, "track_published", room, people[i], n))
        else:
            # Before ``present`` sessions exist: a stale leave of a session never seen.
            leaving = people[i - present] if i >= present else participant(rng, room, -1, 0)
            events.append(event(rng, "participant_left", room, leaving, n))
    return events
