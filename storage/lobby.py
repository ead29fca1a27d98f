"""Lobby-entry repository (the Ray engine's durable lobby): rows per room and participant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import LobbyEntryRow


@dataclass(frozen=True, slots=True)
class LobbyRecord:
    room: str
    participant_id: str
    username: str
    color: str
    status: str
    identity: str
    expires_at: datetime


async def save_entries(
    session: AsyncSession, room: str, entries: list[LobbyRecord], removed: list[str]
) -> None:
    """Replace the rows of ``entries`` and delete those of ``removed``, in one transaction."""
    gone = [*removed, *(entry.participant_id for entry in entries)]
    if gone:
        await session.execute(
            delete(LobbyEntryRow).where(
                LobbyEntryRow.room == room, LobbyEntryRow.participant_id.in_(gone)
            )
        )
    for entry in entries:
        session.add(
            LobbyEntryRow(
                room=entry.room,
                participant_id=entry.participant_id,
                username=entry.username,
                color=entry.color,
                status=entry.status,
                identity=entry.identity,
                expires_at=entry.expires_at,
            )
        )
    await session.flush()


async def room_entries(session: AsyncSession, room: str, now: datetime) -> list[LobbyRecord]:
    rows = await session.scalars(
        select(LobbyEntryRow).where(LobbyEntryRow.room == room, LobbyEntryRow.expires_at > now)
    )
    return [
        LobbyRecord(
            room=row.room,
            participant_id=row.participant_id,
            username=row.username,
            color=row.color,
            status=row.status,
            identity=row.identity,
            expires_at=row.expires_at,
        )
        for row in rows
    ]


async def delete_expired(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(LobbyEntryRow).where(LobbyEntryRow.expires_at <= now))
