"""``make demo``'s traffic (bench/demo_traffic.py) moves what ``/ops/`` shows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from bench.demo_traffic import Traffic, log_in
from coordinator.settings import Secret
from tests.livekit_standin import LiveKitStandin
from tests.oidc_provider import OIDCProvider
from tests.support.stack import stack_settings

OPS_TOKEN = "ops-demo-token-" + "d" * 40


@pytest.fixture
def sqlite_database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: the traffic is what is tested here, both databases are elsewhere."""
    path = tmp_path / "meet.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


async def test_demo_traffic_moves_the_dashboard(
    aiohttp_client: Any,
    sqlite_database_url: str,
    oidc_provider: OIDCProvider,
    livekit_standin: LiveKitStandin,
) -> None:
    settings = stack_settings(
        sqlite_database_url,
        oidc_provider,
        livekit_standin,
        recording_enable=True,
        ops_token=Secret(OPS_TOKEN),
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    server = str(client.make_url("")).rstrip("/")
    livekit_standin.webhook_url = f"{server}/api/v1.0/rooms/webhooks-livekit/"
    headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
    before = await (await client.get("/ops/api/state/", headers=headers)).json()
    assert before["totals"]["webhooks"] == 0 and before["rooms"] == []

    host = await log_in(server, oidc_provider.issuer.rstrip("/"), "demo-host")
    traffic = Traffic(server, livekit_standin.url, host)
    try:
        counters = await traffic.run(3.0, interval=0.1)
    finally:
        await traffic.close()
        await host.close()
    await livekit_standin.webhooks.drain()
    assert counters.errors == [] and counters.joins > 5 and counters.recordings == 1
    assert oidc_provider.logged_in_user is None  # the next browser login gets the form

    async with client.get("/ops/api/events/", headers=headers) as stream:
        await stream.content.readline()  # retry:
        await stream.content.readline()
        kind = (await stream.content.readline()).decode()
        data = (await stream.content.readline()).decode()
    assert kind == "event: state\n"
    after = json.loads(data.removeprefix("data: "))
    assert after["totals"]["webhooks"] > 10
    assert sum(after["series"]["webhooks"]) == after["totals"]["webhooks"]
    assert after["totals"]["participants"] == sum(len(p) for p in traffic.present.values())
    assert len(after["rooms"]) == 4  # each has someone from the start
    labels = {r["label"] for r in after["rooms"]}
    assert {str(room["slug"]) for room in traffic.rooms} == labels
    recording = [r for r in after["rooms"] if r["recording"]]
    assert recording and recording[0]["room"] == str(traffic.rooms[0]["id"])
    assert after["pipeline"]["in_flight"][0]["room"] == str(traffic.rooms[0]["id"])
    assert any(r["lobby"] for r in after["rooms"])  # guests are waiting
    assert {m["method"] for m in after["livekit"]} >= {
        "ListParticipants",
        "StartRoomCompositeEgress",
    }
    assert after["totals"]["requests"] > counters.knocks
