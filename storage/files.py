"""File rows (reference §1.1 File): creation under a per-user quota, listing, state moves.

Every state change that two requests could race on is one conditional ``UPDATE`` whose row
count says who won (``claim_pending``); the quota is checked by the ``INSERT`` itself after
the creator's row is locked (PostgreSQL), so two concurrent creations cannot both pass it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import File, User, utcnow
from storage.records import Page

Ordering = Literal["created_at", "updated_at", "title"]


@dataclass(frozen=True, slots=True)
class FileCreator:
    id: uuid.UUID
    full_name: str | None
    short_name: str | None


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    type: str
    title: str
    creator: FileCreator | None
    deleted_at: datetime | None
    hard_deleted_at: datetime | None
    filename: str
    upload_state: str
    mimetype: str | None
    size: int | None
    description: str | None


@dataclass(frozen=True, slots=True)
class FileFilters:
    type: str | None = None
    upload_state: str | None = None
    is_creator_me: bool | None = None
    is_deleted: bool | None = None


class DuplicateFileId(Exception):
    """A file with this id exists already."""


def _record(file: File, user: User | None) -> FileRecord:
    creator = (
        FileCreator(id=user.id, full_name=user.full_name, short_name=user.short_name)
        if user is not None
        else None
    )
    return FileRecord(
        id=file.id,
        created_at=file.created_at,
        updated_at=file.updated_at,
        type=file.type,
        title=file.title,
        creator=creator,
        deleted_at=file.deleted_at,
        hard_deleted_at=file.hard_deleted_at,
        filename=file.filename,
        upload_state=file.upload_state,
        mimetype=file.mimetype,
        size=file.size,
        description=file.description,
    )


def _with_creator() -> Select[File, User]:
    return select(File, User).outerjoin(User, User.id == File.creator_id)


def _active_count(creator_id: uuid.UUID, file_type: str) -> ColumnElement[int]:
    return (
        select(func.count())
        .select_from(File)
        .where(File.creator_id == creator_id, File.type == file_type, File.deleted_at.is_(None))
        .scalar_subquery()
    )


async def file_exists(session: AsyncSession, file_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(exists().where(File.id == file_id))))


async def create_file(
    session: AsyncSession,
    *,
    file_id: uuid.UUID,
    creator_id: uuid.UUID,
    file_type: str,
    title: str,
    filename: str,
    description: str | None,
    max_count: int | None,
) -> FileRecord | None:
    """Insert a pending file; None when ``creator_id`` holds ``max_count`` non-deleted files of
    the type already. Raises :class:`DuplicateFileId` when the id is taken."""
    # Serialises the creator's concurrent creations on PostgreSQL (SQLite has one writer).
    await session.execute(select(User.id).where(User.id == creator_id).with_for_update())
    now = utcnow()
    values: dict[str, Any] = {
        "id": file_id,
        "created_at": now,
        "updated_at": now,
        "type": file_type,
        "title": title,
        "creator_id": creator_id,
        "filename": filename,
        "upload_state": "pending",
        "description": description,
        "malware_detection_info": {},
    }
    columns = list(values)
    row = select(*(literal(values[name], File.__table__.c[name].type) for name in columns))
    if max_count is not None:
        row = row.where(_active_count(creator_id, file_type) < max_count)
    try:
        async with session.begin_nested():
            result = await session.execute(
                insert(File).from_select(columns, row).returning(File.id)
            )
            inserted = result.scalar_one_or_none()
    except IntegrityError:
        raise DuplicateFileId() from None
    if inserted is None:
        return None
    return await get_file(session, file_id)


async def get_file(
    session: AsyncSession, file_id: uuid.UUID, *, creator_id: uuid.UUID | None = None
) -> FileRecord | None:
    """The file unless hard deleted; with ``creator_id``, only if that user created it."""
    statement = _with_creator().where(File.id == file_id, File.hard_deleted_at.is_(None))
    if creator_id is not None:
        statement = statement.where(File.creator_id == creator_id)
    row = (await session.execute(statement)).first()
    return _record(row[0], row[1]) if row is not None else None


async def list_files(
    session: AsyncSession,
    user_id: uuid.UUID,
    filters: FileFilters,
    ordering: list[tuple[Ordering, bool]],
    *,
    offset: int,
    limit: int,
) -> Page[FileRecord]:
    """The caller's non-hard-deleted files (Meet restricts the list to its own files)."""
    conditions: list[ColumnElement[bool]] = [
        File.hard_deleted_at.is_(None),
        File.creator_id == user_id,
    ]
    if filters.type is not None:
        conditions.append(File.type == filters.type)
    if filters.upload_state is not None:
        conditions.append(File.upload_state == filters.upload_state)
    if filters.is_creator_me is False:
        conditions.append(or_(File.creator_id.is_(None), File.creator_id != user_id))
    if filters.is_deleted is not None:
        conditions.append(
            File.deleted_at.is_not(None) if filters.is_deleted else File.deleted_at.is_(None)
        )
    count = await session.scalar(select(func.count()).select_from(File).where(*conditions))
    order = [
        (getattr(File, name).desc() if descending else getattr(File, name).asc())
        for name, descending in ordering
    ]
    statement = (
        _with_creator().where(*conditions).order_by(*order, File.id).offset(offset).limit(limit)
    )
    rows = (await session.execute(statement)).all()
    return Page(items=[_record(file, user) for file, user in rows], count=int(count or 0))


async def update_file(session: AsyncSession, file_id: uuid.UUID, **values: Any) -> None:
    if values:
        await session.execute(
            update(File).where(File.id == file_id).values(**values, updated_at=utcnow())
        )


async def soft_delete(session: AsyncSession, file_id: uuid.UUID) -> bool:
    result = await session.execute(
        update(File)
        .where(File.id == file_id, File.deleted_at.is_(None))
        .values(deleted_at=utcnow(), updated_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_deleted(session: AsyncSession, file_id: uuid.UUID) -> None:
    """Soft and hard delete at once (a rejected upload): only the purge remains."""
    now = utcnow()
    await session.execute(
        update(File)
        .where(File.id == file_id)
        .values(
            deleted_at=func.coalesce(File.deleted_at, now),
            hard_deleted_at=func.coalesce(File.hard_deleted_at, now),
            updated_at=now,
        )
    )


async def claim_pending(session: AsyncSession, file_id: uuid.UUID) -> bool:
    """``pending`` → ``analyzing`` in one conditional UPDATE: True for the one caller that won."""
    result = await session.execute(
        update(File)
        .where(File.id == file_id, File.upload_state == "pending")
        .values(upload_state="analyzing", updated_at=utcnow())
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def stale_pending(session: AsyncSession, before: datetime) -> list[FileRecord]:
    statement = _with_creator().where(
        File.upload_state == "pending",
        File.created_at < before,
        File.hard_deleted_at.is_(None),
    )
    return [_record(file, user) for file, user in (await session.execute(statement)).all()]


async def purgeable(session: AsyncSession, soft_deleted_before: datetime) -> list[FileRecord]:
    """Hard-deleted files, and soft-deleted ones older than ``soft_deleted_before``."""
    statement = select(File, literal(None)).where(
        or_(File.hard_deleted_at.is_not(None), File.deleted_at <= soft_deleted_before)
    )
    return [_record(file, None) for file, _ in (await session.execute(statement)).all()]


async def delete_row(session: AsyncSession, file_id: uuid.UUID) -> None:
    """Remove the row of a deleted file (never of a live one)."""
    await session.execute(delete(File).where(File.id == file_id, File.deleted_at.is_not(None)))
