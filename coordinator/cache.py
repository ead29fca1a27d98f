"""A small in-process TTL cache (creation callbacks, room lookups)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# Expired entries dropped from the least recently used end per ``set`` (a bounded step, so
# that a mass expiry costs no pause; each ``set`` adds one entry and drops up to this many).
PRUNE_STEP = 8


class TTLCache(Generic[K, V]):
    """Entries expire ``ttl`` seconds after being set; at most ``max_size`` entries (LRU).

    Expired entries are dropped as they are met, and each ``set`` drops the expired ones at
    the least recently used end: what the cache holds is about what was set in the last
    ``ttl`` seconds, not ``max_size`` dead entries of a spread of keys read once each.

    ``admit_repeats``: a value is kept only for a key that was set (or offered) before, within
    the last two to four ``ttl``; the first time, only the key is remembered. A spread of keys
    read once each then costs no entries (their values, and the collector's work over them),
    while a key read again is cached from its second load on, and stays cached as it is
    reloaded.
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        admit_repeats: bool = False,
    ) -> None:
        self._ttl = ttl
        self._max_size = max_size
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._admit_repeats = admit_repeats
        self._seen: set[K] = set()  # keys offered in this window
        self._seen_before: set[K] = set()  # ... and in the one before
        self._window_start = clock()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def fetch(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or ``load()``'s; concurrent misses of one key share one load."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        else:
            future.set_result(value)
            self.set(key, value)
            return value
        finally:
            del self._loading[key]

    def pop(self, key: K) -> V | None:
        value = self.get(key)
        self._entries.pop(key, None)
        return value

    def _admitted(self, key: K, now: float) -> bool:
        """Whether ``key`` was offered within the last two to four ``ttl`` (it is now): a key
        reloaded as its value expires is always still known. A window also ends once it holds
        ``max_size`` keys: a flood of distinct keys is remembered within the cache's bound."""
        window = 2 * self._ttl
        elapsed = now - self._window_start
        if elapsed >= window or len(self._seen) >= self._max_size:
            self._seen_before = self._seen if elapsed < 2 * window else set()
            self._seen = set()
            self._window_start = now
        seen = key in self._seen or key in self._seen_before
        self._seen.add(key)
        return seen

    def set(self, key: K, value: V, *, ttl: float | None = None) -> None:
        now = self._clock()
        if self._admit_repeats and not self._admitted(key, now):
            return
        entries = self._entries
        entries[key] = (now + (self._ttl if ttl is None else ttl), value)
        entries.move_to_end(key)
        while len(entries) > self._max_size:
            entries.popitem(last=False)
        # The least recently used entry was touched first: when it has not expired, the
        # others were touched later and mostly have not either (an entry read recently but
        # set long ago goes when it is next read).
        for _ in range(PRUNE_STEP):
            oldest = next(iter(entries.values()), None)
            if oldest is None or oldest[0] > now:
                break
            entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Drops the values; the keys seen stay seen (a key read again is kept at once)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class LookupCache:
    """Short-lived read caches for the hot paths (room lookup, role, accesses, session user).

    Writes made through this process invalidate what they touch at once; other processes see
    a change after at most ``ttl`` seconds. Permission checks of writes never use it.
    ``ttl=0`` disables caching. Rooms and access lists are kept only when read again
    (``admit_repeats``): one read once costs its key, not its records.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        # Rooms and access lists hold records (an access list, its users'): they are kept
        # only when read again. Roles, users and sessions are a few words each (their keys
        # would be remembered anyway), and each saves a query: kept at once.
        self.rooms: TTLCache[str, Any] = TTLCache(ttl=ttl, max_size=50_000, admit_repeats=True)
        self.roles: TTLCache[tuple[Any, Any], Any] = TTLCache(ttl=ttl, max_size=200_000)
        self.accesses: TTLCache[Any, Any] = TTLCache(ttl=ttl, max_size=50_000, admit_repeats=True)
        self.users: TTLCache[Any, Any] = TTLCache(ttl=ttl, max_size=100_000)
        self.sessions: TTLCache[str, Any] = TTLCache(ttl=ttl, max_size=100_000)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def forget_room(self, room_id: Any, *slugs: str) -> None:
        self.rooms.discard(f"id:{room_id}")
        for slug in slugs:
            self.rooms.discard(f"slug:{slug}")
        self.accesses.discard(room_id)

    def forget_access(self, room_id: Any, user_id: Any) -> None:
        self.roles.discard((room_id, user_id))
        self.accesses.discard(room_id)

    def forget_user(self, user_id: Any) -> None:
        self.users.discard(user_id)
        self.accesses.clear()  # access lists embed user objects; user edits are rare
