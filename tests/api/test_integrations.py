"""Issue 8 point 4: the flagged integrations, against the real server and the LiveKit stand-in.

Connection test, subtitles (agent dispatch), the metadata-collector agent of recordings, SIP
dispatch rules on room webhooks, and the roomkit join by PIN. Each is 404 with its flag off.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient
from livekit import api

from api import keys
from api.app import create_app
from coordinator.settings import LiveKitSettings, S3Settings, Secret
from coordinator.tokens import Participant, mint_token
from storage import integrations as integration_store
from storage import recordings as recording_store
from storage.records import RoomRecord
from tests.conftest import make_settings
from tests.livekit_standin import LiveKitStandin
from tests.support.factories import Factory, login

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
ROOMKIT_TOKEN = "roomkit-server-token-" + "r" * 30


@pytest.fixture
def make_client(
    aiohttp_client: Any, database_url: str, livekit_standin: LiveKitStandin
) -> MakeClient:
    async def make(**overrides: Any) -> Client:
        livekit = LiveKitSettings(
            api_key=livekit_standin.api_key,
            api_secret=Secret(livekit_standin.api_secret),
            api_url=livekit_standin.url,
            timeout_seconds=0.5,
        )
        overrides.setdefault("background_tasks", False)
        settings = make_settings(database_url, livekit=livekit, **overrides)
        client: Client = await aiohttp_client(create_app(settings))
        livekit_standin.webhook_url = str(client.make_url("/api/v1.0/rooms/webhooks-livekit/"))
        return client

    return make


def lk_token(client: Client, room: str, identity: str = "ada", *, ttl: int = 600) -> str:
    return mint_token(
        client.app[keys.SETTINGS].livekit,
        room=room,
        participant=Participant(identity=identity, name=identity, is_authenticated=False),
        sources=["microphone"],
        ttl_seconds=ttl,
        now=time.time() if ttl > 0 else time.time() - 3600,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def config(client: Client) -> dict[str, Any]:
    response = await client.get("/api/v1.0/config/")
    result: dict[str, Any] = await response.json()
    return result


# -- connection test ----------------------------------------------------------------------------

CONNECTION = "/api/v1.0/diagnostics/connection/"


async def test_connection_test_is_404_when_off(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post(CONNECTION)
    assert response.status == 404 and await response.json() == {"detail": "Not found."}
    assert (await config(client))["diagnostics"] == {"connection_test_enabled": False}


async def test_connection_test_gives_a_fresh_room_and_a_short_token(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client(connection_test_enabled=True, connection_test_token_ttl_seconds=600)
    assert (await config(client))["diagnostics"] == {"connection_test_enabled": True}
    assert (await client.get(CONNECTION)).status == 405
    first, second = [await (await client.post(CONNECTION)).json() for _ in range(2)]
    rooms = [body["livekit"]["room"] for body in (first, second)]
    assert rooms[0] != rooms[1]
    for room in rooms:
        assert room.startswith("connection-test-")
        uuid.UUID(room.removeprefix("connection-test-"))
    livekit = first["livekit"]
    assert set(livekit) == {"url", "room", "token", "expires_in"}
    assert livekit["url"] == client.app[keys.SETTINGS].livekit.api_url
    assert livekit["expires_in"] == 600
    secret = client.app[keys.SETTINGS].livekit.api_secret.get()
    claims = jwt.decode(livekit["token"], secret, algorithms=["HS256"])
    assert claims["exp"] - claims["nbf"] == 600
    assert claims["name"] == "Connection Test"
    assert claims["video"]["room"] == livekit["room"] and claims["video"]["roomAdmin"] is False
    assert claims["attributes"]["is_authenticated"] == "false"
    uuid.UUID(claims["sub"])  # anonymous: a random identity

    user = await factory.user()
    login(client, client.app[keys.SESSIONS], user)
    body = await (await client.post(CONNECTION)).json()
    claims = jwt.decode(body["livekit"]["token"], secret, algorithms=["HS256"])
    assert claims["sub"] == user.sub and claims["video"]["roomAdmin"] is False
    # A session without its CSRF token is refused, as for every unsafe method.
    client.session.headers.pop("X-CSRFToken")
    assert (await client.post(CONNECTION)).status == 403


async def test_connection_test_is_throttled(make_client: MakeClient, factory: Factory) -> None:
    client = await make_client(connection_test_enabled=True, connection_test_throttle_rate=(3, 60))
    statuses = [(await client.post(CONNECTION)).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    user = await factory.user()
    login(client, client.app[keys.SESSIONS], user)  # an authenticated caller has its own bucket
    assert (await client.post(CONNECTION)).status == 200


async def test_connection_test_room_is_deleted_after_its_token(
    make_client: MakeClient, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(
        connection_test_enabled=True,
        connection_test_token_ttl_seconds=1,
        connection_test_room_extra_age_seconds=1,
        background_tasks=True,
    )
    first, second = [(await (await client.post(CONNECTION)).json())["livekit"] for _ in range(2)]
    livekit_standin.join(first["room"], "tester")  # one tester stays connected, one never came
    await asyncio.sleep(2.5)
    assert livekit_standin.room(first["room"]) is None
    requests: list[Any] = [c.request for c in livekit_standin.calls_for("DeleteRoom")]
    deleted = [r.room for r in requests]
    assert sorted(deleted) == sorted([first["room"], second["room"]])
    # Webhooks of test rooms are ignored: no actor, no SIP, no recording lookups.
    assert first["room"] not in client.app[keys.DIRECTORY].active_rooms()


# -- subtitles ----------------------------------------------------------------------------------


def subtitle_url(room: RoomRecord | str) -> str:
    lookup = room if isinstance(room, str) else str(room.id)
    return f"/api/v1.0/rooms/{lookup}/start-subtitle/"


async def test_start_subtitle_is_404_when_off(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client()
    room = await factory.room()
    token = bearer(lk_token(client, str(room.id)))
    for headers in (token, {}):
        response = await client.post(subtitle_url(room), headers=headers)
        assert response.status == 404 and await response.json() == {"detail": "Not found."}
    # A token is verified before the flag, as in Meet.
    response = await client.post(subtitle_url(room), headers=bearer("not-a-jwt"))
    assert response.status == 403
    assert await response.json() == {"detail": "Invalid LiveKit token: Not enough segments"}
    assert (await config(client))["subtitle"] == {"enabled": False}
    assert not livekit_standin.calls_for("CreateDispatch")


async def test_start_subtitle_dispatches_the_transcriber(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(room_subtitle_enabled=True)
    assert (await config(client))["subtitle"] == {"enabled": True}
    room = await factory.room(access_level="restricted")
    # Anonymous participants may start subtitles; the room is found by id or by slug.
    for lookup in (str(room.id), room.slug):
        response = await client.post(
            subtitle_url(lookup), headers=bearer(lk_token(client, str(room.id)))
        )
        assert response.status == 200 and await response.json() == {"status": "success"}
    dispatches = livekit_standin.rooms.list_dispatch(str(room.id))
    assert [d.agent_name for d in dispatches] == ["multi-user-transcriber"] * 2
    call = livekit_standin.calls_for("CreateDispatch")[-1]
    assert call.claims is not None and call.claims.video is not None
    assert call.claims.video.room == str(room.id)


async def test_start_subtitle_agent_name_from_settings(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(room_subtitle_enabled=True, room_subtitle_agent_name="my-agent")
    room = await factory.room()
    response = await client.post(subtitle_url(room), headers=bearer(lk_token(client, str(room.id))))
    assert response.status == 200
    assert [d.agent_name for d in livekit_standin.rooms.list_dispatch(str(room.id))] == ["my-agent"]


async def test_start_subtitle_refuses_hostile_callers(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(room_subtitle_enabled=True)
    room, owner = await factory.room_with_role("owner")
    other = await factory.room()
    target = subtitle_url(room)
    bad_format = "Authorization header must be: Bearer <token>"
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "Authentication credentials were not provided."),
        ({"Authorization": "Basic abc"}, bad_format),
        ({"Authorization": "Bearer a b"}, bad_format),
        (
            bearer(lk_token(client, str(other.id))),
            "You do not have permission to perform this action.",
        ),
        (
            bearer(lk_token(client, str(room.id), ttl=-1)),
            "Invalid LiveKit token: Signature has expired",
        ),
    ]
    forged = jwt.encode(
        jwt.decode(lk_token(client, str(room.id)), options={"verify_signature": False}),
        "a-forged-secret-that-is-long-enough-0123456789",
        algorithm="HS256",
    )
    cases.append((bearer(forged), "Invalid LiveKit token: Signature verification failed"))
    for headers, detail in cases:
        response = await client.post(target, headers=headers)
        assert response.status == 403, (headers, await response.text())
        assert await response.json() == {"detail": detail}
    # A session, even the owner's, is not a LiveKit token.
    login(client, client.app[keys.SESSIONS], owner)
    response = await client.post(target)
    assert response.status == 403
    response = await client.post(
        subtitle_url(str(uuid.uuid4())), headers=bearer(lk_token(client, str(room.id)))
    )
    assert response.status == 404
    assert not livekit_standin.calls_for("CreateDispatch")


async def test_start_subtitle_livekit_failures(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(room_subtitle_enabled=True)
    room = await factory.room()
    headers = bearer(lk_token(client, str(room.id)))
    body = {"error": f"Subtitles failed to start for room {room.slug}"}
    livekit_standin.fail("CreateDispatch", "internal", "boom")
    response = await client.post(subtitle_url(room), headers=headers)
    assert response.status == 502 and await response.json() == body
    livekit_standin.stall("CreateDispatch", 2.0)
    response = await client.post(subtitle_url(room), headers=headers)
    assert response.status == 503 and await response.json() == body


# -- metadata collector ------------------------------------------------------------------------


def recording_overrides(**extra: Any) -> dict[str, Any]:
    return {
        "recording_enable": True,
        "s3": S3Settings(
            endpoint_url="http://127.0.0.1:9000",
            bucket="meet-media-storage",
            access_key="minio-access",
            secret_key=Secret("minio-secret-key-" + "m" * 20),
        ),
        **extra,
    }


async def start_recording(
    client: Client, factory: Factory, fake: LiveKitStandin, options: dict[str, Any]
) -> tuple[RoomRecord, uuid.UUID, str]:
    room, owner = await factory.room_with_role("owner")
    fake.join(str(room.id), "speaker")
    await fake.webhooks.drain()
    login(client, client.app[keys.SESSIONS], owner)
    response = await client.post(
        f"/api/v1.0/rooms/{room.id}/start-recording/",
        json={"mode": "transcript", "options": options},
    )
    assert response.status == 201, await response.text()
    async with client.app[keys.SESSIONMAKER]() as session:
        record = await recording_store.in_flight_recording(session, room.id)
    assert record is not None and record.worker_id
    return room, record.id, record.worker_id


async def stored_dispatch(client: Client, recording_id: uuid.UUID) -> str | None:
    async with client.app[keys.SESSIONMAKER]() as session:
        return await integration_store.metadata_dispatch(session, recording_id)


async def test_metadata_collector_follows_the_recording(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(**recording_overrides(metadata_collector_enabled=True))
    room, recording_id, egress_id = await start_recording(
        client, factory, livekit_standin, {"collect_metadata": True}
    )
    [dispatch] = livekit_standin.rooms.list_dispatch(str(room.id))
    assert dispatch.agent_name == "metadata-collector"
    assert dispatch.metadata == str(recording_id)
    assert await stored_dispatch(client, recording_id) == dispatch.id

    livekit_standin.advance_egress(egress_id, api.EgressStatus.EGRESS_ACTIVE)
    livekit_standin.advance_egress(egress_id, api.EgressStatus.EGRESS_COMPLETE)
    await livekit_standin.webhooks.drain()
    assert livekit_standin.rooms.list_dispatch(str(room.id)) == []
    [delete] = livekit_standin.calls_for("DeleteDispatch")
    assert delete.status == 200
    assert await stored_dispatch(client, recording_id) == dispatch.id  # kept on the recording


@pytest.mark.parametrize(
    ("enabled", "options"),
    [(False, {"collect_metadata": True}), (True, {}), (True, {"collect_metadata": False})],
)
async def test_metadata_collector_only_when_enabled_and_asked(
    make_client: MakeClient,
    factory: Factory,
    livekit_standin: LiveKitStandin,
    enabled: bool,
    options: dict[str, Any],
) -> None:
    client = await make_client(**recording_overrides(metadata_collector_enabled=enabled))
    _, recording_id, egress_id = await start_recording(client, factory, livekit_standin, options)
    assert not livekit_standin.calls_for("CreateDispatch")
    assert await stored_dispatch(client, recording_id) is None
    livekit_standin.advance_egress(egress_id, api.EgressStatus.EGRESS_COMPLETE)
    await livekit_standin.webhooks.drain()
    assert not livekit_standin.calls_for("DeleteDispatch")


async def test_metadata_collector_failures(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(**recording_overrides(metadata_collector_enabled=True))
    # A failed dispatch does not fail the recording (Meet: a warning).
    livekit_standin.fail("CreateDispatch", "internal", "boom")
    _, recording_id, _ = await start_recording(
        client, factory, livekit_standin, {"collect_metadata": True}
    )
    assert await stored_dispatch(client, recording_id) is None
    # A failed deletion at egress_ended answers 503: LiveKit delivers again and it is retried.
    room, recording_id, egress_id = await start_recording(
        client, factory, livekit_standin, {"collect_metadata": True}
    )
    assert await stored_dispatch(client, recording_id) is not None
    livekit_standin.fail("DeleteDispatch", "unavailable", "down")
    livekit_standin.advance_egress(egress_id, api.EgressStatus.EGRESS_COMPLETE)
    await livekit_standin.webhooks.drain()
    statuses = [c.status for c in livekit_standin.calls_for("DeleteDispatch")]
    assert statuses == [503, 200]
    assert livekit_standin.rooms.list_dispatch(str(room.id)) == []


async def test_metadata_collector_withdrawn_when_it_cannot_be_recorded(
    make_client: MakeClient,
    factory: Factory,
    livekit_standin: LiveKitStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database failure cannot be produced on demand here: the one mock of this file."""

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(integration_store, "set_metadata_dispatch", broken)
    client = await make_client(**recording_overrides(metadata_collector_enabled=True))
    room, recording_id, _ = await start_recording(
        client, factory, livekit_standin, {"collect_metadata": True}
    )
    assert [c.status for c in livekit_standin.calls_for("DeleteDispatch")] == [200]
    assert livekit_standin.rooms.list_dispatch(str(room.id)) == []
    assert await stored_dispatch(client, recording_id) is None


