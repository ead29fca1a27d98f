"""Queries of the LiveKit integrations (issue 8): rooms by PIN, metadata-collector dispatches."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Recording, Room
from storage.records import RoomRecord
from storage.rooms import room_record


async def room_by_pin(session: AsyncSession, pin_code: str) -> RoomRecord | None:
    room = await session.scalar(select(Room).where(Room.pin_code == pin_code))
    return room_record(room) if room is not None else None


async def set_metadata_dispatch(
    session: AsyncSession, recording_id: uuid.UUID, dispatch_id: str
) -> None:
    await session.execute(
        update(Recording)
        .where(Recording.id == recording_id)
        .values(metadata_collector_dispatch_id=dispatch_id)
    )


async def metadata_dispatch(session: AsyncSession, recording_id: uuid.UUID) -> str | None:
    dispatch_id: str | None = await session.scalar(
        select(Recording.metadata_collector_dispatch_id).where(Recording.id == recording_id)
    )
    return dispatch_id


async def metadata_dispatch_by_worker(
    session: AsyncSession, worker_id: str
) -> tuple[uuid.UUID, str] | None:
    """``(room id, dispatch id)`` of the latest recording of egress ``worker_id`` with one."""
    row = (
        await session.execute(
            select(Recording.room_id, Recording.metadata_collector_dispatch_id)
            .where(
                Recording.worker_id == worker_id,
                Recording.metadata_collector_dispatch_id.is_not(None),
            )
            .order_by(Recording.created_at.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return row[0], str(row[1])
