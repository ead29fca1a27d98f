"""Applications of the external API, their e-mail domains, and the add-on sessions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AddonSession, Application, ApplicationDomain


@dataclass(frozen=True, slots=True)
class ApplicationRecord:
    id: uuid.UUID
    name: str
    is_active: bool
    client_id: str
    client_secret_hash: str
    scopes: tuple[str, ...]
    domains: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class AddonTokens:
    access_token: str
    token_type: str
    expires_in: int
    scope: str


async def create_application(
    session: AsyncSession,
    *,
    name: str,
    client_id: str,
    client_secret_hash: str,
    scopes: list[str],
    domains: list[str],
    is_active: bool,
) -> ApplicationRecord:
    application = Application(
        name=name,
        client_id=client_id,
        client_secret=client_secret_hash,
        scopes=scopes,
        is_active=is_active,
    )
    session.add(application)
    await session.flush()
    for domain in domains:
        session.add(ApplicationDomain(application_id=application.id, domain=domain))
    await session.flush()
    return _record(application, sorted(domains))


async def application_by_client_id(
    session: AsyncSession, client_id: str
) -> ApplicationRecord | None:
    application = await session.scalar(
        select(Application).where(Application.client_id == client_id)
    )
    if application is None:
        return None
    domains = await session.scalars(
        select(ApplicationDomain.domain)
        .where(ApplicationDomain.application_id == application.id)
        .order_by(ApplicationDomain.domain)
    )
    return _record(application, list(domains))


async def set_application_active(session: AsyncSession, client_id: str, active: bool) -> None:
    await session.execute(
        update(Application).where(Application.client_id == client_id).values(is_active=active)
    )


def _record(application: Application, domains: list[str]) -> ApplicationRecord:
    return ApplicationRecord(
        id=application.id,
        name=application.name,
        is_active=application.is_active,
        client_id=application.client_id,
        client_secret_hash=application.client_secret,
        scopes=tuple(application.scopes or ()),
        domains=tuple(domains),
    )


# -- add-on sessions -------------------------------------------------------------------------


async def create_addon_session(
    session: AsyncSession,
    *,
    session_hash: str,
    transit_hash: str,
    expires_at: datetime,
    transit_expires_at: datetime,
    now: datetime,
) -> None:
    await session.execute(delete(AddonSession).where(AddonSession.expires_at <= now))
    session.add(
        AddonSession(
            session_hash=session_hash,
            transit_hash=transit_hash,
            expires_at=expires_at,
            transit_expires_at=transit_expires_at,
            created_at=now,
        )
    )
    await session.flush()


async def authenticate_addon_session(
    session: AsyncSession, *, transit_hash: str, tokens: AddonTokens, now: datetime
) -> bool:
    """Consume the transit token and bind ``tokens`` to its pending, unexpired session, in
    one conditional UPDATE: of two concurrent exchanges, only one matches the row."""
    result = await session.execute(
        update(AddonSession)
        .where(
            AddonSession.transit_hash == transit_hash,
            AddonSession.transit_consumed.is_(False),
            AddonSession.state == "pending",
            AddonSession.transit_expires_at > now,
            AddonSession.expires_at > now,
        )
        .values(
            transit_consumed=True,
            state="authenticated",
            access_token=tokens.access_token,
            token_type=tokens.token_type,
            token_expires_in=tokens.expires_in,
            scope=tokens.scope,
        )
        .returning(AddonSession.session_hash)
    )
    return result.first() is not None


async def evict_addon_session_of_transit(session: AsyncSession, transit_hash: str) -> bool:
    """Delete the session a refused transit token names (a replay, or an expired session);
    whether there was one."""
    result = await session.execute(
        delete(AddonSession)
        .where(AddonSession.transit_hash == transit_hash)
        .returning(AddonSession.session_hash)
    )
    return result.first() is not None


async def take_authenticated_addon_session(
    session: AsyncSession, session_hash: str, now: datetime
) -> AddonTokens | None:
    """Delete the authenticated session and return its tokens (one reader wins)."""
    result = await session.execute(
        delete(AddonSession)
        .where(
            AddonSession.session_hash == session_hash,
            AddonSession.state == "authenticated",
            AddonSession.expires_at > now,
        )
        .returning(
            AddonSession.access_token,
            AddonSession.token_type,
            AddonSession.token_expires_in,
            AddonSession.scope,
        )
    )
    row = result.first()
    if row is None or row[0] is None:
        return None
    return AddonTokens(row[0], row[1] or "Bearer", int(row[2] or 0), row[3] or "")


async def addon_session_state(
    session: AsyncSession, session_hash: str, now: datetime
) -> str | None:
    state: str | None = await session.scalar(
        select(AddonSession.state).where(
            AddonSession.session_hash == session_hash, AddonSession.expires_at > now
        )
    )
    return state
