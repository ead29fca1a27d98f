"""Concurrent writers: the unique slug index decides creation races, owners stay owners.

Room creation coalesces SQLite writers into group commits (one savepoint per request) and is a
single autocommitted statement on PostgreSQL; these tests hold the outcomes either way.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from api import keys
from api.session import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from storage.models import ResourceAccess, Room
from storage.records import UserRecord
from tests.support.factories import Factory

Client = TestClient[Any, Any]
URL = "/api/v1.0/rooms/"
ACCESSES = "/api/v1.0/resource-accesses/"


async def session_headers(client: Client, user: UserRecord) -> dict[str, str]:
    """Headers of a logged-in browser of ``user`` (several users share one test client)."""
    key = await client.app[keys.LOGIN_SESSIONS].open(user.id, max_age=3600)
    cookie = client.app[keys.SESSIONS].encode(
        {"sid": key, "uid": str(user.id), "exp": int(time.time()) + 3600}
    )
    return {"Cookie": f"{SESSION_COOKIE}={cookie}; {CSRF_COOKIE}=race", CSRF_HEADER: "race"}


async def test_300_concurrent_creations_of_one_name_make_one_room(
    client: Client, factory: Factory
) -> None:
    owner = await factory.user()
    headers = await session_headers(client, owner)

    async def create() -> tuple[int, Any]:
        response = await client.post(URL, json={"name": "Stand-up Daily"}, headers=headers)
        return response.status, await response.json()

    answers = await asyncio.gather(*(create() for _ in range(300)))
    created = [body for status, body in answers if status == 201]
    refused = [body for status, body in answers if status == 400]
    assert len(created) == 1 and len(refused) == 299, sorted({s for s, _ in answers})
    assert all(body == {"slug": ["Room with this Slug already exists."]} for body in refused)
    room = created[0]
    assert room["slug"] == "stand-up-daily"
    assert [a["role"] for a in room["accesses"]] == ["owner"]
    assert room["accesses"][0]["user"]["id"] == str(owner.id)
    async with factory.sessionmaker() as session:
        rooms = await session.scalar(
            select(func.count()).select_from(Room).where(Room.slug == "stand-up-daily")
        )
        accesses = await session.scalar(
            select(func.count())
            .select_from(ResourceAccess)
            .where(ResourceAccess.resource_id == Room.id, Room.slug == "stand-up-daily")
        )
    assert (rooms, accesses) == (1, 1)
    # What the creation answered is what was written.
    again = await (await client.get(f"{URL}{room['id']}/", headers=headers)).json()
    for field in ("id", "name", "slug", "access_level", "configuration", "pin_code"):
        assert again[field] == room[field], field
    assert again["accesses"] == room["accesses"]


async def test_concurrent_creations_of_distinct_names_all_commit(
    client: Client, factory: Factory
) -> None:
    """One group commit holds many rooms: a refused unit does not take the others down."""
    owner = await factory.user()
    headers = await session_headers(client, owner)
    names = [f"Batch {n % 60}" for n in range(120)]  # every name twice

    async def create(name: str) -> int:
        return (await client.post(URL, json={"name": name}, headers=headers)).status

    statuses = await asyncio.gather(*(create(name) for name in names))
    assert statuses.count(201) == 60 and statuses.count(400) == 60
    listed = await (await client.get(f"{URL}?page_size=50&page=2", headers=headers)).json()
    assert listed["count"] == 60 and len(listed["results"]) == 10
    assert listed["next"] is None and listed["previous"] is not None


async def test_two_owners_leaving_at_once_leave_one_owner(client: Client, factory: Factory) -> None:
    """Each of two owners deletes their own access (or demotes themself) at the same time:
    whatever the interleaving, every room keeps at least one owner."""
    pairs = []
    for _ in range(6):
        first, second = await factory.user(), await factory.user()
        room = await factory.room(owner=first)
        await factory.access(room, second, "owner")
        pairs.append((room, first, second))
    requests = []
    for n, (_, first, second) in enumerate(pairs):
        for user in (first, second):
            headers = await session_headers(client, user)
            listed = await (await client.get(ACCESSES, headers=headers)).json()
            mine = next(a for a in listed["results"] if a["user"] == str(user.id))
            url = f"{ACCESSES}{mine['id']}/"
            if n % 2:
                requests.append(client.delete(url, headers=headers))
            else:
                requests.append(client.patch(url, json={"role": "member"}, headers=headers))
    responses = await asyncio.gather(*requests)
    statuses = [r.status for r in responses]
    for n in range(len(pairs)):
        assert sorted(statuses[2 * n : 2 * n + 2]) == [200 if n % 2 == 0 else 204, 403]
    async with factory.sessionmaker() as session:
        for room, _, _ in pairs:
            owners = await session.scalar(
                select(func.count())
                .select_from(ResourceAccess)
                .where(ResourceAccess.resource_id == room.id, ResourceAccess.role == "owner")
            )
            assert owners == 1
