"""External applications (reference §1.1, §2.10): credentials, delegation rules, JWTs.

The client secret is stored as a Django ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` string
(hashlib's PBKDF2-HMAC-SHA256), so the rows of a Meet database keep working; checks compare in
constant time and an unknown client costs the same hash as a wrong secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import string
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
from sqlalchemy.exc import IntegrityError

from coordinator.errors import (
    Conflict,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from coordinator.settings import ExternalAPISettings, OIDCSettings
from storage import applications as application_store
from storage import users as user_store
from storage.applications import ApplicationRecord
from storage.engine import SessionMaker
from storage.models import APPLICATION_SCOPES
from storage.records import UserRecord

log = logging.getLogger(__name__)

ALPHANUMERICS = string.ascii_letters + string.digits
HASH_ALGORITHM = "pbkdf2_sha256"
INVALID_CREDENTIALS = "Invalid credentials"
INVALID_EMAIL = {"error": "Scope should be a valid email address."}
DOMAIN_REFUSED = {"error": "This application is not authorized for this email domain."}
PROVISIONAL_CONFLICT = {"error": "Failed to create or retrieve provisional user."}
SEVERAL_ACCOUNTS = "Multiple user accounts share a common email."


def random_string(length: int) -> str:
    return "".join(secrets.choice(ALPHANUMERICS) for _ in range(length))


# -- secrets ---------------------------------------------------------------------------------


def hash_secret(secret: str, *, iterations: int, salt: str | None = None) -> str:
    salt = salt or random_string(22)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), iterations)
    return f"{HASH_ALGORITHM}${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"


def is_hashed(value: str) -> bool:
    """Whether ``value`` is a hash this module can check (never hash one twice)."""
    return _parse_hash(value) is not None


def _parse_hash(value: str) -> tuple[int, str, bytes] | None:
    algorithm, _, rest = value.partition("$")
    iterations, _, rest = rest.partition("$")
    salt, _, encoded = rest.partition("$")
    if algorithm != HASH_ALGORITHM or not iterations.isdigit() or not salt or not encoded:
        return None
    try:
        digest = base64.b64decode(encoded, validate=True)
    except ValueError:
        return None
    count = int(iterations)
    if not 1 <= count <= 10_000_000 or len(digest) != 32:
        return None
    return count, salt, digest


def verify_secret(secret: str, encoded: str) -> bool:
    parsed = _parse_hash(encoded)
    if parsed is None:
        return False
    iterations, salt, expected = parsed
    raw = secret.encode("utf-8", "surrogatepass")
    candidate = hashlib.pbkdf2_hmac("sha256", raw, salt.encode(), iterations)
    return hmac.compare_digest(candidate, expected)


# -- domains and e-mails ---------------------------------------------------------------------

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TLD = r"(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_TLD}\.?")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")


def normalize_domain(domain: str) -> str:
    """``domain`` stripped and lower-cased; ValueError unless it is a DNS name with a TLD."""
    value = domain.strip().lower()
    if len(value) > 253 or not _DOMAIN.fullmatch(value):
        raise ValueError(f"Enter a valid domain: {domain!r}")
    return value


def is_valid_email(value: str) -> bool:
    """A conservative e-mail check (dot-atom local part, DNS domain with a TLD, ≤ 320)."""
    if not value or len(value) > 320 or "@" not in value:
        return False
    local, _, domain = value.rpartition("@")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        return False
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return bool(_DOMAIN.fullmatch(ascii_domain.lower()))


def can_delegate_email(application: ApplicationRecord, email: str) -> bool:
    """No domain: any e-mail; else its domain must be one of them (case-insensitive)."""
    if not application.domains:
        return True
    domain = email.rpartition("@")[2].lower()
    return domain in application.domains


def normalize_scopes(scopes: Iterable[str]) -> list[str]:
    found: list[str] = []
    for scope in scopes:
        value = scope.strip().lower()
        if value not in APPLICATION_SCOPES:
            raise ValueError(
                f"{scope!r} is not a scope; use one of {', '.join(APPLICATION_SCOPES)}"
            )
        if value not in found:
            found.append(value)
    return found


def scopes_of(claims: Mapping[str, Any], prefix: str | None) -> list[str]:
    """The scopes a token grants: a list or a space-separated string, lower-cased, without the
    resource-server prefix (``lasuite_meet:rooms:list`` → ``rooms:list``)."""
    raw = claims.get("scope")
    if isinstance(raw, str):
        items = raw.split()
    elif isinstance(raw, list):
        items = [item for item in raw if isinstance(item, str)]
    else:
        return []
    scopes = list(dict.fromkeys(item.lower() for item in items))
    if prefix:
        scopes = [scope.removeprefix(f"{prefix.lower()}:") for scope in scopes]
    return scopes


# -- tokens ----------------------------------------------------------------------------------


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    """A token of ours whose issuer or audience is wrong."""


class TokenUnreadable(Exception):
    """Not one of our tokens (signature, algorithm, format): the next authenticator may try."""


@dataclass(frozen=True, slots=True)
class JwtService:
    secret_key: str
    algorithm: str
    issuer: str | None
    audience: str | None
    expiration_seconds: int
    token_type: str

    def issue(
        self, user_id: uuid.UUID, scope: str, extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        payload: dict[str, Any] = dict(extra or {})
        payload.update(
            iat=now, exp=now + timedelta(seconds=self.expiration_seconds), user_id=str(user_id)
        )
        if self.issuer:
            payload["iss"] = self.issuer
        if self.audience:
            payload["aud"] = self.audience
        if scope:
            payload["scope"] = scope
        body: dict[str, Any] = {
            "access_token": pyjwt.encode(payload, self.secret_key, algorithm=self.algorithm),
            "token_type": self.token_type,
            "expires_in": self.expiration_seconds,
        }
        if scope:
            body["scope"] = scope
        return body

    def decode(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = pyjwt.decode(
                token,
                self.secret_key,
                algorithms=[self.algorithm],
                issuer=self.issuer or None,
                audience=self.audience or None,
                options={"require": ["exp"]},
            )
        except pyjwt.ExpiredSignatureError as exc:
            raise TokenExpired() from exc
        except (pyjwt.InvalidIssuerError, pyjwt.InvalidAudienceError) as exc:
            raise TokenInvalid() from exc
        except pyjwt.InvalidTokenError as exc:
            raise TokenUnreadable() from exc
        return claims


def application_jwt(settings: ExternalAPISettings) -> JwtService:
    return JwtService(
        settings.jwt_secret_key.get(),
        settings.jwt_alg,
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.jwt_expiration_seconds,
        settings.jwt_token_type,
    )


# -- the service -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewApplication:
    application: ApplicationRecord
    client_secret: str  # shown once, stored hashed


class ApplicationService:
    def __init__(
        self, settings: ExternalAPISettings, oidc: OIDCSettings, sessionmaker: SessionMaker
    ) -> None:
        self._settings = settings
        self._oidc = oidc
        self._sessionmaker = sessionmaker
        self._jwt = application_jwt(settings) if settings.jwt_secret_key else None
        self._dummy: str | None = None

    @property
    def jwt(self) -> JwtService | None:
        return self._jwt

    async def create(
        self,
        *,
        name: str,
        domains: Iterable[str] = (),
        scopes: Iterable[str] = (),
        is_active: bool = True,
        client_secret: str | None = None,
    ) -> NewApplication:
        """A new application with generated credentials (or ``client_secret``, stored hashed
        unless it already is a hash, never twice); ValueError on a bad domain or scope."""
        clean_domains = sorted({normalize_domain(domain) for domain in domains})
        clean_scopes = normalize_scopes(scopes)
        name = name.strip()
        if not name or len(name) > 255:
            raise ValueError("the name must have 1 to 255 characters")
        secret = client_secret or random_string(self._settings.client_secret_length)
        hashed = (
            secret
            if is_hashed(secret)
            else await asyncio.to_thread(
                hash_secret, secret, iterations=self._settings.secret_hash_iterations
            )
        )
        async with self._sessionmaker.begin() as session:
            application = await application_store.create_application(
                session,
                name=name,
                client_id=random_string(self._settings.client_id_length),
                client_secret_hash=hashed,
                scopes=clean_scopes,
                domains=clean_domains,
                is_active=is_active,
            )
        return NewApplication(application, secret)

    async def get(self, client_id: str) -> ApplicationRecord | None:
        if not client_id or len(client_id) > 100 or not client_id.isprintable():
            return None  # also NUL and lone surrogates, which no database stores
        async with self._sessionmaker() as session:
            return await application_store.application_by_client_id(session, client_id)

    async def authenticate(self, client_id: str, client_secret: str) -> ApplicationRecord:
        """The application whose credentials these are; 401 otherwise (the secret is checked
        before the active flag, so an inactive application with a wrong secret says nothing)."""
        application = await self.get(client_id)
        if self._dummy is None:
            # Checked when the client is unknown: the same work as a wrong secret.
            self._dummy = hash_secret(
                random_string(32), iterations=self._settings.secret_hash_iterations
            )
        encoded = application.client_secret_hash if application else self._dummy
        matches = await asyncio.to_thread(verify_secret, client_secret, encoded)
        if application is None or not matches:
            raise NotAuthenticated(INVALID_CREDENTIALS)
        if not application.is_active:
            raise NotAuthenticated("Application is inactive")
        return application

    @property
    def provisional_users_allowed(self) -> bool:
        return (
            self._settings.allow_user_creation
            and self._oidc.fallback_to_email_for_identification
            and not self._settings.user_sub_field_immutable
        )

    async def delegated_user(self, email: str, client_id: str) -> UserRecord:
        """The user an application acts for: found by e-mail (case-insensitive), else a
        provisional one (no ``sub``) when allowed; its first OIDC login attaches the sub."""
        user = await self._user_by_email(email)
        if user is not None:
            return user
        if not self.provisional_users_allowed:
            raise NotFound("User not found.")
        try:
            async with self._sessionmaker.begin() as session:
                user = await user_store.create_user(session, sub=None, email=email)
        except IntegrityError:
            # A concurrent request created it (unique e-mail among sub-less users).
            user = await self._user_by_email(email)
            if user is None:
                raise Conflict(body=PROVISIONAL_CONFLICT) from None
            return user
        log.info(
            "Provisional user created via application: user_id=%s, client_id=%s",
            user.id,
            client_id,
        )
        return user

    async def _user_by_email(self, email: str) -> UserRecord | None:
        async with self._sessionmaker() as session:
            matches = await user_store.find_users_by_email(session, email)
        if len(matches) > 1:
            raise InvalidRequest(SEVERAL_ACCOUNTS)
        return matches[0] if matches else None

    async def token(self, client_id: str, client_secret: str, email: str) -> dict[str, Any]:
        """The client-credentials grant: a JWT acting for ``email`` (the ``scope`` field)."""
        if self._jwt is None:
            raise NotFound()
        application = await self.authenticate(client_id, client_secret)
        if not is_valid_email(email):
            raise InvalidRequest(body=INVALID_EMAIL)
        if not can_delegate_email(application, email):
            log.warning("Application %s denied delegation for an e-mail", application.client_id)
            raise PermissionDenied(body=DOMAIN_REFUSED)
        user = await self.delegated_user(email, client_id)
        if not user.is_active:
            raise NotAuthenticated("User account is disabled.")
        return self._jwt.issue(
            user.id,
            " ".join(application.scopes),
            {"client_id": application.client_id, "delegated": True},
        )
