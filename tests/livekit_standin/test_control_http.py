"""The ``/_fake/*`` JSON control surface (used by the CLI mode)."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest
from livekit import api

from tests.livekit_standin import LiveKitStandin, WebhookSink


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with session.post(url, json=body) as resp:
        payload = await resp.json()
        assert resp.status == 200, payload
        return payload


async def test_control_endpoints(
    livekit_standin: LiveKitStandin,
    lk: api.LiveKitAPI,
    session: aiohttp.ClientSession,
    sink: WebhookSink,
) -> None:
    base = f"{livekit_standin.url}/_fake"
    joined = await _post(session, f"{base}/join", {"room": "r", "identity": "alice"})
    assert joined["identity"] == "alice" and joined["state"] == "ACTIVE"
    track = await _post(
        session, f"{base}/publish", {"room": "r", "identity": "alice", "type": "VIDEO"}
    )
    assert track["source"] == "CAMERA"
    await _post(
        session, f"{base}/unpublish", {"room": "r", "identity": "alice", "track_sid": track["sid"]}
    )

    info = await lk.egress.start_room_composite_egress(
        api.RoomCompositeEgressRequest(
            room_name="r", file_outputs=[api.EncodedFileOutput(filepath="x.mp4")]
        )
    )
    advanced = await _post(
        session,
        f"{base}/advance_egress",
        {"egress_id": info.egress_id, "status": "EGRESS_ACTIVE"},
    )
    assert advanced["status"] == "EGRESS_ACTIVE"
    await _post(
        session,
        f"{base}/faults",
        {"method": "ListRooms", "kind": "error", "code": "internal", "message": "x"},
    )
    with pytest.raises(api.TwirpError):
        await lk.room.list_rooms(api.ListRoomsRequest())
    async with session.delete(f"{base}/faults") as resp:
        assert resp.status == 200
    await lk.room.list_rooms(api.ListRoomsRequest())
    await lk.room.send_data(api.SendDataRequest(room="r", data=b"hi"))

    async with session.get(f"{base}/calls", params={"method": "ListRooms"}) as resp:
        calls = await resp.json()
    assert [c["error_code"] for c in calls] == ["internal", None]
    assert calls[0]["claims"]["video"]["roomList"] is True
    async with session.get(f"{base}/data_packets") as resp:
        (packet,) = await resp.json()
    assert base64.b64decode(packet["data"]) == b"hi" and packet["kind"] == "RELIABLE"
    async with session.get(f"{base}/state") as resp:
        state = await resp.json()
    assert state["rooms"][0]["participants"][0]["identity"] == "alice"
    assert state["egresses"][0]["egress_id"] == info.egress_id

    await _post(session, f"{base}/leave", {"room": "r", "identity": "alice"})
    await _post(session, f"{base}/close_room", {"room": "r"})
    await _post(session, f"{base}/drain", {})
    async with session.get(f"{base}/webhooks") as resp:
        hooks = await resp.json()
    assert hooks["url"] == sink.url
    assert [e["event"] for e in hooks["events"]][-1] == "room_finished"
    assert sink.names()[-1] == "room_finished"

    async with session.post(f"{base}/close_room", json={"room": "r"}) as resp:
        assert resp.status == 400
        assert "requested room does not exist" in (await resp.json())["error"]
    await _post(session, f"{base}/webhook_url", {"url": None})
    assert livekit_standin.webhook_url is None
