"""Room and room-access (ResourceAccess) repository."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Executable, Table, bindparam, delete, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import reads
from storage.engine import SessionMaker, Statement, write
from storage.models import ResourceAccess, Room, User, utcnow
from storage.reads import SessionReader
from storage.records import AccessRecord, Page, RoomRecord
from storage.users import user_record

ROOMS: Table = Room.__table__  # type: ignore[assignment]
ACCESSES: Table = ResourceAccess.__table__  # type: ignore[assignment]
USERS: Table = User.__table__  # type: ignore[assignment]


def room_record(room: Room) -> RoomRecord:
    return RoomRecord(
        id=room.id,
        name=room.name,
        slug=room.slug or "",
        access_level=room.access_level,
        configuration=dict(room.configuration or {}),
        pin_code=room.pin_code,
        created_at=room.created_at,
        updated_at=room.updated_at,
    )


def access_record(access: ResourceAccess, user: User | None = None) -> AccessRecord:
    return AccessRecord(
        id=access.id,
        resource_id=access.resource_id,
        user_id=access.user_id,
        role=access.role,
        created_at=access.created_at,
        user=user_record(user) if user is not None else None,
    )


async def get_room(
    session: AsyncSession,
    *,
    room_id: uuid.UUID | None = None,
    slug: str | None = None,
    user_id: uuid.UUID | None = None,
    for_update: bool = False,
) -> tuple[RoomRecord, str | None] | None:
    """The room found by id or slug, with ``user_id``'s role in it (None when unrelated);
    ``for_update`` locks the room's row (PostgreSQL) for the session's transaction."""
    return await reads.room(
        SessionReader(session), room_id=room_id, slug=slug, user_id=user_id, for_update=for_update
    )


async def slug_exists(
    session: AsyncSession, slug: str, *, exclude: uuid.UUID | None = None
) -> bool:
    statement = select(Room.id).where(Room.slug == slug)
    if exclude is not None:
        statement = statement.where(Room.id != exclude)
    return (await session.scalar(statement.limit(1))) is not None


async def pin_code_exists(session: AsyncSession, pin_code: str) -> bool:
    return (await session.scalar(select(Room.id).where(Room.pin_code == pin_code))) is not None


def _pg_create_room() -> Executable:
    """One statement: the room's ``INSERT … RETURNING`` in a CTE feeds its owner access."""
    rooms, accesses = ROOMS.c, ACCESSES.c
    new_room = (
        insert(ROOMS)
        .values(
            id=bindparam("room_id", type_=rooms.id.type),
            name=bindparam("name", type_=rooms.name.type),
            slug=bindparam("slug", type_=rooms.slug.type),
            access_level=bindparam("access_level", type_=rooms.access_level.type),
            configuration=bindparam("configuration", type_=rooms.configuration.type),
            pin_code=bindparam("pin_code", type_=rooms.pin_code.type),
            created_at=bindparam("now", type_=rooms.created_at.type),
            updated_at=bindparam("now", type_=rooms.updated_at.type),
        )
        .returning(rooms.id)
        .cte("new_room")
    )
    source = select(
        bindparam("access_id", type_=accesses.id.type),
        new_room.c.id,
        bindparam("owner_id", type_=accesses.user_id.type),
        literal("owner", accesses.role.type),
        bindparam("now", type_=accesses.created_at.type),
        bindparam("now", type_=accesses.updated_at.type),
    ).select_from(new_room)
    names = ["id", "resource_id", "user_id", "role", "created_at", "updated_at"]
    return insert(ACCESSES).from_select(names, source)


# Built once: a statement's construction costs more than its (cached) compilation.
_PG_CREATE_ROOM = _pg_create_room()
_INSERT_ROOM = insert(ROOMS)
_INSERT_ACCESS = insert(ACCESSES)


def new_room_statements(
    *, owner_id: uuid.UUID, postgresql: bool, **fields: Any
) -> tuple[list[Statement], RoomRecord, AccessRecord]:
    """The statements inserting a room and its creator's ``owner`` access, and the records
    they write (ids and timestamps made here: nothing needs to be read back).

    PostgreSQL gets one statement (the access inserted from the room's ``INSERT … RETURNING``
    in a CTE: one round trip, atomic on its own); SQLite, which has no DML in CTEs, two.
    A duplicate slug (or PIN) fails on the unique index with ``IntegrityError``.
    """
    now = utcnow()
    room = RoomRecord(
        id=uuid.uuid4(),
        name=fields["name"],
        slug=fields["slug"],
        access_level=fields.get("access_level") or "public",
        configuration=dict(fields.get("configuration") or {}),
        pin_code=fields.get("pin_code"),
        created_at=now,
        updated_at=now,
    )
    access = AccessRecord(
        id=uuid.uuid4(), resource_id=room.id, user_id=owner_id, role="owner", created_at=now
    )
    if postgresql:
        parameters = {
            "room_id": room.id,
            "name": room.name,
            "slug": room.slug,
            "access_level": room.access_level,
            "configuration": room.configuration,
            "pin_code": room.pin_code,
            "now": now,
            "access_id": access.id,
            "owner_id": owner_id,
        }
        return [(_PG_CREATE_ROOM, parameters)], room, access
    room_values = {
        "id": room.id,
        "name": room.name,
        "slug": room.slug,
        "access_level": room.access_level,
        "configuration": room.configuration,
        "pin_code": room.pin_code,
        "created_at": now,
        "updated_at": now,
    }
    access_values = {
        "id": access.id,
        "resource_id": room.id,
        "user_id": owner_id,
        "role": "owner",
        "created_at": now,
        "updated_at": now,
    }
    return [(_INSERT_ROOM, room_values), (_INSERT_ACCESS, access_values)], room, access


