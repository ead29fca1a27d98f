"""The Ray engine's durable lobby (``coordinator.engines.lobby``) on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event

from coordinator.engines.lobby import WAITING_REWRITE, LobbyJournal
from coordinator.room import DecideEntry, ParticipantRemoved, RequestEntry, RoomState, decide
from storage.engine import create_engine, create_sessionmaker

ROOM = "8c4b6a52-2d0e-4f7e-9a51-0f2b8c1d3e4f"


class Clocks:
    def __init__(self) -> None:
        self.mono, self.wall = 100.0, 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
async def journal(database_url: str) -> AsyncIterator[tuple[LobbyJournal, Clocks, list[str]]]:
    engine = create_engine(database_url)
    writes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "DELETE")):
            writes.append(statement.split()[0])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    clocks = Clocks()
    yield (
        LobbyJournal(
            create_sessionmaker(engine), clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall
        ),
        clocks,
        writes,
    )
    await engine.dispose()


def apply(state: RoomState, command: Any, now: float) -> RoomState:
    return decide(state, command, now).state


async def test_entries_come_back_and_polls_cost_no_write(
    journal: tuple[LobbyJournal, Clocks, list[str]],
) -> None:
    lobby, clocks, writes = journal
    sessionmaker = lobby._sessionmaker
    state = RoomState(name=ROOM)
    state = apply(state, RequestEntry("guest", "Guest"), clocks.mono)
    state = apply(state, RequestEntry("other", "Other"), clocks.mono)
    await lobby.sync(ROOM, state)
    assert writes.count("DELETE") == 1  # one write: both rows
    written = len(writes)
    for _ in range(5):  # the guests poll every second: no write
        clocks.advance(1.0)
        state = apply(state, RequestEntry("guest", "Guest"), clocks.mono)
        state = apply(state, RequestEntry("other", "Other"), clocks.mono)
        await lobby.sync(ROOM, state)
    assert len(writes) == written
    clocks.advance(30.0 - WAITING_REWRITE)  # the rows would lapse soon: rewritten once
    state = apply(state, RequestEntry("guest", "Guest"), clocks.mono)
    state = apply(state, RequestEntry("other", "Other"), clocks.mono)
    await lobby.sync(ROOM, state)
    assert writes.count("DELETE") == 2
    state = apply(state, DecideEntry("guest", True), clocks.mono)  # a decision: written
    await lobby.sync(ROOM, state)
    assert writes.count("DELETE") == 3

    # A host that restarted (a new journal, a fresh state) gets both back.
    fresh = LobbyJournal(sessionmaker, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall)
    restore = await fresh.restore(ROOM)
    assert restore is not None
    restored = apply(RoomState(name=ROOM), restore, clocks.mono)
    assert {pid: e.status for pid, e in restored.lobby.items()} == {
        "guest": "accepted",
        "other": "waiting",
    }
    assert restored.lobby["guest"].expires_at - clocks.mono > 6 * 3600 - 60  # its 6 hours
    assert restored.lobby["other"].expires_at - clocks.mono <= 3.0  # polled again, or gone
    assert replace(restored.lobby["guest"], expires_at=0) == replace(
        state.lobby["guest"], expires_at=0
    )

    # Removed people do not come back.
    removed = apply(state, ParticipantRemoved("guest"), clocks.mono)
    await fresh.sync(ROOM, removed)
    again = await LobbyJournal(
        sessionmaker, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall
    ).restore(ROOM)
    assert again is not None and [e.participant_id for e in again.entries] == ["other"]
