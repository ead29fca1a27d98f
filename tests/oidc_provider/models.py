"""Plain data records used by the OIDC provider stand-in."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

#: Claims describing a user, e.g. ``{"sub": "u1", "email": "u1@example.com"}``.
UserClaims = dict[str, Any]

DEFAULT_CLIENT_ID = "meet-coordinator"
#: Long enough (48 chars) to keep PyJWT/joserfc happy should anyone use it as an HMAC key.
DEFAULT_CLIENT_SECRET = "meet-coordinator-test-secret-0123456789-abcdefgh"
#: Redirect URI patterns registered for the default client by the pytest fixture and the CLI.
DEFAULT_REDIRECT_URI_PATTERNS = (
    "http://127.0.0.1:*/api/v1.0/callback/",
    "http://localhost:*/api/v1.0/callback/",
)
DEFAULT_USER: UserClaims = {
    "sub": "demo-user",
    "email": "demo.user@example.com",
    "given_name": "Demo",
    "usual_name": "User",
}


class Denial:
    """Queued in place of a user: that login is refused (``error=access_denied``)."""


DENIAL = Denial()
#: What the next authorization resolves to: a user who logs in, or a refusal.
LoginOutcome = UserClaims | Denial


def redirect_uri_matches(pattern: str, uri: str) -> bool:
    """Exact match, where each ``*`` in *pattern* matches any run of characters
    except ``/``, ``?`` and ``#`` (so ``http://127.0.0.1:*/cb/`` accepts any port)."""
    if "*" not in pattern:
        return pattern == uri
    regex = "[^/?#]*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, uri) is not None


@dataclass
class Client:
    """A registered relying party.

    ``redirect_uris`` holds exact URIs or patterns (see :func:`redirect_uri_matches`).
    """

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)
    require_pkce: bool = True

    def allows_redirect_uri(self, uri: str) -> bool:
        return any(redirect_uri_matches(pattern, uri) for pattern in self.redirect_uris)


@dataclass
class AuthorizationRequest:
    """A validated ``/authorize`` request waiting for (or having got) a user."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None


@dataclass
class AuthorizationCode:
    code: str
    request: AuthorizationRequest
    user: UserClaims
    auth_time: int
    expires_at: float
    used: bool = False
    #: ``jti`` of the access tokens issued with this code (revoked on code replay).
    token_ids: list[str] = field(default_factory=list)

    def expired(self) -> bool:
        return time.time() >= self.expires_at


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request received by the provider (see ``OIDCProvider.requests``)."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]


class OAuthError(Exception):
    """An OAuth 2.0 / OIDC error response (``{"error": ..., "error_description": ...}``)."""

    def __init__(self, error: str, description: str = "", status: int = 400) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status

    def as_dict(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body
