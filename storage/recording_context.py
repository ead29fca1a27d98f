"""What a recording's notifications need: the recording, its room's name and an owner."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Recording, RecordingAccess, Room, User, utcnow
from storage.recordings import RecordingRecord, recording_record
from storage.records import UserRecord
from storage.users import user_record


async def load(
    session: AsyncSession, recording_id: uuid.UUID, owner_id: uuid.UUID | None = None
) -> tuple[RecordingRecord, str, UserRecord] | None:
    """The recording, its room's name and ``owner_id`` (default: the oldest owner access)."""
    row = (
        await session.execute(
            select(Recording, Room.name)
            .join(Room, Room.id == Recording.room_id)
            .where(Recording.id == recording_id)
        )
    ).first()
    if row is None:
        return None
    recording, room_name = row
    owner_query = (
        select(User)
        .join(RecordingAccess, RecordingAccess.user_id == User.id)
        .where(RecordingAccess.recording_id == recording_id, RecordingAccess.role == "owner")
        .order_by(RecordingAccess.created_at, RecordingAccess.id)
        .limit(1)
    )
    if owner_id is not None:
        owner_query = owner_query.where(User.id == owner_id)
    owner = await session.scalar(owner_query)
    if owner is None:
        return None
    return recording_record(recording), room_name, user_record(owner)


async def set_external_process_id(
    session: AsyncSession, recording_id: uuid.UUID | None, job_id: str
) -> None:
    if recording_id is None:
        return
    await session.execute(
        update(Recording)
        .where(Recording.id == recording_id)
        .values(external_process_id=job_id, updated_at=utcnow())
    )
