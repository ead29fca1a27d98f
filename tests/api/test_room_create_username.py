"""POST /rooms/?username=… names the creator's LiveKit token, as Meet's room serializer does.

The web app's "instant meeting" connects with the token of the creation answer
(frontend-calls.md §3), so the name the user chose must be in it.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from livekit.api import TokenVerifier

from api import keys
from api.app import create_app
from tests.conftest import LIVEKIT_KEY, LIVEKIT_SECRET, make_settings
from tests.support.factories import Factory, login

Client = TestClient[Any, Any]


def token_name(body: dict[str, Any]) -> str | None:
    return TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(body["livekit"]["token"]).name


async def test_create_uses_the_username_query(
    client: Client, factory: Factory, log_in: Any
) -> None:
    log_in(await factory.user(full_name="Ada Lovelace"))
    named = await client.post("/api/v1.0/rooms/?username=Countess", json={"name": "one"})
    assert named.status == 201
    assert token_name(await named.json()) == "Countess"
    empty = await client.post("/api/v1.0/rooms/?username=", json={"name": "two"})
    assert empty.status == 201
    assert token_name(await empty.json()) == "Ada Lovelace"  # empty: the full name
    bare = await client.post("/api/v1.0/rooms/", json={"name": "three"})
    assert token_name(await bare.json()) == "Ada Lovelace"


async def test_create_ignores_the_username_when_names_are_locked(
    aiohttp_client: Any, database_url: str, factory: Factory
) -> None:
    settings = make_settings(database_url, authenticated_participants_can_edit_display_name=False)
    client: Client = await aiohttp_client(create_app(settings))
    login(client, client.app[keys.SESSIONS], await factory.user(full_name="Ada Lovelace"))
    response = await client.post("/api/v1.0/rooms/?username=Countess", json={"name": "one"})
    assert response.status == 201
    assert token_name(await response.json()) == "Ada Lovelace"
