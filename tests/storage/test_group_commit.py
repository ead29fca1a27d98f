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
