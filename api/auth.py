"""Who is calling: session cookie (with CSRF on unsafe methods) or an OIDC bearer token."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import jwt as pyjwt
from aiohttp import web

from api import keys
from api.session import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from coordinator.cache import TTLCache
from coordinator.errors import NotAuthenticated, PermissionDenied
from coordinator.identity import INACTIVE, LoginRefused, resolve_user
from coordinator.settings import Settings
from storage import reads
from storage.records import UserRecord

if TYPE_CHECKING:
    from joserfc.jwk import KeySet

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_MISSING = "CSRF Failed: CSRF token missing."
CSRF_INCORRECT = "CSRF Failed: CSRF token incorrect."
INVALID_TOKEN = "Invalid token."


class NotAuthenticatedSession(NotAuthenticated):
    """401 with ``WWW-Authenticate: Session``, as Meet answers."""


@dataclass(frozen=True, slots=True)
class Identity:
    user: UserRecord | None
    via: str  # "session", "bearer" or "anonymous"
    session_key: str | None = None  # the login session's key (via "session")


IDENTITY = web.RequestKey("identity", Identity)


class JWKSVerifier:
    """Verifies OIDC access tokens against the provider's JWKS (cached, refreshed on new kid)."""

    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        self._oidc = settings.oidc
        self._http = http
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._users: TTLCache[str, UserRecord] = TTLCache(ttl=30, max_size=10_000)

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        async with self._lock:
            stale = refresh and time.monotonic() - self._fetched_at > 10
            if self._keys is None or stale:
                timeout = aiohttp.ClientTimeout(total=self._oidc.timeout_seconds)
                async with self._http.get(self._oidc.jwks_endpoint, timeout=timeout) as resp:
                    resp.raise_for_status()
                    from joserfc.jwk import KeySet  # (on first use: 2.6 MiB)

                    self._keys = KeySet.import_key_set(await resp.json())
                self._fetched_at = time.monotonic()
            return self._keys

    async def claims(
        self, token: str, *, audience: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        """The validated claims of ``token``; raises :class:`NotAuthenticated` otherwise.

        Access tokens are checked against OIDC_RS_AUDIENCE (default: the client id); ID tokens
        pass the client id as ``audience`` and the login's ``nonce``.
        """
        if not self._oidc.jwks_endpoint:
            raise NotAuthenticated(INVALID_TOKEN)
        from joserfc import jwt  # (on first use: 2.6 MiB a server without OIDC never loads)
        from joserfc.errors import JoseError

        try:
            key_set = await self._key_set()
            try:
                decoded = jwt.decode(token, key_set, algorithms=[self._oidc.sign_algo])
            except JoseError:
                key_set = await self._key_set(refresh=True)
                decoded = jwt.decode(token, key_set, algorithms=[self._oidc.sign_algo])
            options: dict[str, Any] = {
                "exp": {"essential": True},
                "sub": {"essential": True},
                "aud": {"essential": True, "value": audience or self._oidc.audience},
            }
            if self._oidc.issuer:
                options["iss"] = {"essential": True, "value": self._oidc.issuer}
            if nonce:
                options["nonce"] = {"essential": True, "value": nonce}
            jwt.JWTClaimsRegistry(leeway=30, **options).validate(decoded.claims)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise NotAuthenticated(INVALID_TOKEN) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("JWKS endpoint unreachable: %s", exc)
            raise NotAuthenticated(INVALID_TOKEN) from exc
        return dict(decoded.claims)

    async def user(self, request: web.Request, token: str) -> UserRecord:
        cached = self._users.get(token)
        if cached is not None:
            # The token's user is remembered for up to 30 s, its flags are not: deactivation
            # and staff changes apply through the short-lived user lookup cache.
            fresh = await load_user(request, cached.id)
            if fresh is None:
                self._users.discard(token)
                raise NotAuthenticated(INVALID_TOKEN)
            if not fresh.is_active:
                self._users.discard(token)
                raise LoginRefused(INACTIVE)
            return fresh
        claims = await self.claims(token)
        user = await resolve_user(
            request.app[keys.SESSIONMAKER], self._oidc, claims, is_login=False
        )
        self._users.set(token, user, ttl=max(1.0, min(30.0, float(claims["exp"]) - time.time())))
        return user


VERIFIER = web.AppKey("jwks_verifier", JWKSVerifier)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _same_domain(host: str, pattern: str) -> bool:
    """Django's ``is_same_domain``: ``.example.com`` matches it and its subdomains."""
    host, pattern = host.lower(), pattern.lower()
    if not pattern:
        return False
    if pattern.startswith("."):
        return host.endswith(pattern) or host == pattern[1:]
    return host == pattern


def _origin_trusted(request: web.Request, origin: str) -> bool:
    scheme = "https" if request.secure else "http"
    if origin == f"{scheme}://{request.host}":
        return True
    trusted = request.app[keys.SETTINGS].csrf_trusted_origins
    if origin in trusted:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return any(
        _same_domain(parts.netloc, entry.split("://*", 1)[1])
        for entry in trusted
        if "://*" in entry and entry.split("://", 1)[0] == parts.scheme
    )


def _check_referer(request: web.Request) -> None:
    """Over HTTPS without an Origin, the Referer must be this host or a trusted origin's."""
    referer = request.headers.get("Referer")
    if referer is None:
        raise PermissionDenied("CSRF Failed: Referer checking failed - no Referer.")
    try:
        parts = urlsplit(referer)
    except ValueError:
        parts = None
    if parts is None or not parts.scheme or not parts.netloc:
        raise PermissionDenied("CSRF Failed: Referer checking failed - Referer is malformed.")
    if parts.scheme != "https":
        raise PermissionDenied(
            "CSRF Failed: Referer checking failed - Referer is insecure while host is secure."
        )
    hosts = [
        urlsplit(o).netloc.lstrip("*") for o in request.app[keys.SETTINGS].csrf_trusted_origins
    ]
    if any(_same_domain(parts.netloc, h) for h in [*hosts, request.host]):
        return
    raise PermissionDenied(
        f"CSRF Failed: Referer checking failed - {parts.geturl()} does not match any trusted "
        "origins."
    )


def check_csrf(request: web.Request) -> None:
    """Django's CsrfViewMiddleware for cookie-authenticated unsafe requests: the ``Origin``
    (or, over HTTPS without one, the ``Referer``) must be this site or CSRF_TRUSTED_ORIGINS,
    then the ``X-CSRFToken`` header must equal the ``csrftoken`` cookie."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("Origin")
    if origin is not None:
        if not _origin_trusted(request, origin):
            raise PermissionDenied(
                f"CSRF Failed: Origin checking failed - {origin} does not match any trusted "
                "origins."
            )
    elif request.secure:
        _check_referer(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    header = request.headers.get(CSRF_HEADER)
    if not cookie or not header:
        raise PermissionDenied(CSRF_MISSING)
    if not hmac.compare_digest(cookie.encode(), header.encode()):
        raise PermissionDenied(CSRF_INCORRECT)


async def identify(request: web.Request, *, allow_bearer: bool = True) -> Identity:
    """The caller's identity, computed once per request."""
    if IDENTITY in request:
        return request[IDENTITY]
    identity = await _identify(request, allow_bearer=allow_bearer)
    request[IDENTITY] = identity
    return identity


async def load_user(request: web.Request, user_id: uuid.UUID) -> UserRecord | None:
    """The user ``user_id`` through the lookup cache (single-flight: one query per expiry)."""
    sessionmaker = request.app[keys.SESSIONMAKER]

    async def load() -> tuple[UserRecord | None]:
        return (await reads.user(reads.reader(sessionmaker), user_id),)

    cache = request.app[keys.ROOMS].cache
    return (await cache.users.fetch(user_id, load) if cache.enabled else await load())[0]


def session_key(request: web.Request) -> tuple[str, uuid.UUID] | None:
    """``(key, user id)`` from a well-formed, unexpired session cookie (not yet checked
    against the server-side session)."""
    data = request.app[keys.SESSIONS].decode(request.cookies.get(SESSION_COOKIE))
    if not data:
        return None
    key, user_id = data.get("sid"), data.get("uid")
    if not isinstance(key, str) or not key or not isinstance(user_id, str):
        return None
    try:
        return key, uuid.UUID(user_id)
    except ValueError:
        return None


async def _identify(request: web.Request, *, allow_bearer: bool) -> Identity:
    token = bearer_token(request) if allow_bearer else None
    if token is not None:
        return Identity(await request.app[VERIFIER].user(request, token), "bearer")
    found = session_key(request)
    if found is None:
        return Identity(None, "anonymous")
    key, user_id = found
    # The cookie alone proves nothing: its session must still be open on the server
    # (logout and deactivation close it).
    if await request.app[keys.LOGIN_SESSIONS].user_id(key) != user_id:
        return Identity(None, "anonymous")
    user = await load_user(request, user_id)
    if user is None or not user.is_active:
        return Identity(None, "anonymous")
    check_csrf(request)
    return Identity(user, "session", key)


INVALID_LIVEKIT_TOKEN = "Invalid LiveKit token: {}"


def livekit_token_claims(request: web.Request) -> dict[str, Any]:
    """The verified claims of a LiveKit access token in ``Authorization: Bearer …``.

    Missing or malformed header → 403 "Authentication credentials were not provided.";
    a bad, expired or foreign token → 403 "Invalid LiveKit token: <reason>" (Meet sends no
    WWW-Authenticate for this scheme, hence 403, not 401).
    """
    token = bearer_token(request)
    if token is None:
        raise PermissionDenied("Authentication credentials were not provided.")
    livekit = request.app[keys.SETTINGS].livekit
    try:
        claims: dict[str, Any] = pyjwt.decode(
            token,
            livekit.api_secret.get(),
            algorithms=["HS256"],
            issuer=livekit.api_key,
            leeway=60,
            options={"require": ["exp"]},
        )
    except pyjwt.InvalidTokenError as exc:
        raise PermissionDenied(INVALID_LIVEKIT_TOKEN.format(exc)) from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise PermissionDenied(INVALID_LIVEKIT_TOKEN.format("no identity"))
    return claims


async def current_user(request: web.Request) -> UserRecord | None:
    return (await identify(request)).user


async def require_user(request: web.Request) -> UserRecord:
    user = await current_user(request)
    if user is None:
        raise NotAuthenticatedSession()
    return user


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)
