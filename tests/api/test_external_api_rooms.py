"""``/external-api/v1.0/rooms/`` (reference §2.10) under each credential Meet accepts — an
application JWT, an add-on JWT, an OIDC access token introspected at the provider stand-in —
and under forged, expired, foreign and under-scoped ones. Both databases, the real server."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from api import keys
from api.app import create_app
from coordinator.settings import ResourceServerSettings, Secret
from storage import rooms as room_store
from storage import users as user_store
from storage.models import User
from tests.oidc_provider import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, OIDCProvider
from tests.support.external import (
    ADDONS_KEY,
    ROOMS_URL,
    Client,
    addons_token,
    app_token,
    bearer,
    external_settings,
    forge,
    new_application,
)
from tests.support.factories import Factory

MakeClient = Callable[..., Awaitable[Client]]
ALL = ("rooms:list", "rooms:retrieve", "rooms:create")
FIELDS = {"id", "name", "slug", "access_level", "configuration", "url"}
SLUG = re.compile(r"[a-z]{3}-[a-z]{4}-[a-z]{3}")


@pytest.fixture
def make_client(aiohttp_client: Any, database_url: str) -> MakeClient:
    async def _make(**overrides: Any) -> Client:
        client: Client = await aiohttp_client(
            create_app(external_settings(database_url, **overrides))
        )
        return client

    return _make


def resource_server(provider: OIDCProvider, **overrides: Any) -> ResourceServerSettings:
    values: dict[str, Any] = {
        "op_url": provider.issuer,
        "introspection_endpoint": provider.introspection_endpoint,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": Secret(DEFAULT_CLIENT_SECRET),
        "scopes_prefix": "lasuite_meet",
        "timeout_seconds": 2.0,
    }
    values.update(overrides)
    return ResourceServerSettings(**values)


async def answer(client: Client, method: str, path: str, token: str | None, **kw: Any) -> Any:
    headers = bearer(token) if token is not None else {}
    response = await client.request(method, path, headers=headers, **kw)
    return response.status, await response.json()


async def test_application_lists_retrieves_and_creates_for_its_user(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client()
    user = await factory.user(email="user@example.com")
    other = await factory.user()
    mine = [
        await factory.room(owner=user, access_level=level, pin_code=f"{n:010d}")
        for n, level in enumerate(("public", "trusted", "restricted"))
    ]
    member_of, _ = await factory.room_with_role(None, access_level="restricted")
    await factory.access(member_of, user, "member")
    foreign = await factory.room(owner=other, access_level="public")
    application = await new_application(client, scopes=ALL)
    token = await app_token(client, application, "user@example.com")

    status, body = await answer(client, "GET", ROOMS_URL, token)
    assert status == 200
    assert body["count"] == 4 and body["next"] is None and body["previous"] is None
    assert {room["id"] for room in body["results"]} == {str(r.id) for r in [*mine, member_of]}
    for room in body["results"]:
        assert set(room) == FIELDS  # no pin_code, accesses, livekit or telephony (off)
        assert room["url"] == f"https://meet.example/{room['slug']}"
    levels = {room["id"]: room["access_level"] for room in body["results"]}
    assert [levels[str(r.id)] for r in mine] == ["public", "trusted", "restricted"]

    status, body = await answer(client, "GET", f"{ROOMS_URL}{mine[2].id}/", token)
    assert status == 200
    assert body == {
        "id": str(mine[2].id),
        "name": mine[2].name,
        "slug": mine[2].slug,
        "access_level": "restricted",
        "configuration": {},
        "url": f"https://meet.example/{mine[2].slug}",
    }
    assert (await answer(client, "GET", f"{ROOMS_URL}{member_of.id}/", token))[0] == 200
    denied = await answer(client, "GET", f"{ROOMS_URL}{foreign.id}/", token)
    assert denied == (403, {"detail": "You do not have permission to perform this action."})
    for missing in (str(uuid.uuid4()), "not-a-uuid", foreign.slug):
        assert (await answer(client, "GET", f"{ROOMS_URL}{missing}/", token))[0] == 404

    # Create (the Outlook add-in sends no body): a random slug, trusted, the user owns it.
    # Read-only fields in a body are ignored; a configuration is validated and kept.
    status, created = await answer(client, "POST", ROOMS_URL, token)
    assert status == 201 and set(created) == FIELDS
    assert SLUG.fullmatch(created["name"]) and created["slug"] == created["name"]
    assert (created["access_level"], created["configuration"]) == ("trusted", {})
    status, second = await answer(
        client,
        "POST",
        ROOMS_URL,
        token,
        json={
            "id": str(uuid.uuid4()),
            "name": "Chosen",
            "slug": "chosen",
            "pin_code": "1234567890",
            "configuration": {"everyone_can_mute": False, "can_publish_sources": ["camera"]},
        },
    )
    assert status == 201
    assert second["name"] != "Chosen" and second["slug"] != "chosen"
    assert second["configuration"] == {
        "everyone_can_mute": False,
        "can_publish_sources": ["camera"],
    }
    async with client.app[keys.SESSIONMAKER]() as session:
        role = await room_store.get_user_access(session, uuid.UUID(created["id"]), user.id)
    assert role is not None and role.role == "owner"
    status, body = await answer(client, "GET", ROOMS_URL, token)
    assert body["count"] == 6


async def test_scopes_are_required_per_action(make_client: MakeClient, factory: Factory) -> None:
    client = await make_client()
    user = await factory.user(email="user@example.com")
    room = await factory.room(owner=user)
    creator = await new_application(client, scopes=("rooms:create",))
    token = await app_token(client, creator, "user@example.com")
    required = "Insufficient permissions. Required scope: {}"
    assert await answer(client, "GET", ROOMS_URL, token) == (
        403,
        {"detail": required.format("rooms:list")},
    )
    assert await answer(client, "GET", f"{ROOMS_URL}{room.id}/", token) == (
        403,
        {"detail": required.format("rooms:retrieve")},
    )
    nothing = await new_application(client, scopes=())
    token = await app_token(client, nothing, "user@example.com")
    for method, path in (
        ("GET", ROOMS_URL),
        ("POST", ROOMS_URL),
        ("GET", f"{ROOMS_URL}{room.id}/"),
    ):
        assert await answer(client, method, path, token) == (
            403,
            {"detail": "Insufficient permissions."},
        )
    lister = await new_application(client, scopes=("rooms:list",))
    token = await app_token(client, lister, "user@example.com")
    assert (await answer(client, "POST", ROOMS_URL, token))[1] == {
        "detail": required.format("rooms:create")
    }
    # Scopes are case-insensitive, as a list or space-separated.
    for scope in ("ROOMS:LIST", ["Rooms:List"], "openid rooms:list"):
        forged_scope = forge(
            {
                "client_id": lister.application.client_id,
                "user_id": str(user.id),
                "delegated": True,
                "scope": scope,
            }
        )
        assert (await answer(client, "GET", ROOMS_URL, forged_scope))[0] == 200


async def test_forged_expired_and_foreign_tokens_are_refused(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client()  # no resource server configured: nothing to fall through to
    user = await factory.user(email="user@example.com")
    inactive_user = await factory.user(email="gone@example.com", is_active=False)
    application = await new_application(client, scopes=ALL)
    disabled = await new_application(client, scopes=ALL)
    valid = {
        "client_id": application.application.client_id,
        "user_id": str(user.id),
        "delegated": True,
        "scope": "rooms:list",
    }
    fallthrough = (401, {"detail": "Resource Server is improperly configured"})
    cases: list[tuple[str, tuple[int, Any]]] = [
        (forge(valid, key="another-secret-" + "z" * 32), fallthrough),
        (_hs512(valid), fallthrough),
        # Signed with the add-on key: the add-on verifier reads it, and its audience is wrong.
        (forge(valid, key=ADDONS_KEY), (401, {"detail": "Invalid token."})),
        ("not.a.jwt", fallthrough),
        (
            base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
            + ".eyJ1c2VyX2lkIjoiMSJ9.",
            fallthrough,
        ),
        (forge({**valid, "exp": None}), fallthrough),  # no expiry: never one of ours
        (forge(valid, ttl=-10), (401, {"detail": "Token expired."})),
        (forge({**valid, "aud": "someone-else"}), (401, {"detail": "Invalid token."})),
        (forge({**valid, "iss": "elsewhere"}), (401, {"detail": "Invalid token."})),
        (forge({**valid, "delegated": None}), (401, {"detail": "Invalid token type."})),
        (forge({**valid, "delegated": "yes"}), (401, {"detail": "Invalid token type."})),
        (forge({**valid, "client_id": None}), (401, {"detail": "Invalid token claims."})),
        (forge({**valid, "user_id": None}), (401, {"detail": "Invalid token claims."})),
        (forge({**valid, "user_id": str(uuid.uuid4())}), (401, {"detail": "User not found."})),
        (forge({**valid, "user_id": "x' OR 1=1"}), (401, {"detail": "User not found."})),
        (forge({**valid, "client_id": "nope"}), (401, {"detail": "Application not found."})),
        (
            forge({**valid, "user_id": str(inactive_user.id)}),
            (401, {"detail": "User account is disabled."}),
        ),
    ]
    for token, expected in cases:
        assert await answer(client, "GET", ROOMS_URL, token) == expected, token
    # A token of an application disabled after it was issued stops working at once.
    token = await app_token(client, disabled, "user@example.com")
    assert (await answer(client, "GET", ROOMS_URL, token))[0] == 200
    from storage import applications as application_store

    async with client.app[keys.SESSIONMAKER].begin() as session:
        await application_store.set_application_active(
            session, disabled.application.client_id, False
        )
    assert await answer(client, "GET", ROOMS_URL, token) == (
        401,
        {"detail": "Application is disabled."},
    )
    # No credentials, or not a bearer header: 401 with a Bearer challenge.
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = await client.get(ROOMS_URL, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = await client.get(ROOMS_URL, headers={"Authorization": "Bearer a b"})
    assert (response.status, await response.json()) == (401, {"detail": "Invalid token header."})
    # A browser session is not a credential here.
    assert (await client.post(ROOMS_URL)).status == 401


def _hs512(claims: dict[str, Any]) -> str:
    """The right key under another HMAC algorithm (pyjwt warns: the key is short for it)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return forge(claims, algorithm="HS512")


