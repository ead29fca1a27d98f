"""Add-on sessions (reference §2.9): init → exchange (logged-in user) → one poll.

An add-on framed by a third-party site cannot see our session cookie, so it opens a session
(``init``): a random session id in the ``addonsSid`` cookie, its CSRF token (HMAC-SHA256 of the
id under ADDONS_CSRF_SECRET) and a short-lived transit token. The user logs in in a dialog whose
success page ``exchange``\\ s the transit token: an add-on JWT is minted for that user and bound
to the session. The add-on's next ``poll`` (cookie + CSRF token) reads it once.

Rows live in the database (several processes serve one deployment) under SHA-256 digests of the
id and of the transit token. Every transition is one conditional statement: a transit token is
consumed by exactly one exchange, an authenticated session read by exactly one poll.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from coordinator.applications import JwtService
from coordinator.settings import AddonsSettings
from storage import applications as store
from storage.applications import AddonTokens
from storage.engine import SessionMaker

log = logging.getLogger(__name__)


class AddonSessionError(Exception):
    """Base of the add-on session failures (each maps to one HTTP answer)."""


class CsrfMismatch(AddonSessionError):
    pass


class SessionNotFound(AddonSessionError):
    pass


class TransitTokenRefused(AddonSessionError):
    pass


@dataclass(frozen=True, slots=True)
class NewAddonSession:
    session_id: str
    transit_token: str
    csrf_token: str


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def addons_jwt(settings: AddonsSettings) -> JwtService:
    return JwtService(
        settings.token_secret_key.get(),
        settings.token_alg,
        settings.token_issuer,
        settings.token_audience,
        settings.token_ttl,
        settings.token_type,
    )


class AddonSessions:
    def __init__(self, settings: AddonsSettings, sessionmaker: SessionMaker) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self.jwt = addons_jwt(settings)

    def csrf_token(self, session_id: str) -> str:
        key = self._settings.csrf_secret.get().encode()
        return hmac.new(key, session_id.encode("utf-8", "surrogatepass"), "sha256").hexdigest()

    def verify_csrf(self, session_id: str, submitted: str) -> None:
        expected = self.csrf_token(session_id).encode()
        if not hmac.compare_digest(expected, submitted.encode("utf-8", "surrogatepass")):
            raise CsrfMismatch("Invalid CSRF token.")

    async def init(self, *, now: datetime | None = None) -> NewAddonSession:
        now = now or datetime.now(UTC)
        length = self._settings.random_token_byte_length
        session_id = secrets.token_urlsafe(length)
        transit_token = secrets.token_urlsafe(length)
        async with self._sessionmaker.begin() as session:
            await store.create_addon_session(
                session,
                session_hash=_digest(session_id),
                transit_hash=_digest(transit_token),
                expires_at=now + timedelta(seconds=self._settings.session_ttl),
                transit_expires_at=now + timedelta(seconds=self._settings.transit_token_ttl),
                now=now,
            )
        return NewAddonSession(session_id, transit_token, self.csrf_token(session_id))

    async def poll(
        self, session_id: str, csrf: str, *, now: datetime | None = None
    ) -> AddonTokens | None:
        """The tokens once the session is authenticated (and the session is gone), None while
        pending; :class:`CsrfMismatch`, :class:`SessionNotFound` otherwise."""
        self.verify_csrf(session_id, csrf)
        now = now or datetime.now(UTC)
        digest = _digest(session_id)
        async with self._sessionmaker.begin() as session:
            tokens = await store.take_authenticated_addon_session(session, digest, now)
            if tokens is not None:
                return tokens
            if await store.addon_session_state(session, digest, now) is None:
                raise SessionNotFound("Session not found.")
        return None

    async def exchange(
        self, transit_token: str, user_id: uuid.UUID, *, now: datetime | None = None
    ) -> None:
        """Bind an add-on JWT of ``user_id`` to the session of ``transit_token`` (single use).

        Any refusal of a token that names a session (replayed, expired, raced) evicts that
        session: a transit token seen twice has leaked, its session must not yield a token.
        """
        now = now or datetime.now(UTC)
        issued = self.jwt.issue(user_id, self._settings.token_scope)
        tokens = AddonTokens(
            issued["access_token"], issued["token_type"], issued["expires_in"], issued["scope"]
        )
        digest = _digest(transit_token)
        async with self._sessionmaker.begin() as session:
            if await store.authenticate_addon_session(
                session, transit_hash=digest, tokens=tokens, now=now
            ):
                return
        async with self._sessionmaker.begin() as session:
            evicted = await store.evict_addon_session_of_transit(session, digest)
        if evicted:
            log.warning("Add-on transit token refused (replayed or expired): session evicted")
        raise TransitTokenRefused("Invalid or expired transit token.")
