"""Server-side login sessions: opened at login, checked on every request, ended at logout.

The cookie (signed and encrypted) carries a random key; the database keeps its SHA-256 with
the user and the expiry. Lookups go through the lookup cache (single-flight): a session ended
here is refused at once, one ended by another process after at most the cache's TTL.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from coordinator.cache import LookupCache, TTLCache
from storage import reads
from storage import sessions as session_store
from storage.engine import SessionMaker


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class LoginSessions:
    def __init__(self, sessionmaker: SessionMaker, cache: LookupCache) -> None:
        self._sessionmaker = sessionmaker
        self._cache = cache
        # Sessions this process ended lately: a lookup that was in flight while one ended
        # may have re-cached it as open; this answer wins for longer than any cache entry.
        self._ended: TTLCache[str, bool] = TTLCache(ttl=cache.ttl + 5, max_size=100_000)

    async def open(self, user_id: uuid.UUID, *, max_age: int) -> str:
        """A new session of ``user_id`` lasting ``max_age`` seconds; returns its key."""
        key = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        async with self._sessionmaker.begin() as session:
            await session_store.delete_expired_sessions(session, now)
            await session_store.create_session(
                session,
                key_hash=_hash(key),
                user_id=user_id,
                expires_at=now + timedelta(seconds=max_age),
            )
        self._cache.sessions.discard(_hash(key))
        return key

    async def user_id(self, key: str) -> uuid.UUID | None:
        """The user of the live session ``key``; None when it ended, expired or never was."""
        digest = _hash(key)
        if self._ended.get(digest):
            return None

        async def load() -> tuple[uuid.UUID | None]:
            source = reads.reader(self._sessionmaker)
            user = await reads.session_user(source, digest, datetime.now(UTC))
            if user is None:
                return (None,)
            if self._cache.enabled:  # the same query read the user: no second one
                self._cache.users.set(user.id, (user,))
            return (user.id,)

        sessions = self._cache.sessions
        return (await sessions.fetch(digest, load) if self._cache.enabled else await load())[0]

    async def close(self, key: str) -> None:
        digest = _hash(key)
        async with self._sessionmaker.begin() as session:
            await session_store.delete_session(session, digest)
        self._ended.set(digest, True)
        self._cache.sessions.discard(digest)

    async def close_all(self, user_id: uuid.UUID) -> None:
        async with self._sessionmaker.begin() as session:
            await session_store.delete_user_sessions(session, user_id)
        self._cache.sessions.clear()
