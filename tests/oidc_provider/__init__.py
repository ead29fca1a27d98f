"""A real OpenID Connect provider stand-in on loopback, for tests and local demos.

Typical use in a test (the ``oidc_provider`` fixture lives in :mod:`.plugin`)::

    provider.next_user = {"sub": "u1", "email": "u1@example.com"}
    token = provider.mint_access_token({"sub": "u1"})  # bearer token for API tests

Command line: ``python -m tests.oidc_provider --help``.
"""

from __future__ import annotations

from .models import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI_PATTERNS,
    DEFAULT_USER,
    Client,
    OAuthError,
    RecordedRequest,
    UserClaims,
    redirect_uri_matches,
)
from .server import OIDCProvider
from .tokens import generate_rsa_key

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REDIRECT_URI_PATTERNS",
    "DEFAULT_USER",
    "Client",
    "OAuthError",
    "OIDCProvider",
    "RecordedRequest",
    "UserClaims",
    "generate_rsa_key",
    "redirect_uri_matches",
]
