"""The webhook receiver fed by the LiveKit stand-in (real signing, real ``WebhookReceiver``)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from livekit import api

from api import keys
from coordinator.room import Snapshot
from storage.records import RoomRecord
from tests.conftest import ENGINES
from tests.livekit_standin import LiveKitStandin, sign_webhook
from tests.support.factories import Factory

Client = TestClient[Any, Any]
URL = "/api/v1.0/rooms/webhooks-livekit/"


async def live(client: Client, room: RoomRecord) -> dict[str, Any]:
    snapshot: dict[str, Any] = await client.app[keys.DIRECTORY].call(str(room.id), Snapshot())
    return snapshot


def identities(snapshot: dict[str, Any]) -> list[str]:
    return sorted(p["identity"] for p in snapshot["participants"])


@ENGINES
async def test_participants_and_tracks_follow_webhooks(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    room = await factory.room()
    name = str(room.id)
    livekit_standin.join(name, "ada", name="Ada")
    livekit_standin.join(name, "bob", name="Bob")
    track = livekit_standin.publish(name, "ada", type=api.TrackType.AUDIO)
    await livekit_standin.webhooks.drain()
    snapshot = await live(lk_client, room)
    assert identities(snapshot) == ["ada", "bob"]
    ada = next(p for p in snapshot["participants"] if p["identity"] == "ada")
    assert ada["name"] == "Ada" and [t["sid"] for t in ada["tracks"]] == [track.sid]
    livekit_standin.leave(name, "bob")
    await livekit_standin.webhooks.drain()
    assert identities(await live(lk_client, room)) == ["ada"]
    assert all(d.status == 200 for d in livekit_standin.webhooks.deliveries)


@ENGINES
async def test_duplicated_deliveries_end_in_the_correct_state(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    room = await factory.room()
    name = str(room.id)
    livekit_standin.webhooks.duplicate(times=100)  # every event delivered twice
    livekit_standin.join(name, "ada")
    livekit_standin.join(name, "bob")
    livekit_standin.leave(name, "ada")
    await livekit_standin.webhooks.drain()
    joined = [e.id for e in livekit_standin.events if e.event == "participant_joined"]
    for event_id in joined:
        livekit_standin.webhooks.redeliver(event_id)  # late redelivery of old joins
    await livekit_standin.webhooks.drain()
    assert identities(await live(lk_client, room)) == ["bob"]


@ENGINES
async def test_reordered_deliveries_across_keys_end_in_the_correct_state(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    room = await factory.room()
    name = str(room.id)
    livekit_standin.webhooks.hold("ada")  # ada's participant events are held back…
    livekit_standin.join(name, "ada")
    track = livekit_standin.publish(name, "ada")  # …while her track event overtakes them
    livekit_standin.join(name, "bob")
    await livekit_standin.webhooks.drain()
    snapshot = await live(lk_client, room)
    assert "ada" in identities(snapshot)  # known from the track event already
    livekit_standin.webhooks.release("ada")
    await livekit_standin.webhooks.drain()
    snapshot = await live(lk_client, room)
    ada = next(p for p in snapshot["participants"] if p["identity"] == "ada")
    assert [t["sid"] for t in ada["tracks"]] == [track.sid]
    # A leave held back behind a rejoin of a new session does not remove the new session.
    livekit_standin.webhooks.hold("ada")
    livekit_standin.leave(name, "ada")
    livekit_standin.join(name, "ada")
    livekit_standin.webhooks.release("ada")
    await livekit_standin.webhooks.drain()
    assert identities(await live(lk_client, room)) == ["ada", "bob"]


@ENGINES
async def test_room_finished_clears_participants_and_lobby(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    room = await factory.room(access_level="restricted")
    name = str(room.id)
    livekit_standin.join(name, "ada")
    response = await lk_client.post(
        f"/api/v1.0/rooms/{room.id}/request-entry/", json={"username": "Guest"}
    )
    assert (await response.json())["status"] == "waiting"
    livekit_standin.close_room(name)
    await livekit_standin.webhooks.drain()
    snapshot = await live(lk_client, room)
    assert snapshot["participants"] == [] and snapshot["lobby"] == []


@pytest.mark.parametrize(
    ("variant", "status"),
    [("tampered", 400), ("expired", 400), ("wrong_key", 400), ("bearer", 400), ("no_sha256", 400)],
)
async def test_bad_signatures_are_refused(
    lk_client: Client, livekit_standin: LiveKitStandin, variant: str, status: int
) -> None:
    event = api.WebhookEvent(event="room_started", id="EV_x", room=api.Room(name="r"))
    body, headers = sign_webhook(
        event,
        livekit_standin.api_key,
        livekit_standin.api_secret,
        variant=variant,  # type: ignore[arg-type]
    )
    response = await lk_client.post(URL, data=body, headers=headers)
    assert response.status == status
    assert await response.json() == {"status": "error"}


async def test_missing_authorization_unknown_event_and_garbage(
    lk_client: Client, livekit_standin: LiveKitStandin
) -> None:
    response = await lk_client.post(URL, data="{}")
    assert response.status == 401 and await response.json() == {"status": "error"}
    unknown = api.WebhookEvent(event="made_up", id="EV_y", room=api.Room(name="r"))
    body, headers = sign_webhook(unknown, livekit_standin.api_key, livekit_standin.api_secret)
    assert (await lk_client.post(URL, data=body, headers=headers)).status == 422
    response = await lk_client.post(URL, data=b"\xff\xfe", headers={"Authorization": "x"})
    assert response.status == 400


async def test_filter_regex_and_connection_test_rooms_are_ignored(
    aiohttp_client: Any, database_url: str, livekit_standin: LiveKitStandin
) -> None:
    from api.app import create_app
    from coordinator.settings import LiveKitSettings, Secret
    from tests.conftest import make_settings

    livekit = LiveKitSettings(
        api_key=livekit_standin.api_key,
        api_secret=Secret(livekit_standin.api_secret),
        api_url=livekit_standin.url,
        webhook_events_filter_regex="^meet-",
    )
    client = await aiohttp_client(create_app(make_settings(database_url, livekit=livekit)))
    directory = client.app[keys.DIRECTORY]
    for room in ("other-app-room", "connection-test-123", "meet-room"):
        event = api.WebhookEvent(
            event="participant_joined",
            id=f"EV_{room}",
            room=api.Room(name=room),
            participant=api.ParticipantInfo(identity="ada", sid="PA_1"),
        )
        body, headers = sign_webhook(event, livekit_standin.api_key, livekit_standin.api_secret)
        response = await client.post(URL, data=body, headers=headers)
        assert response.status == 200 and await response.json() == {"status": "success"}
    assert directory.active_rooms() == ["meet-room"]


@ENGINES
async def test_webhook_ingestion_survives_a_dropped_actor(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    room = await factory.room()
    name = str(room.id)
    livekit_standin.join(name, "ada")
    await livekit_standin.webhooks.drain()
    await lk_client.app[keys.DIRECTORY].drop(name)
    livekit_standin.join(name, "bob")  # the actor comes back from LiveKit, then applies this
    await livekit_standin.webhooks.drain()
    assert identities(await live(lk_client, room)) == ["ada", "bob"]


@ENGINES
@pytest.mark.parametrize("listed_first", [False, True])
async def test_a_join_replayed_after_a_restart_does_not_bring_back_who_left(
    lk_client: Client,
    aiohttp_client: Any,
    livekit_standin: LiveKitStandin,
    factory: Factory,
    listed_first: bool,
) -> None:
    """Issue 9 point 13: the restarted process knows nothing of the events it applied, but
    LiveKit's participant list (asked for at recovery) is authoritative for the sessions that
    joined before it; a replayed join of such a session is stale (fails before: resurrected)."""
    from api.app import create_app

    room = await factory.room()
    name = str(room.id)
    livekit_standin.join(name, "ada")
    livekit_standin.join(name, "bob")
    livekit_standin.leave(name, "ada")
    await livekit_standin.webhooks.drain()
    assert identities(await live(lk_client, room)) == ["bob"]
    [ada_joined] = [
        e
        for e in livekit_standin.events
        if e.event == "participant_joined" and e.participant.identity == "ada"
    ]
    settings = lk_client.app[keys.SETTINGS]
    await lk_client.close()  # the process stops…
    restarted: Client = await aiohttp_client(create_app(settings))  # …a new one, same database
    livekit_standin.webhook_url = str(restarted.make_url(URL))
    if listed_first:
        assert identities(await live(restarted, room)) == ["bob"]
    body, headers = sign_webhook(ada_joined, livekit_standin.api_key, livekit_standin.api_secret)
    response = await restarted.post(URL, data=body, headers=headers)  # the replay
    assert response.status == 200
    assert identities(await live(restarted, room)) == ["bob"]
    livekit_standin.join(name, "ada")  # a real new session of ada is applied
    await livekit_standin.webhooks.drain()
    assert identities(await live(restarted, room)) == ["ada", "bob"]


async def test_forged_tokens_are_refused_over_http(
    lk_client: Client, livekit_standin: LiveKitStandin
) -> None:
    """The HS256 fast path seen from outside: a token signed with another secret, one whose
    signature is not the canonical encoding, an unsigned ``alg: none`` one, and odd bytes in
    the header are all 400 with the JSON error body; nothing reaches a room."""
    import base64
    import json

    event = api.WebhookEvent(
        event="participant_joined",
        id="EV_forged",
        room=api.Room(name="forged-room"),
        participant=api.ParticipantInfo(identity="mallory", sid="PA_m"),
    )
    body, headers = sign_webhook(event, livekit_standin.api_key, livekit_standin.api_secret)
    token = headers["Authorization"]
    header, payload, signature = token.split(".")
    _, other = sign_webhook(event, livekit_standin.api_key, livekit_standin.api_secret + "x")
    flipped = signature[:-1] + ("B" if signature[-1] == "A" else "A")
    unsigned = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=")
    forged = [
        other["Authorization"],
        f"{header}.{payload}.{flipped}",
        f"{unsigned.decode()}.{payload}.",
        f"{header}.{payload}",
    ]
    for authorization in forged:
        response = await lk_client.post(
            URL, data=body, headers={**headers, "Authorization": authorization}
        )
        assert response.status == 400, authorization
        assert await response.json() == {"status": "error"}
    # Bytes no client library sends (invalid UTF-8 in the header), over a raw connection.
    import asyncio

    server = lk_client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body.encode())}\r\n"
        "Connection: close\r\nAuthorization: ".encode()
        + token.encode()[:-2]
        + b"\xff\xfe\r\n\r\n"
        + body.encode()
    )
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400") and answer.endswith(b'{"status":"error"}'), answer
    assert "forged-room" not in lk_client.app[keys.DIRECTORY].active_rooms()
    good = await lk_client.post(URL, data=body.encode(), headers=headers)
    assert good.status == 200 and await good.json() == {"status": "success"}