# -- SIP dispatch rules ----------------------------------------------------------------------


def rules_of(fake: LiveKitStandin, room: RoomRecord) -> list[api.SIPDispatchRuleInfo]:
    return [r for r in fake.sip.rules if r.name == f"SIP_{room.id}"]


@pytest.mark.parametrize("flag", ["room_telephony_enabled", "roomkit_enabled"])
async def test_sip_rule_follows_the_room(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin, flag: str
) -> None:
    await make_client(**{flag: True})
    room = await factory.room(pin_code="1234567890")
    livekit_standin.join(str(room.id), "ada")
    await livekit_standin.webhooks.drain()
    [rule] = rules_of(livekit_standin, room)
    assert rule.rule.dispatch_rule_direct.room_name == str(room.id)
    assert rule.rule.dispatch_rule_direct.pin == "1234567890"
    # A redelivered room_started keeps one rule.
    [started] = livekit_standin.webhooks.named("room_started")
    livekit_standin.webhooks.redeliver(started.id)
    await livekit_standin.webhooks.drain()
    assert len(rules_of(livekit_standin, room)) == 1
    livekit_standin.close_room(str(room.id))
    await livekit_standin.webhooks.drain()
    assert rules_of(livekit_standin, room) == []


async def test_no_sip_calls_when_both_flags_are_off(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    await make_client()
    room = await factory.room(pin_code="1234567890")
    livekit_standin.join(str(room.id), "ada")
    livekit_standin.close_room(str(room.id))
    await livekit_standin.webhooks.drain()
    assert not [c for c in livekit_standin.calls if c.service == "SIP"]


async def test_sip_rule_needs_a_registered_room_with_a_pin(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    await make_client(room_telephony_enabled=True)
    room = await factory.room()  # no PIN: a direct rule without one would take every call
    pinned = await factory.room(pin_code="1234567890")
    names = (str(room.id), "unregistered-room", str(uuid.uuid4()), str(pinned.id).upper())
    for name in names:
        livekit_standin.join(name, "ada")
    await livekit_standin.webhooks.drain()
    assert livekit_standin.sip.rules == []
    assert not livekit_standin.calls_for("CreateSIPDispatchRule")


async def test_sip_failure_on_webhook_is_retried(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    await make_client(room_telephony_enabled=True)
    room = await factory.room(pin_code="1234567890")
    livekit_standin.fail("CreateSIPDispatchRule", "internal", "boom")
    livekit_standin.join(str(room.id), "ada")
    await livekit_standin.webhooks.drain()
    assert [c.status for c in livekit_standin.calls_for("CreateSIPDispatchRule")] == [500, 200]
    assert len(rules_of(livekit_standin, room)) == 1
    livekit_standin.fail("DeleteSIPDispatchRule", "unavailable", "down")
    livekit_standin.close_room(str(room.id))
    await livekit_standin.webhooks.drain()
    assert rules_of(livekit_standin, room) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, {"enabled": False}),
        ({"room_telephony_phone_number": "0123456789"}, {"enabled": False}),  # flag off
        (
            {"room_telephony_enabled": True, "room_telephony_phone_number": "0123456789"},
            {
                "enabled": True,
                "default_country": "FR",
                "international_phone_number": "+33 1 23 45 67 89",
            },
        ),
        (
            {
                "room_telephony_enabled": True,
                "room_telephony_phone_number": "+1 650 253 0000",
                "room_telephony_default_country": "FR",
            },
            {
                "enabled": True,
                "default_country": "US",
                "international_phone_number": "+1 650-253-0000",
            },
        ),
        ({"room_telephony_enabled": True, "room_telephony_phone_number": "x"}, {"enabled": False}),
        ({"room_telephony_enabled": True}, {"enabled": False}),
    ],
)
async def test_config_announces_the_dial_in_number(
    make_client: MakeClient, overrides: dict[str, Any], expected: dict[str, Any]
) -> None:
    overrides.setdefault("room_telephony_default_country", "FR")
    client = await make_client(**overrides)
    assert (await config(client))["telephony"] == expected


