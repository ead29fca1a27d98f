"""``POST /external-api/v1.0/application/token/`` (reference §2.10): the client-credentials
grant, as an integration sends it (JSON or form) and as a hostile caller tries it. Both
databases, the real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from api import keys
from api.app import create_app
from coordinator.applications import NewApplication, hash_secret
from storage import users as user_store
from storage.models import Application, User
from tests.support.external import (
    APPLICATION_KEY,
    AUDIENCE,
    TOKEN_URL,
    Client,
    external_settings,
    new_application,
)
from tests.support.factories import Factory

MakeClient = Callable[..., Awaitable[Client]]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PROVISIONAL: dict[str, Any] = {"allow_user_creation": True, "user_sub_field_immutable": False}


@pytest.fixture
def make_client(aiohttp_client: Any, database_url: str) -> MakeClient:
    async def _make(fallback: bool = False, **overrides: Any) -> Client:
        settings = external_settings(database_url, **overrides)
        if fallback:
            from dataclasses import replace

            oidc = replace(settings.oidc, fallback_to_email_for_identification=True)
            settings = replace(settings, oidc=oidc)
        client: Client = await aiohttp_client(create_app(settings))
        return client

    return _make


def grant(application: NewApplication, email: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": application.application.client_id,
        "client_secret": application.client_secret,
        "grant_type": "client_credentials",
        "scope": email,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def test_json_and_form_grants_issue_the_documented_jwt(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client()
    user = await factory.user(email="user@example.com")
    application = await new_application(client, scopes=("rooms:list", "rooms:create"))

    response = await client.post(TOKEN_URL, json=grant(application, "USER@example.com"))
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert body["scope"] == "rooms:list rooms:create"
    claims = jwt.decode(
        body["access_token"],
        APPLICATION_KEY,
        algorithms=["HS256"],
        issuer="lasuite-meet",
        audience=AUDIENCE,
    )
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60
    assert {k: v for k, v in claims.items() if k not in ("iat", "exp")} == {
        "iss": "lasuite-meet",
        "aud": AUDIENCE,
        "client_id": application.application.client_id,
        "user_id": str(user.id),
        "delegated": True,
        "scope": "rooms:list rooms:create",
    }

    # The same grant as a form, reserved characters percent-encoded in the secret.
    special = await new_application(client, client_secret="s3cr3t&with=special+chars%42")
    response = await client.post(
        TOKEN_URL, data=urlencode(grant(special, "user@example.com")), headers=FORM
    )
    assert response.status == 200, await response.text()
    assert "access_token" in await response.json()
    # A secret given already hashed is stored as is, never hashed twice.
    prehashed = await new_application(
        client, client_secret=hash_secret("known-secret", iterations=1000)
    )
    response = await client.post(
        TOKEN_URL,
        json=grant(prehashed, "user@example.com", client_secret="known-secret"),
    )
    assert response.status == 200
    # Wrong secret, missing fields, another grant type: as a form too.
    wrong = urlencode(grant(special, "user@example.com", client_secret="nope"))
    response = await client.post(TOKEN_URL, data=wrong, headers=FORM)
    assert (response.status, await response.json()) == (401, {"detail": "Invalid credentials"})
    response = await client.post(TOKEN_URL, data="client_id=x", headers=FORM)
    assert response.status == 400
    assert await response.json() == {
        "client_secret": ["This field is required."],
        "grant_type": ["This field is required."],
        "scope": ["This field is required."],
    }
    other = urlencode(grant(special, "user@example.com", grant_type="password"))
    response = await client.post(TOKEN_URL, data=other, headers=FORM)
    assert response.status == 400
    assert await response.json() == {"grant_type": ['"password" is not a valid choice.']}
    # Other media types are refused; the secret is stored as a PBKDF2 hash, never in clear.
    response = await client.post(
        TOKEN_URL, data=b"client_id=x", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    async with client.app[keys.SESSIONMAKER]() as session:
        stored = list(await session.scalars(select(Application.client_secret)))
    assert all(value.startswith("pbkdf2_sha256$1000$") for value in stored)
    assert application.client_secret not in stored
    assert "s3cr3t&with=special+chars%42" not in stored


async def test_credentials_flags_and_delegation_rules(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client()
    await factory.user(email="user@example.com")
    application = await new_application(client, domains=("Example.COM",))
    inactive = await new_application(client, active=False)

    async def post(body: dict[str, Any]) -> tuple[int, Any]:
        response = await client.post(TOKEN_URL, json=body)
        return response.status, await response.json()

    invalid = (401, {"detail": "Invalid credentials"})
    assert await post(grant(application, "user@example.com", client_id="unknown")) == invalid
    assert await post(grant(application, "user@example.com", client_secret="wrong")) == invalid
    # Another application's secret does not open this one.
    assert (
        await post(grant(application, "user@example.com", client_secret=inactive.client_secret))
        == invalid
    )
    # The inactive application: its right secret says so, a wrong one says nothing more.
    assert await post(grant(inactive, "user@example.com")) == (
        401,
        {"detail": "Application is inactive"},
    )
    assert await post(grant(inactive, "user@example.com", client_secret="x")) == invalid
    # Odd bytes in client_id are no 500s.
    for odd in ("é" * 300, "' OR 1=1 --", "%00", "a\u202e", "a\\ud800", "a\tb"):
        assert await post(grant(application, "user@example.com", client_id=odd)) == invalid
    raw = '{"client_id": "a\\ud800", "client_secret": "x\\udfff", "grant_type":'
    raw += ' "client_credentials", "scope": "user@example.com"}'
    response = await client.post(TOKEN_URL, data=raw, headers={"Content-Type": "application/json"})
    assert (response.status, await response.json()) == (
        400,
        {
            "client_id": ["Surrogate characters are not allowed: U+D800."],
            "client_secret": ["Surrogate characters are not allowed: U+DFFF."],
        },
    )
    response = await client.post(TOKEN_URL, json=grant(application, "u@x.org", client_id="a\x00"))
    assert (response.status, await response.json()) == (
        400,
        {"client_id": ["Null characters are not allowed."]},
    )
    assert await post(grant(application, "not-an-email")) == (
        400,
        {"error": "Scope should be a valid email address."},
    )
    assert await post(grant(application, "user@other.org")) == (
        403,
        {"error": "This application is not authorized for this email domain."},
    )
    status, body = await post(grant(application, "user@EXAMPLE.com"))
    assert status == 200 and body["access_token"]
    # An allowed domain without such a user: not found, and nobody is created.
    assert await post(grant(application, "nobody@example.com")) == (
        404,
        {"detail": "User not found."},
    )
    async with client.app[keys.SESSIONMAKER]() as session:
        assert await user_store.find_users_by_email(session, "nobody@example.com") == []


async def test_unknown_client_costs_the_same_hash_as_a_wrong_secret(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No client enumeration by timing: an unknown client id is checked against a dummy hash
    of the configured work factor, exactly like a known client with a wrong secret."""
    from coordinator import applications

    client = await make_client()
    application = await new_application(client)
    checked: list[str] = []
    real = applications.verify_secret

    def spy(secret: str, encoded: str) -> bool:
        checked.append(encoded.split("$")[1])
        return real(secret, encoded)

    monkeypatch.setattr(applications, "verify_secret", spy)
    for body in (
        grant(application, "u@example.com", client_id="unknown"),
        grant(application, "u@example.com", client_secret="wrong"),
    ):
        response = await client.post(TOKEN_URL, json=body)
        assert (response.status, await response.json()) == (401, {"detail": "Invalid credentials"})
    assert checked == ["1000", "1000"]


