"""The lookup caches: bounded staleness, single-flight loads, errors not cached."""

from __future__ import annotations

import asyncio

import pytest

from coordinator.cache import TTLCache


async def test_concurrent_misses_share_one_load() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=10)
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return 42

    results = await asyncio.gather(*(cache.fetch("k", load) for _ in range(50)))
    assert results == [42] * 50
    assert loads == 1


async def test_failed_load_is_not_cached_and_reaches_every_waiter() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=10)

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("db down")

    results = await asyncio.gather(
        *(cache.fetch("k", boom) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)

    async def ok() -> int:
        return 1

    assert await cache.fetch("k", ok) == 1


def test_entries_expire() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(ttl=2, clock=lambda: now[0])
    cache.set("k", 1)
    assert cache.get("k") == 1
    now[0] = 2.5
    assert cache.get("k") is None


@pytest.mark.parametrize("size", [3])
def test_size_is_bounded(size: int) -> None:
    cache: TTLCache[int, int] = TTLCache(ttl=10, max_size=size)
    for i in range(10):
        cache.set(i, i)
    assert len(cache) == size
    assert cache.get(9) == 9 and cache.get(0) is None


def test_expired_entries_are_dropped_as_new_ones_come() -> None:
    """A spread of keys read once each (10,000 rooms, a 2 s TTL) leaves about what was set
    in the last ``ttl`` seconds, not ``max_size`` dead entries."""
    now = [0.0]
    cache: TTLCache[int, int] = TTLCache(ttl=2, max_size=100_000, clock=lambda: now[0])
    for i in range(10_000):
        now[0] = i / 1000  # 1,000 sets a second
        cache.set(i, i)
        assert len(cache) <= 2_001
    assert cache.get(9_999) == 9_999 and cache.get(8_001) == 8_001
    assert cache.get(7_999) is None


def test_pruning_keeps_live_entries_and_an_empty_cache() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(ttl=2, clock=lambda: now[0])
    cache.set("old", 1)
    now[0] = 1.5
    cache.set("young", 2)
    now[0] = 2.5
    cache.set("new", 3)
    assert len(cache) == 2 and cache.get("young") == 2 and cache.get("new") == 3
    short: TTLCache[str, int] = TTLCache(ttl=0, clock=lambda: now[0])
    short.set("gone", 1)  # expires as it is set: dropped, and no error on the empty cache
    assert len(short) == 0 and short.get("gone") is None


def test_with_admit_repeats_a_key_offered_once_costs_no_entry() -> None:
    """A spread of keys read once each (10,000 rooms) leaves no values behind, where each
    used to be kept for a whole TTL."""
    now = [0.0]
    cache: TTLCache[int, int] = TTLCache(ttl=2, clock=lambda: now[0], admit_repeats=True)
    for i in range(10_000):
        now[0] = i / 1000
        cache.set(i, i)
    assert len(cache) == 0 and cache.get(9_999) is None


def test_with_admit_repeats_a_key_offered_again_is_kept_and_stays_kept() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(ttl=2, clock=lambda: now[0], admit_repeats=True)
    cache.set("hot", 1)
    assert cache.get("hot") is None
    now[0] = 3.9  # the second load of the key, within two TTLs: kept
    cache.set("hot", 2)
    assert cache.get("hot") == 2
    for step in range(1, 20):  # reloaded as it expires, for 40 s: kept each time at once
        now[0] = 3.9 + 2.01 * step
        assert cache.get("hot") is None
        cache.set("hot", step)
        assert cache.get("hot") == step
    now[0] += 8.1  # not offered for two windows (4 TTLs): forgotten, the next is not kept
    cache.set("hot", 99)
    assert cache.get("hot") is None


async def test_with_admit_repeats_the_second_load_is_cached_and_misses_still_share_one() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=10, admit_repeats=True)
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return loads

    assert await asyncio.gather(*(cache.fetch("k", load) for _ in range(50))) == [1] * 50
    assert await cache.fetch("k", load) == 2  # loaded again, and kept this time
    assert await asyncio.gather(*(cache.fetch("k", load) for _ in range(50))) == [2] * 50
    assert loads == 2


def test_clear_drops_the_values_not_the_keys_seen() -> None:
    """An invalidation (a write) is followed by a read of what was kept: kept again at once."""
    cache: TTLCache[str, int] = TTLCache(ttl=10, admit_repeats=True)
    cache.set("k", 1)
    cache.set("k", 2)
    cache.clear()
    assert cache.get("k") is None
    cache.set("k", 3)
    assert cache.get("k") == 3


def test_with_admit_repeats_a_flood_of_distinct_keys_is_remembered_within_the_bound() -> None:
    now = [0.0]
    cache: TTLCache[int, int] = TTLCache(
        ttl=2, max_size=100, clock=lambda: now[0], admit_repeats=True
    )
    for i in range(10_000):  # all within one TTL
        cache.set(i, i)
        assert len(cache._seen) + len(cache._seen_before) <= 200
    cache.set(9_999, 1)  # a repeat of a recent key is still kept
    assert cache.get(9_999) == 1
