"""A hung LiveKit never freezes a room (issue 9 point 5), against the real server and the stand-in.

With every LiveKit call stalled far beyond the adapter's 1 s timeout, requests that call LiveKit
answer 503 within about one timeout however many are queued, and requests that need no LiveKit
(lobby, webhooks, snapshots) answer at once. Before the fix the room's mailbox awaited each
LiveKit call: 10 removals answered at 1, 2, … 10 s and everything else waited behind them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from livekit import api

from api import keys
from coordinator.room import Snapshot
from storage.records import RoomRecord, UserRecord
from tests.livekit_standin import LiveKitStandin, sign_webhook
from tests.support.factories import Factory

Client = TestClient[Any, Any]
LogIn = Callable[[UserRecord], None]
TIMEOUT = 1.0  # the LiveKit timeout of this module's lk_client
FAST = TIMEOUT * 0.8  # well under one LiveKit timeout (before the fix: 11 s)
WEBHOOK = "/api/v1.0/rooms/webhooks-livekit/"


@pytest.fixture
def livekit_timeout() -> float:
    return TIMEOUT


def url(room: RoomRecord, action: str) -> str:
    return f"/api/v1.0/rooms/{room.id}/{action}/"


async def timed(call: Any) -> tuple[float, aiohttp.ClientResponse, Any]:
    started = time.monotonic()
    response = await call
    body = await response.json()
    return time.monotonic() - started, response, body


async def frozen_room(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> tuple[RoomRecord, list[str]]:
    room, owner = await factory.room_with_role("owner", access_level="restricted")
    people = [f"person-{i}" for i in range(10)]
    for identity in people:
        livekit_standin.join(str(room.id), identity)
    await livekit_standin.webhooks.drain()
    await lk_client.app[keys.DIRECTORY].call(str(room.id), Snapshot())  # active and listed
    lk_log_in(owner)
    livekit_standin.stall("*", 30.0, times=None)  # LiveKit hangs on every call
    return room, people


@pytest.mark.parametrize("same_target", [False, True])
async def test_ten_concurrent_removals_all_answer_within_one_timeout(
    lk_client: Client,
    livekit_standin: LiveKitStandin,
    factory: Factory,
    lk_log_in: LogIn,
    same_target: bool,
) -> None:
    room, people = await frozen_room(lk_client, livekit_standin, factory, lk_log_in)
    targets = [people[0]] * 10 if same_target else people
    results = await asyncio.gather(
        *(
            timed(lk_client.post(url(room, "remove-participant"), json={"participant_identity": p}))
            for p in targets
        )
    )
    for elapsed, response, body in results:
        assert response.status == 503
        assert body == {"error": "Failed to remove participant"}
        assert elapsed < TIMEOUT * 1.8, [round(r[0], 2) for r in results]
    livekit_standin.clear_faults()
    snapshot = await lk_client.app[keys.DIRECTORY].call(str(room.id), Snapshot())
    assert len(snapshot["participants"]) == 10  # nothing removed, nothing half done


async def test_lobby_webhooks_and_snapshots_answer_at_once_while_livekit_hangs(
    lk_client: Client, livekit_standin: LiveKitStandin, factory: Factory, lk_log_in: LogIn
) -> None:
    room, people = await frozen_room(lk_client, livekit_standin, factory, lk_log_in)
    removals = [
        asyncio.create_task(
            timed(lk_client.post(url(room, "remove-participant"), json={"participant_identity": p}))
        )
        for p in people
    ]
    await asyncio.sleep(0.1)  # the removals are queued and waiting on LiveKit
    event = api.WebhookEvent(
        event="participant_joined",
        id="EV_during_freeze",
        room=api.Room(name=str(room.id)),
        participant=api.ParticipantInfo(
            identity="late-comer",
            sid="PA_late",
            state=api.ParticipantInfo.State.ACTIVE,
            joined_at=int(time.time()),
            joined_at_ms=int(time.time() * 1000),
        ),
    )
    body, headers = sign_webhook(event, livekit_standin.api_key, livekit_standin.api_secret)
    elapsed, response, _ = await timed(lk_client.post(WEBHOOK, data=body, headers=headers))
    assert response.status == 200 and elapsed < FAST
    async with aiohttp.ClientSession() as guest:  # an anonymous browser
        elapsed, response, entry = await timed(
            guest.post(str(lk_client.make_url(url(room, "request-entry"))), json={"username": "G"})
        )
    assert response.status == 200 and entry["status"] == "waiting" and elapsed < FAST
    elapsed, response, waiting = await timed(lk_client.get(url(room, "waiting-participants")))
    assert response.status == 200 and elapsed < FAST
    assert [p["id"] for p in waiting["participants"]] == [entry["id"]]
    elapsed, response, _ = await timed(
        lk_client.post(
            url(room, "enter"), json={"participant_id": entry["id"], "allow_entry": True}
        )
    )
    assert response.status == 200 and elapsed < FAST
    elapsed, response, live = await timed(lk_client.get(url(room, "live")))
    assert response.status == 200 and elapsed < FAST
    assert "late-comer" in {p["identity"] for p in live["participants"]}
    for elapsed, response, _ in await asyncio.gather(*removals):
        assert response.status == 503 and elapsed < TIMEOUT * 1.8