async def insert_room(
    sessionmaker: SessionMaker, *, owner_id: uuid.UUID, **fields: Any
) -> tuple[RoomRecord, AccessRecord]:
    """Create the room and its owner access in their own transaction, in one round trip
    (PostgreSQL) or as one unit of a group commit (SQLite). ``IntegrityError`` on a duplicate."""
    bind = sessionmaker.kw.get("bind")
    postgresql = bind is not None and bind.dialect.name == "postgresql"
    statements, room, access = new_room_statements(
        owner_id=owner_id, postgresql=postgresql, **fields
    )
    await write(sessionmaker, statements)
    return room, access


async def create_room(
    session: AsyncSession, *, owner_id: uuid.UUID, **fields: Any
) -> tuple[RoomRecord, AccessRecord]:
    """Insert the room and its creator's ``owner`` access in the caller's transaction."""
    postgresql = session.bind is not None and session.bind.dialect.name == "postgresql"
    statements, room, access = new_room_statements(
        owner_id=owner_id, postgresql=postgresql, **fields
    )
    for statement, parameters in statements:
        await session.execute(statement, parameters)
    return room, access


async def update_room(session: AsyncSession, room_id: uuid.UUID, **fields: Any) -> RoomRecord:
    room = await session.get(Room, room_id)
    if room is None:
        raise LookupError(room_id)
    for name, value in fields.items():
        setattr(room, name, value)
    await session.flush()
    return room_record(room)


async def delete_room(session: AsyncSession, room_id: uuid.UUID) -> None:
    await session.execute(delete(Room).where(Room.id == room_id))


async def list_user_rooms(
    session: AsyncSession, user_id: uuid.UUID, *, offset: int, limit: int
) -> Page[tuple[RoomRecord, str]]:
    """Rooms where the user holds an access, ordered by name, with the user's role."""
    return await reads.user_rooms(SessionReader(session), user_id, offset=offset, limit=limit)


async def room_accesses(
    session: AsyncSession, room_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[AccessRecord]]:
    """Accesses (with their users) of the given rooms, newest first (in ``session``)."""
    return await reads.room_accesses(SessionReader(session), room_ids)


async def get_access(session: AsyncSession, access_id: uuid.UUID) -> AccessRecord | None:
    access = await session.get(ResourceAccess, access_id)
    return access_record(access) if access else None


async def get_user_access(
    session: AsyncSession, room_id: uuid.UUID, user_id: uuid.UUID
) -> AccessRecord | None:
    access = await session.scalar(
        select(ResourceAccess).where(
            ResourceAccess.resource_id == room_id, ResourceAccess.user_id == user_id
        )
    )
    return access_record(access) if access else None


async def count_owners(session: AsyncSession, room_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(ResourceAccess)
        .where(ResourceAccess.resource_id == room_id, ResourceAccess.role == "owner")
    )
    return count or 0


async def create_access(
    session: AsyncSession, *, room_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> AccessRecord:
    access = ResourceAccess(resource_id=room_id, user_id=user_id, role=role)
    session.add(access)
    await session.flush()
    return access_record(access)


async def set_access_role(session: AsyncSession, access_id: uuid.UUID, role: str) -> AccessRecord:
    access = await session.get(ResourceAccess, access_id)
    if access is None:
        raise LookupError(access_id)
    access.role = role
    await session.flush()
    return access_record(access)


async def delete_access(session: AsyncSession, access_id: uuid.UUID) -> None:
    await session.execute(delete(ResourceAccess).where(ResourceAccess.id == access_id))


async def list_administered_accesses(
    session: AsyncSession, user_id: uuid.UUID, *, offset: int, limit: int
) -> Page[AccessRecord]:
    """Accesses of every room where ``user_id`` is administrator or owner, newest first."""
    administered = select(ResourceAccess.resource_id).where(
        ResourceAccess.user_id == user_id,
        ResourceAccess.role.in_(("administrator", "owner")),
    )
    statement = select(ResourceAccess).where(ResourceAccess.resource_id.in_(administered))
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(ResourceAccess.created_at.desc(), ResourceAccess.id)
        .offset(offset)
        .limit(limit)
    )
    return Page([access_record(a) for a in rows], total or 0)
