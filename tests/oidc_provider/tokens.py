"""RSA keys and RS256 JWTs for the OIDC provider stand-in (built on joserfc)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

ALGORITHM = "RS256"
#: JWT claims that describe the token rather than the user.
REGISTERED_CLAIMS = frozenset(
    {"iss", "aud", "exp", "iat", "nbf", "jti", "scope", "client_id", "azp", "auth_time", "nonce"}
)


def generate_rsa_key(kid: str | None = None) -> RSAKey:
    """A fresh 2048-bit RS256 signing key; ``kid`` defaults to the RFC 7638 thumbprint."""
    parameters: dict[str, Any] = {"use": "sig", "alg": ALGORITHM}
    if kid is not None:
        parameters["kid"] = kid
    return RSAKey.generate_key(2048, parameters=parameters, auto_kid=kid is None)  # type: ignore[arg-type]


def sign(
    claims: Mapping[str, Any], key: RSAKey, *, kid: str | None = None, typ: str = "JWT"
) -> str:
    """Compact RS256 JWS of *claims*; the ``kid`` header defaults to the key's own kid."""
    header = {"alg": ALGORITHM, "typ": typ, "kid": kid if kid is not None else key.kid}
    return jwt.encode(header, dict(claims), key, algorithms=[ALGORITHM])


def verify(
    token: str, keys: Sequence[RSAKey], *, issuer: str, allow_expired: bool = False
) -> dict[str, Any]:
    """Claims of *token* if it is signed by one of *keys*, issued by *issuer* and (unless
    *allow_expired*) not expired; raises :class:`joserfc.errors.JoseError` otherwise."""
    decoded = jwt.decode(token, KeySet(list(keys)), algorithms=[ALGORITHM])
    if allow_expired:
        registry = jwt.JWTClaimsRegistry(iss={"essential": True, "value": issuer})
        registry.validate({"iss": decoded.claims.get("iss")})
    else:
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer}, exp={"essential": True}
        )
        registry.validate(decoded.claims)
    return decoded.claims


def at_hash(access_token: str) -> str:
    """OIDC Core 3.1.3.6 ``at_hash``: left half of SHA-256, base64url without padding."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def user_claims_from(token_claims: Mapping[str, Any]) -> dict[str, Any]:
    """The user-describing subset of a token's claims (``sub``, ``email``, ...)."""
    claims = {"sub": token_claims.get("sub")}
    claims.update((k, v) for k, v in token_claims.items() if k not in REGISTERED_CLAIMS)
    return claims
