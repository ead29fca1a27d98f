"""The outbox: notifications written with the change that causes them, claimed with a lease.

Claiming is a conditional UPDATE (``lease_until`` expired → set it, with a fresh token) so any
number of dispatchers, in any number of processes, never deliver one message concurrently; on
PostgreSQL the candidate rows are picked with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OutboxMessage, Recording, utcnow


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    id: uuid.UUID
    kind: str
    recording_id: uuid.UUID | None
    idempotency_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def outbox_record(row: OutboxMessage) -> OutboxRecord:
    return OutboxRecord(
        id=row.id,
        kind=row.kind,
        recording_id=row.recording_id,
        idempotency_key=row.idempotency_key,
        payload=dict(row.payload or {}),
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


async def enqueue(
    session: AsyncSession,
    *,
    kind: str,
    idempotency_key: str,
    payload: dict[str, Any],
    recording_id: uuid.UUID | None = None,
    failed_reason: str | None = None,
) -> OutboxRecord:
    """Add a message in the caller's transaction; ``failed_reason`` records one that cannot be
    attempted at all (e.g. the summary service is not configured), visible to operators."""
    row = OutboxMessage(
        id=uuid.uuid4(),
        kind=kind,
        recording_id=recording_id,
        idempotency_key=idempotency_key,
        payload=payload,
        status="failed" if failed_reason else "pending",
        attempts=0,
        next_attempt_at=utcnow(),
        last_error=failed_reason,
    )
    session.add(row)
    await session.flush()
    return outbox_record(row)


async def claim(
    session: AsyncSession, *, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[OutboxRecord]:
    """Lease up to ``limit`` due messages for this caller (commit to make the lease visible).

    One ``UPDATE … WHERE id IN (due ids) RETURNING *`` statement; the condition is repeated
    in the UPDATE so a row leased meanwhile by another dispatcher is not taken twice.
    """
    now = now or utcnow()
    table = cast(Table, OutboxMessage.__table__)
    available = (
        (table.c.status == "pending")
        & (table.c.next_attempt_at <= now)
        & or_(table.c.lease_until.is_(None), table.c.lease_until < now)
    )
    due = select(table.c.id).where(available).order_by(table.c.next_attempt_at).limit(limit)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    # A materialised CTE is evaluated once: a plain ``IN (SELECT … LIMIT n FOR UPDATE SKIP
    # LOCKED)`` may be re-run by PostgreSQL's planner and lease more than ``n`` rows.
    picked = due.cte("due").prefix_with("MATERIALIZED", dialect="postgresql")
    token = secrets.token_hex(16)
    statement = (
        update(table)
        .where(table.c.id.in_(select(picked.c.id)), available)
        .values(lease_until=now + timedelta(seconds=lease_seconds), lease_token=token)
        .returning(*table.c)
    )
    rows = (await session.execute(statement)).mappings().all()
    return [
        OutboxRecord(
            id=row["id"],
            kind=row["kind"],
            recording_id=row["recording_id"],
            idempotency_key=row["idempotency_key"],
            payload=dict(row["payload"] or {}),
            status=row["status"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            delivered_at=row["delivered_at"],
        )
        for row in sorted(rows, key=lambda r: r["next_attempt_at"])
    ]


async def mark_succeeded(session: AsyncSession, *message_ids: uuid.UUID) -> None:
    if not message_ids:
        return
    now = utcnow()
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(message_ids))
        .values(
            status="succeeded",
            attempts=OutboxMessage.attempts + 1,
            delivered_at=now,
            updated_at=now,
            lease_until=None,
            lease_token=None,
            last_error=None,
        )
    )


async def mark_attempt_failed(
    session: AsyncSession,
    message_id: uuid.UUID,
    *,
    error: str,
    retry_at: datetime | None,
) -> None:
    """Record a failed attempt: retry at ``retry_at``, or give up (``None``: status failed)."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            status="pending" if retry_at is not None else "failed",
            attempts=OutboxMessage.attempts + 1,
            next_attempt_at=retry_at or utcnow(),
            updated_at=utcnow(),
            lease_until=None,
            lease_token=None,
            last_error=error[:2000],
        )
    )


async def promote_recordings(session: AsyncSession, recording_ids: list[uuid.UUID]) -> int:
    """``saved`` → ``notification_succeeded`` for those whose notifications all succeeded."""
    if not recording_ids:
        return 0
    unfinished = exists().where(
        OutboxMessage.recording_id == Recording.id, OutboxMessage.status != "succeeded"
    )
    result = await session.execute(
        update(Recording)
        .where(Recording.id.in_(recording_ids), Recording.status == "saved", ~unfinished)
        .values(status="notification_succeeded", updated_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def list_messages(
    session: AsyncSession, *, status: str | None = None, limit: int = 100
) -> list[OutboxRecord]:
    statement = select(OutboxMessage).order_by(OutboxMessage.created_at.desc()).limit(limit)
    if status is not None:
        statement = statement.where(OutboxMessage.status == status)
    return [outbox_record(row) for row in await session.scalars(statement)]


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    )
    return {str(status): int(count) for status, count in rows}


async def backlog(session: AsyncSession) -> tuple[list[tuple[str, str, int]], datetime | None]:
    """Rows by (kind, status), and when the oldest pending row was written (for metrics)."""
    rows = await session.execute(
        select(OutboxMessage.kind, OutboxMessage.status, func.count()).group_by(
            OutboxMessage.kind, OutboxMessage.status
        )
    )
    counts = [(str(kind), str(status), int(count)) for kind, status, count in rows]
    oldest = await session.scalar(
        select(func.min(OutboxMessage.created_at)).where(OutboxMessage.status == "pending")
    )
    return counts, oldest