async def test_create_validates_access_level_and_configuration(
    make_client: MakeClient, factory: Factory
) -> None:
    await factory.user(email="user@example.com")
    client = await make_client()
    token = await app_token(client, await new_application(client, scopes=ALL), "user@example.com")
    assert await answer(client, "POST", ROOMS_URL, token, json={"access_level": "public"}) == (
        400,
        {"access_level": ["Public rooms are disabled for the external API."]},
    )
    status, body = await answer(client, "POST", ROOMS_URL, token, json={"access_level": "nope"})
    assert status == 400 and set(body) == {"access_level"}
    configurations: list[Any] = [
        {"unknown": True},
        {"can_publish_sources": ["hologram"]},
        {"can_publish_sources": "camera"},
        {"everyone_can_mute": "sometimes"},
        [],
    ]
    for configuration in configurations:
        status, body = await answer(
            client, "POST", ROOMS_URL, token, json={"configuration": configuration}
        )
        assert status == 400 and set(body) == {"configuration"}, configuration
    status, body = await answer(
        client, "POST", ROOMS_URL, token, json={"access_level": "restricted"}
    )
    assert (status, body["access_level"]) == (201, "restricted")
    assert (await answer(client, "POST", ROOMS_URL, token, json=[1]))[0] == 400
    response = await client.post(
        ROOMS_URL, data="x", headers={**bearer(token), "Content-Type": "text/csv"}
    )
    assert response.status == 415

    for overrides, cases in (
        (
            {"allow_public_access": True, "default_access_level": "restricted"},
            [("public", "public"), (None, "restricted")],
        ),
        ({"default_access_level": "public"}, [("public", "public"), (None, "public")]),
    ):
        other = await make_client(**overrides)
        token = await app_token(other, await new_application(other, scopes=ALL), "user@example.com")
        for requested, expected in cases:
            body_in = {"access_level": requested} if requested else None
            status, body = await answer(other, "POST", ROOMS_URL, token, json=body_in)
            assert (status, body["access_level"]) == (201, expected), overrides


