"""Rooms CRUD and the room-permission table (reference §1.3, §2.4), on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from livekit.api import TokenVerifier

from api import keys
from storage.records import UserRecord
from tests.conftest import LIVEKIT_KEY, LIVEKIT_SECRET
from tests.support.factories import Factory

Client = TestClient[Any, Any]
LogIn = Callable[[UserRecord], None]
ROLES: list[str | None] = [None, "member", "administrator", "owner"]
ALL_SOURCES = ["camera", "microphone", "screen_share", "screen_share_audio"]


def verify(token: str) -> Any:
    return TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(token)


async def caller(factory: Factory, log_in: LogIn, role: str | None, who: str, **room: Any) -> Any:
    """A room, and the test client logged in as ``who`` ("anonymous" or a user with ``role``)."""
    room_record, user = await factory.room_with_role(role, **room)
    if who != "anonymous":
        log_in(user)
    return room_record, user


# -- retrieve: the permission table --------------------------------------------------------

# (who, role, access level) → receives a LiveKit token
TOKEN_TABLE = [
    ("anonymous", None, "public", True),
    ("anonymous", None, "trusted", False),
    ("anonymous", None, "restricted", False),
    ("user", None, "public", True),
    ("user", None, "trusted", True),
    ("user", None, "restricted", False),
    ("user", "member", "public", True),
    ("user", "member", "trusted", True),
    ("user", "member", "restricted", True),
    ("user", "administrator", "restricted", True),
    ("user", "owner", "restricted", True),
    ("user", "administrator", "trusted", True),
    ("user", "owner", "public", True),
]


@pytest.mark.parametrize(("who", "role", "level", "gets_token"), TOKEN_TABLE)
async def test_retrieve_token_follows_access_level_and_role(
    client: Client,
    factory: Factory,
    log_in: LogIn,
    who: str,
    role: str | None,
    level: str,
    gets_token: bool,
) -> None:
    room, user = await caller(factory, log_in, role, who, access_level=level, pin_code="0123456789")
    response = await client.get(f"/api/v1.0/rooms/{room.id}/")
    assert response.status == 200
    body = await response.json()
    assert body["id"] == str(room.id)
    assert body["slug"] == room.slug
    assert body["access_level"] == level
    assert body["configuration"] == {}
    assert ("livekit" in body) is gets_token
    assert ("pin_code" in body) is gets_token
    assert ("accesses" in body) is (role in ("administrator", "owner"))
    if gets_token:
        assert body["pin_code"] == "0123456789"
        assert body["livekit"]["room"] == str(room.id)
        assert body["livekit"]["url"] == "http://127.0.0.1:7880"
        claims = verify(body["livekit"]["token"])
        assert claims.video.room == str(room.id)
        assert claims.video.room_join is True
        assert claims.video.room_admin is (role in ("administrator", "owner"))
        assert claims.video.can_update_own_metadata is False
        assert claims.attributes["is_authenticated"] == ("false" if who == "anonymous" else "true")
        assert claims.attributes["color"].startswith("hsl(")
        if who == "anonymous":
            assert claims.name == "Anonymous"
            uuid.UUID(claims.identity)
        else:
            assert claims.identity == user.sub
            assert claims.name == user.full_name


async def test_accesses_listed_for_privileged_with_user_objects(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    room, admin = await factory.room_with_role("administrator")
    log_in(admin)
    body = await (await client.get(f"/api/v1.0/rooms/{room.slug}/")).json()
    accesses = body["accesses"]
    assert len(accesses) == 2
    mine = next(a for a in accesses if a["user"]["id"] == str(admin.id))
    assert mine["role"] == "administrator"
    assert mine["resource"] == str(room.id)
    assert set(mine["user"]) >= {"id", "email", "full_name", "short_name"}


async def test_sources_follow_configuration_except_for_privileged(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    config = {"can_publish_sources": ["microphone"]}
    room, member = await factory.room_with_role("member", configuration=config)
    log_in(member)
    body = await (await client.get(f"/api/v1.0/rooms/{room.id}/")).json()
    claims = verify(body["livekit"]["token"])
    assert claims.video.can_publish_sources == ["microphone"]
    assert claims.video.can_publish is True
    assert claims.attributes["room_role"] == "member"

    empty, other = await factory.room_with_role("member", configuration={"can_publish_sources": []})
    log_in(other)
    body = await (await client.get(f"/api/v1.0/rooms/{empty.id}/")).json()
    claims = verify(body["livekit"]["token"])
    assert claims.video.can_publish is False
    assert not claims.video.can_publish_sources

    room2, owner = await factory.room_with_role("owner", configuration=config)
    log_in(owner)
    body = await (await client.get(f"/api/v1.0/rooms/{room2.id}/")).json()
    claims = verify(body["livekit"]["token"])
    assert claims.video.can_publish_sources == ALL_SOURCES


async def test_username_sets_display_name(client: Client, factory: Factory, log_in: LogIn) -> None:
    room = await factory.room()
    body = await (await client.get(f"/api/v1.0/rooms/{room.id}/?username=Ada")).json()
    assert verify(body["livekit"]["token"]).name == "Ada"
    user = await factory.user()
    log_in(user)
    body = await (await client.get(f"/api/v1.0/rooms/{room.id}/?username=Grace")).json()
    assert verify(body["livekit"]["token"]).name == "Grace"


async def test_lookup_by_slug_and_unnormalised_slug(client: Client, factory: Factory) -> None:
    room = await factory.room(name="Réunion d'équipe")
    assert room.slug == "reunion-dequipe"
    for segment in ("reunion-dequipe", "Réunion d'équipe", "REUNION-DEQUIPE"):
        response = await client.get(f"/api/v1.0/rooms/{segment}/")
        assert response.status == 200
        assert (await response.json())["id"] == str(room.id)


async def test_unregistered_room_allowed(client: Client) -> None:
    response = await client.get("/api/v1.0/rooms/Some Unknown Room/")
    assert response.status == 200
    body = await response.json()
    assert body["id"] is None
    assert body["slug"] == "some-unknown-room"
    assert body["is_administrable"] is False
    assert body["access_level"] == "public"
    assert body["livekit"]["room"] == "some-unknown-room"
    claims = verify(body["livekit"]["token"])
    assert claims.video.room == "some-unknown-room"
    assert claims.video.room_admin is False
    assert claims.video.can_publish_sources == ALL_SOURCES


async def test_unregistered_room_refused_when_disabled(
    aiohttp_client: Any, database_url: str
) -> None:
    from api.app import create_app
    from tests.conftest import make_settings

    client = await aiohttp_client(
        create_app(make_settings(database_url, allow_unregistered_rooms=False))
    )
    response = await client.get("/api/v1.0/rooms/nowhere/")
    assert response.status == 404
    assert await response.json() == {"detail": "No Room matches the given query."}


# -- list ----------------------------------------------------------------------------------


async def test_list_anonymous_is_empty(client: Client, factory: Factory) -> None:
    await factory.room()
    body = await (await client.get("/api/v1.0/rooms/")).json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.parametrize("role", ROLES)
async def test_list_shows_rooms_with_a_role(
    client: Client, factory: Factory, log_in: LogIn, role: str | None
) -> None:
    room, user = await factory.room_with_role(role)
    log_in(user)
    body = await (await client.get("/api/v1.0/rooms/")).json()
    ids = [item["id"] for item in body["results"]]
    assert ids == ([] if role is None else [str(room.id)])
    if role is not None:
        assert "livekit" in body["results"][0]


async def test_list_pagination_and_page_size(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    user = await factory.user()
    for index in range(5):
        await factory.room(owner=user, name=f"room {index}")
    log_in(user)
    body = await (await client.get("/api/v1.0/rooms/?page_size=2")).json()
    assert body["count"] == 5
    assert [r["name"] for r in body["results"]] == ["room 0", "room 1"]
    assert body["previous"] is None
    assert "page=2" in body["next"]
    body = await (await client.get("/api/v1.0/rooms/?page_size=2&page=3")).json()
    assert [r["name"] for r in body["results"]] == ["room 4"]
    assert body["next"] is None
    assert "page=2" in body["previous"]
    response = await client.get("/api/v1.0/rooms/?page=9")
    assert response.status == 404
    assert await response.json() == {"detail": "Invalid page."}
    body = await (await client.get("/api/v1.0/rooms/?page_size=1000")).json()
    assert len(body["results"]) == 5


# -- create --------------------------------------------------------------------------------


async def test_create_requires_authentication(client: Client) -> None:
    response = await client.post("/api/v1.0/rooms/", json={"name": "x"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Session"
    assert await response.json() == {"detail": "Authentication credentials were not provided."}


async def test_create_makes_caller_owner(client: Client, factory: Factory, log_in: LogIn) -> None:
    user = await factory.user()
    log_in(user)
    response = await client.post("/api/v1.0/rooms/", json={"name": "Eléphant in the room"})
    assert response.status == 201
    body = await response.json()
    assert body["slug"] == "elephant-in-the-room"
    assert body["access_level"] == "public"
    assert body["configuration"] == {}
    assert [(a["user"]["id"], a["role"]) for a in body["accesses"]] == [(str(user.id), "owner")]
    assert verify(body["livekit"]["token"]).video.room_admin is True


async def test_create_applies_user_defaults_unless_given(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    user = await factory.user(
        default_room_access_level="restricted",
        default_room_configuration={"everyone_can_mute": False},
    )
    log_in(user)
    body = await (await client.post("/api/v1.0/rooms/", json={"name": "defaults"})).json()
    assert body["access_level"] == "restricted"
    assert body["configuration"] == {"everyone_can_mute": False}
    body = await (
        await client.post(
            "/api/v1.0/rooms/",
            json={
                "name": "explicit",
                "access_level": "trusted",
                "configuration": {"can_publish_sources": ["camera"]},
            },
        )
    ).json()
    assert body["access_level"] == "trusted"
    assert body["configuration"] == {"can_publish_sources": ["camera"]}
    body = await (
        await client.post("/api/v1.0/rooms/", json={"name": "empty conf", "configuration": {}})
    ).json()
    assert body["configuration"] == {"everyone_can_mute": False}


async def test_blank_user_default_level_is_ignored(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    user = await factory.user(default_room_access_level="")
    log_in(user)
    body = await (await client.post("/api/v1.0/rooms/", json={"name": "blank"})).json()
    assert body["access_level"] == "public"


async def test_duplicate_slug_and_reserved_names(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    log_in(await factory.user())
    assert (await client.post("/api/v1.0/rooms/", json={"name": "My Room"})).status == 201
    response = await client.post("/api/v1.0/rooms/", json={"name": "my room!"})
    assert response.status == 400
    assert await response.json() == {"slug": ["Room with this Slug already exists."]}
    name = str(uuid.uuid4())
    response = await client.post("/api/v1.0/rooms/", json={"name": name})
    assert response.status == 400
    assert await response.json() == {"name": [f'Room name "{name}" is reserved.']}


async def test_creation_callback_is_read_once(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    log_in(await factory.user())
    await client.post("/api/v1.0/rooms/", json={"name": "callback room", "callback_id": "cb-1"})
    url = "/api/v1.0/rooms/creation-callback/"
    body = await (await client.post(url, json={"callback_id": "cb-1"})).json()
    assert body == {"status": "success", "room": {"slug": "callback-room"}}
    body = await (await client.post(url, json={"callback_id": "cb-1"})).json()
    assert body == {"status": "success", "room": {}}
    response = await client.post(url, json={})
    assert response.status == 400
    assert await response.json() == {"callback_id": ["This field is required."]}


# -- update and delete ---------------------------------------------------------------------

UPDATE_TABLE = [("anonymous", None, 401), ("user", None, 403), ("user", "member", 403)]
UPDATE_TABLE += [("user", "administrator", 200), ("user", "owner", 200)]


@pytest.mark.parametrize(("who", "role", "status"), UPDATE_TABLE)
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_update_permissions(
    client: Client,
    factory: Factory,
    log_in: LogIn,
    who: str,
    role: str | None,
    status: int,
    method: str,
) -> None:
    room, _ = await caller(factory, log_in, role, who)
    payload = {"name": "Renamed Room", "access_level": "restricted"}
    response = await client.request(method, f"/api/v1.0/rooms/{room.id}/", json=payload)
    assert response.status == status
    after = await (await client.get(f"/api/v1.0/rooms/{room.id}/")).json()
    if status == 200:
        body = await response.json()
        assert body["slug"] == "renamed-room"
        assert body["access_level"] == "restricted"
        assert after["name"] == "Renamed Room"
    else:
        assert after["name"] == room.name
        assert after["access_level"] == "public"


async def test_update_ignores_read_only_fields(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    room, owner = await factory.room_with_role("owner")
    log_in(owner)
    response = await client.patch(
        f"/api/v1.0/rooms/{room.id}/",
        json={"id": str(uuid.uuid4()), "slug": "hacked", "pin_code": "1", "configuration": None},
    )
    assert response.status == 200
    body = await response.json()
    assert body["id"] == str(room.id)
    assert body["slug"] == room.slug


DELETE_TABLE = [("anonymous", None, 401), ("user", None, 403), ("user", "member", 403)]
DELETE_TABLE += [("user", "administrator", 403), ("user", "owner", 204)]


@pytest.mark.parametrize(("who", "role", "status"), DELETE_TABLE)
async def test_delete_permissions(
    client: Client, factory: Factory, log_in: LogIn, who: str, role: str | None, status: int
) -> None:
    room, _ = await caller(factory, log_in, role, who)
    response = await client.delete(f"/api/v1.0/rooms/{room.id}/")
    assert response.status == status
    # A deleted room's id is a 404, never an unregistered room named after it (issue 9).
    exists = (await client.get(f"/api/v1.0/rooms/{room.id}/")).status == 200
    assert exists is (status != 204)


# -- bad input writes nothing --------------------------------------------------------------

BAD_CREATE = [
    ({"name": 12}, {"name": ["Not a valid string."]}),
    ({"name": ""}, {"name": ["This field may not be blank."]}),
    ({"name": "x" * 501}, {"name": ["Ensure this field has no more than 500 characters."]}),
    ({}, {"name": ["This field is required."]}),
    ({"name": "ok", "access_level": "secret"}, None),
    ({"name": "ok", "configuration": {"unknown": 1}}, None),
    ({"name": "ok", "configuration": {"can_publish_sources": ["CAMERA"]}}, None),
    ({"name": "ok", "configuration": {"everyone_can_mute": "maybe"}}, None),
    ({"name": "ok", "configuration": []}, None),
    ({"name": "a" * 101}, None),
    ([1, 2], None),
]


@pytest.mark.parametrize(("payload", "expected"), BAD_CREATE)
async def test_bad_create_payloads_are_400_and_write_nothing(
    client: Client, factory: Factory, log_in: LogIn, payload: Any, expected: Any
) -> None:
    user = await factory.user()
    log_in(user)
    response = await client.post("/api/v1.0/rooms/", json=payload)
    assert response.status == 400
    body = await response.json()
    assert isinstance(body, dict) and body
    if expected is not None:
        assert body == expected
    assert (await (await client.get("/api/v1.0/rooms/")).json())["count"] == 0


async def test_malformed_json_and_wrong_content_type(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    log_in(await factory.user())
    response = await client.post(
        "/api/v1.0/rooms/", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["detail"].startswith("JSON parse error")
    response = await client.post(
        "/api/v1.0/rooms/", data=b"name=x", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert "detail" in await response.json()
    assert (await (await client.get("/api/v1.0/rooms/")).json())["count"] == 0


async def test_unknown_paths_and_methods_answer_json(client: Client) -> None:
    response = await client.get("/api/v1.0/nothing-here/")
    assert response.status == 404
    assert await response.json() == {"detail": "Not found."}
    response = await client.put("/api/v1.0/config/")
    assert response.status == 405
    assert await response.json() == {"detail": 'Method "PUT" not allowed.'}


async def test_huge_page_number_is_invalid_not_a_crash(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    log_in(await factory.user())
    response = await client.get("/api/v1.0/rooms/?page=85156875221982141070188041467854848")
    assert response.status == 404
    assert await response.json() == {"detail": "Invalid page."}


async def test_changes_from_another_process_show_within_the_cache_ttl(
    aiohttp_client: Any, database_url: str, factory: Factory
) -> None:
    """Writes through this process show at once; others' after at most the lookup TTL."""
    import asyncio

    from api.app import create_app
    from storage import rooms as room_store
    from tests.conftest import make_settings

    client = await aiohttp_client(create_app(make_settings(database_url, lookup_cache_seconds=0.3)))
    room = await factory.room(access_level="public")
    assert "livekit" in await (await client.get(f"/api/v1.0/rooms/{room.id}/")).json()
    async with factory.sessionmaker.begin() as session:  # "another process" restricts the room
        await room_store.update_room(session, room.id, access_level="restricted")
    await asyncio.sleep(0.4)
    assert "livekit" not in await (await client.get(f"/api/v1.0/rooms/{room.id}/")).json()


