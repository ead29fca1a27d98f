"""RoomService and AgentDispatchService semantics, and the webhooks of room events."""

from __future__ import annotations

from collections.abc import Awaitable

import aiohttp
import pytest
from livekit import api

from tests.livekit_standin import LiveKitStandin, WebhookSink
from tests.livekit_standin.helpers import raw_post, serialized, token, twirp_url


async def _error(coro: Awaitable[object]) -> tuple[str, str, int]:
    with pytest.raises(api.TwirpError) as err:
        await coro
    return err.value.code, err.value.message, err.value.status


async def test_create_room_is_get_or_create(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI
) -> None:
    first = await lk.room.create_room(
        api.CreateRoomRequest(name="r", empty_timeout=10, max_participants=5, metadata="m")
    )
    again = await lk.room.create_room(api.CreateRoomRequest(name="r", metadata="other"))
    assert again.sid == first.sid and again.metadata == "m"
    assert (first.empty_timeout, first.departure_timeout, first.max_participants) == (10, 20, 5)
    assert first.creation_time_ms // 1000 == first.creation_time
    assert [e.event for e in livekit_standin.events] == ["room_started"]
    assert await _error(lk.room.create_room(api.CreateRoomRequest(name="x" * 257))) == (
        "invalid_argument",
        "room name length exceeds limits: max length 256",
        400,
    )


async def test_list_rooms_filters_by_name(lk: api.LiveKitAPI) -> None:
    for name in ("a", "b", "c"):
        await lk.room.create_room(api.CreateRoomRequest(name=name))
    everything = await lk.room.list_rooms(api.ListRoomsRequest())
    some = await lk.room.list_rooms(api.ListRoomsRequest(names=["c", "a", "zz"]))
    assert [r.name for r in everything.rooms] == ["a", "b", "c"]
    assert [r.name for r in some.rooms] == ["c", "a"]


async def test_participant_errors(livekit_standin: LiveKitStandin, lk: api.LiveKitAPI) -> None:
    empty = await lk.room.list_participants(api.ListParticipantsRequest(room="nowhere"))
    assert list(empty.participants) == []
    who = api.RoomParticipantIdentity(room="r", identity="ghost")
    livekit_standin.create_room("r")
    assert await _error(lk.room.get_participant(who)) == (
        "not_found",
        "participant does not exist",
        404,
    )
    assert await _error(lk.room.remove_participant(who)) == (
        "not_found",
        "participant not found",
        404,
    )
    update = api.UpdateParticipantRequest(room="r", identity="ghost", metadata="x")
    assert (await _error(lk.room.update_participant(update)))[:2] == (
        "not_found",
        "participant does not exist",
    )


async def test_mute_semantics(session: aiohttp.ClientSession) -> None:
    async with LiveKitStandin() as fake:
        lk = api.LiveKitAPI(fake.url, fake.api_key, fake.api_secret, session=session)
        fake.join("r", "alice")
        track = fake.publish("r", "alice", type=api.TrackType.VIDEO, width=640, height=480)
        unknown = await lk.room.mute_published_track(
            api.MuteRoomTrackRequest(room="r", identity="alice", track_sid="TR_nope", muted=True)
        )
        assert not unknown.HasField("track")
        unmute = api.MuteRoomTrackRequest(
            room="r", identity="alice", track_sid=track.sid, muted=False
        )
        assert await _error(lk.room.mute_published_track(unmute)) == (
            "failed_precondition",
            "remote unmute not enabled",
            412,
        )
    async with LiveKitStandin(enable_remote_unmute=True) as fake:
        lk = api.LiveKitAPI(fake.url, fake.api_key, fake.api_secret, session=session)
        fake.join("r", "alice")
        track = fake.publish("r", "alice", muted=True)
        unmute = api.MuteRoomTrackRequest(
            room="r", identity="alice", track_sid=track.sid, muted=False
        )
        result = await lk.room.mute_published_track(unmute)
        assert result.track.sid == track.sid and result.track.muted is False


async def test_update_participant_merges_attributes(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI
) -> None:
    livekit_standin.join("r", "bob", name="Bob", attributes={"a": "1", "b": "2"})
    info = await lk.room.update_participant(
        api.UpdateParticipantRequest(room="r", identity="bob", attributes={"a": "", "c": "3"})
    )
    assert dict(info.attributes) == {"b": "2", "c": "3"} and info.name == "Bob"
    assert not info.HasField("permission") or info.permission.can_publish


async def test_metadata_limits(session: aiohttp.ClientSession) -> None:
    async with LiveKitStandin(max_metadata_size=8) as fake:
        lk = api.LiveKitAPI(fake.url, fake.api_key, fake.api_secret, session=session)
        assert await _error(
            lk.room.create_room(api.CreateRoomRequest(name="r", metadata="123456789"))
        ) == ("invalid_argument", "metadata size exceeds limits", 400)
        fake.create_room("r")
        update = api.UpdateRoomMetadataRequest(room="r", metadata="123456789")
        assert await _error(lk.room.update_room_metadata(update)) == (
            "invalid_argument",
            "metadata size exceeds limits 8",
            400,
        )
        missing = api.UpdateRoomMetadataRequest(room="nope", metadata="ok")
        assert (await _error(lk.room.update_room_metadata(missing)))[0] == "not_found"


