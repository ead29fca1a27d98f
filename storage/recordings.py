"""Recording repository (the parts the room actors need; the recordings API adds more)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, Table, bindparam, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import reads
from storage.engine import SessionMaker, Statement, write
from storage.models import Recording, RecordingAccess, utcnow

IN_FLIGHT = ("initiated", "active")
RECORDINGS: Table = Recording.__table__  # type: ignore[assignment]
RECORDING_ACCESSES: Table = RecordingAccess.__table__  # type: ignore[assignment]


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


_RECORDING = (
    "id, room_id, status, mode, worker_id, options, external_process_id, created_at, updated_at"
)
_BY_WORKER = reads.Query(
    f"SELECT {_RECORDING} FROM meet_recording WHERE worker_id = ? ORDER BY created_at DESC LIMIT 1"
)
_IN_FLIGHT_OF_ROOM = reads.Query(
    f"SELECT {_RECORDING} FROM meet_recording WHERE room_id = ? "
    f"AND status IN ({', '.join(repr(status) for status in IN_FLIGHT)})"
)


def _recording(values: Any, row: Any) -> RecordingRecord:
    return RecordingRecord(
        id=values.uuid_out(row[0]),
        room_id=values.uuid_out(row[1]),
        status=row[2],
        mode=row[3],
        worker_id=row[4],
        options=values.json_out(row[5]),
        external_process_id=row[6],
        created_at=values.datetime_out(row[7]),
        updated_at=values.datetime_out(row[8]),
    )


async def read_in_flight(source: reads.Reader, room_id: uuid.UUID) -> RecordingRecord | None:
    """The room's recording in flight (initiated or active), without the ORM."""
    rows = await source.rows(_IN_FLIGHT_OF_ROOM, (source.values.uuid_in(room_id),))
    return _recording(source.values, rows[0]) if rows else None


async def read_by_worker(source: reads.Reader, worker_id: str) -> RecordingRecord | None:
    """The newest recording of the egress ``worker_id``, without the ORM."""
    rows = await source.rows(_BY_WORKER, (worker_id,))
    return _recording(source.values, rows[0]) if rows else None


async def in_flight_recording(session: AsyncSession, room_id: uuid.UUID) -> RecordingRecord | None:
    return await read_in_flight(reads.SessionReader(session), room_id)


async def recording_by_worker(session: AsyncSession, worker_id: str) -> RecordingRecord | None:
    return await read_by_worker(reads.SessionReader(session), worker_id)


async def get_recording(
    session: AsyncSession, recording_id: uuid.UUID, *, for_update: bool = False
) -> RecordingRecord | None:
    statement = select(Recording).where(Recording.id == recording_id)
    if for_update:
        statement = statement.with_for_update()
    recording = await session.scalar(statement)
    return recording_record(recording) if recording else None


def _pg_insert_recording() -> Executable:
    """One statement: the recording's ``INSERT … RETURNING`` in a CTE feeds its owner access."""
    recordings, accesses = RECORDINGS.c, RECORDING_ACCESSES.c
    new_recording = (
        insert(RECORDINGS)
        .values(
            id=bindparam("id", type_=recordings.id.type),
            room_id=bindparam("room_id", type_=recordings.room_id.type),
            status=bindparam("status", type_=recordings.status.type),
            mode=bindparam("mode", type_=recordings.mode.type),
            options=bindparam("options", type_=recordings.options.type),
            worker_id=bindparam("worker_id", type_=recordings.worker_id.type),
            external_process_id=bindparam(
                "external_process_id", type_=recordings.external_process_id.type
            ),
            created_at=bindparam("created_at", type_=recordings.created_at.type),
            updated_at=bindparam("updated_at", type_=recordings.updated_at.type),
        )
        .returning(recordings.id)
        .cte("new_recording")
    )
    source = select(
        bindparam("access_id", type_=accesses.id.type),
        new_recording.c.id,
        bindparam("owner_id", type_=accesses.user_id.type),
        literal("", accesses.team.type),
        literal("owner", accesses.role.type),
        bindparam("created_at", type_=accesses.created_at.type),
        bindparam("updated_at", type_=accesses.updated_at.type),
    ).select_from(new_recording)
    names = ["id", "recording_id", "user_id", "team", "role", "created_at", "updated_at"]
    return insert(RECORDING_ACCESSES).from_select(names, source)


def _status_update(*, worker: bool) -> Executable:
    recordings = RECORDINGS.c
    values = {
        "status": bindparam("status", type_=recordings.status.type),
        "updated_at": bindparam("now", type_=recordings.updated_at.type),
    }
    if worker:
        values["worker_id"] = bindparam("worker_id", type_=recordings.worker_id.type)
    return (
        update(RECORDINGS)
        .where(
            recordings.id == bindparam("recording_id", type_=recordings.id.type),
            recordings.status.in_(bindparam("only_from", expanding=True)),
        )
        .values(**values)
    )


# Built once: a statement's construction costs more than its (cached) compilation.
_PG_INSERT_RECORDING = _pg_insert_recording()
_INSERT_RECORDING = insert(RECORDINGS)
_INSERT_ACCESS = insert(RECORDING_ACCESSES)
_SET_STATUS = _status_update(worker=False)
_SET_STATUS_AND_WORKER = _status_update(worker=True)


async def insert_recording(
    sessionmaker: SessionMaker,
    *,
    recording_id: uuid.UUID,
    room_id: uuid.UUID,
    mode: str,
    options: dict[str, Any],
    owner_id: uuid.UUID,
) -> RecordingRecord:
    """The Recording (``initiated``) and its starter's ``owner`` access in their own
    transaction: one round trip on PostgreSQL (the access inserted from the recording's
    ``INSERT … RETURNING`` in a CTE), one unit of a group commit on SQLite. A second
    recording in flight for the room (or this id again) raises ``IntegrityError``."""
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
    access = {
        "id": uuid.uuid4(),
        "recording_id": recording_id,
        "user_id": owner_id,
        "team": "",
        "role": "owner",
        "created_at": now,
        "updated_at": now,
    }
    statements: list[Statement]
    if _dialect(sessionmaker) == "postgresql":
        parameters = {**values, "access_id": access["id"], "owner_id": owner_id}
        statements = [(_PG_INSERT_RECORDING, parameters)]
    else:
        statements = [(_INSERT_RECORDING, values), (_INSERT_ACCESS, access)]
    await write(sessionmaker, statements)
    return RecordingRecord(**values)


async def write_status(
    sessionmaker: SessionMaker,
    recording_id: uuid.UUID,
    status: str,
    *,
    only_from: tuple[str, ...],
    worker_id: str | None = None,
) -> None:
    """``set_status`` as one write of its own (one round trip; a group-commit unit on
    SQLite), for the hot paths that do not need to know whether a row matched."""
    parameters: dict[str, Any] = {
        "recording_id": recording_id,
        "only_from": list(only_from),
        "status": status,
        "now": utcnow(),
    }
    statement = _SET_STATUS
    if worker_id is not None:
        statement = _SET_STATUS_AND_WORKER
        parameters["worker_id"] = worker_id
    await write(sessionmaker, [(statement, parameters)])


def _dialect(sessionmaker: SessionMaker) -> str | None:
    bind = sessionmaker.kw.get("bind")
    return bind.dialect.name if bind is not None else None


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