async def test_telephony_and_url_follow_the_settings(
    make_client: MakeClient, factory: Factory
) -> None:
    user = await factory.user(email="user@example.com")
    client = await make_client(
        base_url=None,
        settings={
            "room_telephony_enabled": True,
            "room_telephony_phone_number": "+33 1 23 45 67 89",
            "room_telephony_default_country": "FR",
        },
    )
    # The Outlook add-in: POST with its add-on token and no body; reads url and telephony.
    status, room = await answer(client, "POST", ROOMS_URL, addons_token(user.id))
    assert status == 201
    assert "url" not in room
    assert room["telephony"]["enabled"] is True
    assert room["telephony"]["phone_number"] == "+33 1 23 45 67 89"
    assert room["telephony"]["default_country"] == "FR"
    assert re.fullmatch(r"\d{10}", room["telephony"]["pin_code"])
    assert "pin_code" not in room


async def test_addon_tokens_and_their_flag(make_client: MakeClient, factory: Factory) -> None:
    client = await make_client()
    user = await factory.user(email="user@example.com")
    inactive = await factory.user(is_active=False)
    room = await factory.room(owner=user)
    full = addons_token(user.id, scope="rooms:list rooms:retrieve rooms:create")
    assert (await answer(client, "GET", ROOMS_URL, full))[1]["count"] == 1
    assert (await answer(client, "GET", f"{ROOMS_URL}{room.id}/", full))[0] == 200
    status, created = await answer(client, "POST", ROOMS_URL, addons_token(user.id))
    assert status == 201 and created["access_level"] == "trusted"
    assert (await answer(client, "GET", ROOMS_URL, addons_token(user.id)))[0] == 403
    for ttl, claims, expected in (
        (-5, {}, (401, {"detail": "Token expired."})),
        (3600, {"aud": "elsewhere"}, (401, {"detail": "Invalid token."})),
    ):
        token = forge(
            {"aud": "addons", "user_id": str(user.id), "scope": "rooms:create", **claims},
            key=ADDONS_KEY,
            ttl=ttl,
        )
        assert await answer(client, "POST", ROOMS_URL, token) == expected
    assert await answer(client, "POST", ROOMS_URL, addons_token(inactive.id)) == (
        401,
        {"detail": "User account is disabled."},
    )
    assert await answer(client, "POST", ROOMS_URL, addons_token(uuid.uuid4())) == (
        401,
        {"detail": "User not found."},
    )
    assert (await answer(client, "POST", ROOMS_URL, addons_token(None)))[1] == {
        "detail": "Invalid token claims."
    }
    fallthrough = (401, {"detail": "Resource Server is improperly configured"})
    wrong_key = forge(
        {"aud": "addons", "user_id": str(user.id), "scope": "rooms:create"},
        key="x" * 40,
    )
    assert await answer(client, "POST", ROOMS_URL, wrong_key) == fallthrough

    # ADDONS_ENABLED off: the add-on token is not tried; application tokens still work.
    off = await make_client(addons={"enabled": False})
    assert await answer(off, "POST", ROOMS_URL, addons_token(user.id)) == fallthrough
    token = await app_token(off, await new_application(off, scopes=ALL), "user@example.com")
    assert (await answer(off, "GET", ROOMS_URL, token))[0] == 200
    # APPLICATION_ENABLED off: application tokens are not tried either.
    apps_off = await make_client(application_enabled=False)
    assert await answer(apps_off, "GET", ROOMS_URL, token) == fallthrough