async def test_send_data_checks(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI, session: aiohttp.ClientSession
) -> None:
    assert await _error(lk.room.send_data(api.SendDataRequest(room="nope", data=b"x"))) == (
        "not_found",
        "requested room does not exist",
        404,
    )
    livekit_standin.create_room("r")
    fake = livekit_standin
    grants = api.VideoGrants(room_admin=True, room="r")
    bearer = "Bearer " + token(fake.api_key, fake.api_secret, grants)
    url = twirp_url(fake.url, "RoomService", "SendData")
    body = serialized(api.SendDataRequest(room="r", data=b"x", nonce=b"abc"))
    status, _, raw = await raw_post(session, url, body=body, authorization=bearer)
    assert status == 400
    assert b"nonce should be 16-bytes or not present, got: 3 bytes" in raw
    body = serialized(api.SendDataRequest(room="r", data=b"y", kind=api.DataPacket.Kind.LOSSY))
    status, _, _ = await raw_post(session, url, body=body, authorization=bearer)
    assert status == 200
    (packet,) = fake.data_packets
    assert (packet.data, packet.kind, packet.nonce, packet.topic) == (b"y", 1, b"", None)


async def test_room_webhooks(livekit_standin: LiveKitStandin, sink: WebhookSink) -> None:
    fake = livekit_standin
    alice = fake.join("r", "alice", metadata="meta")
    track = fake.publish("r", "alice", type=api.TrackType.AUDIO, name="mic")
    fake.join("r", "late", active=False)
    fake.leave("r", "late")
    fake.leave("r", "alice")
    fake.join("r", "bob")
    fake.close_room("r")
    await fake.webhooks.drain()
    assert sink.names() == [
        "room_started",
        "participant_joined",
        "track_published",
        "participant_connection_aborted",
        "track_unpublished",
        "participant_left",
        "participant_joined",
        "participant_left",
        "room_finished",
    ]
    events = sink.events
    joined, published = events[1], events[2]
    assert joined.participant.sid == alice.sid and joined.participant.metadata == "meta"
    assert joined.participant.state == api.ParticipantInfo.State.ACTIVE
    assert joined.room.num_participants == 1
    # track events carry partial room / participant shapes
    assert published.room == api.Room(sid=joined.room.sid, name="r")
    assert published.participant == api.ParticipantInfo(sid=alice.sid, identity="alice")
    assert published.track.sid == track.sid and published.track.name == "mic"
    left = events[5]
    assert left.participant.disconnect_reason == api.DisconnectReason.CLIENT_INITIATED
    assert left.participant.state == api.ParticipantInfo.State.DISCONNECTED
    assert events[7].participant.disconnect_reason == api.DisconnectReason.ROOM_CLOSED
    assert events[8].room.num_participants == 0
    assert all(e.id.startswith("EV_") and e.created_at > 0 for e in events)


async def test_delete_and_remove_via_api(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI
) -> None:
    fake = livekit_standin
    fake.join("r", "alice")
    fake.join("r", "bob")
    await lk.room.remove_participant(api.RoomParticipantIdentity(room="r", identity="bob"))
    assert [p.identity for p in fake.participants("r")] == ["alice"]
    await lk.room.delete_room(api.DeleteRoomRequest(room="r"))
    reasons = [e.participant.disconnect_reason for e in fake.webhooks.named("participant_left")]
    assert reasons == [api.DisconnectReason.PARTICIPANT_REMOVED, api.DisconnectReason.ROOM_DELETED]
    assert fake.webhooks.named("room_finished")[0].room.name == "r"


async def test_agent_dispatch(livekit_standin: LiveKitStandin, lk: api.LiveKitAPI) -> None:
    dispatch = await lk.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="agent", room="auto-created")
    )
    assert livekit_standin.room("auto-created") is not None
    assert dispatch.state.created_at > 0 and dispatch.room == "auto-created"
    assert await lk.agent_dispatch.get_dispatch(dispatch.id, "auto-created") == dispatch
    assert await lk.agent_dispatch.get_dispatch("AD_nope", "auto-created") is None
    assert await _error(lk.agent_dispatch.delete_dispatch("AD_nope", "auto-created")) == (
        "not_found",
        "dispatch ID not found",
        404,
    )
    assert (await _error(lk.agent_dispatch.list_dispatch("missing")))[0] == "not_found"
    room = await lk.room.create_room(
        api.CreateRoomRequest(name="with-agents", agents=[api.RoomAgentDispatch(agent_name="a")])
    )
    assert [d.agent_name for d in await lk.agent_dispatch.list_dispatch(room.name)] == ["a"]
