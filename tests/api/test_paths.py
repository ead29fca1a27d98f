"""Paths as Meet's web app sends them: slashless API paths redirect, unknown ones are 404.

Django answers a slashless path whose slashed form is a route with a redirect (``APPEND_SLASH``);
the web app relies on it (``GET /api/v1.0/users/me``, ``/api/v1.0/logout``). An unknown API
path is 404 for every method, also beside the single-page app, and no byte in a path is a 500.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from api import keys
from api.app import create_app
from tests.conftest import make_settings
from tests.support.factories import login

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
BAD_PATHS = (
    "/%00",
    "/%ff",
    "/%c3",
    "/a%00b/",
    "/api/v1.0/rooms/%00/",
    "/api/v1.0/rooms/%ff/",
    "/api/v1.0/rooms/%00",
    "/api/v1.0/users/%1f/",
    "/api/v1.0/rooms/x%00y/enter/",
    "/__heartbeat__%00",
)


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "meet.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Paths do not depend on the database: SQLite only."""
    return sqlite_url


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    folder.mkdir()
    (folder / "index.html").write_text("<html>meet app</html>")
    return folder


@pytest.fixture(params=["api-only", "with-frontend"])
async def app_client(
    request: pytest.FixtureRequest, aiohttp_client: Any, sqlite_url: str, dist: Path
) -> TestClient[Any, Any]:
    overrides = {"frontend_dist_dir": str(dist)} if request.param == "with-frontend" else {}
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(make_settings(sqlite_url, **overrides))
    )
    return client


async def test_users_me_without_slash_redirects_then_is_401(
    app_client: TestClient[Any, Any],
) -> None:
    response = await app_client.get("/api/v1.0/users/me", allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == "/api/v1.0/users/me/"
    followed = await app_client.get("/api/v1.0/users/me")
    assert followed.status == 401
    assert (await followed.json())["detail"]
    head = await app_client.head("/api/v1.0/users/me", allow_redirects=False)
    assert head.status == 301 and head.headers["Location"] == "/api/v1.0/users/me/"


async def test_logout_without_slash_redirects(app_client: TestClient[Any, Any]) -> None:
    response = await app_client.get("/api/v1.0/logout", allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == "/api/v1.0/logout/"


async def test_redirect_keeps_the_query_string(app_client: TestClient[Any, Any]) -> None:
    response = await app_client.get(
        URL("/api/v1.0/recordings?page=2&page_size=3&x=%C3%A9", encoded=True),
        allow_redirects=False,
    )
    assert response.status == 301
    assert response.headers["Location"] == "/api/v1.0/recordings/?page=2&page_size=3&x=%C3%A9"


async def test_unsafe_methods_redirect_with_308_and_keep_their_body(
    app_client: TestClient[Any, Any], factory: Any
) -> None:
    response = await app_client.post(
        "/api/v1.0/rooms", json={"name": "kept"}, allow_redirects=False
    )
    assert response.status == 308
    assert response.headers["Location"] == "/api/v1.0/rooms/"
    user = await factory.user()
    login(app_client, app_client.app[keys.SESSIONS], user)
    created = await app_client.post("/api/v1.0/rooms", json={"name": "kept"})
    assert created.status == 201, await created.text()
    assert (await created.json())["name"] == "kept"
    assert created.history[0].status == 308


@pytest.mark.parametrize("method", METHODS)
async def test_unknown_api_paths_are_404_for_every_method(
    app_client: TestClient[Any, Any], method: str
) -> None:
    for path in (
        "/api/v1.0/unknown/",
        "/api/v1.0/unknown",
        "/api/v1.0/nothing-here?page=1&page_size=20",
        "/api/",
        "/api",
        "/api/v2.0/rooms/",
        "/external-api/v1.0/rooms/",
        "/external-api/v1.0/rooms",
        "/__nothing__",
    ):
        response = await app_client.request(method, path, allow_redirects=False)
        assert response.status == 404, (method, path, response.status)
        assert await response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("method", ("GET", "POST"))
async def test_undecodable_or_control_bytes_in_paths_are_404(
    app_client: TestClient[Any, Any], method: str
) -> None:
    for path in BAD_PATHS:
        response = await app_client.request(method, URL(path, encoded=True), allow_redirects=False)
        assert response.status == 404, (method, path, response.status)
        assert await response.json() == {"detail": "Not found."}


async def test_spa_fallback_still_serves_app_paths(
    aiohttp_client: Any, sqlite_url: str, dist: Path
) -> None:
    client = await aiohttp_client(
        create_app(make_settings(sqlite_url, frontend_dist_dir=str(dist)))
    )
    for path in (
        "/",
        "/some-room-slug",
        "/apiary",
        "/api-docs",
        "/recording/abc",
        "/%C3%A9t%C3%A9",
    ):
        response = await client.get(URL(path, encoded=True))
        assert response.status == 200, path
        assert "meet app" in await response.text()
