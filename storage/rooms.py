"""Room and room-access (ResourceAccess) repository."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Executable, Table, bindparam, delete, func, insert, literal, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.engine import SessionMaker, Statement, write
from storage.models import ResourceAccess, Room, User, utcnow
from storage.records import AccessRecord, Page, RoomRecord, UserRecord
from storage.users import user_record

ROOMS: Table = Room.__table__  # type: ignore[assignment]
ACCESSES: Table = ResourceAccess.__table__  # type: ignore[assignment]
USERS: Table = User.__table__  # type: ignore[assignment]
# Core columns (no ORM entities): rows come back as tuples, nothing is tracked by a session.
ROOM_COLUMNS = (
    ROOMS.c.id,
    ROOMS.c.name,
    ROOMS.c.slug,
    ROOMS.c.access_level,
    ROOMS.c.configuration,
    ROOMS.c.pin_code,
    ROOMS.c.created_at,
    ROOMS.c.updated_at,
)
USER_COLUMNS = (
    USERS.c.id,
    USERS.c.sub,
    USERS.c.email,
    USERS.c.full_name,
    USERS.c.short_name,
    USERS.c.language,
    USERS.c.timezone,
    USERS.c.default_room_access_level,
    USERS.c.default_room_configuration,
    USERS.c.is_active,
    USERS.c.is_staff,
    USERS.c.created_at,
    USERS.c.last_login,
)


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


def _room_from_row(row: Sequence[Any]) -> RoomRecord:
    """A room from the first ``len(ROOM_COLUMNS)`` values of a Core row."""
    return RoomRecord(
        id=row[0],
        name=row[1],
        slug=row[2] or "",
        access_level=row[3],
        configuration=dict(row[4] or {}),
        pin_code=row[5],
        created_at=row[6],
        updated_at=row[7],
    )


def _user_from_row(row: Sequence[Any]) -> UserRecord:
    return UserRecord(
        id=row[0],
        sub=row[1],
        email=row[2],
        full_name=row[3],
        short_name=row[4],
        language=row[5],
        timezone=row[6],
        default_room_access_level=row[7],
        default_room_configuration=dict(row[8] or {}),
        is_active=row[9],
        is_staff=row[10],
        created_at=row[11],
        last_login=row[12],
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
    """The room found by id or slug, with ``user_id``'s role in it (None when unrelated)."""
    if user_id is None:  # no join at all: an always-false join condition scans the accesses
        statement = select(*ROOM_COLUMNS, null())
    else:
        joined = (ACCESSES.c.resource_id == ROOMS.c.id) & (ACCESSES.c.user_id == user_id)
        statement = select(*ROOM_COLUMNS, ACCESSES.c.role).outerjoin(ACCESSES, joined)
    statement = statement.where(ROOMS.c.id == room_id if room_id else ROOMS.c.slug == slug)
    if for_update:
        statement = statement.with_for_update(of=ROOMS)
    row = (await session.execute(statement)).first()
    if row is None:
        return None
    role: str | None = row[-1]
    return _room_from_row(row), role


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
    """Rooms where the user holds an access, ordered by name, with the user's role.

    The count (an index-only scan of the user's accesses) runs only when the page is full or
    empty past the first: a shorter page ends the list, so it gives the count itself.
    """
    statement = (
        select(*ROOM_COLUMNS, ACCESSES.c.role)
        .join(ACCESSES, ACCESSES.c.resource_id == ROOMS.c.id)
        .where(ACCESSES.c.user_id == user_id)
        .order_by(ROOMS.c.name, ROOMS.c.id)
        .offset(offset)
        .limit(limit)
    )
    items = [(_room_from_row(row), row[-1]) for row in await session.execute(statement)]
    if 0 < len(items) < limit or (offset == 0 and not items):
        return Page(items, offset + len(items))
    total = await session.scalar(
        select(func.count()).select_from(ACCESSES).where(ACCESSES.c.user_id == user_id)
    )
    return Page(items, total or 0)


async def room_accesses(
    session: AsyncSession, room_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[AccessRecord]]:
    """Accesses (with their users) of the given rooms, newest first."""
    result: dict[uuid.UUID, list[AccessRecord]] = {room_id: [] for room_id in room_ids}
    if not room_ids:
        return result
    rows = await session.execute(
        select(
            ACCESSES.c.id,
            ACCESSES.c.resource_id,
            ACCESSES.c.user_id,
            ACCESSES.c.role,
            ACCESSES.c.created_at,
            *USER_COLUMNS,
        )
        .join(USERS, USERS.c.id == ACCESSES.c.user_id)
        .where(ACCESSES.c.resource_id.in_(room_ids))
        .order_by(ACCESSES.c.created_at.desc(), ACCESSES.c.id)
    )
    users: dict[uuid.UUID, UserRecord] = {}  # one record per user (the caller is in each)
    for row in rows:
        user = users.get(row[2])
        if user is None:
            user = users[row[2]] = _user_from_row(row[5:])
        result[row[1]].append(
            AccessRecord(
                id=row[0],
                resource_id=row[1],
                user_id=row[2],
                role=row[3],
                created_at=row[4],
                user=user,
            )
        )
    return result


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
