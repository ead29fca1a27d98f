"""The LiveKit adapter against the stand-in: every method, the grants it uses, its errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from livekit import api

from coordinator.livekit import (
    InvalidWebhook,
    LiveKitAdapter,
    LiveKitError,
    LiveKitNotFound,
    LiveKitUnavailable,
)
from coordinator.settings import LiveKitSettings, Secret
from tests.livekit_standin import LiveKitStandin, sign_webhook


@pytest.fixture
async def adapter(livekit_standin: LiveKitStandin) -> AsyncIterator[LiveKitAdapter]:
    settings = LiveKitSettings(
        api_key=livekit_standin.api_key,
        api_secret=Secret(livekit_standin.api_secret),
        api_url=livekit_standin.url,
        timeout_seconds=0.5,
    )
    async with aiohttp.ClientSession() as session:
        yield LiveKitAdapter(settings, session)


async def test_every_method_against_the_standin(
    adapter: LiveKitAdapter, livekit_standin: LiveKitStandin
) -> None:
    livekit_standin.join("r1", "ada", name="Ada")
    track = livekit_standin.publish("r1", "ada", type=api.TrackType.AUDIO)
    assert (await adapter.get_room("r1")) is not None
    assert await adapter.get_room("nope") is None
    participants = await adapter.list_participants("r1")
    assert [p.identity for p in participants] == ["ada"]
    assert participants[0].tracks[0].sid == track.sid
    assert participants[0].tracks[0].source == "MICROPHONE" or participants[0].tracks[0].kind
    assert (await adapter.get_participant("r1", "ada")) is not None
    assert await adapter.get_participant("r1", "ghost") is None
    await adapter.mute_track("r1", "ada", track.sid)
    updated = await adapter.update_participant(
        "r1",
        "ada",
        name="A",
        attributes={"x": "1"},
        metadata="{}",
        permission={"can_publish": True},
    )
    assert updated.name == "A" and updated.attributes["x"] == "1"
    assert await adapter.merge_room_metadata("r1", {"a": 1})
    assert await adapter.merge_room_metadata("r1", {"b": 2}, remove=("a",))
    room = livekit_standin.room("r1")
    assert room is not None and json.loads(room.metadata) == {"b": 2}
    assert not await adapter.merge_room_metadata("absent", {"a": 1})
    await adapter.send_data("r1", {"type": "participantWaiting"})
    assert json.loads(livekit_standin.data_packets[-1].data) == {"type": "participantWaiting"}
    request = api.RoomCompositeEgressRequest(
        room_name="r1", audio_only=True, file_outputs=[api.EncodedFileOutput(filepath="x.ogg")]
    )
    egress = await adapter.start_room_composite_egress(request)
    assert egress.status == "EGRESS_STARTING"
    listed = await adapter.list_egress(egress_id=egress.egress_id)
    assert [e.egress_id for e in listed] == [egress.egress_id]
    assert await adapter.list_egress(egress_id="EG_unknown") == []
    livekit_standin.advance_egress(egress.egress_id, api.EgressStatus.EGRESS_ACTIVE)
    stopped = await adapter.stop_egress(egress.egress_id)
    assert stopped.status == "EGRESS_ENDING"
    await adapter.remove_participant("r1", "ada")
    with pytest.raises(LiveKitNotFound):
        await adapter.remove_participant("r1", "ada")
    # The admin calls carry roomAdmin for exactly this room.
    claims = livekit_standin.calls_for("RemoveParticipant")[0].claims
    assert claims is not None and claims.video is not None
    assert claims.video.room_admin and claims.video.room == "r1"


async def test_errors_are_classified_by_status(
    adapter: LiveKitAdapter, livekit_standin: LiveKitStandin
) -> None:
    livekit_standin.join("r1", "ada")
    livekit_standin.fail("ListParticipants", "internal", "boom", status=500)
    with pytest.raises(LiveKitError):
        await adapter.list_participants("r1")
    livekit_standin.http_error("ListParticipants", 503, "overloaded")
    with pytest.raises(LiveKitUnavailable):
        await adapter.list_participants("r1")
    livekit_standin.stall("ListParticipants", 2.0)
    with pytest.raises(LiveKitUnavailable, match="no answer"):
        await adapter.list_participants("r1")
    livekit_standin.drop("ListParticipants")
    with pytest.raises(LiveKitUnavailable):
        await adapter.list_participants("r1")


async def test_wrong_credentials_are_an_upstream_error(livekit_standin: LiveKitStandin) -> None:
    settings = LiveKitSettings(
        api_key=livekit_standin.api_key,
        api_secret=Secret("x" * 48),
        api_url=livekit_standin.url,
    )
    async with aiohttp.ClientSession() as session:
        adapter = LiveKitAdapter(settings, session)
        with pytest.raises(LiveKitError) as caught:
            await adapter.list_participants("r1")
    assert caught.value.livekit_status == 401


async def test_verify_webhook(adapter: LiveKitAdapter, livekit_standin: LiveKitStandin) -> None:
    event = api.WebhookEvent(
        event="participant_joined",
        id="EV_1",
        created_at=123,
        room=api.Room(name="r1", sid="RM_1"),
        participant=api.ParticipantInfo(identity="ada", sid="PA_1", name="Ada"),
    )
    body, headers = sign_webhook(event, livekit_standin.api_key, livekit_standin.api_secret)
    verified = adapter.verify_webhook(body, headers["Authorization"])
    assert (verified.id, verified.event, verified.room_name) == ("EV_1", "participant_joined", "r1")
    assert verified.participant is not None and verified.participant.name == "Ada"
    with pytest.raises(InvalidWebhook):
        adapter.verify_webhook(body + " ", headers["Authorization"])


async def test_a_merge_that_changes_nothing_writes_nothing(
    adapter: LiveKitAdapter, livekit_standin: LiveKitStandin
) -> None:
    """The same recording status twice, or removing keys already gone: one read, no write;
    metadata that is not a JSON object (hostile or corrupt) is still replaced by one."""
    livekit_standin.join("r2", "ada")
    assert await adapter.merge_room_metadata("r2", {"recording_status": "saving"})
    assert await adapter.merge_room_metadata("r2", {"recording_status": "saving"})
    assert await adapter.merge_room_metadata("r2", {}, remove=("recording_mode",))
    assert len(livekit_standin.calls_for("UpdateRoomMetadata")) == 1
    assert len(livekit_standin.calls_for("ListRooms")) == 3
    for corrupt in ("[1, 2]", "not json", "null"):
        livekit_standin.rooms.update_room_metadata("r2", corrupt)
        assert await adapter.merge_room_metadata("r2", {}, remove=("recording_status",))
        room = livekit_standin.room("r2")
        assert room is not None and json.loads(room.metadata) == {}
