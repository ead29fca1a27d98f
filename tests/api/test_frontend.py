"""FRONTEND_DIST_DIR: the single-page app served at ``/`` beside the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.app import create_app
from tests.conftest import make_settings


async def test_spa_is_served_with_cache_headers(
    aiohttp_client: Any, tmp_path: Path, database_url: str
) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>meet app</html>")
    (dist / "assets" / "index-3f9a8b7c1d.js").write_text("console.log(1)")
    (dist / "favicon.ico").write_bytes(b"\x00")
    client = await aiohttp_client(
        create_app(make_settings(database_url, frontend_dist_dir=str(dist)))
    )
    index = await client.get("/")
    assert index.status == 200 and "meet app" in await index.text()
    assert index.headers["Cache-Control"] == "no-cache"
    asset = await client.get("/assets/index-3f9a8b7c1d.js")
    assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    deep = await client.get("/some-room-slug")
    assert "meet app" in await deep.text()
    escape = await client.get("/../../etc/passwd")
    assert "root:" not in await escape.text()
    api = await client.get("/api/v1.0/unknown/")
    assert api.status == 404 and await api.json() == {"detail": "Not found."}
    config = await client.get("/api/v1.0/config/")
    assert config.status == 200
