"""Who a login or a bearer token is: find, attach, create or refuse users from OIDC claims."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from coordinator.errors import PermissionDenied
from coordinator.settings import OIDCSettings
from storage import users as user_store
from storage.engine import SessionMaker
from storage.records import UserRecord

SUB_PATTERN = re.compile(r"[\w.@+-]+")
SEVERAL_ACCOUNTS = (
    "Several user accounts share this e-mail address: the login is refused rather than "
    "attached to one of them. Ask an administrator to merge the accounts."
)
INACTIVE = "This user account is inactive."
NO_ACCOUNT = "No user account matches this identity and accounts are not created automatically."
INVALID_SUB = "The identity provider sent an invalid subject."
INVALID_CLAIM = "The identity provider sent a claim with a NUL character."


class LoginRefused(PermissionDenied):
    """The identity is valid but may not log in (inactive, ambiguous, or not provisioned)."""


def _storable(text: str) -> str:
    """``text`` without NUL and lone surrogates, which PostgreSQL cannot store."""
    return "".join(c for c in text if c != "\x00" and not "\ud800" <= c <= "\udfff")


def names_from_claims(
    settings: OIDCSettings, claims: Mapping[str, Any]
) -> tuple[str | None, str | None]:
    """``(full_name, short_name)`` per OIDC_USERINFO_FULLNAME_FIELDS / _SHORTNAME_FIELD.

    Characters no database can store are dropped: a display name is not worth a failed login.
    """
    parts = [_storable(str(claims[f])).strip() for f in settings.fullname_fields if claims.get(f)]
    full_name = " ".join(p for p in parts if p) or None
    short = claims.get(settings.shortname_field)
    short_name = _storable(str(short)).strip() or None if short else None
    return (full_name[:100] if full_name else None), (short_name[:100] if short_name else None)


async def resolve_user(
    sessionmaker: SessionMaker,
    settings: OIDCSettings,
    claims: Mapping[str, Any],
    *,
    now: datetime | None = None,
    is_login: bool = True,
) -> UserRecord:
    """The active user for ``claims`` (``sub`` required), created when allowed.

    Lookup order: ``sub``; then, with the e-mail fallback on, exactly one account whose e-mail
    matches case-insensitively as sent, like Meet's ``iexact`` (several → :class:`LoginRefused`).
    Non-empty e-mail and names are refreshed at every login; ``is_login=False`` (bearer
    tokens) skips ``last_login``. Concurrent first logins of one person make one account.
    """
    sub = str(claims.get("sub") or "")
    if not sub or len(sub) > 255 or not SUB_PATTERN.fullmatch(sub):
        raise LoginRefused(INVALID_SUB)
    email = str(claims.get("email") or "") or None
    if email is not None and "\x00" in email:
        # The e-mail identifies (fallback) and receives mail: refused, not silently altered.
        raise LoginRefused(INVALID_CLAIM)
    full_name, short_name = names_from_claims(settings, claims)
    if email is not None and _storable(email) != email:
        email = None  # unstorable, so no address at all: never matched, never stored
    when = now or datetime.now(UTC)
    try:
        return await _resolve(
            sessionmaker, settings, sub, email, full_name, short_name, when, is_login
        )
    except IntegrityError:
        # A concurrent first request of the same person created (or re-attached) the row
        # between our read and our write: the unique ``sub`` decided; read it again.
        return await _resolve(
            sessionmaker, settings, sub, email, full_name, short_name, when, is_login
        )


async def _resolve(
    sessionmaker: SessionMaker,
    settings: OIDCSettings,
    sub: str,
    email: str | None,
    full_name: str | None,
    short_name: str | None,
    when: datetime,
    is_login: bool,
) -> UserRecord:
    async with sessionmaker.begin() as session:
        user = await user_store.get_user_by_sub(session, sub)
        if user is None and settings.fallback_to_email_for_identification and email:
            matches = await user_store.find_users_by_email(session, email)
            if len(matches) > 1:
                raise LoginRefused(SEVERAL_ACCOUNTS)
            if matches:
                # The provider changed the subject (or the account was provisioned without
                # one): the single account with this e-mail is this person's.
                user = await user_store.update_user(session, matches[0].id, sub=sub)
        if user is None:
            if not settings.create_user:
                raise LoginRefused(NO_ACCOUNT)
            return await user_store.create_user(
                session,
                sub=sub,
                email=email,
                full_name=full_name,
                short_name=short_name,
                last_login=when if is_login else None,
            )
        if not user.is_active:
            raise LoginRefused(INACTIVE)
        changes: dict[str, Any] = {}
        if email and email != user.email:
            changes["email"] = email
        if full_name and full_name != user.full_name:
            changes["full_name"] = full_name
        if short_name and short_name != user.short_name:
            changes["short_name"] = short_name
        if is_login:
            changes["last_login"] = when
        if not changes:
            return user
        return await user_store.update_user(session, user.id, **changes)


class LobbyIds:
    """Anonymous lobby participant ids, issued by the server in a signed cookie value.

    The id is the anonymous caller's LiveKit identity, so a caller must never choose it: the
    cookie value is ``<uuid4>.<HMAC-SHA256(SECRET_KEY-derived key, uuid)>``; anything else
    (a bare UUID, a forged or tampered value) reads as no cookie, and a new id is issued.
    """

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"meet-coordinator lobby id\x00" + secret_key.encode()).digest()

    def _mac(self, participant_id: str) -> str:
        digest = hmac.new(self._key, participant_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, participant_id: str) -> str:
        return f"{participant_id}.{self._mac(participant_id)}"

    def new(self) -> str:
        return str(uuid.uuid4())

    def read(self, value: str | None) -> str | None:
        """The participant id a cookie value carries, or None when it is not one we signed."""
        if not value or len(value) > 200:
            return None
        participant_id, _, mac = value.partition(".")
        try:
            canonical = str(uuid.UUID(participant_id))
        except ValueError:
            return None
        expected = self._mac(canonical).encode()
        if canonical != participant_id or not hmac.compare_digest(mac.encode(), expected):
            return None
        return canonical


async def is_user_identity(sessionmaker: SessionMaker, value: str) -> bool:
    """Whether ``value`` is (or could be taken for) a user's LiveKit identity: a ``sub``, or the
    id of a user without one (``tokens`` name such users by their id)."""
    async with sessionmaker() as session:
        if await user_store.get_user_by_sub(session, value) is not None:
            return True
        try:
            user_id = uuid.UUID(value)
        except ValueError:
            return False
        return await user_store.get_user(session, user_id) is not None
