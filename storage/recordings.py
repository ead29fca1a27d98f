"""Recording repository (the parts the room actors need; the recordings API adds more)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Recording, RecordingAccess, utcnow

IN_FLIGHT = ("initiated", "active")


@dataclass(frozen=True, slots=True)
class RecordingRecord:
    id: uuid.UUID
    room_id: uuid.UUID
    status: str
    mode: str
    worker_id: str | None
    options: dict[str, Any]
    external_process_id: str | None
    created_at: datetime
    updated_at: datetime


def recording_record(recording: Recording) -> RecordingRecord:
    return RecordingRecord(
        id=recording.id,
        room_id=recording.room_id,
        status=recording.status,
        mode=recording.mode,
        worker_id=recording.worker_id,
        options=dict(recording.options or {}),
        external_process_id=recording.external_process_id,
        created_at=recording.created_at,
        updated_at=recording.updated_at,
    )


async def in_flight_recording(session: AsyncSession, room_id: uuid.UUID) -> RecordingRecord | None:
    recording = await session.scalar(
        select(Recording).where(Recording.room_id == room_id, Recording.status.in_(IN_FLIGHT))
    )
    return recording_record(recording) if recording else None


async def recording_by_worker(session: AsyncSession, worker_id: str) -> RecordingRecord | None:
    recording = await session.scalar(
        select(Recording)
        .where(Recording.worker_id == worker_id)
        .order_by(Recording.created_at.desc())
        .limit(1)
    )
    return recording_record(recording) if recording else None


async def get_recording(
    session: AsyncSession, recording_id: uuid.UUID, *, for_update: bool = False
) -> RecordingRecord | None:
    statement = select(Recording).where(Recording.id == recording_id)
    if for_update:
        statement = statement.with_for_update()
    recording = await session.scalar(statement)
    return recording_record(recording) if recording else None


async def create_recording(
    session: AsyncSession,
    *,
    recording_id: uuid.UUID,
    room_id: uuid.UUID,
    mode: str,
    options: dict[str, Any],
    owner_id: uuid.UUID,
) -> RecordingRecord:
    """The Recording (``initiated``) and its starter's ``owner`` access, in the caller's
    transaction; a second recording in flight for the room raises IntegrityError."""
    now = utcnow()
    values: dict[str, Any] = {
        "id": recording_id,
        "room_id": room_id,
        "status": "initiated",
        "mode": mode,
        "options": options,
        "worker_id": None,
        "external_process_id": None,
        "created_at": now,
        "updated_at": now,
    }
    # Core inserts: two statements, none of the unit of work's bookkeeping (a hot path).
    await session.execute(insert(Recording).values(**values))
    await session.execute(
        insert(RecordingAccess).values(
            id=uuid.uuid4(),
            recording_id=recording_id,
            user_id=owner_id,
            team="",
            role="owner",
            created_at=now,
            updated_at=now,
        )
    )
    return RecordingRecord(**values)


async def owner_ids(session: AsyncSession, recording_id: uuid.UUID) -> list[uuid.UUID]:
    """The users holding an ``owner`` access to the recording, oldest access first."""
    rows = await session.scalars(
        select(RecordingAccess.user_id)
        .where(
            RecordingAccess.recording_id == recording_id,
            RecordingAccess.role == "owner",
            RecordingAccess.user_id.is_not(None),
        )
        .order_by(RecordingAccess.created_at, RecordingAccess.id)
    )
    return [user_id for user_id in rows if user_id is not None]


async def set_status(
    session: AsyncSession,
    recording_id: uuid.UUID,
    status: str,
    *,
    only_from: tuple[str, ...] | None = None,
    **fields: Any,
) -> bool:
    """Move the recording to ``status``; with ``only_from``, only from one of those statuses."""
    statement = update(Recording).where(Recording.id == recording_id)
    if only_from is not None:
        statement = statement.where(Recording.status.in_(only_from))
    result = await session.execute(statement.values(status=status, updated_at=utcnow(), **fields))
    return bool(getattr(result, "rowcount", 0))


async def rooms_with_recordings_in_flight(session: AsyncSession) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(Recording.room_id).where(Recording.status.in_(IN_FLIGHT)).distinct()
    )
    return list(rows)
