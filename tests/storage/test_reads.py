"""The hot read paths without the ORM (``storage.reads``): the same records as the ORM gives,
from each kind of reader, on both databases."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, text

from storage import reads
from storage import rooms as room_store
from storage import sessions as session_store
from storage import users as user_store
from storage.engine import close_writes, is_outage
from storage.models import ResourceAccess, Room, User
from tests.support.factories import Factory


def _readers(factory: Factory) -> list[tuple[str, Any]]:
    return [
        ("process", reads.reader(factory.sessionmaker)),
        ("short sessions", reads.SessionmakerReader(factory.sessionmaker)),
    ]


async def test_each_reader_returns_what_the_orm_wrote(factory: Factory) -> None:
    owner = await factory.user(full_name="Zoë Owner", language="fr-fr", timezone="Europe/Paris")
    async with factory.sessionmaker.begin() as session:
        await user_store.update_user(
            session,
            owner.id,
            is_staff=True,
            last_login=datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC),
            default_room_configuration={"can_publish_sources": ["camera"]},
        )
        expected_owner = await user_store.get_user(session, owner.id)
    member = await factory.user()
    room = await factory.room(
        owner=owner, name="Réunion d'équipe", access_level="restricted", configuration={"a": [1]}
    )
    other = await factory.room(owner=owner, name="Another")
    await factory.access(room, member, "member")
    async with factory.sessionmaker() as session:
        accesses = (await room_store.room_accesses(session, [room.id]))[room.id]
    assert {a.user_id for a in accesses} == {owner.id, member.id}
    key_hash = hashlib.sha256(b"the key").hexdigest()
    now = datetime.now(UTC)
    async with factory.sessionmaker.begin() as session:
        await session_store.create_session(
            session, key_hash=key_hash, user_id=owner.id, expires_at=now + timedelta(hours=1)
        )

    for name, source in _readers(factory):
        assert await reads.user(source, owner.id) == expected_owner, name
        assert await reads.room(source, slug=room.slug) == (room, None), name
        assert await reads.room(source, room_id=room.id, user_id=member.id) == (room, "member")
        assert await reads.room(source, slug=room.slug, user_id=owner.id) == (room, "owner")
        assert await reads.room(source, slug="no-such-room") is None, name
        found = await reads.room_accesses(source, [room.id, other.id])
        assert found[room.id] == accesses, name
        assert [a.role for a in found[other.id]] == ["owner"], name
        assert found[room.id][0].user is not None
        page = await reads.user_rooms(source, owner.id, offset=0, limit=20)
        assert page.items == [(other, "owner"), (room, "owner")] and page.count == 2, name
        one = await reads.user_rooms(source, owner.id, offset=0, limit=1)
        assert one.items == [(other, "owner")] and one.count == 2, name
        assert await reads.session_user(source, key_hash, now) == expected_owner, name
        later = now + timedelta(hours=2)
        assert await reads.session_user(source, key_hash, later) is None, name
    async with factory.sessionmaker() as session:  # inside a session: the same records
        assert await reads.user(reads.SessionReader(session), owner.id) == expected_owner
    await close_writes(factory.sessionmaker)


async def test_the_process_reader_sees_each_commit_and_cannot_write(factory: Factory) -> None:
    source = reads.reader(factory.sessionmaker)
    owner = await factory.user()
    assert (await reads.user_rooms(source, owner.id, offset=0, limit=20)).items == []
    room = await factory.room(owner=owner, name="Just Made")
    assert await reads.room(source, slug=room.slug) == (room, None)
    async with factory.sessionmaker.begin() as session:
        await room_store.delete_room(session, room.id)
    assert await reads.room(source, slug=room.slug) is None
    if isinstance(source, reads.SQLiteReader):
        with pytest.raises(Exception, match="readonly"):
            await source.rows(reads.Query("DELETE FROM meet_room"), ())
    await close_writes(factory.sessionmaker)


@pytest.mark.parametrize(
    "slug", ["x' OR '1'='1", "a;DROP TABLE meet_room;--", "é" * 200, "%", "_", "\\", ""]
)
async def test_hostile_lookups_find_nothing(factory: Factory, slug: str) -> None:
    await factory.room(name="Present")
    source = reads.reader(factory.sessionmaker)
    assert await reads.room(source, slug=slug) is None
    assert (await reads.room_accesses(source, [])) == {}
    await close_writes(factory.sessionmaker)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_postgres_reader_replaces_a_connection_killed_under_it(
    factory: Factory,
) -> None:
    """(The SQLite reader holds no network connection to lose.)"""
    source = reads.reader(factory.sessionmaker)
    assert isinstance(source, reads.PostgresReader)
    room = await factory.room(name="Survivor")
    assert await reads.room(source, slug=room.slug) == (room, None)
    async with factory.sessionmaker.begin() as session:  # what a server restart does to it
        await session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                "AND application_name = ''"
            )
        )
    assert await reads.room(source, slug=room.slug) == (room, None)
    await close_writes(factory.sessionmaker)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_read_that_postgres_does_not_answer_gives_up_and_the_next_one_works(
    factory: Factory,
) -> None:
    """The server process of the reader's connection stops (SIGSTOP: a hung server): the
    read gives up after its timeout with an outage (503), and the next read, on a new
    connection, answers at once. Before, it waited as long as the server hung."""
    source = reads.reader(factory.sessionmaker)
    assert isinstance(source, reads.PostgresReader)
    source.MAX_CONNECTIONS = 1
    source.READ_TIMEOUT_SECONDS = 0.5
    [[backend]] = await source.rows(reads.Query("SELECT pg_backend_pid()"), ())
    try:
        os.kill(backend, signal.SIGSTOP)
    except OSError:  # a server on another machine (TEST_DATABASE_URL)
        pytest.skip("the PostgreSQL server's processes cannot be signalled from here")
    # The server resumes after 3 s whatever happens (the test then fails, not hangs).
    resume = asyncio.get_running_loop().call_later(3, os.kill, backend, signal.SIGCONT)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as raised:
            await reads.room(source, slug="anything")
        assert time.monotonic() - started < 2
        assert is_outage(raised.value)
        started = time.monotonic()
        assert await reads.room(source, slug="no-such-room") is None
        assert time.monotonic() - started < 2
    finally:
        resume.cancel()
        os.kill(backend, signal.SIGCONT)
    await close_writes(factory.sessionmaker)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_reads_waiting_for_a_postgres_connection_are_served_in_their_order_of_arrival(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that comes just as a connection goes back to the pool queues behind the reads
    already waiting. Left to asyncpg's pool, it took that connection from under the first of
    them, who then waited again at the back: at 64 clients, p99s three times what they are
    when reads are served in turn. (The newcomer is let in from the pool's reset hook, the
    moment the connection is handed back: a race that load makes common.)"""
    source = reads.reader(factory.sessionmaker)
    assert isinstance(source, reads.PostgresReader)
    source.MAX_CONNECTIONS = 1  # one connection: every read but one waits
    served: list[str] = []
    newcomer: list[asyncio.Task[None]] = []

    async def read(name: str, query: str = "SELECT ?::text") -> None:
        await source.rows(reads.Query(query), (name,) if "?" in query else ())
        served.append(name)

    async def reset_then_a_newcomer(connection: Any) -> None:
        if len(served) == 0 and not newcomer and len(tasks) == 4:  # the holder's release
            newcomer.append(asyncio.create_task(read("newcomer")))

    monkeypatch.setattr(reads, "_keep_session", reset_then_a_newcomer)
    tasks = [asyncio.create_task(read("holder", "SELECT pg_sleep(0.3)"))]
    await asyncio.sleep(0.1)  # the connection is opened and held
    for n in range(3):
        tasks.append(asyncio.create_task(read(f"waiter {n}")))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    await asyncio.gather(*newcomer)
    assert served == ["holder", "waiter 0", "waiter 1", "waiter 2", "newcomer"]
    await close_writes(factory.sessionmaker)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_page_of_rooms_reads_the_users_and_rooms_by_their_keys_on_postgres(
    factory: Factory,
) -> None:
    """A database of a few thousand users and rooms, its statistics gathered: the list's
    statements find the rooms and users of a page by their primary keys rather than hash the
    whole tables (what PostgreSQL's default random_page_cost chose: 1.4 ms a page at the
    server). Through both of the service's pools: the reader's and the ORM's."""
    users = [
        {"id": uuid.uuid4(), "sub": f"sub-{n}", "email": f"u{n}@example.com"} for n in range(2000)
    ]
    rooms = [{"id": uuid.uuid4(), "name": f"Room {n}", "slug": f"room-{n}"} for n in range(2000)]
    accesses = [
        {"id": uuid.uuid4(), "resource_id": room["id"], "user_id": users[(n * 7 + k) % 2000]["id"]}
        | {"role": "owner" if k == 0 else "member"}
        for n, room in enumerate(rooms)
        for k in range(3)
    ]
    async with factory.sessionmaker.begin() as session:
        for model, rows in ((User, users), (Room, rooms), (ResourceAccess, accesses)):
            await session.execute(insert(model), rows)
    async with factory.sessionmaker.begin() as session:
        await session.execute(text("ANALYZE"))
    page = [room["id"] for room in rooms[:20]]
    statements: list[tuple[reads.Query, tuple[Any, ...]]] = [
        (reads.ROOM_ACCESSES, (page,)),
        (reads.USER_ROOMS, (users[0]["id"], 20, 0)),
    ]
    source = reads.reader(factory.sessionmaker)
    async with factory.sessionmaker() as session:
        orm: Any = (await (await session.connection()).get_raw_connection()).driver_connection
        for query, params in statements:
            explain = reads.Query(query.sqlite, "EXPLAIN " + query.postgres)
            plans = {
                "reader": await source.rows(explain, params),
                "orm": await orm.fetch(explain.postgres, *params),
            }
            for pool, rows in plans.items():
                plan = "\n".join(str(row[0]) for row in rows)
                assert "Seq Scan" not in plan, (pool, plan)
    await close_writes(factory.sessionmaker)


def test_sqlite_values_read_what_sqlalchemy_stores_and_other_shapes_too() -> None:
    values = reads.SQLiteValues
    room_id = uuid.uuid4()
    assert values.uuid_out(room_id.hex) == room_id
    assert values.uuid_out(str(room_id)) == room_id  # dashed (written by hand): still read
    with pytest.raises(ValueError):
        values.uuid_out("not a uuid")
    moment = datetime(2026, 12, 1, 19, 25, 32, 123456, tzinfo=UTC)
    stored = values.datetime_in(moment)
    assert values.datetime_out(stored) == moment and values.datetime_out(stored).tzinfo is UTC
    assert values.datetime_out("2026-12-01 19:25:32") == moment.replace(microsecond=0)
    assert values.datetime_out("2026-12-01T19:25:32+00:00") == moment.replace(microsecond=0)
