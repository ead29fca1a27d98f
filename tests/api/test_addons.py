"""Add-on sessions (reference §2.9): init → exchange by the logged-in user → one poll, as the
Outlook add-in drives them (frontend-calls §10), and against replays, CSRF forgeries, races and
expiry. Sessions live in the database: both databases, the real server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api import keys
from api.addons import ADDON_SESSIONS
from api.app import create_app
from coordinator.addons import SessionNotFound, TransitTokenRefused
from coordinator.errors import ConfigurationError
from coordinator.settings import Settings
from storage.models import AddonSession
from tests.conftest import LIVEKIT_SECRET, TEST_SECRET_KEY
from tests.support.external import (
    ADDONS_KEY,
    CSRF_SECRET,
    ROOMS_URL,
    Client,
    bearer,
    external_settings,
)
from tests.support.factories import Factory, login, logout

MakeClient = Callable[..., Awaitable[Client]]
INIT = "/api/v1.0/addons/sessions/init/"
POLL = "/api/v1.0/addons/sessions/poll/"
EXCHANGE = "/api/v1.0/addons/sessions/exchange/"


@pytest.fixture
def make_client(aiohttp_client: Any, database_url: str) -> MakeClient:
    async def _make(**addons: Any) -> Client:
        client: Client = await aiohttp_client(
            create_app(external_settings(database_url, addons=addons))
        )
        return client

    return _make


async def init(client: Client) -> tuple[str, str, str]:
    """(session id from the cookie, transit token, csrf token), as the add-in reads them."""
    response = await client.post(INIT)  # the add-in sends no headers and no body
    assert response.status == 201
    body = await response.json()
    assert set(body) == {"transit_token", "csrf_token"}
    return response.cookies["addonsSid"].value, body["transit_token"], body["csrf_token"]


async def poll(client: Client, sid: str | None, csrf: str | None) -> tuple[int, Any, Any]:
    headers = {}
    if sid is not None:
        headers["Cookie"] = f"addonsSid={sid}"
    if csrf is not None:
        headers["X-CSRFToken"] = csrf
    response = await client.post(POLL, headers=headers)
    return response.status, await response.json(), response.cookies


async def test_the_outlook_flow_end_to_end(make_client: MakeClient, factory: Factory) -> None:
    client = await make_client()
    user = await factory.user(email="user@example.com")
    response = await client.post(INIT)
    morsel = response.cookies["addonsSid"]
    assert morsel["httponly"] and morsel["secure"]
    assert morsel["samesite"] == "None" and morsel["max-age"] == "3600"
    assert morsel["path"] == "/"
    body = await response.json()
    sid, transit, csrf = morsel.value, body["transit_token"], body["csrf_token"]
    assert csrf == hmac.new(CSRF_SECRET.encode(), sid.encode(), hashlib.sha256).hexdigest()
    assert len(sid) >= 80 and len(transit) >= 80 and len({sid, transit, csrf}) == 3

    for _ in range(2):  # pending, and polling again keeps it so
        status, body, _ = await poll(client, sid, csrf)
        assert (status, body) == (202, {"state": "pending"})

    # The success page on our domain: the logged-in user redeems the transit token.
    login(client, client.app[keys.SESSIONS], user)
    response = await client.post(EXCHANGE, json={"transit_token": transit})
    assert (response.status, await response.json()) == (200, {"status": "ok"})
    logout(client)

    response = await client.post(POLL, headers={"Cookie": f"addonsSid={sid}", "X-CSRFToken": csrf})
    status, body, cookies = response.status, await response.json(), response.cookies
    assert status == 200 and response.headers["Cache-Control"] == "no-store"
    assert set(body) == {"state", "access_token", "token_type", "expires_in", "scope"}
    assert body["state"] == "authenticated" and body["token_type"] == "Bearer"
    assert (body["expires_in"], body["scope"]) == (7200, "rooms:create")
    assert cookies["addonsSid"].value == "" and cookies["addonsSid"]["max-age"] == "0"
    claims = jwt.decode(body["access_token"], ADDONS_KEY, algorithms=["HS256"], audience="addons")
    assert claims["iss"] == "lasuite-meet" and claims["user_id"] == str(user.id)
    assert claims["scope"] == "rooms:create" and claims["exp"] - claims["iat"] == 7200
    # Read once: the session is gone, and its transit token cannot be redeemed again.
    assert (await poll(client, sid, csrf))[:2] == (404, {"detail": "Session not found."})
    login(client, client.app[keys.SESSIONS], user)
    response = await client.post(EXCHANGE, json={"transit_token": transit})
    assert response.status == 400
    logout(client)
    # "Add meeting": the token creates a room on the external API.
    response = await client.post(ROOMS_URL, headers=bearer(body["access_token"]))
    assert response.status == 201
    async with client.app[keys.SESSIONMAKER]() as session:
        assert list(await session.scalars(select(AddonSession))) == []


async def test_poll_refuses_missing_or_forged_credentials(make_client: MakeClient) -> None:
    client = await make_client()
    sid, _, csrf = await init(client)
    other_sid, _, other_csrf = await init(client)
    assert (await poll(client, None, csrf))[:2] == (401, {"detail": "Missing credentials."})
    assert (await poll(client, sid, None))[:2] == (400, {"detail": "Missing CSRF token."})
    assert (await poll(client, "", csrf))[:2] == (401, {"detail": "Missing credentials."})
    invalid = (400, {"detail": "Invalid CSRF token."})
    for forged in (other_csrf, csrf.upper(), "0" * 64, csrf[:-1], "é", csrf + "0"):
        assert (await poll(client, sid, forged))[:2] == invalid, forged
    # A CSRF attack does not burn the session; each client's token opens only its own.
    assert (await poll(client, sid, csrf))[0] == 202
    assert (await poll(client, other_sid, other_csrf))[0] == 202
    assert (await poll(client, other_sid, csrf))[:2] == invalid
    # An unknown session with its right HMAC (forged from a leaked secret is not ours).
    unknown = "x" * 80
    token = hmac.new(CSRF_SECRET.encode(), unknown.encode(), hashlib.sha256).hexdigest()
    assert (await poll(client, unknown, token))[:2] == (404, {"detail": "Session not found."})
    # Tokens minted under a rotated secret are refused.
    rotated = await make_client(csrf_secret=_secret("rotated-csrf-secret-" + "r" * 32))
    assert (await poll(rotated, sid, csrf))[:2] == invalid
    # Odd bytes in the cookie: never a 500.
    response = await client.post(POLL, headers={"Cookie": "addonsSid=%00%ff", "X-CSRFToken": csrf})
    assert response.status == 400


def _secret(value: str) -> Any:
    from coordinator.settings import Secret

    return Secret(value)


async def test_exchange_rules(make_client: MakeClient, factory: Factory) -> None:
    client = await make_client()
    user = await factory.user()
    sid, transit, csrf = await init(client)
    response = await client.post(EXCHANGE, json={"transit_token": transit})
    assert response.status == 401  # not logged in
    login(client, client.app[keys.SESSIONS], user)
    missing = (400, {"detail": "Missing transit_token."})
    refused = (400, {"detail": "Invalid or expired transit token."})
    bodies: list[Any] = [
        {},
        {"transit_token": ""},
        {"transit_token": None},
        {"transit_token": 5},
        [],
    ]
    for body in bodies:
        response = await client.post(EXCHANGE, json=body)
        assert (response.status, await response.json()) == missing, body
    for odd in ("unknown", "x" * 100_000, "\u202e\x00", transit.upper()):
        response = await client.post(EXCHANGE, json={"transit_token": odd})
        assert (response.status, await response.json()) == refused
    response = await client.post(EXCHANGE, json={"transit_token": transit})
    assert response.status == 200
    # A replay is refused and evicts the session: the leaked token yields nothing.
    response = await client.post(EXCHANGE, json={"transit_token": transit})
    assert (response.status, await response.json()) == refused
    assert (await poll(client, sid, csrf))[0] == 404
    for method in ("GET", "PUT", "DELETE"):
        for path in (INIT, POLL, EXCHANGE):
            assert (await client.request(method, path)).status == 405


async def test_concurrent_exchanges_and_polls_let_one_through(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client()
    user = await factory.user()
    sessions = client.app[ADDON_SESSIONS]
    new = await sessions.init()
    results = await asyncio.gather(
        *(sessions.exchange(new.transit_token, user.id) for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(result is None for result in results) == 1
    assert all(isinstance(r, TransitTokenRefused) for r in results if r is not None)

    # Two exchanges of one token racing: one wins, the other evicts the session (a leaked
    # token); a session authenticated alone is read by exactly one of concurrent polls.
    alone = await sessions.init()
    await sessions.exchange(alone.transit_token, user.id)
    polls = await asyncio.gather(
        *(poll(client, alone.session_id, alone.csrf_token) for _ in range(5))
    )
    assert sorted(status for status, _, _ in polls) == [200, 404, 404, 404, 404]


async def test_expiry_and_independent_sessions(make_client: MakeClient, factory: Factory) -> None:
    client = await make_client(session_ttl=600, transit_token_ttl=60)
    user = await factory.user()
    sessions = client.app[ADDON_SESSIONS]
    start = datetime.now(UTC)
    first = await sessions.init(now=start)
    second = await sessions.init(now=start)
    async with client.app[keys.SESSIONMAKER]() as session:
        row = await session.get(AddonSession, hashlib.sha256(first.session_id.encode()).hexdigest())
    assert row is not None and row.state == "pending"
    assert row.expires_at - row.created_at == timedelta(seconds=600)
    assert row.transit_expires_at - row.created_at == timedelta(seconds=60)
    assert first.transit_token not in (row.transit_hash, row.session_hash)  # digests only

    # The transit token expires before its session; the session at its own expiry.
    with pytest.raises(TransitTokenRefused):
        await sessions.exchange(first.transit_token, user.id, now=start + timedelta(seconds=61))
    assert (await poll(client, first.session_id, first.csrf_token))[0] == 404  # evicted
    await sessions.exchange(second.transit_token, user.id, now=start + timedelta(seconds=59))
    async with client.app[keys.SESSIONMAKER]() as session:
        row = await session.get(
            AddonSession, hashlib.sha256(second.session_id.encode()).hexdigest()
        )
    assert row is not None and row.state == "authenticated"
    assert row.expires_at == start + timedelta(seconds=600)  # the remaining TTL is kept
    # Past the session's expiry, neither an authenticated nor a pending session is read.
    late = await sessions.init(now=start)
    for expired in (second, late):
        with pytest.raises(SessionNotFound):
            await sessions.poll(
                expired.session_id, expired.csrf_token, now=start + timedelta(seconds=601)
            )
    # A corrupted row (authenticated without a token) cannot even be stored.
    async with client.app[keys.SESSIONMAKER]() as session:
        session.add(
            AddonSession(
                session_hash="h" * 64,
                transit_hash="t" * 64,
                state="authenticated",
                transit_consumed=True,
                expires_at=start,
                transit_expires_at=start,
            )
        )
        with pytest.raises(IntegrityError):
            await session.commit()
    # Authenticating one session left another pending.
    third = await sessions.init()
    fourth = await sessions.init()
    await sessions.exchange(third.transit_token, user.id)
    assert await sessions.poll(fourth.session_id, fourth.csrf_token) is None


async def test_init_floods_are_throttled_per_client_ip(make_client: MakeClient) -> None:
    from coordinator.throttle import Rate

    client = await make_client(init_throttle_rate=Rate(3, 60.0))
    statuses = [(await client.post(INIT)).status for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    async with client.app[keys.SESSIONMAKER]() as session:
        assert len(list(await session.scalars(select(AddonSession)))) == 3


async def test_flag_cookie_name_and_configuration(
    make_client: MakeClient, factory: Factory
) -> None:
    off = await make_client(enabled=False)
    login(off, off.app[keys.SESSIONS], await factory.user())
    for path in (INIT, POLL, EXCHANGE):
        response = await off.post(path, json={"transit_token": "x"})
        assert (response.status, await response.json()) == (404, {"detail": "Not found."})
    named = await make_client(session_id_cookie="otherSid")
    response = await named.post(INIT)
    assert "otherSid" in response.cookies and "addonsSid" not in response.cookies

    base = {"SECRET_KEY": TEST_SECRET_KEY, "LIVEKIT_API_SECRET": LIVEKIT_SECRET}
    enabled = {**base, "ADDONS_ENABLED": "true"}
    for environ in (
        {**enabled, "ADDONS_TOKEN_SECRET_KEY": ADDONS_KEY},  # no CSRF secret
        {**enabled, "ADDONS_CSRF_SECRET": CSRF_SECRET},  # no token key
        {**enabled, "ADDONS_CSRF_SECRET": CSRF_SECRET, "ADDONS_TOKEN_SECRET_KEY": "short"},
        {
            **enabled,
            "ADDONS_CSRF_SECRET": CSRF_SECRET,
            "ADDONS_TOKEN_SECRET_KEY": ADDONS_KEY,
            "ADDONS_TOKEN_SCOPE": "",
        },
        {**base, "APPLICATION_ENABLED": "true"},  # no APPLICATION_JWT_SECRET_KEY
        {  # an HS512 key must have 64 bytes
            **base,
            "APPLICATION_ENABLED": "true",
            "APPLICATION_JWT_ALG": "HS512",
            "APPLICATION_JWT_SECRET_KEY": "k" * 40,
        },
    ):
        with pytest.raises(ConfigurationError):
            Settings.from_env(environ)
    settings = Settings.from_env(
        {**enabled, "ADDONS_CSRF_SECRET": CSRF_SECRET, "ADDONS_TOKEN_SECRET_KEY": ADDONS_KEY}
    )
    assert settings.addons.enabled and settings.addons.token_ttl == 7200
