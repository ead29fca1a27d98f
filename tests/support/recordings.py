"""Test helpers for recordings: create one with its accesses, read rows back."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from storage.engine import SessionMaker
from storage.models import Recording, RecordingAccess
from storage.recordings import RecordingRecord, get_recording, recording_record
from storage.records import RoomRecord, UserRecord


async def make_recording(
    sessionmaker: SessionMaker,
    room: RoomRecord,
    *,
    status: str = "saved",
    mode: str = "screen_recording",
    accesses: Iterable[tuple[UserRecord, str]] = (),
    teams: Iterable[tuple[str, str]] = (),
    external_process_id: str | None = None,
    created_at: datetime | None = None,
    options: dict[str, Any] | None = None,
) -> RecordingRecord:
    """A recording of ``room`` with one access per ``(user, role)`` and per ``(team, role)``."""
    fields: dict[str, Any] = {}
    if created_at is not None:
        fields["created_at"] = created_at
        fields["updated_at"] = created_at
    async with sessionmaker.begin() as session:
        recording = Recording(
            id=uuid.uuid4(),
            room_id=room.id,
            status=status,
            mode=mode,
            options=options or {},
            external_process_id=external_process_id,
            **fields,
        )
        session.add(recording)
        await session.flush()
        for user, role in accesses:
            session.add(RecordingAccess(recording_id=recording.id, user_id=user.id, role=role))
        for team, role in teams:
            session.add(RecordingAccess(recording_id=recording.id, team=team, role=role))
        await session.flush()
        return recording_record(recording)


async def add_recording_access(
    sessionmaker: SessionMaker, recording: RecordingRecord, user: UserRecord, role: str
) -> None:
    async with sessionmaker.begin() as session:
        session.add(RecordingAccess(recording_id=recording.id, user_id=user.id, role=role))


async def read_recording(
    sessionmaker: SessionMaker, recording_id: uuid.UUID
) -> RecordingRecord | None:
    async with sessionmaker() as session:
        return await get_recording(session, recording_id)


async def count_recording_accesses(sessionmaker: SessionMaker, recording_id: uuid.UUID) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(RecordingAccess)
            .where(RecordingAccess.recording_id == recording_id)
        )
    return count or 0