async def test_oidc_resource_server_tokens_are_introspected(
    make_client: MakeClient, factory: Factory, oidc_provider: OIDCProvider
) -> None:
    client = await make_client(
        application_enabled=False, resource_server=resource_server(oidc_provider)
    )
    user = await factory.user(sub="very-specific-sub")
    mine = await factory.room(owner=user, access_level="restricted")
    await factory.room(access_level="public")
    scope = "openid lasuite_meet lasuite_meet:rooms:list lasuite_meet:rooms:retrieve"
    token = oidc_provider.mint_access_token({"sub": "very-specific-sub"}, scope=scope)
    status, body = await answer(client, "GET", ROOMS_URL, token)
    assert status == 200
    assert [room["id"] for room in body["results"]] == [str(mine.id)]
    introspections = oidc_provider.requests_to("/introspect")
    assert introspections, "the provider was asked"
    # Base64-encoded bearer tokens (some service providers send them so) are decoded.
    encoded = base64.b64encode(token.encode()).decode()
    assert (await answer(client, "GET", f"{ROOMS_URL}{mine.id}/", encoded))[0] == 200
    # The token's scopes lack rooms:create.
    assert (await answer(client, "POST", ROOMS_URL, token))[0] == 403

    # An unknown subject becomes a user (no e-mail) with OIDC_CREATE_USER.
    newcomer = oidc_provider.mint_access_token({"sub": "brand-new-sub"}, scope=scope)
    status, body = await answer(client, "GET", ROOMS_URL, newcomer)
    assert (status, body["count"]) == (200, 0)
    async with client.app[keys.SESSIONMAKER]() as session:
        created = await user_store.get_user_by_sub(session, "brand-new-sub")
    assert created is not None and created.email is None

    # Tokens the provider does not vouch for: Meet's "suspicious operation", 400.
    refused = [
        oidc_provider.mint_access_token({"sub": "very-specific-sub"}, expires_in=-60, scope=scope),
        oidc_provider.mint_forged_access_token({"sub": "very-specific-sub"}, scope=scope),
        oidc_provider.mint_access_token({"sub": "very-specific-sub"}, scope="openid rooms:list"),
        "opaque-garbage",
    ]
    for bad in refused:
        assert (await answer(client, "GET", ROOMS_URL, bad))[0] == 400
    oidc_provider.introspection_overrides = {"iss": "https://impostor.example"}
    assert (await answer(client, "GET", ROOMS_URL, token))[0] == 400
    oidc_provider.introspection_overrides = {}


