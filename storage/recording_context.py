"""What a recording's notifications need: the recording, its room's name and an owner."""

from __future__ import annotations

import uuid
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Recording, RecordingAccess, Room, User, utcnow
from storage.recordings import RecordingRecord, recording_record
from storage.records import UserRecord
from storage.users import user_record


async def set_external_process_ids(
    session: AsyncSession, job_ids: list[tuple[uuid.UUID, str]]
) -> None:
    """Store the summary service's job ids (``external_process_id``), one executemany."""
    if not job_ids:
        return
    table = cast(Table, Recording.__table__)
    now = utcnow()
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("recording"))
        .values(external_process_id=bindparam("job"), updated_at=now),
        [{"recording": recording_id, "job": job} for recording_id, job in job_ids],
    )


async def load_many(
    session: AsyncSession, recording_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[RecordingRecord, str, list[UserRecord]]]:
    """For each recording: itself, its room's name and its owners (oldest access first)."""
    if not recording_ids:
        return {}
    rows = await session.execute(
        select(Recording, Room.name, User)
        .join(Room, Room.id == Recording.room_id)
        .outerjoin(
            RecordingAccess,
            (RecordingAccess.recording_id == Recording.id) & (RecordingAccess.role == "owner"),
        )
        .outerjoin(User, User.id == RecordingAccess.user_id)
        .where(Recording.id.in_(recording_ids))
        .order_by(Recording.id, RecordingAccess.created_at, RecordingAccess.id)
    )
    result: dict[uuid.UUID, tuple[RecordingRecord, str, list[UserRecord]]] = {}
    for recording, room_name, owner in rows:
        entry = result.get(recording.id)
        if entry is None:
            entry = (recording_record(recording), room_name, [])
            result[recording.id] = entry
        if owner is not None:
            entry[2].append(user_record(owner))
    return result
