"""Server-side authentication and grant checks, mirroring livekit-server ``pkg/service/auth.go``.

Two layers:

1. :meth:`KeyRing.authenticate` is the HTTP middleware. A present ``Authorization``
   header must start with ``Bearer ``; the token's unverified ``iss`` selects the
   secret; any failure is an :class:`AuthFailure`, answered as a **plain-text 401**.
   Without a header (and without an ``access_token`` query parameter) the request
   passes with no claims.
2. The ``require_*`` helpers are the per-handler checks. A missing grant raises
   Twirp ``unauthenticated`` "permissions denied" (HTTP 401 JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from livekit.api import TokenVerifier
from livekit.api.access_token import Claims

from .twirp import permission_denied

#: PyJWT warns (an error under ``-W error``) for HMAC keys shorter than this.
MIN_SECRET_BYTES = 32

#: The default key pair of the stand-in (and of the pytest fixture).
DEFAULT_API_KEY = "devkey-meet-coordinator"
DEFAULT_API_SECRET = "meet-coordinator-standin-secret-0123456789abcdef"

_BEARER = "Bearer "


class AuthFailure(Exception):
    """The middleware rejected the request; ``str(self)`` is the plain-text 401 body."""


@dataclass(frozen=True)
class AuthResult:
    """Outcome of the middleware: ``claims`` is ``None`` when no token was sent."""

    claims: Claims | None = None
    raw_claims: Mapping[str, Any] = field(default_factory=dict)
    api_key: str | None = None


class KeyRing:
    """API key -> secret map; every secret must be at least 32 bytes."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        if not keys:
            raise ValueError("at least one API key is required")
        for key, secret in keys.items():
            if not key:
                raise ValueError("API keys must be non-empty")
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"secret for API key {key!r} is shorter than {MIN_SECRET_BYTES} bytes "
                    "(PyJWT warns, and warnings are errors in this project's tests)"
                )
        self._keys = dict(keys)

    @property
    def keys(self) -> dict[str, str]:
        """A copy of the key -> secret map (insertion order preserved)."""
        return dict(self._keys)

    def secret_for(self, api_key: str) -> str | None:
        """The secret of ``api_key``, or ``None`` if unknown."""
        return self._keys.get(api_key)

    def authenticate(self, header: str | None, query_token: str | None) -> AuthResult:
        """Run the middleware; raise :class:`AuthFailure` with the Go error text."""
        token = ""
        if header:
            if not header.startswith(_BEARER):
                raise AuthFailure("invalid authorization header. Must start with Bearer ")
            token = header[len(_BEARER) :]
        elif query_token:
            token = query_token
        if not token:
            return AuthResult()
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise AuthFailure("invalid authorization token") from exc
        api_key = unverified.get("iss")
        if not isinstance(api_key, str):
            api_key = ""
        secret = self._keys.get(api_key)
        if not secret:
            raise AuthFailure(f"invalid API key: {api_key}")
        try:
            claims = TokenVerifier(api_key, secret).verify(token)
        except Exception as exc:  # PyJWT errors, and malformed grant objects
            raise AuthFailure(f"invalid token: {token}, error: {exc}") from exc
        return AuthResult(claims=claims, raw_claims=dict(unverified), api_key=api_key)


def _video_flag(claims: Claims | None, flag: str) -> bool:
    video = claims.video if claims is not None else None
    return bool(video is not None and getattr(video, flag, None))


def require_flag(claims: Claims | None, flag: str) -> None:
    """``EnsureCreate/List/Record/IngressAdminPermission``: ``flag`` is a VideoGrants field."""
    if not _video_flag(claims, flag):
        raise permission_denied()


def require_admin(claims: Claims | None, room: str) -> None:
    """``EnsureAdminPermission``: ``roomAdmin`` and ``video.room == room``."""
    video = claims.video if claims is not None else None
    if video is None or not video.room_admin or video.room != room:
        raise permission_denied()


def require_sip_admin(claims: Claims | None) -> None:
    """``EnsureSIPAdminPermission``: the ``sip.admin`` grant."""
    sip = claims.sip if claims is not None else None
    if sip is None or not sip.admin:
        raise permission_denied()
