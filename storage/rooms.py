"""Room and room-access (ResourceAccess) repository."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ResourceAccess, Room, User
from storage.records import AccessRecord, Page, RoomRecord
from storage.users import user_record


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
    """The room found by id or slug, with ``user_id``'s role in it (None when unrelated)."""
    joined = (ResourceAccess.resource_id == Room.id) & (
        ResourceAccess.user_id == user_id if user_id is not None else false()
    )
    statement = select(Room, ResourceAccess.role).outerjoin(ResourceAccess, joined)
    statement = (
        statement.where(Room.id == room_id) if room_id else statement.where(Room.slug == slug)
    )
    if for_update:
        statement = statement.with_for_update(of=Room)
    row = (await session.execute(statement)).first()
    if row is None:
        return None
    role: str | None = row[1]
    return room_record(row[0]), role


async def slug_exists(
    session: AsyncSession, slug: str, *, exclude: uuid.UUID | None = None
) -> bool:
    statement = select(Room.id).where(Room.slug == slug)
    if exclude is not None:
        statement = statement.where(Room.id != exclude)
    return (await session.scalar(statement.limit(1))) is not None


async def pin_code_exists(session: AsyncSession, pin_code: str) -> bool:
    return (await session.scalar(select(Room.id).where(Room.pin_code == pin_code))) is not None


async def create_room(
    session: AsyncSession, *, owner_id: uuid.UUID, **fields: Any
) -> tuple[RoomRecord, AccessRecord]:
    """Insert the room and its creator's ``owner`` access in the caller's transaction."""
    room = Room(id=uuid.uuid4(), **fields)
    access = ResourceAccess(id=uuid.uuid4(), resource_id=room.id, user_id=owner_id, role="owner")
    session.add(room)
    await session.flush()
    session.add(access)
    await session.flush()
    return room_record(room), access_record(access)


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
    base = select(Room, ResourceAccess.role).join(
        ResourceAccess, ResourceAccess.resource_id == Room.id
    )
    base = base.where(ResourceAccess.user_id == user_id)
    total = await session.scalar(
        select(func.count()).select_from(ResourceAccess).where(ResourceAccess.user_id == user_id)
    )
    rows = await session.execute(base.order_by(Room.name, Room.id).offset(offset).limit(limit))
    return Page([(room_record(room), role) for room, role in rows], total or 0)


async def room_accesses(
    session: AsyncSession, room_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[AccessRecord]]:
    """Accesses (with their users) of the given rooms, newest first."""
    result: dict[uuid.UUID, list[AccessRecord]] = {room_id: [] for room_id in room_ids}
    if not room_ids:
        return result
    rows = await session.execute(
        select(ResourceAccess, User)
        .join(User, User.id == ResourceAccess.user_id)
        .where(ResourceAccess.resource_id.in_(room_ids))
        .order_by(ResourceAccess.created_at.desc(), ResourceAccess.id)
    )
    for access, user in rows:
        result[access.resource_id].append(access_record(access, user))
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
