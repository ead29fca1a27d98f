"""The webhook mix of ``bench.rooms``: joins, leaves, track events and egress updates.

Per room, ``P`` participant sessions join and publish one track; every other session also
publishes a screen share, unpublishes it and leaves; each room also receives egress updates
(``egress_updated``, ``EGRESS_ENDING``) of egresses no recording tracks (the actor looks
them up and ignores them). Every event has its own id and is sent once; the set is shuffled
across and within rooms. What must remain (``EventSet.expected``) does not depend on the order:
the sessions that did not leave, each with its one track (see ``bench.actors_events``).
"""

from __future__ import annotations

import random
import time

from livekit import api
from livekit.protocol import egress as eg
from livekit.protocol import models

from bench.actors_events import EventSet, livekit_id, session, shuffled_and_signed

EGRESS_UPDATES_PER_ROOM = 2


def realistic_events(
    rooms: list[str], events_per_room: int, key: str, secret: str, *, seed: int
) -> EventSet:
    rng = random.Random(seed)
    result = EventSet()
    now = int(time.time())
    # A kept session sends 2 events, a leaving one 5: P sessions send 3.5 P on average.
    sessions = max(2, round((events_per_room - EGRESS_UPDATES_PER_ROOM) / 3.5))
    pending: list[tuple[str, api.WebhookEvent]] = []
    for room_name in rooms:
        room = models.Room(name=room_name, sid=livekit_id(rng, "RM_"))
        kept: dict[str, frozenset[str]] = {}
        for n in range(sessions):
            # Joined now: after the activation listing (bench.rooms activates the rooms
            # first), so the stand-in's empty list does not make these joins stale.
            info, camera = session(rng, now, video=n % 2 == 0)
            screen = models.TrackInfo(
                sid=livekit_id(rng, "TR_"),
                type=models.TrackType.VIDEO,
                source=models.TrackSource.SCREEN_SHARE,
                name="screen",
            )
            steps: list[tuple[str, models.TrackInfo | None]] = [
                ("participant_joined", None),
                ("track_published", camera),
            ]
            if n % 2 == 0:
                steps += [
                    ("track_published", screen),
                    ("track_unpublished", screen),
                    ("participant_left", None),
                ]
            else:
                kept[info.identity] = frozenset({camera.sid})
            for kind, track in steps:
                event = api.WebhookEvent(
                    event=kind, id=livekit_id(rng, "EV_"), created_at=now, room=room
                )
                event.participant.CopyFrom(info)
                if track is not None:
                    event.track.CopyFrom(track)
                pending.append((room_name, event))
        for _ in range(EGRESS_UPDATES_PER_ROOM):
            egress = eg.EgressInfo(
                egress_id=livekit_id(rng, "EG_"),
                room_name=room_name,
                status=eg.EgressStatus.EGRESS_ENDING,
            )
            event = api.WebhookEvent(
                event="egress_updated", id=livekit_id(rng, "EV_"), created_at=now, room=room
            )
            event.egress_info.CopyFrom(egress)
            pending.append((room_name, event))
        result.expected[room_name] = kept
    return shuffled_and_signed(rng, pending, result, key, secret)
