"""The Ray engine's durable lobby: a room host writes its rooms' lobby entries to the database
and gives them back to a room it (re)activates, so waiting and accepted people survive a host
restart (and a room moving to another host).

Writes happen after the commands that change a lobby (request-entry, enter, remove, webhooks),
only for what changed: a decision (accepted, denied) or a new waiting entry is written before
its reply; a waiting entry, refreshed in memory by every poll of its guest (each second), is
rewritten only when its row would lapse within ``WAITING_REWRITE`` seconds, so a poll costs no
write. Restored waiting entries get the usual few seconds to be polled again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from coordinator.room import LOBBY_WAITING_SECONDS, LobbyEntry, RestoreLobby, RoomState, live_lobby
from storage import lobby as store
from storage.engine import SessionMaker

WAITING_KEPT = 30.0  # a waiting entry's row outlives its last write by this much
WAITING_REWRITE = 15.0


class LobbyJournal:
    def __init__(
        self,
        sessionmaker: SessionMaker,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._wall_clock = wall_clock
        # room → participant id → (status, username, the row's expiry, unix seconds)
        self._written: dict[str, dict[str, tuple[str, str, float]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def restore(self, room: str) -> RestoreLobby | None:
        """The room's entries from the database, on the actor's clock (None: none)."""
        wall = self._wall_clock()
        async with self._sessionmaker() as session:
            rows = await store.room_entries(session, room, _utc(wall))
        if not rows:
            return None
        now = self._clock()
        entries = []
        written = self._written.setdefault(room, {})
        for row in rows:
            expires = row.expires_at.timestamp()
            expires_at = now + (expires - wall)
            if row.status == "waiting":
                expires_at = min(expires_at, now + LOBBY_WAITING_SECONDS)
            entries.append(
                LobbyEntry(
                    participant_id=row.participant_id,
                    username=row.username,
                    color=row.color,
                    status=row.status,
                    expires_at=expires_at,
                    identity=row.identity,
                )
            )
            written[row.participant_id] = (row.status, row.username, expires)
        return RestoreLobby(tuple(entries))

    async def sync(self, room: str, state: RoomState) -> None:
        """Write what changed in the room's lobby since the last write."""
        async with self._locks.setdefault(room, asyncio.Lock()):
            await self._sync(room, state)

    async def _sync(self, room: str, state: RoomState) -> None:
        now, wall = self._clock(), self._wall_clock()
        lobby = live_lobby(state, now)
        written = self._written.get(room, {})
        changed: list[store.LobbyRecord] = []
        for pid, entry in lobby.items():
            expires = wall + (entry.expires_at - now)
            if entry.status == "waiting":
                expires = wall + WAITING_KEPT
            before = written.get(pid)
            if before is not None and before[:2] == (entry.status, entry.username):
                if entry.status != "waiting" or before[2] > wall + WAITING_REWRITE:
                    continue
            changed.append(
                store.LobbyRecord(
                    room=room,
                    participant_id=pid,
                    username=entry.username,
                    color=entry.color,
                    status=entry.status,
                    identity=entry.identity,
                    expires_at=_utc(expires),
                )
            )
        removed = [pid for pid in written if pid not in lobby]
        if not changed and not removed:
            return
        async with self._sessionmaker.begin() as session:
            await store.save_entries(session, room, changed, removed)
        updated = {pid: value for pid, value in written.items() if pid in lobby}
        for record in changed:
            updated[record.participant_id] = (
                record.status,
                record.username,
                record.expires_at.timestamp(),
            )
        if updated:
            self._written[room] = updated
        else:
            self._written.pop(room, None)

    async def forget_expired(self) -> None:
        """Delete lapsed rows; forget rooms whose rows all lapsed (the host's sweep)."""
        wall = self._wall_clock()
        async with self._sessionmaker.begin() as session:
            await store.delete_expired(session, _utc(wall))
        for room, rows in list(self._written.items()):
            if all(expires <= wall for *_, expires in rows.values()):
                del self._written[room]
        for room, lock in list(self._locks.items()):
            if room not in self._written and not lock.locked():
                del self._locks[room]


def _utc(unix: float) -> datetime:
    return datetime.fromtimestamp(0, UTC) + timedelta(seconds=unix)
