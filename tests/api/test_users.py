"""Users (§2.3), the session/CSRF rules and health endpoints."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.session import CSRF_HEADER
from storage.records import UserRecord
from tests.support.factories import Factory

Client = TestClient[Any, Any]
LogIn = Callable[[UserRecord], None]


async def test_me(client: Client, factory: Factory, log_in: LogIn) -> None:
    response = await client.get("/api/v1.0/users/me/")
    assert response.status == 401
    user = await factory.user(email="ada@example.com", full_name="Ada Lovelace", short_name="Ada")
    log_in(user)
    body = await (await client.get("/api/v1.0/users/me/")).json()
    assert body == {
        "id": str(user.id),
        "email": "ada@example.com",
        "full_name": "Ada Lovelace",
        "short_name": "Ada",
        "timezone": "UTC",
        "language": "en-us",
        "default_room_access_level": None,
        "default_room_configuration": {},
    }


async def test_inactive_user_session_is_anonymous(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    log_in(await factory.user(is_active=False))
    assert (await client.get("/api/v1.0/users/me/")).status == 401


async def test_update_self_only(client: Client, factory: Factory, log_in: LogIn) -> None:
    user = await factory.user()
    other = await factory.user()
    log_in(user)
    payload = {
        "language": "fr-fr",
        "timezone": "Europe/Paris",
        "default_room_access_level": "trusted",
        "default_room_configuration": {"everyone_can_mute": False},
        "email": "hacker@example.com",
        "full_name": "Hacker",
    }
    response = await client.put(f"/api/v1.0/users/{user.id}/", json=payload)
    assert response.status == 200
    body = await response.json()
    assert body["language"] == "fr-fr"
    assert body["timezone"] == "Europe/Paris"
    assert body["default_room_access_level"] == "trusted"
    assert body["default_room_configuration"] == {"everyone_can_mute": False}
    assert body["email"] == user.email and body["full_name"] == user.full_name
    response = await client.patch(f"/api/v1.0/users/{other.id}/", json={"language": "de-de"})
    assert response.status == 403
    response = await client.patch(f"/api/v1.0/users/{uuid.uuid4()}/", json={"language": "de-de"})
    assert response.status == 403


@pytest.mark.parametrize(
    "payload",
    [
        {"default_room_access_level": "secret"},
        {"default_room_configuration": {"bogus": True}},
        {"default_room_configuration": {"can_publish_sources": ["Camera"]}},
        {"language": "xx-yy"},
        {"timezone": "Mars/Olympus"},
        {"timezone": 5},
    ],
)
async def test_update_rejects_bad_preferences(
    client: Client, factory: Factory, log_in: LogIn, payload: dict[str, Any]
) -> None:
    user = await factory.user()
    log_in(user)
    response = await client.patch(f"/api/v1.0/users/{user.id}/", json=payload)
    assert response.status == 400
    assert set(await response.json()) == set(payload)
    me = await (await client.get("/api/v1.0/users/me/")).json()
    assert me["language"] == "en-us" and me["default_room_configuration"] == {}


async def test_user_list_is_empty_unless_allowed(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    log_in(await factory.user(email="someone@example.com"))
    body = await (await client.get("/api/v1.0/users/?q=some")).json()
    assert body["results"] == []


async def test_user_list_when_allowed(
    aiohttp_client: Any, database_url: str, factory: Factory
) -> None:
    from api import keys
    from api.app import create_app
    from tests.conftest import make_settings
    from tests.support.factories import login

    client = await aiohttp_client(
        create_app(make_settings(database_url, allow_unsecure_user_listing=True))
    )
    user = await factory.user(email="someone@example.com")
    await factory.user(email="other@example.org")
    login(client, client.app[keys.SESSIONS], user)
    body = await (await client.get("/api/v1.0/users/?q=SOME")).json()
    assert [item["email"] for item in body["results"]] == ["someone@example.com"]


async def test_users_retrieve_and_create_are_not_allowed(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    user = await factory.user()
    log_in(user)
    assert (await client.get(f"/api/v1.0/users/{user.id}/")).status == 405
    assert (await client.delete(f"/api/v1.0/users/{user.id}/")).status == 405


async def test_unsafe_methods_need_the_csrf_token_with_a_session(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    log_in(await factory.user())
    client.session.headers.pop(CSRF_HEADER)
    response = await client.post("/api/v1.0/rooms/", json={"name": "no csrf"})
    assert response.status == 403
    assert await response.json() == {"detail": "CSRF Failed: CSRF token missing."}
    response = await client.post(
        "/api/v1.0/rooms/", json={"name": "bad csrf"}, headers={CSRF_HEADER: "wrong"}
    )
    assert response.status == 403
    assert await response.json() == {"detail": "CSRF Failed: CSRF token incorrect."}
    # Safe methods are not affected.
    assert (await client.get("/api/v1.0/users/me/")).status == 200


async def test_csrf_cookie_is_handed_out_to_sessions(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    anonymous = await client.get("/api/v1.0/config/")
    assert "csrftoken" not in anonymous.cookies
    log_in(await factory.user())
    client.session.cookie_jar.clear(lambda morsel: morsel.key == "csrftoken")
    response = await client.get("/api/v1.0/users/me/")
    cookie = response.cookies["csrftoken"]
    assert len(cookie.value) >= 32
    assert not cookie["httponly"]


async def test_forged_session_cookie_is_anonymous(client: Client) -> None:
    client.session.cookie_jar.update_cookies({"sessionid": "forged"})
    assert (await client.get("/api/v1.0/users/me/")).status == 401


async def test_health_endpoints(client: Client) -> None:
    response = await client.get("/__heartbeat__")
    assert response.status == 200
    assert await response.json() == {"database": "ok"}
    assert (await client.get("/__lbheartbeat__")).status == 200
    version = await (await client.get("/__version__")).json()
    assert set(version) == {"source", "version", "commit", "build"}


async def test_concurrent_requests_of_one_session_load_its_user_once(
    client: Client, factory: Factory, log_in: LogIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the cached session user expires under load, one query serves every waiter (the
    session's query reads its user too)."""
    import asyncio

    from api import keys
    from storage import reads

    user = await factory.user()
    log_in(user)
    user_queries: list[Any] = []

    def counted(real: Any) -> Any:
        async def query(source: Any, *args: Any) -> Any:
            user_queries.append(args)
            return await real(source, *args)

        return query

    monkeypatch.setattr(reads, "user", counted(reads.user))
    monkeypatch.setattr(reads, "session_user", counted(reads.session_user))
    cache = client.app[keys.ROOMS].cache
    for expired in (cache.users, cache.sessions, cache.users):
        expired.clear()
        responses = await asyncio.gather(*(client.get("/api/v1.0/users/me/") for _ in range(40)))
        assert [r.status for r in responses] == [200] * 40
        assert len(user_queries) == 1, user_queries
        user_queries.clear()
