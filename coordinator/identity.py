"""Who a login or a bearer token is: find, attach, create or refuse users from OIDC claims."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from coordinator.errors import PermissionDenied
from coordinator.settings import OIDCSettings
from storage import users as user_store
from storage.engine import SessionMaker
from storage.records import UserRecord

SUB_PATTERN = re.compile(r"^[\w.@+-]+$")
SEVERAL_ACCOUNTS = (
    "Several user accounts share this e-mail address: the login is refused rather than "
    "attached to one of them. Ask an administrator to merge the accounts."
)
INACTIVE = "This user account is inactive."
NO_ACCOUNT = "No user account matches this identity and accounts are not created automatically."
INVALID_SUB = "The identity provider sent an invalid subject."


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
    matches case-insensitively (several → :class:`LoginRefused`). Non-empty e-mail and names
    are refreshed at every login; ``is_login=False`` (bearer tokens) skips ``last_login``.
    """
    sub = str(claims.get("sub") or "")
    if not sub or len(sub) > 255 or not SUB_PATTERN.match(sub):
        raise LoginRefused(INVALID_SUB)
    email = str(claims.get("email") or "").strip() or None
    full_name, short_name = names_from_claims(settings, claims)
    if email is not None and _storable(email) != email:
        email = None  # unstorable, so no address at all: never matched, never stored
    when = now or datetime.now(UTC)
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
