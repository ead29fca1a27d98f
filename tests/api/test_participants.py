"""Participant management (§2.5) through the actors and the real client against the stand-in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from livekit import api

from api import keys
from coordinator.room import Snapshot
from coordinator.tokens import Participant, mint_token
from storage import rooms as room_store
from storage.records import RoomRecord, UserRecord
from tests.conftest import ENGINES
from tests.livekit_standin import LiveKitStandin
from tests.support.factories import Factory

Client = TestClient[Any, Any]
LogIn = Callable[[UserRecord], None]


def url(room: RoomRecord, action: str) -> str:
    return f"/api/v1.0/rooms/{room.id}/{action}/"


def lk_token(client: Client, room: str, identity: str, *, ttl: int = 600) -> dict[str, str]:
    settings = client.app[keys.SETTINGS].livekit
    token = mint_token(
        settings,
        room=room,
        participant=Participant(identity=identity, name=identity, is_authenticated=False),
        sources=["microphone"],
        ttl_seconds=ttl,
        now=time.time() if ttl > 0 else time.time() - 3600,
    )
    return {"Authorization": f"Bearer {token}"}


async def in_room(fake: LiveKitStandin, room: RoomRecord, *identities: str) -> dict[str, str]:
    tracks = {}
    for identity in identities:
        fake.join(str(room.id), identity, name=identity.title())
        tracks[identity] = fake.publish(str(room.id), identity, type=api.TrackType.AUDIO).sid
    await fake.webhooks.drain()
    return tracks


# -- mute ------------------------------------------------------------------------------------


@ENGINES
async def test_admin_session_mutes(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, admin = await factory.room_with_role("administrator")
    tracks = await in_room(livekit_standin, room, "bob")
    lk_log_in(admin)
    response = await lk_client.post(
        url(room, "mute-participant"),
        json={"participant_identity": "bob", "track_sid": tracks["bob"]},
    )
    assert response.status == 200 and await response.json() == {"status": "success"}
    request: Any = livekit_standin.calls_for("MutePublishedTrack")[-1].request
    assert request.identity == "bob" and request.muted is True


async def test_present_participant_mutes_with_a_livekit_token(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    room = await factory.room()
    tracks = await in_room(livekit_standin, room, "ada", "bob")
    body = {"participant_identity": "bob", "track_sid": tracks["bob"]}
    response = await lk_client.post(
        url(room, "mute-participant"), json=body, headers=lk_token(lk_client, str(room.id), "ada")
    )
    assert response.status == 200
    # Not in the room: refused after the presence check.
    response = await lk_client.post(
        url(room, "mute-participant"), json=body, headers=lk_token(lk_client, str(room.id), "eve")
    )
    assert response.status == 403
    assert await response.json() == {"error": "Could not verify caller presence"}


async def test_mute_refusals(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room = await factory.room(configuration={"everyone_can_mute": False})
    other = await factory.room()
    tracks = await in_room(livekit_standin, room, "ada", "bob")
    body = {"participant_identity": "bob", "track_sid": tracks["bob"]}
    mute = url(room, "mute-participant")
    headers = lk_token(lk_client, str(room.id), "ada")
    assert (await lk_client.post(mute, json=body, headers=headers)).status == 403
    other_room_token = lk_token(lk_client, str(other.id), "ada")
    response = await lk_client.post(url(other, "mute-participant"), json=body, headers=headers)
    assert response.status == 403  # a token for another room
    response = await lk_client.post(mute, json=body, headers=other_room_token)
    assert response.status == 403
    response = await lk_client.post(mute, json=body)
    assert response.status == 403
    assert await response.json() == {"detail": "Authentication credentials were not provided."}
    expired = lk_token(lk_client, str(room.id), "ada", ttl=-1)
    response = await lk_client.post(mute, json=body, headers=expired)
    assert response.status == 403
    assert (await response.json())["detail"].startswith("Invalid LiveKit token:")
    garbage = {"Authorization": "Bearer not-a-jwt"}
    assert (await lk_client.post(mute, json=body, headers=garbage)).status == 403
    lk_log_in(await factory.user())  # a session without privileges and no token
    assert (await lk_client.post(mute, json=body)).status == 403
    assert not livekit_standin.calls_for("MutePublishedTrack")


@ENGINES
async def test_mute_unknown_participant_is_404(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    await in_room(livekit_standin, room, "ada")
    lk_log_in(owner)
    response = await lk_client.post(
        url(room, "mute-participant"), json={"participant_identity": "ghost", "track_sid": "TR_x"}
    )
    assert response.status == 404
    assert await response.json() == {"error": "Participant not found"}


# -- update / remove -------------------------------------------------------------------------


@ENGINES
async def test_update_participant(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    await in_room(livekit_standin, room, "bob")
    lk_log_in(owner)
    payload = {
        "participant_identity": "bob",
        "metadata": {"k": "v"},
        "attributes": {"badge": "speaker"},
        "permission": {"can_publish": True, "can_publish_sources": ["camera", "microphone"]},
        "name": "Robert",
    }
    response = await lk_client.post(url(room, "update-participant"), json=payload)
    assert response.status == 200, await response.text()
    participant = next(p for p in livekit_standin.participants(str(room.id)) if p.identity == "bob")
    assert participant.name == "Robert"
    assert participant.attributes["badge"] == "speaker"
    assert participant.metadata == '{"k": "v"}'
    assert list(participant.permission.can_publish_sources) == [
        api.TrackSource.CAMERA,
        api.TrackSource.MICROPHONE,
    ]


@pytest.mark.parametrize(
    "payload",
    [
        {"participant_identity": "bob"},
        {"participant_identity": "bob", "permission": {"hidden": True}},
        {"participant_identity": "bob", "permission": {"recorder": True}},
        {"participant_identity": "bob", "permission": {"agent": True}},
        {"participant_identity": "bob", "permission": {"can_publish_sources": ["CAMERA"]}},
        {"participant_identity": "bob", "permission": {"unknown": True}},
        {"participant_identity": "bob", "name": "x" * 256},
        {"metadata": {"a": 1}},
    ],
)
async def test_update_participant_refuses_bad_payloads(
    lk_client: Client,
    livekit_standin: LiveKitStandin,
    factory: Factory,
    lk_log_in: LogIn,
    payload: dict[str, Any],
) -> None:
    room, owner = await factory.room_with_role("owner")
    lk_log_in(owner)
    response = await lk_client.post(url(room, "update-participant"), json=payload)
    assert response.status == 400
    assert not livekit_standin.calls_for("UpdateParticipant")


@ENGINES
async def test_remove_participant_also_clears_lobby_entries(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner", access_level="restricted")
    member = await factory.user()
    await factory.access(room, member, "member")
    # An anonymous guest accepted through the lobby, then in the room under that identity.
    asked = await lk_client.post(url(room, "request-entry"), json={"username": "Guest"})
    guest = await asked.json()
    guest_cookie = asked.cookies["lobbyParticipantId"].value  # the signed id
    lk_client.session.cookie_jar.clear()
    lk_log_in(owner)
    await lk_client.post(
        url(room, "enter"), json={"participant_id": guest["id"], "allow_entry": True}
    )
    await in_room(livekit_standin, room, guest["id"])
    response = await lk_client.post(
        url(room, "remove-participant"), json={"participant_identity": guest["id"]}
    )
    assert response.status == 200
    await livekit_standin.webhooks.drain()
    snapshot = await lk_client.app[keys.DIRECTORY].call(str(room.id), Snapshot())
    assert snapshot["lobby"] == []
    assert guest["id"] not in [p["identity"] for p in snapshot["participants"]]
    # Coming back with the same cookie queues again instead of reusing the acceptance.
    lk_client.session.cookie_jar.clear()
    again = await (
        await lk_client.post(
            url(room, "request-entry"),
            json={"username": "Guest"},
            headers={"Cookie": f"lobbyParticipantId={guest_cookie}"},
        )
    ).json()
    assert again["status"] == "waiting"


@ENGINES
async def test_remove_unknown_participant_is_404(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    livekit_standin.create_room(str(room.id))
    lk_log_in(owner)
    response = await lk_client.post(
        url(room, "remove-participant"), json={"participant_identity": "ghost"}
    )
    assert response.status == 404
    assert await response.json() == {"error": "Participant not found"}


@pytest.mark.parametrize("role", [None, "member"])
async def test_management_needs_privileges(
    lk_client: Client, factory: Factory, lk_log_in: LogIn, role: str | None
) -> None:
    room, user = await factory.room_with_role(role)
    body = {"participant_identity": "bob"}
    assert (await lk_client.post(url(room, "remove-participant"), json=body)).status == 401
    lk_log_in(user)
    for action in ("remove-participant", "update-participant", "update-participant-role"):
        response = await lk_client.post(url(room, action), json=body)
        assert response.status == 403, action


# -- LiveKit failures ------------------------------------------------------------------------


@ENGINES
@pytest.mark.parametrize("livekit_timeout", [1.0])
async def test_livekit_hanging_gives_503_within_the_timeout_and_nothing_half_done(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner", access_level="restricted")
    await in_room(livekit_standin, room, "bob")
    guest = await (await lk_client.post(url(room, "request-entry"), json={"username": "G"})).json()
    lk_client.session.cookie_jar.clear()
    lk_log_in(owner)
    livekit_standin.stall("RemoveParticipant", 5.0)
    started = time.monotonic()
    response = await lk_client.post(
        url(room, "remove-participant"), json={"participant_identity": guest["id"]}
    )
    elapsed = time.monotonic() - started
    assert response.status == 503
    assert await response.json() == {"error": "Failed to remove participant"}
    assert elapsed < 2.5  # the adapter's 1 s timeout, not the 5 s stall
    snapshot = await lk_client.app[keys.DIRECTORY].call(str(room.id), Snapshot())
    assert [e["id"] for e in snapshot["lobby"]] == [guest["id"]]  # not cleared: not removed


async def test_livekit_dropping_the_connection_gives_503(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    tracks = await in_room(livekit_standin, room, "bob")
    lk_log_in(owner)
    livekit_standin.drop("MutePublishedTrack")
    response = await lk_client.post(
        url(room, "mute-participant"),
        json={"participant_identity": "bob", "track_sid": tracks["bob"]},
    )
    assert response.status == 503
    assert await response.json() == {"error": "Failed to mute participant"}


@ENGINES
async def test_livekit_error_answer_gives_502(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    await in_room(livekit_standin, room, "bob")
    lk_log_in(owner)
    livekit_standin.fail("UpdateParticipant", "internal", "boom", status=500)
    response = await lk_client.post(
        url(room, "update-participant"), json={"participant_identity": "bob", "name": "B"}
    )
    assert response.status == 502
    assert await response.json() == {"error": "Failed to update participant"}


async def test_livekit_refusing_connections_gives_503(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    await in_room(livekit_standin, room, "bob")
    lk_log_in(owner)
    await livekit_standin.stop()
    started = time.monotonic()
    response = await lk_client.post(
        url(room, "remove-participant"), json={"participant_identity": "bob"}
    )
    assert response.status == 503
    assert time.monotonic() - started < 2.5


# -- role, hand, rename ----------------------------------------------------------------------


async def test_update_participant_role(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    target = await factory.user()
    assert owner.sub and target.sub
    await in_room(livekit_standin, room, owner.sub, target.sub, "anon-guest")
    lk_log_in(owner)
    role_url = url(room, "update-participant-role")
    response = await lk_client.post(
        role_url, json={"participant_identity": target.sub, "role": "administrator"}
    )
    assert response.status == 200
    assert await response.json() == {"role": "administrator", "livekit_synced": True}
    async with lk_client.app[keys.SESSIONMAKER]() as session:
        access = await room_store.get_user_access(session, room.id, target.id)
    assert access is not None and access.role == "administrator"
    lk_participant = next(
        p for p in livekit_standin.participants(str(room.id)) if p.identity == target.sub
    )
    assert lk_participant.attributes["room_role"] == "administrator"
    # idempotent
    again = await lk_client.post(
        role_url, json={"participant_identity": target.sub, "role": "administrator"}
    )
    assert again.status == 200
    cases = [
        ({"participant_identity": owner.sub, "role": "member"}, 403, "You cannot change"),
        ({"participant_identity": "anon-guest", "role": "member"}, 404, "no user account"),
        ({"participant_identity": "nobody", "role": "member"}, 404, "not connected"),
        ({"participant_identity": target.sub, "role": "owner"}, 400, None),
    ]
    for payload, status, message in cases:
        response = await lk_client.post(role_url, json=payload)
        assert response.status == status, payload
        if message:
            assert message in (await response.json())["error"]


async def test_owners_cannot_be_demoted_and_caller_must_be_present(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, admin = await factory.room_with_role("administrator")
    owner = await factory.user()
    await factory.access(room, owner, "owner")
    assert admin.sub and owner.sub
    lk_log_in(admin)
    role_url = url(room, "update-participant-role")
    response = await lk_client.post(
        role_url, json={"participant_identity": owner.sub, "role": "member"}
    )
    assert response.status == 403
    assert await response.json() == {
        "detail": "You must be connected to the meeting to perform this action."
    }
    await in_room(livekit_standin, room, admin.sub, owner.sub)
    response = await lk_client.post(
        role_url, json={"participant_identity": owner.sub, "role": "member"}
    )
    assert response.status == 403
    assert await response.json() == {"error": "Room owners cannot be demoted."}


@ENGINES
async def test_toggle_hand_and_rename_act_on_the_token_identity(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    room = await factory.room()
    await in_room(livekit_standin, room, "ada")
    headers = lk_token(lk_client, str(room.id), "ada")
    response = await lk_client.post(
        url(room, "toggle-hand"), json={"raised": True}, headers=headers
    )
    assert response.status == 200

    def ada() -> Any:
        return next(p for p in livekit_standin.participants(str(room.id)) if p.identity == "ada")

    assert ada().attributes["handRaisedAt"].startswith("20")
    await lk_client.post(url(room, "toggle-hand"), json={"raised": False}, headers=headers)
    assert ada().attributes.get("handRaisedAt", "") == ""
    response = await lk_client.post(url(room, "rename"), json={"name": "Ada L."}, headers=headers)
    assert response.status == 200 and ada().name == "Ada L."
    for bad in ({"name": ""}, {"name": "x" * 256}, {}):
        assert (await lk_client.post(url(room, "rename"), json=bad, headers=headers)).status == 400
    assert (await lk_client.post(url(room, "rename"), json={"name": "x"})).status == 403
    other = await factory.room()
    response = await lk_client.post(url(other, "rename"), json={"name": "x"}, headers=headers)
    assert response.status == 403
    ghost = lk_token(lk_client, str(room.id), "ghost")
    response = await lk_client.post(url(room, "toggle-hand"), json={"raised": True}, headers=ghost)
    assert response.status == 404
    assert await response.json() == {"error": "Participant not found"}
    response = await lk_client.post(
        "/api/v1.0/rooms/unknown-room/rename/", json={"name": "x"}, headers=headers
    )
    assert response.status == 404


# -- live view and recovery ------------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [(None, 403), ("member", 403), ("administrator", 200)])
async def test_live_view_permissions(
    lk_client: Client, factory: Factory, lk_log_in: LogIn, role: str | None, status: int
) -> None:
    room, user = await factory.room_with_role(role)
    assert (await lk_client.get(url(room, "live"))).status == 401
    lk_log_in(user)
    response = await lk_client.get(url(room, "live"))
    assert response.status == status
    if status == 200:
        body = await response.json()
        assert body["participants"] == [] and body["lobby"] == [] and body["recording"] is None


async def test_staff_see_the_live_view(
    lk_client: Client, factory: Factory, lk_log_in: LogIn
) -> None:
    room = await factory.room()
    lk_log_in(await factory.user(is_staff=True))
    assert (await lk_client.get(url(room, "live"))).status == 200


async def _live_once_recovered(client: Client, path: str, identities: list[str]) -> Any:
    """The live view, polled for up to 5 s until LiveKit's participant list has been applied.

    Seen in full CI runs (not reproduced alone): the first view after a reactivation held no
    participants (PostgreSQL), or no recording yet (SQLite, under load); recovery converging
    is the behaviour relied on, so the view is polled until both are back.
    """
    for _ in range(50):
        view = await (await client.get(path)).json()
        listed = sorted(p["identity"] for p in view["participants"]) == identities
        if listed and view.get("recording") is not None:
            return view
        await asyncio.sleep(0.1)
    return view


@ENGINES
async def test_recovery_rebuilds_the_same_state_from_database_and_livekit(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    from storage.models import Recording

    room, owner = await factory.room_with_role("owner")
    name = str(room.id)
    await in_room(livekit_standin, room, "ada", "bob")
    # The egress's webhooks are not delivered before its recording row exists (delivered
    # first, the egress is unknown to the room and stopped as an orphan; seen on CI): the
    # recovery below reads its state from LiveKit.
    webhook_url, livekit_standin.webhook_url = livekit_standin.webhook_url, None
    async with api.LiveKitAPI(
        livekit_standin.url, livekit_standin.api_key, livekit_standin.api_secret
    ) as client:
        request = api.RoomCompositeEgressRequest(
            room_name=name, audio_only=True, file_outputs=[api.EncodedFileOutput(filepath="r.ogg")]
        )
        egress = await client.egress.start_room_composite_egress(request)
    livekit_standin.advance_egress(egress.egress_id, api.EgressStatus.EGRESS_ACTIVE)
    async with factory.sessionmaker.begin() as session:
        session.add(
            Recording(
                room_id=room.id, status="active", mode="transcript", worker_id=egress.egress_id
            )
        )
    livekit_standin.webhook_url = webhook_url
    await livekit_standin.webhooks.drain()
    lk_log_in(owner)
    directory = lk_client.app[keys.DIRECTORY]
    await directory.drop(name)
    before = await _live_once_recovered(lk_client, url(room, "live"), ["ada", "bob"])
    assert sorted(p["identity"] for p in before["participants"]) == ["ada", "bob"]
    assert before["recording"]["egress_id"] == egress.egress_id
    assert before["recording"]["status"] == "active"
    assert before["recording"]["egress_status"] == "EGRESS_ACTIVE"
    await directory.drop(name)  # a crash: the actor and its memory are gone
    after = await _live_once_recovered(lk_client, url(room, "live"), ["ada", "bob"])
    for key in ("participants", "recording", "lobby"):
        assert after[key] == before[key]
