"""Login-session repository: rows keyed by the SHA-256 of the cookie's random key."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage import reads
from storage.models import LoginSession


async def create_session(
    session: AsyncSession, *, key_hash: str, user_id: uuid.UUID, expires_at: datetime
) -> None:
    session.add(LoginSession(key_hash=key_hash, user_id=user_id, expires_at=expires_at))
    await session.flush()


async def session_user(session: AsyncSession, key_hash: str, now: datetime) -> uuid.UUID | None:
    """The user of the unexpired session ``key_hash``, or None."""
    user = await reads.session_user(reads.SessionReader(session), key_hash, now)
    return user.id if user is not None else None


async def delete_session(session: AsyncSession, key_hash: str) -> None:
    await session.execute(delete(LoginSession).where(LoginSession.key_hash == key_hash))


async def delete_user_sessions(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(delete(LoginSession).where(LoginSession.user_id == user_id))


async def delete_expired_sessions(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(LoginSession).where(LoginSession.expires_at <= now))
