"""Read-side recording queries for the recordings API (reference §2.7).

A user's roles on a recording are the roles of the accesses matching the user directly or one
of the user's ``teams`` (teams are not resolved anywhere yet: callers pass none).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Recording, RecordingAccess, Room, utcnow
from storage.recordings import RecordingRecord, recording_record
from storage.records import Page


@dataclass(frozen=True, slots=True)
class RecordingRoom:
    """The part of a recording's room shown with the recording."""

    id: uuid.UUID
    name: str
    slug: str
    access_level: str


@dataclass(frozen=True, slots=True)
class RecordingEntry:
    """A recording, its room and the roles the asking user holds on it (maybe none)."""

    recording: RecordingRecord
    room: RecordingRoom
    roles: tuple[str, ...]


def _room(room: Room) -> RecordingRoom:
    return RecordingRoom(
        id=room.id, name=room.name, slug=room.slug or "", access_level=room.access_level
    )


def _matches_user(user_id: uuid.UUID, teams: Sequence[str]) -> ColumnElement[bool]:
    by_team = RecordingAccess.team.in_(list(teams)) if teams else false()
    return or_(RecordingAccess.user_id == user_id, by_team)


async def _roles(
    session: AsyncSession,
    recording_ids: list[uuid.UUID],
    user_id: uuid.UUID,
    teams: Sequence[str],
) -> dict[uuid.UUID, tuple[str, ...]]:
    if not recording_ids:
        return {}
    found: dict[uuid.UUID, list[str]] = {recording_id: [] for recording_id in recording_ids}
    rows = await session.execute(
        select(RecordingAccess.recording_id, RecordingAccess.role)
        .where(RecordingAccess.recording_id.in_(recording_ids), _matches_user(user_id, teams))
        .order_by(RecordingAccess.role)
    )
    for recording_id, role in rows:
        found[recording_id].append(role)
    return {recording_id: tuple(roles) for recording_id, roles in found.items()}


async def list_visible_recordings(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    teams: Sequence[str] = (),
    offset: int,
    limit: int,
) -> Page[RecordingEntry]:
    """Recordings where the user holds any access, each once, newest first."""
    visible = select(RecordingAccess.recording_id).where(_matches_user(user_id, teams))
    condition = Recording.id.in_(visible)
    total = await session.scalar(select(func.count()).select_from(Recording).where(condition))
    rows = (
        await session.execute(
            select(Recording, Room)
            .join(Room, Room.id == Recording.room_id)
            .where(condition)
            .order_by(Recording.created_at.desc(), Recording.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    roles = await _roles(session, [recording.id for recording, _ in rows], user_id, teams)
    items = [
        RecordingEntry(recording_record(recording), _room(room), roles.get(recording.id, ()))
        for recording, room in rows
    ]
    return Page(items, total or 0)


async def recording_for_user(
    session: AsyncSession,
    recording_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    teams: Sequence[str] = (),
) -> RecordingEntry | None:
    """The recording with its room and the user's roles on it; None when it does not exist."""
    row = (
        await session.execute(
            select(Recording, Room)
            .join(Room, Room.id == Recording.room_id)
            .where(Recording.id == recording_id)
        )
    ).first()
    if row is None:
        return None
    recording, room = row
    roles = await _roles(session, [recording.id], user_id, teams)
    return RecordingEntry(recording_record(recording), _room(room), roles.get(recording.id, ()))


async def delete_recording(session: AsyncSession, recording_id: uuid.UUID) -> bool:
    """Delete the recording row and its accesses (rows only; the file stays in the bucket)."""
    await session.execute(
        delete(RecordingAccess).where(RecordingAccess.recording_id == recording_id)
    )
    result = await session.execute(delete(Recording).where(Recording.id == recording_id))
    return bool(getattr(result, "rowcount", 0))


async def recording_by_external_process_id(
    session: AsyncSession, external_process_id: str
) -> RecordingRecord | None:
    recording = await session.scalar(
        select(Recording).where(Recording.external_process_id == external_process_id)
    )
    return recording_record(recording) if recording else None


async def set_status_by_external_process_id(
    session: AsyncSession, external_process_id: str, status: str
) -> bool:
    """Set the status of the recording whose summary job is ``external_process_id``."""
    result = await session.execute(
        update(Recording)
        .where(Recording.external_process_id == external_process_id)
        .values(status=status, updated_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))
