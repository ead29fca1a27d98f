from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient


async def test_config_is_public(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1.0/config/")
    assert response.status == 200
    body = await response.json()
    assert body["resource"] == {"default_access_level": "public"}