async def test_rooms_read_once_are_not_kept_and_a_room_read_again_is(
    client: Client, factory: Factory
) -> None:
    """The lookup caches kept every room read for their TTL: a spread of rooms, each read
    once, held their records (12 MiB of the bench's 10,000). Now only a room read again is
    kept, and from then on it is served from the cache."""
    from storage import rooms as room_store

    cache = client.app[keys.ROOMS].cache
    rooms = [await factory.room(access_level="public") for _ in range(30)]
    for room in rooms:
        assert (await client.get(f"/api/v1.0/rooms/{room.slug}/")).status == 200
    assert len(cache.rooms) == 0
    hot = rooms[0]
    assert (await client.get(f"/api/v1.0/rooms/{hot.slug}/")).status == 200
    assert len(cache.rooms) == 1
    async with factory.sessionmaker.begin() as session:  # "another process" restricts it
        await room_store.update_room(session, hot.id, access_level="restricted")
    body = await (await client.get(f"/api/v1.0/rooms/{hot.slug}/")).json()
    assert body["access_level"] == "public" and "livekit" in body  # served from the cache


async def test_a_signed_in_caller_not_cached_costs_one_identity_query(
    client: Client, factory: Factory, log_in: LogIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session's query reads its user too: a caller not seen before is not read a second
    time by user id (the user read with the session is kept at once, even where the lookup
    caches keep only what is read again)."""
    from storage import reads

    real_user, real_session_user = reads.user, reads.session_user
    calls: list[str] = []

    async def user(*args: Any) -> Any:
        calls.append("user")
        return await real_user(*args)

    async def session_user(*args: Any) -> Any:
        calls.append("session")
        return await real_session_user(*args)

    monkeypatch.setattr(reads, "user", user)
    monkeypatch.setattr(reads, "session_user", session_user)
    for _ in range(3):
        log_in(await factory.user())
        response = await client.get("/api/v1.0/users/me/")
        assert response.status == 200
    assert calls == ["session"] * 3


async def test_list_tokens_are_reused_only_for_the_same_grants(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    """A user's token for a room is reused for a minute, never across users, roles or rooms:
    a promotion (or a demotion) takes effect on the next list."""
    owner = await factory.user()
    room = await factory.room(owner=owner, access_level="restricted")
    member = await factory.user()
    access = await factory.access(room, member, "member")
    await factory.room(owner=member, access_level="restricted", name="zz other")

    async def tokens() -> list[str]:
        body = await (await client.get("/api/v1.0/rooms/")).json()
        return [item["livekit"]["token"] for item in body["results"]]

    log_in(member)
    first = await tokens()
    assert len(set(first)) == 2 and await tokens() == first
    assert not verify(first[0]).video.room_admin
    log_in(owner)
    [owners] = await tokens()
    assert owners not in first and verify(owners).video.room_admin
    response = await client.patch(
        f"/api/v1.0/resource-accesses/{access.id}/", json={"role": "administrator"}
    )
    assert response.status == 200
    log_in(member)
    promoted = await tokens()
    assert promoted[0] != first[0] and verify(promoted[0]).video.room_admin
    assert promoted[1] == first[1]  # the other room's grants did not change
    assert verify(promoted[0]).identity == member.sub
