"""Absolute URLs behind a reverse proxy: forwarded scheme and host, only when trusted."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from api import keys
from api.app import create_app
from coordinator.errors import ConfigurationError
from coordinator.settings import Settings
from tests.api.test_oidc import oidc_settings
from tests.conftest import make_settings
from tests.oidc_provider import OIDCProvider
from tests.support.factories import Factory, login

Client = TestClient[Any, Any]
TRUSTED = {"secure_proxy_ssl_header": ("X-Forwarded-Proto", "https"), "use_x_forwarded_host": True}
BASE_ENV = {"SECRET_KEY": "k" * 50, "LIVEKIT_API_SECRET": "s" * 40}
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "meet.example.com"}


async def rooms_client(
    aiohttp_client: Any, database_url: str, factory: Factory, **kw: Any
) -> Client:
    client: Client = await aiohttp_client(create_app(make_settings(database_url, **kw)))
    user = await factory.user()
    for _ in range(5):
        await factory.access(await factory.room(), user, "member")
    login(client, client.app[keys.SESSIONS], user)
    return client


async def test_pagination_links_keep_meets_parameter_order(
    aiohttp_client: Any, database_url: str, factory: Factory
) -> None:
    client = await rooms_client(aiohttp_client, database_url, factory)
    body = await (await client.get("/api/v1.0/rooms/?page_size=2")).json()
    assert body["next"] == str(client.make_url("/api/v1.0/rooms/?page=2&page_size=2"))
    body = await (await client.get("/api/v1.0/rooms/?page_size=2&page=3&a=1")).json()
    assert body["previous"] == str(client.make_url("/api/v1.0/rooms/?a=1&page=2&page_size=2"))
    body = await (await client.get("/api/v1.0/rooms/?page_size=2&page=2")).json()
    assert body["previous"] == str(client.make_url("/api/v1.0/rooms/?page_size=2"))


async def test_trusted_proxy_makes_links_https_on_its_host(
    aiohttp_client: Any, database_url: str, factory: Factory
) -> None:
    client = await rooms_client(aiohttp_client, database_url, factory, **TRUSTED)
    response = await client.get("/api/v1.0/rooms/?page_size=2", headers=FORWARDED)
    body = await response.json()
    assert body["next"] == "https://meet.example.com/api/v1.0/rooms/?page=2&page_size=2"
    # The scheme alone when only it is trusted; a proxy saying "http" means http.
    client = await rooms_client(
        aiohttp_client,
        database_url,
        factory,
        secure_proxy_ssl_header=("X-Forwarded-Proto", "https"),
    )
    body = await (await client.get("/api/v1.0/rooms/?page_size=2", headers=FORWARDED)).json()
    assert body["next"] == f"https://{client.server.host}:{client.server.port}" + (
        "/api/v1.0/rooms/?page=2&page_size=2"
    )
    headers = {"X-Forwarded-Proto": "http, https"}
    body = await (await client.get("/api/v1.0/rooms/?page_size=2", headers=headers)).json()
    assert body["next"].startswith("http://")


async def test_forwarded_headers_are_ignored_unless_trusted(
    aiohttp_client: Any, database_url: str, factory: Factory
) -> None:
    client = await rooms_client(aiohttp_client, database_url, factory)
    hostile = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example.net"}
    body = await (await client.get("/api/v1.0/rooms/?page_size=2", headers=hostile)).json()
    assert body["next"] == str(client.make_url("/api/v1.0/rooms/?page=2&page_size=2"))
    assert "evil" not in body["next"] and body["next"].startswith("http://")


@pytest.mark.parametrize("host", ["evil.example.net/path", "a.example, b.example", "x y", ""])
async def test_a_malformed_forwarded_host_is_400(
    aiohttp_client: Any, database_url: str, factory: Factory, host: str
) -> None:
    client = await rooms_client(aiohttp_client, database_url, factory, **TRUSTED)
    response = await client.get("/api/v1.0/rooms/", headers={"X-Forwarded-Host": host})
    assert response.status == 400
    assert await response.json() == {"detail": "Invalid X-Forwarded-Host header."}


async def test_oidc_redirect_uri_behind_a_trusted_proxy(
    aiohttp_client: Any, database_url: str, oidc_provider: OIDCProvider
) -> None:
    settings = make_settings(database_url, oidc=oidc_settings(oidc_provider), **TRUSTED)
    client: Client = await aiohttp_client(create_app(settings))
    start = await client.get("/api/v1.0/authenticate/", headers=FORWARDED, allow_redirects=False)
    assert start.status == 302
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["redirect_uri"] == ["https://meet.example.com/api/v1.0/callback/"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("HTTP_X_FORWARDED_PROTO,https", ("X-FORWARDED-PROTO", "https")),
        ("X-Forwarded-Proto, https", ("X-Forwarded-Proto", "https")),
        ('["HTTP_X_FORWARDED_PROTO", "https"]', ("X-FORWARDED-PROTO", "https")),
        ("", None),
    ],
)
def test_proxy_settings_from_env(value: str, expected: Any) -> None:
    env = {**BASE_ENV, "SECURE_PROXY_SSL_HEADER": value, "USE_X_FORWARDED_HOST": "true"}
    settings = Settings.from_env(env)
    assert settings.secure_proxy_ssl_header == expected
    assert settings.use_x_forwarded_host is True
    assert Settings.from_env(BASE_ENV).secure_proxy_ssl_header is None


def test_bad_proxy_header_setting_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="SECURE_PROXY_SSL_HEADER"):
        Settings.from_env({**BASE_ENV, "SECURE_PROXY_SSL_HEADER": "https"})
