"""The statements behind room lookups and lists: what each request costs the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from storage import rooms as room_store
from tests.support.factories import Factory


@contextmanager
def statements(factory: Factory) -> Iterator[list[str]]:
    engine = factory.sessionmaker.kw["bind"].sync_engine
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_anonymous_lookup_does_not_touch_the_accesses(factory: Factory) -> None:
    """Joined with an always-false condition, SQLite scanned every access per lookup."""
    room = await factory.room(name="Lookup Me")
    with statements(factory) as seen:
        async with factory.sessionmaker() as session:
            found = await room_store.get_room(session, slug=room.slug)
            by_id = await room_store.get_room(session, room_id=room.id)
    assert found == (room, None) and by_id == (room, None)
    lookups = [s for s in seen if "meet_room" in s]
    assert lookups and not any("meet_resource_access" in s for s in lookups), lookups


async def test_a_page_and_its_count_are_one_statement(factory: Factory) -> None:
    owner = await factory.user()
    for n in range(3):
        await factory.room(owner=owner, name=f"Counted {n}")
    with statements(factory) as seen:
        async with factory.sessionmaker() as session:
            page = await room_store.list_user_rooms(session, owner.id, offset=0, limit=20)
            full = await room_store.list_user_rooms(session, owner.id, offset=0, limit=3)
            past = await room_store.list_user_rooms(session, owner.id, offset=20, limit=20)
    assert page.count == full.count == past.count == 3
    assert [r.name for r, _ in page.items] == ["Counted 0", "Counted 1", "Counted 2"]
    assert past.items == []
    # one statement per page, its count included; a page past the end asks for the count
    assert len(seen) == 4, seen
    assert [s for s in seen if "limit" not in s.lower()] == [seen[3]], seen