# -- roomkit join ----------------------------------------------------------------------------

JOIN = "/api/v1.0/roomkit/join/"
S2S = {"Authorization": f"Bearer {ROOMKIT_TOKEN}"}


def roomkit(**extra: Any) -> dict[str, Any]:
    return {
        "roomkit_enabled": True,
        "roomkit_server_to_server_api_token": Secret(ROOMKIT_TOKEN),
        **extra,
    }


async def test_roomkit_join_authentication(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(**roomkit())
    await factory.room(pin_code="1234567890")
    body = {"pin_code": "1234567890"}
    cases = [
        ({}, "Authorization header is missing."),
        ({"Authorization": ROOMKIT_TOKEN}, "Invalid authorization header."),
        ({"Authorization": f"bearer {ROOMKIT_TOKEN}"}, "Invalid authorization header."),
        ({"Authorization": "Bearer wrong-token"}, "Invalid server-to-server token."),
        ({"Authorization": f"Bearer {ROOMKIT_TOKEN}x"}, "Invalid server-to-server token."),
    ]
    for headers, detail in cases:
        response = await client.post(JOIN, json=body, headers=headers)
        assert response.status == 401 and await response.json() == {"detail": detail}
        assert response.headers["WWW-Authenticate"] == "Bearer realm='Roomkit server to server'"
    unset = await make_client(roomkit_enabled=True)
    response = await unset.post(JOIN, json=body, headers=S2S)
    assert response.status == 401
    assert await response.json() == {"detail": "Server-to-server token is not configured."}
    assert not [c for c in livekit_standin.calls if c.service == "SIP"]


async def test_roomkit_join_is_404_when_off(make_client: MakeClient, factory: Factory) -> None:
    client = await make_client(**roomkit(roomkit_enabled=False))
    await factory.room(pin_code="1234567890")
    response = await client.post(JOIN, json={"pin_code": "1234567890"}, headers=S2S)
    assert response.status == 404 and await response.json() == {"detail": "Not found."}
    # Authentication still comes first.
    assert (await client.post(JOIN, json={"pin_code": "1234567890"})).status == 401


async def test_roomkit_join_validates_the_pin(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(**roomkit())
    await factory.room(pin_code="1234567890")
    cases: list[tuple[Any, int, Any]] = [
        ({}, 400, {"pin_code": ["This field is required."]}),
        ({"pin_code": ""}, 400, {"pin_code": ["This field may not be blank."]}),
        ({"pin_code": "   "}, 400, {"pin_code": ["This field may not be blank."]}),
        ({"pin_code": None}, 400, {"pin_code": ["This field may not be null."]}),
        ({"pin_code": "123"}, 400, {"pin_code": ["PIN code length is invalid."]}),
        ({"pin_code": True}, 400, {"pin_code": ["Not a valid string."]}),
        ({"pin_code": ["1234567890"]}, 400, {"pin_code": ["Not a valid string."]}),
        (["1234567890"], 400, None),
        ({"pin_code": "0987654321"}, 404, {"detail": "No room found for this PIN code."}),
        ({"pin_code": "12345\x0067890"[:10]}, 404, {"detail": "No room found for this PIN code."}),
        ({"pin_code": "\uff11" * 10}, 404, {"detail": "No room found for this PIN code."}),
        ({"pin_code": "123456789'"}, 404, {"detail": "No room found for this PIN code."}),
    ]
    for body, status, expected in cases:
        response = await client.post(JOIN, json=body, headers=S2S)
        assert response.status == status, (body, await response.text())
        if expected is not None:
            assert await response.json() == expected
    assert livekit_standin.sip.rules == []


async def test_roomkit_join_ensures_the_rule_once(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(**roomkit())
    room = await factory.room(pin_code="1234567890")
    response = await client.post(JOIN, json={"pin_code": "1234567890"}, headers=S2S)
    assert response.status == 200 and await response.json() == {"status": "success"}
    [rule] = rules_of(livekit_standin, room)
    assert rule.rule.dispatch_rule_direct.pin == "1234567890"
    # Idempotent, also under concurrent joins (a number PIN is read as DRF reads it).
    responses = await asyncio.gather(
        *(client.post(JOIN, json={"pin_code": 1234567890}, headers=S2S) for _ in range(8))
    )
    assert [r.status for r in responses] == [200] * 8
    assert len(rules_of(livekit_standin, room)) == 1
    # A multipart form is read too (DRF's parsers); other media types are refused.
    form = aiohttp.FormData({"pin_code": "1234567890"}, default_to_multipart=True)
    response = await client.post(JOIN, data=form, headers=S2S)
    assert response.status == 200
    urlencoded = aiohttp.FormData({"pin_code": "1234567890"})
    assert (await client.post(JOIN, data=urlencoded, headers=S2S)).status == 415
    upload = aiohttp.FormData()
    upload.add_field("pin_code", b"1234567890", filename="pin.txt")
    response = await client.post(JOIN, data=upload, headers=S2S)
    assert response.status == 400
    assert await response.json() == {"pin_code": ["Not a valid string."]}


async def test_roomkit_join_livekit_failures(
    make_client: MakeClient, factory: Factory, livekit_standin: LiveKitStandin
) -> None:
    client = await make_client(**roomkit())
    await factory.room(pin_code="1234567890")
    body = {"pin_code": "1234567890"}
    livekit_standin.fail("ListSIPDispatchRule", "internal", "boom")
    response = await client.post(JOIN, json=body, headers=S2S)
    assert response.status == 502
    assert await response.json() == {"detail": "Could not create dispatch rule."}
    livekit_standin.stall("CreateSIPDispatchRule", 2.0)
    response = await client.post(JOIN, json=body, headers=S2S)
    assert response.status == 503
    assert await response.json() == {"detail": "Could not create dispatch rule."}


async def test_roomkit_join_floods_are_throttled(make_client: MakeClient, factory: Factory) -> None:
    client = await make_client(**roomkit(roomkit_join_throttle_rate=(5, 60)))
    await factory.room(pin_code="1234567890")
    statuses = []
    for n in range(8):
        response = await client.post(JOIN, json={"pin_code": f"{n:010d}"}, headers=S2S)
        statuses.append(response.status)
    assert statuses == [404] * 5 + [429] * 3
    # Even the right PIN waits: one bucket for the SIP module.
    response = await client.post(JOIN, json={"pin_code": "1234567890"}, headers=S2S)
    assert response.status == 429
