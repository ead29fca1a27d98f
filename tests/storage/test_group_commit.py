"""SQLite group commits: inline on the event loop while nobody else writes, in the executor
(waiting for the lock) while another process holds it, checkpointed either way."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from storage import rooms as room_store
from storage.engine import GroupCommit, close_writes
from tests.support.factories import Factory

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _path(factory: Factory) -> str:
    return str(factory.sessionmaker.kw["bind"].url.database)


async def test_a_write_waits_for_another_process_holding_the_lock(factory: Factory) -> None:
    owner = await factory.user()
    blocker = sqlite3.connect(_path(factory), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # what another process's write transaction does
    try:
        creating = asyncio.ensure_future(
            room_store.insert_room(
                factory.sessionmaker, owner_id=owner.id, name="Wait", slug="wait"
            )
        )
        await asyncio.sleep(0.3)
        assert not creating.done()  # neither failed ("database is locked") nor lost
        blocker.execute("COMMIT")
        room, _ = await asyncio.wait_for(creating, 10)
    finally:
        blocker.close()
    async with factory.sessionmaker() as session:
        assert await room_store.get_room(session, slug="wait", user_id=owner.id) == (room, "owner")
    await close_writes(factory.sessionmaker)


async def test_inline_commits_are_checkpointed(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inline connection never checkpoints on commit: without the periodic checkpoint
    the WAL would grow by every commit (300 creations: several MiB)."""
    monkeypatch.setattr(GroupCommit, "CHECKPOINT_EVERY", 5)
    monkeypatch.setattr(GroupCommit, "RESTART_EVERY", 20)
    owner = await factory.user()
    for n in range(300):
        await room_store.insert_room(
            factory.sessionmaker, owner_id=owner.id, name=f"R{n}", slug=f"r-{n}"
        )
    wal_size = os.path.getsize(_path(factory) + "-wal")  # noqa: ASYNC240
    assert wal_size < 1024 * 1024, wal_size
    await close_writes(factory.sessionmaker)
    probe = sqlite3.connect(_path(factory))
    try:
        assert probe.execute("SELECT count(*) FROM meet_room").fetchone()[0] == 300
    finally:
        probe.close()


async def test_a_refused_unit_leaves_nothing_alone_or_in_a_batch(factory: Factory) -> None:
    """A unit alone is the transaction itself (no savepoint); refused, none of its rows stay
    and the connection takes the next write. In a batch, only that unit is undone."""
    from sqlalchemy.exc import IntegrityError

    owner = await factory.user()
    await room_store.insert_room(factory.sessionmaker, owner_id=owner.id, name="A", slug="taken")
    with pytest.raises(IntegrityError):  # alone: the room's row refused, its access not kept
        await room_store.insert_room(
            factory.sessionmaker, owner_id=owner.id, name="B", slug="taken"
        )
    await room_store.insert_room(factory.sessionmaker, owner_id=owner.id, name="C", slug="next")
    results = await asyncio.gather(  # one batch: the refused unit between two others
        *(
            room_store.insert_room(factory.sessionmaker, owner_id=owner.id, name=n, slug=slug)
            for n, slug in (("D", "d"), ("E", "taken"), ("F", "f"))
        ),
        return_exceptions=True,
    )
    assert isinstance(results[1], IntegrityError)
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
    await close_writes(factory.sessionmaker)
    probe = sqlite3.connect(_path(factory))
    try:
        slugs = sorted(row[0] for row in probe.execute("SELECT slug FROM meet_room"))
        assert slugs == ["d", "f", "next", "taken"]
        orphans = (
            "SELECT count(*) FROM meet_resource_access a LEFT JOIN meet_room r"
            " ON r.id = a.resource_id WHERE r.id IS NULL"
        )
        assert probe.execute(orphans).fetchone()[0] == 0
        assert probe.execute("SELECT count(*) FROM meet_resource_access").fetchone()[0] == 4
    finally:
        probe.close()
