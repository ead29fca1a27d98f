"""The lobby (§2.5) through the room actor, with the LiveKit stand-in."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from livekit.api import TokenVerifier

from storage.records import UserRecord
from tests.conftest import ENGINES
from tests.livekit_standin import LiveKitStandin
from tests.support.factories import Factory

Client = TestClient[Any, Any]
LogIn = Callable[[UserRecord], None]


def entry_url(room: Any, action: str = "request-entry") -> str:
    return f"/api/v1.0/rooms/{room.id}/{action}/"


async def ask(client: Client, room: Any, cookie: str | None = None) -> dict[str, Any]:
    """request-entry as a browser holding the (Secure, so sent by hand here) lobby cookie.

    The reply's body, plus ``cookie``: the signed lobby cookie value to send back.
    """
    headers = {"Cookie": f"lobbyParticipantId={cookie}"} if cookie else {}
    response = await client.post(entry_url(room), json={"username": "Guest"}, headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    issued = response.cookies.get("lobbyParticipantId")
    body["cookie"] = issued.value if issued is not None else cookie
    return body


async def test_public_room_lets_everyone_in_and_stores_nothing(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    room = await factory.room(access_level="public")
    response = await lk_client.post(entry_url(room), json={"username": "Guest"})
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "accepted"
    assert body["username"] == "Guest"
    cookie = response.cookies["lobbyParticipantId"]
    assert cookie.value.startswith(body["id"] + ".")  # the id, signed
    assert cookie["httponly"] and cookie["secure"]
    claims = TokenVerifier(livekit_standin.api_key, livekit_standin.api_secret).verify(
        body["livekit"]["token"]
    )
    assert claims.identity == body["id"]  # lobby and LiveKit identities match
    assert claims.name == "Guest"
    assert claims.attributes is not None and claims.attributes["color"] == body["color"]
    assert livekit_standin.data_packets == []


@ENGINES
async def test_restricted_room_queues_notifies_and_admits(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, admin = await factory.room_with_role("administrator", access_level="restricted")
    livekit_standin.join(str(room.id), "someone-inside")
    await livekit_standin.webhooks.drain()
    first = await ask(lk_client, room)
    assert first["status"] == "waiting" and first["livekit"] is None
    for _ in range(100):  # the notification is sent right after the reply
        if livekit_standin.data_packets:
            break
        await asyncio.sleep(0.02)
    packets = livekit_standin.data_packets
    assert len(packets) == 1 and json.loads(packets[0].data) == {"type": "participantWaiting"}
    again = await ask(lk_client, room, first["cookie"])
    assert again["id"] == first["id"] and again["status"] == "waiting"
    await asyncio.sleep(0.1)
    assert len(livekit_standin.data_packets) == 1  # polling does not notify again

    lk_log_in(admin)
    waiting = await (await lk_client.get(entry_url(room, "waiting-participants"))).json()
    assert waiting == {
        "participants": [
            {"status": "waiting", "username": "Guest", "id": first["id"], "color": first["color"]}
        ]
    }
    response = await lk_client.post(
        entry_url(room, "enter"), json={"participant_id": first["id"], "allow_entry": True}
    )
    assert await response.json() == {"message": "Participant was updated."}

    lk_client.session.cookie_jar.clear()
    accepted = await ask(lk_client, room, first["cookie"])
    assert accepted["status"] == "accepted"
    assert accepted["livekit"]["room"] == str(room.id)


@ENGINES
async def test_denied_then_requeued(lk_client: Client, factory: Factory, lk_log_in: LogIn) -> None:
    room, admin = await factory.room_with_role("owner", access_level="trusted")
    first = await ask(lk_client, room)
    lk_log_in(admin)
    await lk_client.post(
        entry_url(room, "enter"), json={"participant_id": first["id"], "allow_entry": False}
    )
    lk_client.session.cookie_jar.clear()
    denied = await ask(lk_client, room, first["cookie"])
    assert denied["status"] == "denied" and denied["livekit"] is None


@ENGINES
async def test_trusted_room_admits_authenticated_users(
    lk_client: Client, factory: Factory, lk_log_in: LogIn
) -> None:
    room = await factory.room(access_level="trusted")
    lk_log_in(await factory.user())
    body = await (await lk_client.post(entry_url(room), json={"username": "Me"})).json()
    assert body["status"] == "accepted"


@ENGINES
async def test_waiting_participant_is_let_in_when_room_becomes_public(
    lk_client: Client, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner", access_level="restricted")
    waiting = await ask(lk_client, room)
    lk_log_in(owner)
    await lk_client.patch(f"/api/v1.0/rooms/{room.id}/", json={"access_level": "public"})
    lk_client.session.cookie_jar.clear()
    body = await ask(lk_client, room, waiting["cookie"])
    assert body["status"] == "accepted" and body["id"] == waiting["id"]


@pytest.mark.parametrize(("role", "status"), [(None, 403), ("member", 403), ("owner", 200)])
async def test_lobby_admin_permissions(
    lk_client: Client, factory: Factory, lk_log_in: LogIn, role: str | None, status: int
) -> None:
    room, user = await factory.room_with_role(role, access_level="restricted")
    assert (await lk_client.get(entry_url(room, "waiting-participants"))).status == 401
    lk_log_in(user)
    response = await lk_client.get(entry_url(room, "waiting-participants"))
    assert response.status == status
    if status == 403:
        assert await response.json() == {
            "detail": "You must have privileges on room to perform this action."
        }


async def test_public_room_has_no_lobby(
    lk_client: Client, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner", access_level="public")
    lk_log_in(owner)
    body = await (await lk_client.get(entry_url(room, "waiting-participants"))).json()
    assert body == {"participants": []}
    response = await lk_client.post(
        entry_url(room, "enter"), json={"participant_id": str(uuid.uuid4()), "allow_entry": True}
    )
    assert response.status == 404
    assert await response.json() == {"message": "Room has no lobby system."}


@ENGINES
async def test_enter_unknown_participant_and_bad_input(
    lk_client: Client, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner", access_level="restricted")
    lk_log_in(owner)
    response = await lk_client.post(
        entry_url(room, "enter"), json={"participant_id": str(uuid.uuid4()), "allow_entry": True}
    )
    assert response.status == 404
    assert await response.json() == {"message": "Participant not found."}
    for bad in (
        {},
        {"participant_id": "x", "allow_entry": True},
        {"participant_id": str(uuid.uuid4()), "allow_entry": "maybe"},
    ):
        assert (await lk_client.post(entry_url(room, "enter"), json=bad)).status == 400


async def test_request_entry_validation_and_unknown_room(
    lk_client: Client, factory: Factory
) -> None:
    room = await factory.room(access_level="restricted")
    assert (await lk_client.post(entry_url(room), json={})).status == 400
    assert (await lk_client.post(entry_url(room), json={"username": 5})).status == 400
    response = await lk_client.post(
        "/api/v1.0/rooms/no-such-room/request-entry/", json={"username": "x"}
    )
    assert response.status == 404


async def test_request_entry_is_throttled_per_lobby_cookie(
    lk_client: Client, factory: Factory
) -> None:
    room = await factory.room(access_level="restricted")
    first = await ask(lk_client, room)
    cookie = {"Cookie": f"lobbyParticipantId={first['cookie']}"}
    statuses = await asyncio.gather(
        *(
            lk_client.post(entry_url(room), json={"username": "G"}, headers=cookie)
            for _ in range(160)
        )
    )
    codes = [r.status for r in statuses]
    assert codes.count(429) >= 10
    throttled = next(r for r in statuses if r.status == 429)
    assert "throttled" in (await throttled.json())["detail"]


@ENGINES
async def test_the_lobby_notification_is_skipped_when_the_livekit_room_is_absent(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    room = await factory.room(access_level="restricted")
    body = await (await lk_client.post(entry_url(room), json={"username": "G"})).json()
    assert body["status"] == "waiting"
    await asyncio.sleep(0.2)  # leave time for the (skipped) notification
    assert livekit_standin.data_packets == []
    assert livekit_standin.calls_for("ListRooms")  # it looked for the room, found none
