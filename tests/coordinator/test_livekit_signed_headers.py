"""The adapter signs one API token per grants and reuses it for a minute (``SignedHeaders``)."""

from __future__ import annotations

import aiohttp
import pytest
from livekit.api import AccessToken

from coordinator import livekit as livekit_module
from coordinator.livekit import AUTH_HEADER_REUSE_SECONDS, LiveKitAdapter, SignedHeaders
from coordinator.settings import LiveKitSettings, Secret
from tests.livekit_standin import LiveKitStandin


async def test_one_token_per_room_reused_and_accepted(
    livekit_standin: LiveKitStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls on one room carry the same token, signed once (still verified and accepted by
    LiveKit, with roomAdmin for that room only); another room, or a list call, gets its own."""
    signatures: list[str] = []
    to_jwt = AccessToken.to_jwt

    def counted(token: AccessToken) -> str:
        signatures.append(to_jwt(token))
        return signatures[-1]

    monkeypatch.setattr(AccessToken, "to_jwt", counted)
    settings = LiveKitSettings(
        api_key=livekit_standin.api_key,
        api_secret=Secret(livekit_standin.api_secret),
        api_url=livekit_standin.url,
        timeout_seconds=2.0,
    )
    livekit_standin.join("r1", "ada")
    livekit_standin.join("r2", "bob")
    async with aiohttp.ClientSession() as session:
        adapter = LiveKitAdapter(settings, session)
        await adapter.list_participants("r1")
        await adapter.list_participants("r1")
        await adapter.remove_participant("r1", "ada")
        await adapter.list_participants("r2")
        await adapter.get_room("r1")
    calls = livekit_standin.calls_for("ListParticipants")
    tokens = [call.headers["Authorization"] for call in calls]
    assert len(signatures) == 3  # r1, r2, the room list: not one per call
    assert tokens[0] == tokens[1] != tokens[2]
    assert all(call.status == 200 for call in calls)
    removed = livekit_standin.calls_for("RemoveParticipant")[0]
    assert removed.headers["Authorization"] == tokens[0] and removed.status == 200
    for call, room in ((calls[0], "r1"), (calls[2], "r2")):
        assert call.claims is not None and call.claims.video is not None
        assert call.claims.video.room_admin and call.claims.video.room == room
    listed = livekit_standin.calls_for("ListRooms")[0]
    assert listed.headers["Authorization"] not in tokens


def test_signed_again_after_a_minute_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    signed: list[object] = []

    def sign(grants: object, sip: object = None) -> dict[str, str]:
        signed.append(grants)
        return {"authorization": f"Bearer {len(signed)}"}

    headers = SignedHeaders(sign, lambda: now[0])
    first = headers("room-a")
    first["authorization"] = "changed by a caller"  # each call gets its own copy
    assert headers("room-a") == {"authorization": "Bearer 1"}
    now[0] += AUTH_HEADER_REUSE_SECONDS
    assert headers("room-a") == {"authorization": "Bearer 2"}
    assert headers("room-a", "sip") == {"authorization": "Bearer 3"}
    monkeypatch.setattr(livekit_module, "AUTH_HEADERS_KEPT", 3)
    headers("room-b")
    headers("room-c")  # a fourth set of grants: the remembered ones are dropped
    assert headers("room-a") == {"authorization": "Bearer 6"}
