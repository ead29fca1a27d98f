"""Resource accesses: the whole role matrix and last-owner protection (§1.4, §2.6)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from storage.records import RoomRecord, UserRecord
from tests.support.factories import Factory

Client = TestClient[Any, Any]
LogIn = Callable[[UserRecord], None]
URL = "/api/v1.0/resource-accesses/"


async def setup_room(factory: Factory, requester_role: str | None) -> tuple[RoomRecord, UserRecord]:
    """A room owned by someone else, and a requester holding ``requester_role`` in it."""
    return await factory.room_with_role(requester_role)


async def test_anonymous_gets_401_everywhere(client: Client, factory: Factory) -> None:
    room = await factory.room()
    some_id = uuid.uuid4()
    for method, url in [
        ("GET", URL),
        ("POST", URL),
        ("GET", f"{URL}{some_id}/"),
        ("PATCH", f"{URL}{some_id}/"),
        ("PUT", f"{URL}{some_id}/"),
        ("DELETE", f"{URL}{some_id}/"),
    ]:
        response = await client.request(method, url, json={"resource": str(room.id)})
        assert response.status == 401, (method, url)


@pytest.mark.parametrize(
    ("role", "sees"), [(None, False), ("member", False), ("administrator", True), ("owner", True)]
)
async def test_list_shows_accesses_of_administered_rooms(
    client: Client, factory: Factory, log_in: LogIn, role: str | None, sees: bool
) -> None:
    room, user = await setup_room(factory, role)
    await factory.room()  # someone else's room, never listed
    log_in(user)
    body = await (await client.get(URL)).json()
    resources = {item["resource"] for item in body["results"]}
    assert resources == ({str(room.id)} if sees else set())
    if sees:
        assert body["count"] == 2
        item = body["results"][0]
        assert set(item) == {"id", "user", "resource", "role"}


async def test_list_is_paginated(client: Client, factory: Factory, log_in: LogIn) -> None:
    room, owner = await setup_room(factory, "owner")
    for _ in range(22):
        await factory.access(room, await factory.user(), "member")
    log_in(owner)
    body = await (await client.get(URL)).json()
    assert body["count"] == 24
    assert len(body["results"]) == 20
    from yarl import URL as YURL

    page2 = await (await client.get(YURL(body["next"]).path_qs)).json()
    assert len(page2["results"]) == 4


@pytest.mark.parametrize(
    ("role", "status"),
    [(None, 403), ("member", 403), ("administrator", 200), ("owner", 200)],
)
async def test_retrieve(
    client: Client, factory: Factory, log_in: LogIn, role: str | None, status: int
) -> None:
    room, user = await setup_room(factory, role)
    target = await factory.access(room, await factory.user(), "member")
    log_in(user)
    response = await client.get(f"{URL}{target.id}/")
    assert response.status == status
    if status == 200:
        assert await response.json() == {
            "id": str(target.id),
            "user": str(target.user_id),
            "resource": str(room.id),
            "role": "member",
        }
    assert (await client.get(f"{URL}{uuid.uuid4()}/")).status == 404


# requester role → new access role → expected status (create)
CREATE_MATRIX = [
    (None, "member", 403),
    ("member", "member", 403),
    ("administrator", "member", 201),
    ("administrator", "administrator", 201),
    ("administrator", "owner", 403),
    ("owner", "member", 201),
    ("owner", "administrator", 201),
    ("owner", "owner", 201),
]


@pytest.mark.parametrize(("requester", "new_role", "status"), CREATE_MATRIX)
async def test_create_matrix(
    client: Client,
    factory: Factory,
    log_in: LogIn,
    requester: str | None,
    new_role: str,
    status: int,
) -> None:
    room, user = await setup_room(factory, requester)
    other = await factory.user()
    log_in(user)
    response = await client.post(
        URL, json={"user": str(other.id), "resource": str(room.id), "role": new_role}
    )
    assert response.status == status
    body = await response.json()
    if status == 201:
        assert body["role"] == new_role and body["user"] == str(other.id)
    elif requester in (None, "member"):
        assert body == {
            "detail": "You must be administrator or owner of a room to add accesses to it."
        }
    else:
        assert body == {"detail": "Only owners of a room can assign other users as owners."}
    listed = await (await client.get(URL)).json()
    has_other = any(item["user"] == str(other.id) for item in listed["results"])
    assert has_other is (status == 201)


async def test_create_duplicate_and_bad_input(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    room, owner = await setup_room(factory, "owner")
    other = await factory.user()
    log_in(owner)
    payload = {"user": str(other.id), "resource": str(room.id), "role": "member"}
    assert (await client.post(URL, json=payload)).status == 201
    response = await client.post(URL, json=payload)
    assert response.status == 400
    assert await response.json() == {
        "non_field_errors": ["Resource access with this User and Resource already exists."]
    }
    for bad in [
        {"user": "nope", "resource": str(room.id)},
        {"user": str(other.id), "resource": str(room.id), "role": "king"},
        {"user": str(uuid.uuid4()), "resource": str(room.id)},
        {"user": str(other.id), "resource": str(uuid.uuid4())},
        {"resource": str(room.id)},
    ]:
        response = await client.post(URL, json=bad)
        assert response.status == 400, bad
    listed = await (await client.get(URL)).json()
    assert listed["count"] == 3


# requester role → target role → new role → expected status (update)
UPDATE_MATRIX = [
    ("member", "member", "administrator", 403),
    ("administrator", "member", "administrator", 200),
    ("administrator", "administrator", "member", 200),
    ("administrator", "member", "owner", 403),
    ("administrator", "owner", "member", 403),
    ("owner", "member", "administrator", 200),
    ("owner", "member", "owner", 200),
    ("owner", "administrator", "member", 200),
    ("owner", "owner", "member", 403),  # another owner's access: only that owner may change it
]


@pytest.mark.parametrize(("requester", "target", "new_role", "status"), UPDATE_MATRIX)
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_update_matrix(
    client: Client,
    factory: Factory,
    log_in: LogIn,
    requester: str,
    target: str,
    new_role: str,
    status: int,
    method: str,
) -> None:
    room, user = await setup_room(factory, requester)
    access = await factory.access(room, await factory.user(), target)
    log_in(user)
    response = await client.request(method, f"{URL}{access.id}/", json={"role": new_role})
    assert response.status == status
    body = await response.json()
    expected = new_role if status == 200 else target
    if status == 200:
        assert body["role"] == new_role
    if requester in ("administrator", "owner"):
        current = await (await client.get(f"{URL}{access.id}/")).json()
        assert current["role"] == expected


async def test_update_ignores_user_and_resource(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    room, owner = await setup_room(factory, "owner")
    access = await factory.access(room, await factory.user(), "member")
    log_in(owner)
    stranger_room = await factory.room()
    response = await client.patch(
        f"{URL}{access.id}/",
        json={"role": "administrator", "user": str(owner.id), "resource": str(stranger_room.id)},
    )
    assert response.status == 200
    body = await response.json()
    assert body["user"] == str(access.user_id) and body["resource"] == str(room.id)


async def test_last_owner_cannot_demote_or_delete_themself(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    owner = await factory.user()
    room = await factory.room(owner=owner)
    log_in(owner)
    mine = (await (await client.get(URL)).json())["results"][0]
    response = await client.patch(f"{URL}{mine['id']}/", json={"role": "member"})
    assert response.status == 403
    assert await response.json() == {"detail": "A resource should keep at least one owner."}
    response = await client.delete(f"{URL}{mine['id']}/")
    assert response.status == 403
    # With a second owner, demoting oneself works.
    await factory.access(room, await factory.user(), "owner")
    response = await client.patch(f"{URL}{mine['id']}/", json={"role": "administrator"})
    assert response.status == 200
    assert (await response.json())["role"] == "administrator"


async def test_owner_with_another_owner_may_leave(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    owner = await factory.user()
    room = await factory.room(owner=owner)
    await factory.access(room, await factory.user(), "owner")
    log_in(owner)
    listed = (await (await client.get(URL)).json())["results"]
    mine = next(a for a in listed if a["user"] == str(owner.id))
    assert (await client.delete(f"{URL}{mine['id']}/")).status == 204


# requester role → target role → expected status (delete)
DELETE_MATRIX = [
    (None, "member", 403),
    ("member", "member", 403),
    ("administrator", "member", 204),
    ("administrator", "administrator", 204),
    ("administrator", "owner", 403),
    ("owner", "member", 204),
    ("owner", "administrator", 204),
    ("owner", "owner", 403),  # someone else's owner access
]


@pytest.mark.parametrize(("requester", "target", "status"), DELETE_MATRIX)
async def test_delete_matrix(
    client: Client,
    factory: Factory,
    log_in: LogIn,
    requester: str | None,
    target: str,
    status: int,
) -> None:
    room, user = await setup_room(factory, requester)
    access = await factory.access(room, await factory.user(), target)
    log_in(user)
    response = await client.delete(f"{URL}{access.id}/")
    assert response.status == status
    async with factory.sessionmaker() as session:
        from storage import rooms as room_store

        still_there = await room_store.get_access(session, access.id)
    assert (still_there is None) is (status == 204)
