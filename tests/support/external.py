"""The external API and add-ons under test: settings, the app, applications, tokens."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from api.external import EXTERNAL_API
from coordinator.applications import NewApplication
from coordinator.settings import (
    AddonsSettings,
    ExternalAPISettings,
    ResourceServerSettings,
    Secret,
    Settings,
)
from tests.conftest import make_settings

Client = TestClient[Any, Any]

APPLICATION_KEY = "application-jwt-secret-" + "a" * 32
ADDONS_KEY = "addons-token-secret-" + "b" * 32
CSRF_SECRET = "addons-csrf-secret-" + "c" * 32
AUDIENCE = "Test inc."
TOKEN_URL = "/external-api/v1.0/application/token/"
ROOMS_URL = "/external-api/v1.0/rooms/"
RS_CLIENT_ID = "meet-rs"
RS_CLIENT_SECRET = "meet-rs-secret"


def external_settings(database_url: str, **overrides: Any) -> Settings:
    """Everything on (the external API, applications, add-ons), cheap secret hashing; keyword
    overrides go to ``ExternalAPISettings`` (``addons=`` / ``settings=`` for the others)."""
    addons = overrides.pop("addons", {})
    top = overrides.pop("settings", {})
    resource_server = overrides.pop("resource_server", ResourceServerSettings())
    external = ExternalAPISettings(
        **{
            "enabled": True,
            "application_enabled": True,
            "jwt_secret_key": Secret(APPLICATION_KEY),
            "jwt_audience": AUDIENCE,
            "base_url": "https://meet.example",
            "secret_hash_iterations": 1000,
            "resource_server": resource_server,
            **overrides,
        }
    )
    addon_settings = AddonsSettings(
        **{
            "enabled": True,
            "csrf_secret": Secret(CSRF_SECRET),
            "token_secret_key": Secret(ADDONS_KEY),
            **addons,
        }
    )
    settings = make_settings(database_url, external_api=external, addons=addon_settings)
    return replace(settings, **top) if top else settings


async def new_application(
    client: Client,
    *,
    scopes: tuple[str, ...] = ("rooms:list", "rooms:retrieve", "rooms:create"),
    domains: tuple[str, ...] = (),
    active: bool = True,
    name: str = "Calendar",
    client_secret: str | None = None,
) -> NewApplication:
    service = client.app[EXTERNAL_API].applications
    created: NewApplication = await service.create(
        name=name, scopes=scopes, domains=domains, is_active=active, client_secret=client_secret
    )
    return created


async def app_token(client: Client, application: NewApplication, email: str) -> str:
    response = await client.post(
        TOKEN_URL,
        json={
            "client_id": application.application.client_id,
            "client_secret": application.client_secret,
            "grant_type": "client_credentials",
            "scope": email,
        },
    )
    assert response.status == 200, await response.text()
    token: str = (await response.json())["access_token"]
    return token


def forge(
    claims: dict[str, Any],
    *,
    key: str = APPLICATION_KEY,
    algorithm: str = "HS256",
    ttl: int = 3600,
) -> str:
    """A JWT with ``claims`` over sane defaults (iss, aud, iat, exp)."""
    now = int(time.time())
    payload = {"iss": "lasuite-meet", "aud": AUDIENCE, "iat": now, "exp": now + ttl, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=algorithm)


def addons_token(user: uuid.UUID | None, **claims: Any) -> str:
    """An add-on JWT of ``user`` (None: without ``user_id``), as the poll hands it out."""
    return forge(
        {
            "aud": "addons",
            "user_id": str(user) if user else None,
            "scope": "rooms:create",
            **claims,
        },
        key=ADDONS_KEY,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
