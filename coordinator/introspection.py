"""The OIDC resource-server path of the external API: RFC 7662 token introspection.

As django-lasuite's ``ResourceServerBackend`` (JSON introspection): the access token is POSTed
with the ``OIDC_RS_CLIENT_*`` credentials; the answer must come from ``OIDC_OP_URL`` (``iss``),
be ``active``, carry one of ``OIDC_RS_SCOPES`` and name its audience (``OIDC_RS_AUDIENCE_CLAIM``).
Anything else is refused as a suspicious answer (Meet's 400); an unreachable provider is 503.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

import aiohttp
from sqlalchemy.exc import IntegrityError

from coordinator.errors import InvalidRequest, NotAuthenticated, Unavailable
from coordinator.identity import SUB_PATTERN
from coordinator.settings import ResourceServerSettings
from storage import users as user_store
from storage.engine import SessionMaker
from storage.records import UserRecord

log = logging.getLogger(__name__)

NOT_CONFIGURED = "Resource Server is improperly configured"
REFUSED = "The identity provider did not vouch for this token."


class IntrospectionRefused(InvalidRequest):
    """Meet's ``SuspiciousOperation`` (400) for a token the provider does not vouch for."""

    default_message = REFUSED


def bearer_value(token: str) -> str:
    """Some service providers base64-encode the bearer token: decode it when it is."""
    try:
        return base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return token


class Introspector:
    def __init__(self, settings: ResourceServerSettings, http: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._http = http

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified introspection answer for ``token``."""
        s = self._settings
        if not s.configured:
            raise NotAuthenticated(NOT_CONFIGURED)
        form = {"client_id": s.client_id, "client_secret": s.client_secret.get(), "token": token}
        try:
            async with self._http.post(
                s.introspection_endpoint,
                data=form,
                headers={"Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=s.timeout_seconds),
                ssl=True if s.verify_ssl else False,
                allow_redirects=False,
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("Token introspection endpoint unreachable: %s", type(exc).__name__)
            raise Unavailable() from exc
        if status >= 400:
            log.info("Token introspection answered %s", status)
            raise IntrospectionRefused()
        try:
            claims = json.loads(text)
        except ValueError:
            raise IntrospectionRefused() from None
        if not isinstance(claims, dict):
            raise IntrospectionRefused()
        self._verify(claims)
        return claims

    def _verify(self, claims: dict[str, Any]) -> None:
        s = self._settings
        if claims.get("iss") != s.op_url or "active" not in claims:
            raise IntrospectionRefused()
        if claims["active"] is not True:
            log.info("Token introspection: the token is not active")
            raise IntrospectionRefused()
        scope = claims.get("scope")
        if not isinstance(scope, str) or set(s.scopes).isdisjoint(scope.split(" ")):
            raise IntrospectionRefused()
        if not claims.get(s.audience_claim):
            raise IntrospectionRefused()

    async def user(
        self, sessionmaker: SessionMaker, claims: dict[str, Any], *, create: bool
    ) -> UserRecord:
        """The user of the token's ``sub``, created (without e-mail) when OIDC_CREATE_USER."""
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255 or not SUB_PATTERN.fullmatch(sub):
            raise IntrospectionRefused("User info contained no recognizable user identification")
        try:
            async with sessionmaker.begin() as session:
                user = await user_store.get_user_by_sub(session, sub)
                if user is None and create:
                    user = await user_store.create_user(session, sub=sub)
        except IntegrityError:  # a concurrent first request created it
            async with sessionmaker() as session:
                user = await user_store.get_user_by_sub(session, sub)
        if user is None:
            raise NotAuthenticated("Login failed")
        if not user.is_active:
            raise NotAuthenticated("User account is disabled.")
        return user
