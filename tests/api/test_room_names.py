"""Nobody enters a registered room under another name (issue 9, point 1).

A registered room is named in LiveKit by its id. Lookups that are not that id but slugify back to
it (``<id>!``, ``_<id>``, ``<ID>.``, `` <id> ``…) used to fall through to the unregistered-room
branch and mint a token for the registered room's LiveKit name; with it an intruder renamed
himself, raised his hand and muted the owner of a restricted room.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import pytest
from aiohttp.test_utils import TestClient
from livekit import api

from coordinator.rooms import unregistered_room_name
from coordinator.slugs import parse_uuid
from storage.records import UserRecord
from tests.livekit_standin import LiveKitStandin
from tests.support.factories import Factory

Client = TestClient[Any, Any]
LogIn = Callable[[UserRecord], None]


def variants(room_id: uuid.UUID) -> list[str]:
    """Lookups that are not the id but slugify (or parse) back to it."""
    text = str(room_id)
    return [
        f"{text}!",
        f"!{text}",
        f"{text}_",
        f"_{text}",
        f"{text}.",
        f".{text}",
        f"{text}%20",
        f"%20{text}",
        f"%20{text}%20",
        text.upper() + "!",
        text.upper() + "_",
        f"{text}-",
        f"-{text}",
        f"{text}~",
        quote(f"{text}\u200b"),  # a zero-width space, dropped by the ASCII fold
        quote(f"\u00a0{text}"),  # a no-break space
        room_id.hex + "!",  # 32 hex digits: a UUID for Python, so never an unregistered name
        f"{{{text}}}!",
        f"{text}'",
    ]


@pytest.mark.parametrize("level", ["restricted", "trusted", "public"])
async def test_lookups_that_slugify_to_a_room_id_find_nothing(
    client: Client, factory: Factory, level: str
) -> None:
    room = await factory.room(access_level=level)
    for lookup in variants(room.id):
        response = await client.get(f"/api/v1.0/rooms/{lookup}/")
        body = await response.json()
        if parse_uuid(unquote(lookup)) is not None:
            # A form Python reads as the id (``<id>-``, 32 hex digits…) is the room itself,
            # under its own rules: a token only where the access level gives one.
            assert response.status == 200 and body["id"] == str(room.id), lookup
            assert (body.get("livekit") is not None) == (level == "public"), lookup
        else:
            assert response.status == 404, (lookup, body)
            assert "detail" in body, lookup  # {…} never matches the route: "Not found."


async def test_unknown_uuid_is_not_an_unregistered_room(client: Client) -> None:
    for lookup in (str(uuid.uuid4()), uuid.uuid4().hex, str(uuid.uuid4()).upper()):
        response = await client.get(f"/api/v1.0/rooms/{lookup}/")
        assert response.status == 404, lookup


def test_unregistered_names_are_never_uuids() -> None:
    room_id = uuid.uuid4()
    for lookup in variants(room_id):
        assert unregistered_room_name(unquote(lookup)) is None, lookup
    assert unregistered_room_name("my-meeting!") == "my-meeting"
    assert unregistered_room_name(f"x-{room_id}") == f"x-{room_id}"  # not the id: harmless
    assert unregistered_room_name("!!!") is None


async def test_registered_slug_wins_over_an_unregistered_room(
    client: Client, factory: Factory
) -> None:
    room = await factory.room(name="Team Sync", access_level="restricted")
    for lookup in ("team-sync", "Team%20Sync", "TEAM-SYNC!"):
        body = await (await client.get(f"/api/v1.0/rooms/{lookup}/")).json()
        assert body["id"] == str(room.id) and body.get("livekit") is None, lookup


async def test_intruder_gets_no_token_and_in_room_actions_refuse_what_he_has(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner", access_level="restricted")
    assert owner.sub is not None
    livekit_standin.join(str(room.id), owner.sub, name="Owner")
    track = livekit_standin.publish(str(room.id), owner.sub, type=api.TrackType.AUDIO).sid
    await livekit_standin.webhooks.drain()
    # The intruder tries every variant: never a token.
    for lookup in variants(room.id):
        response = await lk_client.get(f"/api/v1.0/rooms/{lookup}/")
        assert response.status in (200, 404), lookup
        assert (await response.json()).get("livekit") is None, lookup
    # What he can get is an unregistered room's token, never named after the room's id.
    response = await lk_client.get("/api/v1.0/rooms/some-other-name/")
    body = await response.json()
    assert body["id"] is None and body["livekit"]["room"] == "some-other-name"
    headers = {"Authorization": f"Bearer {body['livekit']['token']}"}
    base = f"/api/v1.0/rooms/{room.id}"
    actions = [
        ("rename", {"name": "Owner"}),
        ("toggle-hand", {"raised": True}),
        ("mute-participant", {"participant_identity": owner.sub, "track_sid": track}),
    ]
    for action, payload in actions:
        response = await lk_client.post(f"{base}/{action}/", json=payload, headers=headers)
        assert response.status == 403, (action, await response.text())
    assert not livekit_standin.calls_for("MutePublishedTrack")
    assert not livekit_standin.calls_for("UpdateParticipant")
    # The owner still gets in by the id and by the slug.
    lk_log_in(owner)
    for lookup in (str(room.id), room.slug):
        body = await (await lk_client.get(f"/api/v1.0/rooms/{lookup}/")).json()
        assert body["livekit"]["room"] == str(room.id)


async def test_lobby_and_actions_under_a_variant_are_404(
    lk_client: Client, factory: Factory
) -> None:
    room = await factory.room(access_level="restricted")
    for lookup in variants(room.id)[:10]:
        base = f"/api/v1.0/rooms/{lookup}"
        response = await lk_client.post(f"{base}/request-entry/", json={"username": "x"})
        assert response.status == 404, lookup
        response = await lk_client.post(f"{base}/toggle-hand/", json={"raised": True})
        assert response.status == 404, lookup
