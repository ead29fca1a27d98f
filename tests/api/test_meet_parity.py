"""Meet behaviours found by running Meet's own API tests against us (issue 8, point 3).

Booleans read as Meet reads them, the ``update-participant`` rules and messages, bodies Meet
answers with 400 that used to be 500 here (deep JSON, NUL and lone surrogates in names).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.test_participants import in_room, lk_token, url
from tests.api.test_recordings_flow import Env, env, env_factory, recording_of  # noqa: F401
from tests.livekit_standin import LiveKitStandin
from tests.support.factories import Factory

Client = TestClient[Any, Any]
LogIn = Any

# Pydantic's lax booleans (Meet's own models: configuration, permission, recording options).
SCHEMA_TRUE = [True, 1, 1.0, "1", "true", "True", "TRUE", "tRuE", "yes", "YES", "on", "y", "t"]
SCHEMA_FALSE = [False, 0, 0.0, "0", "false", "False", "FALSE", "no", "No", "off", "OFF", "n", "f"]
# DRF's BooleanField sets (allow_entry, raised): listed casings only.
FORM_TRUE = [True, 1, 1.0, "1", "t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE"]
FORM_TRUE += ["on", "On", "ON"]
FORM_FALSE = [False, 0, 0.0, "0", "f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE"]
FORM_FALSE += ["off", "Off", "OFF"]
NOT_BOOLEANS = [2, -1, 0.5, "2", "", "maybe", " true", [], {}]


# -- booleans --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [*((v, True) for v in SCHEMA_TRUE), *((v, False) for v in SCHEMA_FALSE)],
)
async def test_configuration_booleans_read_as_meet_reads_them(
    client: Client, factory: Factory, log_in: LogIn, value: Any, expected: bool
) -> None:
    """Stored normalised: Meet keeps the raw value, so its ``"no"`` is truthy and lets
    everyone mute; we store what Meet's own schema says the value means."""
    log_in(await factory.user())
    response = await client.post(
        "/api/v1.0/rooms/", json={"name": "bools", "configuration": {"everyone_can_mute": value}}
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["configuration"] == {"everyone_can_mute": expected}
    me = await (await client.get("/api/v1.0/users/me/")).json()
    response = await client.patch(
        f"/api/v1.0/users/{me['id']}/",
        json={"default_room_configuration": {"everyone_can_mute": value}},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["default_room_configuration"] == {"everyone_can_mute": expected}


@pytest.mark.parametrize("value", NOT_BOOLEANS)
async def test_configuration_non_booleans_are_400_in_pydantic_shape(
    client: Client, factory: Factory, log_in: LogIn, value: Any
) -> None:
    log_in(await factory.user())
    response = await client.post(
        "/api/v1.0/rooms/", json={"name": "bools", "configuration": {"everyone_can_mute": value}}
    )
    assert response.status == 400
    [error] = (await response.json())["configuration"]
    assert error["loc"] == ["everyone_can_mute"]
    assert error["type"] in ("bool_parsing", "bool_type")
    assert error["msg"].startswith("Input should be a valid boolean")


@pytest.mark.parametrize(("value", "expected"), [("yes", True), ("OFF", False), (1, True)])
async def test_start_recording_reads_transcribe_as_meet(
    env: Env,  # noqa: F811
    value: Any,
    expected: bool,
) -> None:
    room, owner = await env_factory(env).room_with_role("owner")
    env.livekit.join(str(room.id), "speaker")
    await env.livekit.webhooks.drain()
    env.log_in(owner)
    response = await env.client.post(
        url(room, "start-recording"),
        json={"mode": "screen_recording", "options": {"transcribe": value}},
    )
    assert response.status == 201, await response.text()
    [record] = await recording_of(env, room)
    assert record.options == {"transcribe": expected}


@pytest.mark.parametrize(
    ("value", "expected"),
    [*((v, True) for v in FORM_TRUE), *((v, False) for v in FORM_FALSE)],
)
async def test_toggle_hand_reads_raised_as_drf(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, value: Any, expected: bool
) -> None:
    room = await factory.room()
    await in_room(livekit_standin, room, "ada")
    headers = lk_token(lk_client, str(room.id), "ada")
    response = await lk_client.post(
        url(room, "toggle-hand"), json={"raised": value}, headers=headers
    )
    assert response.status == 200, await response.text()
    [ada] = [p for p in livekit_standin.participants(str(room.id)) if p.identity == "ada"]
    assert bool(ada.attributes.get("handRaisedAt")) is expected


@pytest.mark.parametrize("value", [*NOT_BOOLEANS, "tRuE", "yEs"])
async def test_toggle_hand_refuses_what_drf_refuses(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, value: Any
) -> None:
    room = await factory.room()
    await in_room(livekit_standin, room, "ada")
    headers = lk_token(lk_client, str(room.id), "ada")
    response = await lk_client.post(
        url(room, "toggle-hand"), json={"raised": value}, headers=headers
    )
    assert response.status == 400
    assert await response.json() == {"raised": ["Must be a valid boolean."]}
    assert not livekit_standin.calls_for("UpdateParticipant")


async def test_toggle_hand_null_is_drfs_null_message(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory
) -> None:
    room = await factory.room()
    headers = lk_token(lk_client, str(room.id), "ada")
    response = await lk_client.post(
        url(room, "toggle-hand"), json={"raised": None}, headers=headers
    )
    assert response.status == 400
    assert await response.json() == {"raised": ["This field may not be null."]}
    response = await lk_client.post(url(room, "toggle-hand"), json={}, headers=headers)
    assert await response.json() == {"raised": ["This field is required."]}


@pytest.mark.parametrize(("value", "status"), [("no", "denied"), ("Yes", "accepted")])
async def test_enter_reads_allow_entry_as_drf(
    lk_client: Client, factory: Factory, lk_log_in: LogIn, value: str, status: str
) -> None:
    room, owner = await factory.room_with_role("owner", access_level="restricted")
    guest = await (
        await lk_client.post(url(room, "request-entry"), json={"username": "Guest"})
    ).json()
    lk_client.session.cookie_jar.clear()
    lk_log_in(owner)
    response = await lk_client.post(
        url(room, "enter"), json={"participant_id": guest["id"], "allow_entry": value}
    )
    assert response.status == 200, await response.text()
    live = await (await lk_client.get(url(room, "live"))).json()
    assert [(e["id"], e["status"]) for e in live["lobby"]] == [(guest["id"], status)]


async def test_permission_booleans_read_as_meet(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    await in_room(livekit_standin, room, "bob")
    lk_log_in(owner)
    payload = {
        "participant_identity": "bob",
        "permission": {"can_publish": "yes", "can_subscribe": "0", "can_publish_data": 1},
    }
    response = await lk_client.post(url(room, "update-participant"), json=payload)
    assert response.status == 200, await response.text()
    request: Any = livekit_standin.calls_for("UpdateParticipant")[-1].request
    assert request.permission.can_publish is True
    assert request.permission.can_subscribe is False
    assert request.permission.can_publish_data is True


# -- update-participant ----------------------------------------------------------------------


async def test_update_participant_accepts_an_empty_permission(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    await in_room(livekit_standin, room, "bob")
    lk_log_in(owner)
    response = await lk_client.post(
        url(room, "update-participant"), json={"participant_identity": "bob", "permission": {}}
    )
    assert response.status == 200, await response.text()
    assert await response.json() == {"status": "success"}
    [call] = livekit_standin.calls_for("UpdateParticipant")
    request: Any = call.request
    assert request.identity == "bob" and request.HasField("permission")


@pytest.mark.parametrize(
    "extra", [{}, {"name": ""}, {"metadata": None, "attributes": None, "permission": None}]
)
async def test_update_participant_with_nothing_to_update(
    lk_client: Client,
    livekit_standin: LiveKitStandin,
    factory: Factory,
    lk_log_in: LogIn,
    extra: dict[str, Any],
) -> None:
    room, owner = await factory.room_with_role("owner")
    lk_log_in(owner)
    response = await lk_client.post(
        url(room, "update-participant"), json={"participant_identity": "bob", **extra}
    )
    assert response.status == 400
    assert await response.json() == {
        "non_field_errors": [
            "At least one of the following fields must be provided: "
            "metadata, attributes, permission, name."
        ]
    }
    assert not livekit_standin.calls_for("UpdateParticipant")


async def test_update_participant_unknown_permission_key_is_pydantic_shaped(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    lk_log_in(owner)
    response = await lk_client.post(
        url(room, "update-participant"),
        json={"participant_identity": "bob", "permission": {"invalid-attributes": True}},
    )
    assert response.status == 400
    body = await response.json()
    [error] = body["permission"]
    assert error.pop("url").endswith("/v/extra_forbidden")
    assert body == {
        "permission": [
            {
                "type": "extra_forbidden",
                "loc": ["invalid-attributes"],
                "msg": "Extra inputs are not permitted",
                "input": "True",
            }
        ]
    }
    assert not livekit_standin.calls_for("UpdateParticipant")


@pytest.mark.parametrize(
    ("permission", "named"),
    [({"hidden": False}, "hidden"), ({"recorder": True, "agent": False}, "recorder, agent")],
)
async def test_update_participant_forbidden_permissions_message(
    lk_client: Client, factory: Factory, lk_log_in: LogIn, permission: Any, named: str
) -> None:
    room, owner = await factory.room_with_role("owner")
    lk_log_in(owner)
    response = await lk_client.post(
        url(room, "update-participant"),
        json={"participant_identity": "bob", "permission": permission},
    )
    assert response.status == 400
    assert await response.json() == {
        "permission": [f"Setting the following participant permissions is not allowed: {named}."]
    }


# -- LiveKit tokens for another room ---------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("mute-participant", {"participant_identity": "bob", "track_sid": "TR_x"}),
        ("toggle-hand", {"raised": True}),
        ("rename", {"name": "x"}),
    ],
)
async def test_livekit_token_for_another_room_is_meets_permission_refusal(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, action: str, body: Any
) -> None:
    room = await factory.room()
    other = await factory.room()
    await in_room(livekit_standin, room, "ada", "bob")
    headers = lk_token(lk_client, str(other.id), "ada")
    response = await lk_client.post(url(room, action), json=body, headers=headers)
    assert response.status == 403
    assert await response.json() == {"detail": "You do not have permission to perform this action."}


# -- resource accesses -----------------------------------------------------------------------

ACCESSES = "/api/v1.0/resource-accesses/"


@pytest.mark.parametrize("requester", ["owner", "administrator"])
@pytest.mark.parametrize("changed", ["id", "user", "resource", "nothing"])
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_an_owners_access_is_written_by_that_owner_only(
    client: Client, factory: Factory, log_in: LogIn, requester: str, changed: str, method: str
) -> None:
    room, caller = await factory.room_with_role(requester)
    other_owner = await factory.user()
    access = await factory.access(room, other_owner, "owner")
    body: dict[str, Any] = {
        "id": str(access.id),
        "user": str(other_owner.id),
        "resource": str(room.id),
        "role": "owner",
    }
    if changed == "id":
        body["id"] = str(uuid.uuid4())
    elif changed == "user":
        body["user"] = str(caller.id)
    elif changed == "resource":
        body["resource"] = str((await factory.room()).id)
    log_in(caller)
    response = await client.request(method, f"{ACCESSES}{access.id}/", json=body)
    assert response.status == 403
    assert await response.json() == {
        "detail": "Only owners of a room can assign other users as owners."
    }
    if method == "PATCH":
        response = await client.patch(f"{ACCESSES}{access.id}/", json={})
        assert response.status == 403
    stored = await (await client.get(f"{ACCESSES}{access.id}/")).json()
    assert stored == {
        "id": str(access.id),
        "user": str(other_owner.id),
        "resource": str(room.id),
        "role": "owner",
    }


async def test_an_owner_rewrites_their_own_access_unchanged(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    owner = await factory.user()
    room = await factory.room(owner=owner)
    log_in(owner)
    [mine] = (await (await client.get(ACCESSES)).json())["results"]
    response = await client.put(
        f"{ACCESSES}{mine['id']}/", json={**mine, "user": str(uuid.uuid4())}
    )
    assert response.status == 200
    assert await response.json() == mine
    del room


# -- users: authentication before 405 --------------------------------------------------------

USERS_NOT_ALLOWED = [
    ("POST", "/api/v1.0/users/"),
    ("PUT", "/api/v1.0/users/"),
    ("PATCH", "/api/v1.0/users/"),
    ("DELETE", "/api/v1.0/users/"),
    ("POST", "/api/v1.0/users/me/"),
    ("PUT", "/api/v1.0/users/me/"),
    ("PATCH", "/api/v1.0/users/me/"),
    ("DELETE", "/api/v1.0/users/me/"),
    ("GET", "/api/v1.0/users/{id}/"),
    ("POST", "/api/v1.0/users/{id}/"),
    ("DELETE", "/api/v1.0/users/{id}/"),
]


@pytest.mark.parametrize(("method", "path"), USERS_NOT_ALLOWED)
async def test_users_routes_check_authentication_before_the_method(
    client: Client, factory: Factory, log_in: LogIn, method: str, path: str
) -> None:
    user = await factory.user()
    target = path.format(id=user.id)
    response = await client.request(method, target, json={})
    assert response.status == 401
    assert await response.json() == {"detail": "Authentication credentials were not provided."}
    log_in(user)
    response = await client.request(method, target, json={})
    assert response.status == 405
    assert await response.json() == {"detail": f'Method "{method}" not allowed.'}


# -- hostile bodies: deep JSON, NUL and lone surrogates ------------------------------------

DEEP = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, "[" * 100_000 + "]" * 100_000])
async def test_deeply_nested_json_is_400(
    client: Client, factory: Factory, log_in: LogIn, body: str
) -> None:
    room = await factory.room()
    headers = {"Content-Type": "application/json"}
    for path in (f"/api/v1.0/rooms/{room.id}/request-entry/", "/api/v1.0/rooms/"):
        response = await client.post(path, data=body, headers=headers)
        assert response.status in (400, 401), (path, await response.text())
        if response.status == 400:
            assert (await response.json())["detail"].startswith("JSON parse error")
    log_in(await factory.user())
    response = await client.post("/api/v1.0/rooms/", data=body, headers=headers)
    assert response.status == 400
    assert (await response.json())["detail"].startswith("JSON parse error")
    nested = '{"participant_identity": "bob", "metadata": ' + DEEP_OBJECT + "}"
    response = await client.post(
        f"/api/v1.0/rooms/{room.id}/update-participant/", data=nested, headers=headers
    )
    assert response.status in (400, 403)


NUL = "a\u0000b"
SURROGATE = "a\ud800b"


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
async def test_nul_and_surrogates_in_names_are_400(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn, bad: str
) -> None:
    message = (
        "Null characters are not allowed."
        if bad == NUL
        else "Surrogate characters are not allowed: U+D800."
    )
    room, owner = await factory.room_with_role("owner", access_level="restricted")
    response = await lk_client.post(url(room, "request-entry"), json={"username": bad})
    assert response.status == 400
    assert await response.json() == {"username": [message]}
    if bad == NUL:  # a lone surrogate cannot travel in a URL (UTF-8 has no encoding for it)
        response = await lk_client.get(f"/api/v1.0/rooms/{room.slug}/?username=a%00b")
        assert response.status == 400
        assert await response.json() == {"username": [message]}
    await in_room(livekit_standin, room, "ada")
    headers = lk_token(lk_client, str(room.id), "ada")
    response = await lk_client.post(url(room, "rename"), json={"name": bad}, headers=headers)
    assert response.status == 400
    assert await response.json() == {"name": [message]}
    lk_log_in(owner)
    for payload in ({"name": bad}, {"name": "ok", "callback_id": bad}):
        response = await lk_client.post("/api/v1.0/rooms/", json=payload)
        assert response.status == 400, payload
        assert list(await response.json()) == list(payload)[-1:]
    response = await lk_client.patch(f"/api/v1.0/rooms/{room.id}/", json={"name": bad})
    assert response.status == 400
    assert await response.json() == {"name": [message]}
    if bad == NUL:
        response = await lk_client.get("/api/v1.0/users/?q=a%00b")
        assert response.status == 400
        assert await response.json() == {"q": [message]}
    response = await lk_client.post(
        url(room, "update-participant"), json={"participant_identity": bad, "name": "x"}
    )
    assert response.status == 400
    assert await response.json() == {"participant_identity": [message]}
    rooms = await (await lk_client.get("/api/v1.0/rooms/")).json()
    assert [r["name"] for r in rooms["results"]] == [room.name]
