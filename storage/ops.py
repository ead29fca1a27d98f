"""Reads (and the one write) behind the operators' dashboard: the recording pipeline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OutboxMessage, Recording, Room, utcnow
from storage.outbox import OutboxRecord, outbox_record

IN_FLIGHT = ("initiated", "active")


@dataclass(frozen=True, slots=True)
class InFlightRecording:
    id: uuid.UUID
    room_id: uuid.UUID
    room_slug: str | None
    status: str
    mode: str
    egress_id: str | None
    created_at: datetime


async def in_flight_recordings(
    session: AsyncSession, *, limit: int = 100
) -> list[InFlightRecording]:
    rows = await session.execute(
        select(Recording, Room.slug)
        .join(Room, Room.id == Recording.room_id)
        .where(Recording.status.in_(IN_FLIGHT))
        .order_by(Recording.created_at)
        .limit(limit)
    )
    return [
        InFlightRecording(r.id, r.room_id, slug, r.status, r.mode, r.worker_id, r.created_at)
        for r, slug in rows
    ]


async def outbox_backlog(session: AsyncSession) -> dict[str, dict[str, int]]:
    """``{kind: {status: count}}`` over the whole outbox."""
    rows = await session.execute(
        select(OutboxMessage.kind, OutboxMessage.status, func.count()).group_by(
            OutboxMessage.kind, OutboxMessage.status
        )
    )
    backlog: dict[str, dict[str, int]] = {}
    for kind, status, count in rows:
        backlog.setdefault(str(kind), {})[str(status)] = int(count)
    return backlog


async def oldest_pending(session: AsyncSession) -> datetime | None:
    value = await session.scalar(
        select(func.min(OutboxMessage.created_at)).where(OutboxMessage.status == "pending")
    )
    return value if isinstance(value, datetime) else None


async def failed_messages(session: AsyncSession, *, limit: int = 50) -> list[OutboxRecord]:
    statement = (
        select(OutboxMessage)
        .where(OutboxMessage.status == "failed")
        .order_by(OutboxMessage.updated_at.desc())
        .limit(limit)
    )
    return [outbox_record(row) for row in await session.scalars(statement)]


async def retry_now(session: AsyncSession, message_id: uuid.UUID) -> bool:
    """A failed (or waiting) message due now, its lease released; False if there is none."""
    now = utcnow()
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status.in_(("failed", "pending")))
        .values(
            status="pending",
            next_attempt_at=now,
            lease_until=None,
            lease_token=None,
            updated_at=now,
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def room_labels(session: AsyncSession, room_ids: list[uuid.UUID]) -> dict[str, str]:
    """``{str(room id): slug or name}`` for the rooms that exist."""
    if not room_ids:
        return {}
    rows = await session.execute(select(Room.id, Room.slug, Room.name).where(Room.id.in_(room_ids)))
    return {str(room_id): slug or name for room_id, slug, name in rows}
