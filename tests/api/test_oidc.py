"""OIDC login through a real provider on loopback, and bearer access tokens (§2.1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from coordinator.identity import names_from_claims
from coordinator.settings import OIDCSettings, Secret
from storage import users as user_store
from tests.conftest import make_settings
from tests.oidc_provider import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, OIDCProvider
from tests.support.factories import Factory

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


def oidc_settings(provider: OIDCProvider, **overrides: Any) -> OIDCSettings:
    values: dict[str, Any] = {
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": Secret(DEFAULT_CLIENT_SECRET),
        "authorization_endpoint": provider.authorization_endpoint,
        "token_endpoint": provider.token_endpoint,
        "user_endpoint": provider.userinfo_endpoint,
        "jwks_endpoint": provider.jwks_uri,
        "logout_endpoint": provider.end_session_endpoint,
        "issuer": provider.issuer,
        "login_redirect_url_failure": "/login-failed",
    }
    values.update(overrides)
    return OIDCSettings(**values)


@pytest.fixture
def make_client(aiohttp_client: Any, database_url: str, oidc_provider: OIDCProvider) -> MakeClient:
    async def _make(**overrides: Any) -> Client:
        settings = make_settings(database_url, oidc=oidc_settings(oidc_provider, **overrides))
        client: Client = await aiohttp_client(create_app(settings))
        return client

    return _make


async def walk_login(client: Client, return_to: str = "/dashboard") -> aiohttp.ClientResponse:
    """authenticate → provider's authorize → callback; returns the callback's response."""
    start = await client.get(f"/api/v1.0/authenticate/?returnTo={return_to}", allow_redirects=False)
    assert start.status == 302
    authorize_url = start.headers["Location"]
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == [DEFAULT_CLIENT_ID]
    async with aiohttp.ClientSession() as browser:
        at_provider = await browser.get(authorize_url, allow_redirects=False)
        assert at_provider.status == 302, await at_provider.text()
        callback = urlsplit(at_provider.headers["Location"])
    return await client.get(f"{callback.path}?{callback.query}", allow_redirects=False)


USER = {"sub": "sub-ada", "email": "Ada@Example.com", "given_name": "Ada", "usual_name": "Lovelace"}


async def test_login_creates_user_and_session(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    client = await make_client()
    oidc_provider.next_user = dict(USER)
    response = await walk_login(client)
    assert response.status == 302
    assert response.headers["Location"] == "/dashboard"
    session_cookie = response.cookies["sessionid"]
    assert session_cookie["httponly"]
    assert session_cookie["samesite"] == "Lax"
    assert not response.cookies["csrftoken"]["httponly"]
    me = await (await client.get("/api/v1.0/users/me/")).json()
    assert me["email"] == "Ada@Example.com"
    assert me["full_name"] == "Ada Lovelace"
    assert me["short_name"] == "Ada"
    async with factory.sessionmaker() as session:
        user = await user_store.get_user_by_sub(session, "sub-ada")
    assert user is not None and user.last_login is not None


async def test_login_refreshes_names(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    await factory.user(sub="sub-ada", email="old@example.com", full_name="Old", short_name="O")
    client = await make_client()
    oidc_provider.next_user = dict(USER)
    assert (await walk_login(client)).status == 302
    me = await (await client.get("/api/v1.0/users/me/")).json()
    assert (me["email"], me["full_name"], me["short_name"]) == (
        "Ada@Example.com",
        "Ada Lovelace",
        "Ada",
    )


async def test_inactive_user_is_refused(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    await factory.user(sub="sub-ada", is_active=False)
    client = await make_client()
    oidc_provider.next_user = dict(USER)
    response = await walk_login(client)
    assert response.headers["Location"] == "/login-failed"
    assert (await client.get("/api/v1.0/users/me/")).status == 401


async def test_no_creation_when_disabled(
    make_client: MakeClient, oidc_provider: OIDCProvider
) -> None:
    client = await make_client(create_user=False)
    oidc_provider.next_user = dict(USER)
    response = await walk_login(client)
    assert response.headers["Location"] == "/login-failed"


async def test_email_fallback_attaches_single_match(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    existing = await factory.user(sub="old-sub", email="ada@example.com")
    client = await make_client(fallback_to_email_for_identification=True)
    oidc_provider.next_user = dict(USER)
    assert (await walk_login(client)).headers["Location"] == "/dashboard"
    me = await (await client.get("/api/v1.0/users/me/")).json()
    assert me["id"] == str(existing.id)


async def test_email_fallback_off_by_default(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    existing = await factory.user(sub=None, email="ada@example.com")
    client = await make_client()
    oidc_provider.next_user = dict(USER)
    assert (await walk_login(client)).headers["Location"] == "/dashboard"
    me = await (await client.get("/api/v1.0/users/me/")).json()
    assert me["id"] != str(existing.id)


async def test_email_fallback_refuses_several_matches(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    await factory.user(sub=None, email="ada@example.com")
    await factory.user(sub="another", email="ADA@example.com")
    client = await make_client(fallback_to_email_for_identification=True)
    oidc_provider.next_user = dict(USER)
    assert (await walk_login(client)).headers["Location"] == "/login-failed"
    async with factory.sessionmaker() as session:
        assert await user_store.get_user_by_sub(session, "sub-ada") is None


async def test_state_mismatch_and_denial_fail_cleanly(
    make_client: MakeClient, oidc_provider: OIDCProvider
) -> None:
    client = await make_client()
    response = await client.get("/api/v1.0/callback/?code=x&state=y", allow_redirects=False)
    assert response.headers["Location"] == "/login-failed"
    oidc_provider.deny_next()
    response = await walk_login(client)
    assert response.headers["Location"] == "/login-failed"


async def test_return_to_must_stay_on_site(
    make_client: MakeClient, oidc_provider: OIDCProvider
) -> None:
    client = await make_client()
    oidc_provider.next_user = dict(USER)
    response = await walk_login(client, return_to="https://evil.example.com/")
    assert response.headers["Location"] == "/"


async def test_logout_clears_session_and_redirects_to_provider(
    make_client: MakeClient, oidc_provider: OIDCProvider
) -> None:
    client = await make_client()
    oidc_provider.next_user = dict(USER)
    await walk_login(client)
    assert (await client.get("/api/v1.0/users/me/")).status == 200
    response = await client.get("/api/v1.0/logout/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"].startswith(oidc_provider.end_session_endpoint)
    assert (await client.get("/api/v1.0/users/me/")).status == 401


async def test_bearer_access_token(make_client: MakeClient, oidc_provider: OIDCProvider) -> None:
    client = await make_client()
    claims = {"sub": "api-client", "email": "bot@example.com", "given_name": "Bot"}
    token = oidc_provider.mint_access_token(claims, audience=DEFAULT_CLIENT_ID)
    headers = {"Authorization": f"Bearer {token}"}
    me = await (await client.get("/api/v1.0/users/me/", headers=headers)).json()
    assert me["email"] == "bot@example.com" and me["full_name"] == "Bot"
    # Bearer clients need no CSRF token.
    client.session.cookie_jar.clear()
    created = await client.post("/api/v1.0/rooms/", json={"name": "api room"}, headers=headers)
    assert created.status == 201


@pytest.mark.parametrize(
    "variant", ["expired", "foreign_key", "forged", "wrong_audience", "wrong_issuer", "garbage"]
)
async def test_bad_bearer_tokens_are_401(
    make_client: MakeClient, oidc_provider: OIDCProvider, variant: str
) -> None:
    client = await make_client()
    claims = {"sub": "api-client", "email": "bot@example.com"}
    makers: dict[str, Callable[[], str]] = {
        "expired": lambda: oidc_provider.mint_access_token(
            claims, audience=DEFAULT_CLIENT_ID, expires_in=-600
        ),
        "foreign_key": lambda: oidc_provider.mint_access_token(
            claims, audience=DEFAULT_CLIENT_ID, key=oidc_provider.foreign_key
        ),
        "forged": lambda: oidc_provider.mint_forged_access_token(
            claims, audience=DEFAULT_CLIENT_ID
        ),
        "wrong_audience": lambda: oidc_provider.mint_access_token(claims, audience="other-api"),
        "wrong_issuer": lambda: oidc_provider.mint_access_token(
            claims, audience=DEFAULT_CLIENT_ID, issuer="https://elsewhere.example"
        ),
        "garbage": lambda: "not.a.jwt",
    }
    token = makers[variant]()
    response = await client.get("/api/v1.0/users/me/", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401
    assert await response.json() == {"detail": "Invalid token."}


async def test_unstorable_characters_in_claims_do_not_break_the_login(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    """NUL was 500 on PostgreSQL: names drop it; an e-mail with one refuses the login cleanly
    (an identifying claim is never altered), and the e-mail fallback never sees it."""
    existing = await factory.user(email="ada@example.com")
    client = await make_client(fallback_to_email_for_identification=True)
    oidc_provider.next_user = {
        "sub": "sub-nul",
        "email": "ada\u0000@example.com",
        "given_name": "A\u0000da",
        "usual_name": "Love\u0000lace",
    }
    response = await walk_login(client)
    assert response.status == 302 and response.headers["Location"] == "/login-failed"
    assert (await client.get("/api/v1.0/users/me/")).status == 401
    oidc_provider.next_user = {
        "sub": "sub-nul",
        "email": "grace@example.com",
        "given_name": "A\u0000da",
        "usual_name": "Love\u0000lace",
    }
    response = await walk_login(client)
    assert response.status == 302 and response.headers["Location"] == "/dashboard"
    me = await (await client.get("/api/v1.0/users/me/")).json()
    assert me["id"] != str(existing.id)
    assert (me["email"], me["full_name"], me["short_name"]) == (
        "grace@example.com",
        "Ada Lovelace",
        "Ada",
    )


def test_names_from_claims_drop_lone_surrogates() -> None:
    """A JSON escape can carry a lone surrogate (the stand-in's signer cannot encode one)."""
    settings = OIDCSettings()
    claims = {"given_name": "A\ud800da", "usual_name": "Lovelace"}
    assert names_from_claims(settings, claims) == ("Ada Lovelace", "Ada")