async def test_resource_server_edge_cases(
    make_client: MakeClient, factory: Factory, oidc_provider: OIDCProvider
) -> None:
    from dataclasses import replace

    await factory.user(sub="known-sub", is_active=False)
    scope = "openid lasuite_meet rooms:list"
    no_create = await make_client(
        resource_server=resource_server(oidc_provider, scopes_prefix=None),
        settings={"oidc": replace(external_settings("sqlite://").oidc, create_user=False)},
    )
    stranger = oidc_provider.mint_access_token({"sub": "stranger"}, scope=scope)
    assert await answer(no_create, "GET", ROOMS_URL, stranger) == (401, {"detail": "Login failed"})
    async with no_create.app[keys.SESSIONMAKER]() as session:
        assert await session.scalar(select(User).where(User.sub == "stranger")) is None
    inactive = oidc_provider.mint_access_token({"sub": "known-sub"}, scope=scope)
    assert (await answer(no_create, "GET", ROOMS_URL, inactive))[0] == 401
    # Wrong introspection credentials, and a provider that does not answer.
    wrong = await make_client(
        resource_server=resource_server(oidc_provider, client_secret=Secret("wrong"))
    )
    assert (await answer(wrong, "GET", ROOMS_URL, stranger))[0] == 400
    down = await make_client(
        resource_server=resource_server(
            oidc_provider, introspection_endpoint="http://127.0.0.1:9/introspect"
        )
    )
    assert (await answer(down, "GET", ROOMS_URL, stranger))[0] == 503
