"""Lobby identities and abuse limits (issue 9 points 6 and 10, issue 8 point 3), on both databases.

- The anonymous participant id (the LiveKit identity) is issued by the server in a signed
  cookie: a bare UUID, someone else's visible id, a user's ``sub`` or a tampered value is no
  cookie, and a new id is issued.
- request-entry is throttled per user, per lobby cookie (Meet's ``REQUEST_ENTRY_THROTTLE_RATES``)
  and, for callers without a valid cookie, per IP; the participantWaiting broadcast is coalesced;
  invite caps its recipients and throttles invitation e-mails per user.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from livekit.api import TokenVerifier

from api import keys
from api.app import create_app
from coordinator.room import Snapshot
from coordinator.settings import LiveKitSettings, Secret, Settings, ThrottleSettings
from coordinator.throttle import Rate, parse_rate
from storage.records import UserRecord
from tests.conftest import make_settings
from tests.livekit_standin import LiveKitStandin
from tests.support.factories import Factory, login

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
COOKIE = "lobbyParticipantId"


@pytest.fixture
async def make_client(
    aiohttp_client: Any, database_url: str, livekit_standin: LiveKitStandin
) -> MakeClient:
    """An app on the LiveKit stand-in with the given throttle settings."""

    async def make(throttles: ThrottleSettings | None = None) -> Client:
        livekit = LiveKitSettings(
            api_key=livekit_standin.api_key,
            api_secret=Secret(livekit_standin.api_secret),
            api_url=livekit_standin.url,
            timeout_seconds=1.0,
        )
        settings = make_settings(
            database_url,
            livekit=livekit,
            background_tasks=False,
            throttles=throttles or ThrottleSettings(),
        )
        client: Client = await aiohttp_client(create_app(settings))
        livekit_standin.webhook_url = str(client.make_url("/api/v1.0/rooms/webhooks-livekit/"))
        return client

    return make


def entry_url(room: Any, action: str = "request-entry") -> str:
    return f"/api/v1.0/rooms/{room.id}/{action}/"


async def request_entry(client: Client, room: Any, cookie: str | None = None) -> Any:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie is not None else {}
    return await client.post(entry_url(room), json={"username": "Guest"}, headers=headers)


async def entry(client: Client, room: Any, cookie: str | None = None) -> dict[str, Any]:
    response = await request_entry(client, room, cookie)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    issued = response.cookies.get(COOKIE)
    body["cookie"] = issued.value if issued is not None else None
    return body


def identity_of(standin: LiveKitStandin, token: str) -> str:
    claims = TokenVerifier(standin.api_key, standin.api_secret).verify(token)
    return str(claims.identity)


def log_in(client: Client, user: UserRecord) -> None:
    login(client, client.app[keys.SESSIONS], user)


# -- who picks the identity: the server ------------------------------------------------------


async def test_a_users_sub_as_cookie_is_not_that_users_identity(
    make_client: MakeClient, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    client = await make_client()
    victim = await factory.user(sub="3f1c8b52-5c1e-4a56-9a7e-2d6f0e4b9a11")  # a UUID sub
    room = await factory.room(access_level="public")
    body = await entry(client, room, cookie=victim.sub)
    assert body["id"] != victim.sub and body["cookie"] is not None  # a new id, issued
    assert identity_of(livekit_standin, body["livekit"]["token"]) == body["id"]
    # The same with the user's own id (the identity of users without a sub).
    body = await entry(client, room, cookie=str(victim.id))
    assert body["id"] != str(victim.id)


async def test_an_admitted_guests_visible_id_does_not_enter(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client()
    room, owner = await factory.room_with_role("owner", access_level="restricted")
    guest = await entry(client, room)
    log_in(client, owner)
    response = await client.post(
        entry_url(room, "enter"), json={"participant_id": guest["id"], "allow_entry": True}
    )
    assert response.status == 200
    client.session.cookie_jar.clear()
    # The intruder saw the guest's id (waiting list, LiveKit identity) and sends it as cookie.
    intruder = await entry(client, room, cookie=guest["id"])
    assert intruder["status"] == "waiting" and intruder["livekit"] is None
    assert intruder["id"] != guest["id"]
    # The guest, with the cookie the server signed, is in.
    admitted = await entry(client, room, cookie=guest["cookie"])
    assert admitted["status"] == "accepted" and admitted["id"] == guest["id"]
    assert admitted["cookie"] is None  # a valid cookie is not re-issued


async def test_tampered_or_forged_cookies_are_no_cookie(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client()
    room = await factory.room(access_level="restricted")
    guest = await entry(client, room)
    participant_id, _, mac = guest["cookie"].partition(".")
    other = "0" * 8 + participant_id[8:]
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for forged in (
        f"{participant_id}.{flipped}",
        f"{other}.{mac}",
        f"{participant_id.upper()}.{mac}",
        f"{participant_id}.",
        f"{participant_id}",
        ".",
        "x" * 500,
        f"{participant_id}.{mac}.extra",
        f"{participant_id}.{mac[:-1]}é",  # non-ASCII: compared as bytes, not a crash
    ):
        body = await entry(client, room, cookie=forged)
        assert body["id"] != participant_id, forged
        assert body["cookie"] is not None and body["cookie"] != forged, forged


async def test_a_signed_id_that_became_a_users_identity_is_refused(
    make_client: MakeClient, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    client = await make_client()
    room = await factory.room(access_level="public")
    guest = await entry(client, room)
    await factory.user(sub=guest["id"])  # a user whose sub is that id now exists
    body = await entry(client, room, cookie=guest["cookie"])
    assert body["id"] != guest["id"] and body["cookie"] is not None
    assert identity_of(livekit_standin, body["livekit"]["token"]) == body["id"]


# -- throttles -------------------------------------------------------------------------------


async def test_cookieless_flood_is_throttled_per_ip_and_notified_once(
    make_client: MakeClient, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    client = await make_client()  # default: 30 new participants per minute per IP
    room = await factory.room(access_level="restricted")
    livekit_standin.join(str(room.id), "someone-inside")
    await livekit_standin.webhooks.drain()
    started = time.monotonic()
    responses = await asyncio.gather(*(request_entry(client, room) for _ in range(120)))
    elapsed = time.monotonic() - started
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 30 and statuses.count(429) == 90
    throttled = next(r for r in responses if r.status == 429)
    detail = (await throttled.json())["detail"]
    assert detail.startswith("Request was throttled. Expected available in ")
    assert detail.endswith(" seconds.")
    seconds = int(detail.removeprefix("Request was throttled. Expected available in ").split()[0])
    assert 55 <= seconds <= 60
    snapshot = await client.app[keys.DIRECTORY].call(str(room.id), Snapshot())
    assert len(snapshot["lobby"]) == 30
    await asyncio.sleep(0.3)
    waiting = [
        p
        for p in livekit_standin.data_packets
        if json.loads(p.data)["type"] == "participantWaiting"
    ]
    # At most one broadcast per second however many newcomers (one when the machine is fast).
    assert 1 <= len(waiting) <= math.ceil(elapsed)


async def test_throttle_rates_come_from_settings(make_client: MakeClient, factory: Factory) -> None:
    rates = ThrottleSettings(
        request_entry=parse_rate("2/minute"),
        request_entry_new_participant=parse_rate("3/hour"),
        creation_callback=parse_rate("1/day"),
    )
    client = await make_client(rates)
    room = await factory.room(access_level="restricted")
    guest = await entry(client, room)
    codes = [(await request_entry(client, room, guest["cookie"])).status for _ in range(3)]
    assert codes == [200, 200, 429]  # per cookie: 2/minute
    codes = [(await request_entry(client, room)).status for _ in range(3)]
    assert codes == [200, 200, 429]  # the first cookieless one above was the 1st of 3/hour
    user = await factory.user()
    log_in(client, user)
    codes = [(await request_entry(client, room)).status for _ in range(3)]
    assert codes == [200, 200, 429]  # per user: 2/minute
    callback = "/api/v1.0/rooms/creation-callback/"
    first = await client.post(callback, json={"callback_id": "x"})
    second = await client.post(callback, json={"callback_id": "x"})
    assert first.status == 200 and second.status == 429
    assert (await second.json())["detail"].startswith("Request was throttled.")


async def test_a_none_rate_throttles_nothing(make_client: MakeClient, factory: Factory) -> None:
    client = await make_client(ThrottleSettings(request_entry_new_participant=None))
    room = await factory.room(access_level="restricted")
    codes = {(await request_entry(client, room)).status for _ in range(40)}
    assert codes == {200}


async def test_invite_caps_recipients_and_throttles_per_user(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client(ThrottleSettings(invite=Rate(5, 3600.0), invite_max_recipients=3))
    room, owner = await factory.room_with_role("owner")
    log_in(client, owner)
    url = f"/api/v1.0/rooms/{room.id}/invite/"
    four = [f"p{i}@example.com" for i in range(4)]
    response = await client.post(url, json={"emails": four})
    assert response.status == 400
    assert await response.json() == {"emails": ["Ensure this field has no more than 3 elements."]}
    assert (await client.post(url, json={"emails": four[:3]})).status == 200
    assert (await client.post(url, json={"emails": four[:2]})).status == 200  # 5 of 5
    response = await client.post(url, json={"emails": ["late@example.com"]})
    assert response.status == 429
    assert (await response.json())["detail"].startswith("Request was throttled.")
    other_room, other_owner = await factory.room_with_role("owner")
    log_in(client, other_owner)  # another user has their own allowance
    response = await client.post(
        f"/api/v1.0/rooms/{other_room.id}/invite/", json={"emails": ["a@example.com"]}
    )
    assert response.status == 200


def test_settings_type_is_used() -> None:
    assert isinstance(make_settings("sqlite+aiosqlite://").throttles, ThrottleSettings)
    assert Settings().throttles.request_entry == Rate(150, 60.0)
