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
from typing import Any

from sqlalchemy import func, or_, select, update
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
    """Lease up to ``limit`` due messages for this caller (commit to make the lease visible)."""
    now = now or utcnow()
    due = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == "pending",
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
        )
        .order_by(OutboxMessage.next_attempt_at)
        .limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(await session.scalars(due))
    if not ids:
        return []
    token = secrets.token_hex(16)
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(ids),
            OutboxMessage.status == "pending",
            or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
        )
        .values(lease_until=now + timedelta(seconds=lease_seconds), lease_token=token)
    )
    rows = await session.scalars(select(OutboxMessage).where(OutboxMessage.lease_token == token))
    return [outbox_record(row) for row in rows]


async def mark_succeeded(session: AsyncSession, message_id: uuid.UUID) -> None:
    now = utcnow()
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
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


async def recording_notifications_done(session: AsyncSession, recording_id: uuid.UUID) -> bool:
    """True when the recording has notifications and every one of them succeeded."""
    rows = await session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.recording_id == recording_id)
        .group_by(OutboxMessage.status)
    )
    counts = {str(status): int(count) for status, count in rows}
    return bool(counts) and set(counts) == {"succeeded"}


async def promote_recording(session: AsyncSession, recording_id: uuid.UUID) -> bool:
    """``saved`` → ``notification_succeeded`` once all its notifications succeeded."""
    if not await recording_notifications_done(session, recording_id):
        return False
    result = await session.execute(
        update(Recording)
        .where(Recording.id == recording_id, Recording.status == "saved")
        .values(status="notification_succeeded", updated_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


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
