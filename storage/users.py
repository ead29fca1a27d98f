"""User repository: functions taking a session and returning :class:`UserRecord` values."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import User
from storage.records import Page, UserRecord
from storage.sessions import delete_user_sessions


def user_record(user: User) -> UserRecord:
    return UserRecord(
        id=user.id,
        sub=user.sub,
        email=user.email,
        full_name=user.full_name,
        short_name=user.short_name,
        language=user.language,
        timezone=user.timezone,
        default_room_access_level=user.default_room_access_level,
        default_room_configuration=dict(user.default_room_configuration or {}),
        is_active=user.is_active,
        is_staff=user.is_staff,
        created_at=user.created_at,
        last_login=user.last_login,
    )


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> UserRecord | None:
    user = await session.get(User, user_id)
    return user_record(user) if user else None


async def get_user_by_sub(session: AsyncSession, sub: str) -> UserRecord | None:
    user = await session.scalar(select(User).where(User.sub == sub))
    return user_record(user) if user else None


async def find_users_by_email(session: AsyncSession, email: str) -> list[UserRecord]:
    """Users whose e-mail equals ``email`` case-insensitively, like Meet's ``iexact`` (no
    stripping: the address is compared as the provider sent it). ``lower()`` on both sides
    uses the ``lower(email)`` index."""
    rows = await session.scalars(
        select(User).where(func.lower(User.email) == func.lower(email)).limit(2)
    )
    return [user_record(u) for u in rows]


async def create_user(session: AsyncSession, **fields: Any) -> UserRecord:
    user = User(**fields)
    session.add(user)
    await session.flush()
    return user_record(user)


async def update_user(session: AsyncSession, user_id: uuid.UUID, **fields: Any) -> UserRecord:
    user = await session.get(User, user_id)
    if user is None:
        raise LookupError(user_id)
    for name, value in fields.items():
        setattr(user, name, value)
    await session.flush()
    if fields.get("is_active") is False:
        # Deactivation ends every login session of the account (bearer tokens are refused
        # by their per-request activity check).
        await delete_user_sessions(session, user_id)
    return user_record(user)


async def list_users(
    session: AsyncSession, *, query: str | None, offset: int, limit: int
) -> Page[UserRecord]:
    statement = select(User).where(User.is_active.is_(True))
    if query:
        statement = statement.where(func.lower(User.email).contains(query.strip().lower()))
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(User.email, User.id).offset(offset).limit(limit)
    )
    return Page([user_record(u) for u in rows], total or 0)
