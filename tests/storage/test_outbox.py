"""Outbox claims: leases never hand one message to two dispatchers; retries come back due."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import insert

from storage import outbox as outbox_store
from storage.engine import create_engine, create_sessionmaker
from storage.models import OutboxMessage, utcnow


async def seed(url: str, count: int) -> None:
    engine = create_engine(url)
    now = utcnow()
    async with create_sessionmaker(engine).begin() as session:
        await session.execute(
            insert(OutboxMessage),
            [
                {
                    "id": uuid.uuid4(),
                    "kind": "invitation",
                    "idempotency_key": f"k-{i}",
                    "payload": {},
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(count)
            ],
        )
    await engine.dispose()


async def test_concurrent_dispatchers_never_claim_a_message_twice(database_url: str) -> None:
    await seed(database_url, 200)
    engines = [create_engine(database_url) for _ in range(4)]
    makers = [create_sessionmaker(engine) for engine in engines]

    async def claim_all(maker: object) -> list[uuid.UUID]:
        claimed: list[uuid.UUID] = []
        while True:
            async with maker.begin() as session:  # type: ignore[attr-defined]
                batch = await outbox_store.claim(session, limit=7, lease_seconds=60)
            if not batch:
                return claimed
            assert len(batch) <= 7
            claimed += [m.id for m in batch]

    results = await asyncio.gather(*(claim_all(maker) for maker in makers))
    everything = [message_id for result in results for message_id in result]
    assert len(everything) == 200 and len(set(everything)) == 200
    for engine in engines:
        await engine.dispose()


async def test_a_claim_takes_at_most_its_limit_in_due_order(database_url: str) -> None:
    await seed(database_url, 30)
    engine = create_engine(database_url)
    maker = create_sessionmaker(engine)
    sizes = []
    while True:
        async with maker.begin() as session:
            batch = await outbox_store.claim(session, limit=8, lease_seconds=60)
        if not batch:
            break
        sizes.append(len(batch))
    assert sizes == [8, 8, 8, 6]
    await engine.dispose()


async def test_failed_attempts_come_back_when_due_and_leases_expire(database_url: str) -> None:
    await seed(database_url, 1)
    engine = create_engine(database_url)
    maker = create_sessionmaker(engine)
    async with maker.begin() as session:
        [message] = await outbox_store.claim(session, limit=10, lease_seconds=60)
    async with maker.begin() as session:
        assert await outbox_store.claim(session, limit=10, lease_seconds=60) == []  # leased
    later = utcnow() + timedelta(seconds=120)
    async with maker.begin() as session:  # the lease expired (a dispatcher died): claimable
        [again] = await outbox_store.claim(session, limit=10, lease_seconds=60, now=later)
    assert again.id == message.id
    async with maker.begin() as session:
        await outbox_store.mark_attempt_failed(
            session, message.id, error="boom", retry_at=later + timedelta(seconds=30)
        )
    async with maker.begin() as session:
        assert await outbox_store.claim(session, limit=10, lease_seconds=60, now=later) == []
    async with maker.begin() as session:
        [retried] = await outbox_store.claim(
            session, limit=10, lease_seconds=60, now=later + timedelta(seconds=31)
        )
    assert retried.attempts == 1 and retried.last_error == "boom"
    await engine.dispose()