async def test_flags_off_answer_404(make_client: MakeClient, factory: Factory) -> None:
    client = await make_client(application_enabled=False)
    response = await client.post(TOKEN_URL, json={})
    assert (response.status, await response.json()) == (404, {"detail": "Not found."})
    mounted_off = await make_client(enabled=False)
    for path in (TOKEN_URL, "/external-api/v1.0/rooms/"):
        response = await mounted_off.post(path, json={})
        assert response.status == 404


async def test_provisional_users_created_once_under_concurrency(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client(fallback=True, **PROVISIONAL)
    existing = await factory.user(email="known@example.com")
    application = await new_application(client)

    response = await client.post(TOKEN_URL, json=grant(application, "Known@Example.com"))
    assert response.status == 200
    claims = jwt.decode(
        (await response.json())["access_token"], options={"verify_signature": False}
    )
    assert claims["user_id"] == str(existing.id)

    responses = await asyncio.gather(
        *(client.post(TOKEN_URL, json=grant(application, "new@example.com")) for _ in range(6))
    )
    assert [r.status for r in responses] == [200] * 6
    ids = {
        jwt.decode((await r.json())["access_token"], options={"verify_signature": False})["user_id"]
        for r in responses
    }
    async with client.app[keys.SESSIONMAKER]() as session:
        rows = list(
            await session.scalars(select(User).where(func.lower(User.email) == "new@example.com"))
        )
    assert len(rows) == 1 and rows[0].sub is None
    assert ids == {str(rows[0].id)}


async def test_provisional_users_need_every_switch(make_client: MakeClient) -> None:
    for overrides in (
        {"user_sub_field_immutable": False},  # creation not allowed
        {"allow_user_creation": True},  # sub immutable (Meet's default)
    ):
        client = await make_client(fallback=True, **overrides)
        application = await new_application(client)
        response = await client.post(TOKEN_URL, json=grant(application, "new@example.com"))
        assert response.status == 404
    client = await make_client(**PROVISIONAL)  # e-mail fallback off
    application = await new_application(client)
    response = await client.post(TOKEN_URL, json=grant(application, "new@example.com"))
    assert response.status == 404


async def test_unrecoverable_provisional_race_is_409(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault we cannot produce for real: the insert conflicts, then no row matches.
    client = await make_client(fallback=True, **PROVISIONAL)
    application = await new_application(client)

    async def conflicting(*args: Any, **kwargs: Any) -> Any:
        raise IntegrityError("INSERT", {}, Exception("unique_email_when_sub_is_null"))

    monkeypatch.setattr(user_store, "create_user", conflicting)
    response = await client.post(TOKEN_URL, json=grant(application, "race@example.com"))
    assert response.status == 409
    assert await response.json() == {"error": "Failed to create or retrieve provisional user."}


async def test_floods_are_throttled_per_client_ip(make_client: MakeClient) -> None:
    from coordinator.throttle import Rate

    client = await make_client(token_throttle_rate=Rate(5, 60.0))
    application = await new_application(client)
    statuses = []
    for _ in range(7):
        response = await client.post(TOKEN_URL, json=grant(application, "x@example.com"))
        statuses.append(response.status)
    assert statuses[:5] == [404] * 5  # no such user, but each one counted
    assert statuses[5:] == [429, 429]
    body = await response.json()
    assert body["detail"].startswith("Request was throttled. Expected available in")
