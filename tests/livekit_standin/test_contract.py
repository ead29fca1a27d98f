"""Contract: every livekit-api call the project uses works against the stand-in,
with the path, content type and grants the real client sends."""

from __future__ import annotations

import pytest
from livekit import api

from tests.livekit_standin import LiveKitStandin, WebhookSink
from tests.livekit_standin.helpers import claims_video
from tests.livekit_standin.twirp import SERVICES

S3 = api.S3Upload(access_key="AKIA-TEST", secret="s3-secret", region="eu-west-1", bucket="rec")


def _admin_ok(fake: LiveKitStandin, method: str, room: str) -> None:
    for record in fake.calls_for(method):
        video = claims_video(record)
        assert video.get("roomAdmin") is True and video.get("room") == room, method


async def test_every_used_method(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI, sink: WebhookSink
) -> None:
    fake = livekit_standin
    room = await lk.room.create_room(api.CreateRoomRequest(name="contract", metadata="m0"))
    assert room.sid.startswith("RM_") and room.empty_timeout == 300
    listed = await lk.room.list_rooms(api.ListRoomsRequest(names=["contract"]))
    assert [r.name for r in listed.rooms] == ["contract"]

    fake.join("contract", "alice", name="Alice")
    fake.join("contract", "bob")
    mic = fake.publish("contract", "alice", type=api.TrackType.AUDIO)
    parts = await lk.room.list_participants(api.ListParticipantsRequest(room="contract"))
    assert [p.identity for p in parts.participants] == ["alice", "bob"]
    alice = await lk.room.get_participant(
        api.RoomParticipantIdentity(room="contract", identity="alice")
    )
    assert alice.name == "Alice" and alice.tracks[0].sid == mic.sid

    updated = await lk.room.update_participant(
        api.UpdateParticipantRequest(
            room="contract",
            identity="bob",
            name="Bob",
            metadata='{"role":"owner"}',
            attributes={"hand": "up"},
            permission=api.ParticipantPermission(can_publish=False, can_subscribe=True),
        )
    )
    assert (updated.name, updated.attributes["hand"]) == ("Bob", "up")
    assert updated.permission.can_publish is False

    muted = await lk.room.mute_published_track(
        api.MuteRoomTrackRequest(room="contract", identity="alice", track_sid=mic.sid, muted=True)
    )
    assert muted.track.muted is True
    room = await lk.room.update_room_metadata(
        api.UpdateRoomMetadataRequest(room="contract", metadata="m1")
    )
    assert room.metadata == "m1" and room.num_participants == 2

    await lk.room.send_data(
        api.SendDataRequest(
            room="contract",
            data=b'{"type":"kick"}',
            kind=api.DataPacket.Kind.RELIABLE,
            destination_identities=["bob"],
            topic="control",
        )
    )
    (packet,) = fake.data_packets
    assert (packet.room, packet.data, packet.kind) == ("contract", b'{"type":"kick"}', 0)
    assert packet.destination_identities == ("bob",) and packet.topic == "control"
    assert len(packet.nonce) == 16

    video = await lk.egress.start_room_composite_egress(
        api.RoomCompositeEgressRequest(
            room_name="contract",
            layout="speaker-light",
            file_outputs=[
                api.EncodedFileOutput(
                    file_type=api.EncodedFileType.MP4, filepath="meet/{room_name}.mp4", s3=S3
                )
            ],
        )
    )
    assert video.status == api.EgressStatus.EGRESS_STARTING
    assert video.room_composite.file_outputs[0].s3.secret == "{secret}"
    assert video.file_results[0].filename == "meet/contract.mp4"
    audio = await lk.egress.start_room_composite_egress(
        api.RoomCompositeEgressRequest(
            room_name="contract",
            audio_only=True,
            file_outputs=[
                api.EncodedFileOutput(
                    file_type=api.EncodedFileType.OGG, filepath="meet/audio", s3=S3
                )
            ],
        )
    )
    assert audio.file_results[0].filename == "meet/audio.ogg"
    active = await lk.egress.list_egress(api.ListEgressRequest(room_name="contract", active=True))
    assert {i.egress_id for i in active.items} == {video.egress_id, audio.egress_id}
    fake.advance_egress(video.egress_id, api.EgressStatus.EGRESS_ACTIVE)
    stopped = await lk.egress.stop_egress(api.StopEgressRequest(egress_id=video.egress_id))
    assert stopped.status == api.EgressStatus.EGRESS_ENDING
    aborted = await lk.egress.stop_egress(api.StopEgressRequest(egress_id=audio.egress_id))
    assert aborted.status == api.EgressStatus.EGRESS_ABORTED

    dispatch = await lk.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="transcriber", room="contract", metadata="x")
    )
    assert dispatch.id.startswith("AD_")
    assert [d.id for d in await lk.agent_dispatch.list_dispatch("contract")] == [dispatch.id]
    deleted = await lk.agent_dispatch.delete_dispatch(dispatch.id, "contract")
    assert deleted.state.deleted_at > 0
    assert await lk.agent_dispatch.list_dispatch("contract") == []

    await lk.room.remove_participant(api.RoomParticipantIdentity(room="contract", identity="bob"))
    await lk.room.delete_room(api.DeleteRoomRequest(room="contract"))
    assert fake.room("contract") is None

    # What the client sent: the paths, protobuf, a fresh Bearer JWT, the documented grants.
    assert {c.key for c in fake.calls} == {
        "RoomService/CreateRoom",
        "RoomService/ListRooms",
        "RoomService/ListParticipants",
        "RoomService/GetParticipant",
        "RoomService/UpdateParticipant",
        "RoomService/MutePublishedTrack",
        "RoomService/UpdateRoomMetadata",
        "RoomService/SendData",
        "RoomService/RemoveParticipant",
        "RoomService/DeleteRoom",
        "Egress/StartRoomCompositeEgress",
        "Egress/ListEgress",
        "Egress/StopEgress",
        "AgentDispatchService/CreateDispatch",
        "AgentDispatchService/ListDispatch",
        "AgentDispatchService/DeleteDispatch",
    }
    assert all(c.content_type == "application/protobuf" for c in fake.calls)
    assert all(c.headers["Authorization"].startswith("Bearer ") for c in fake.calls)
    assert all(c.status == 200 for c in fake.calls)
    for method, flag in [
        ("CreateRoom", "roomCreate"),
        ("DeleteRoom", "roomCreate"),
        ("ListRooms", "roomList"),
        ("StartRoomCompositeEgress", "roomRecord"),
        ("StopEgress", "roomRecord"),
        ("ListEgress", "roomRecord"),
    ]:
        assert fake.calls_for(method), method
        assert all(claims_video(c).get(flag) is True for c in fake.calls_for(method))
    for method in [
        "ListParticipants",
        "GetParticipant",
        "UpdateParticipant",
        "MutePublishedTrack",
        "UpdateRoomMetadata",
        "SendData",
        "RemoveParticipant",
        "CreateDispatch",
        "ListDispatch",
        "DeleteDispatch",
    ]:
        assert fake.calls_for(method), method
        _admin_ok(fake, method, "contract")

    await fake.webhooks.drain()
    assert sink.names()[:3] == ["room_started", "participant_joined", "participant_joined"]
    assert sink.names()[-1] == "room_finished"


async def test_other_services_answer_unimplemented(lk: api.LiveKitAPI) -> None:
    with pytest.raises(api.TwirpError) as err:
        await lk.ingress.list_ingress(api.ListIngressRequest())
    assert (err.value.code, err.value.status) == ("unimplemented", 501)
    with pytest.raises(api.TwirpError) as err:
        await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    assert (err.value.code, err.value.status) == ("unimplemented", 501)


def test_service_table_comes_from_descriptors(livekit_standin: LiveKitStandin) -> None:
    assert {"livekit.RoomService", "livekit.Egress", "livekit.AgentDispatchService"} <= set(
        SERVICES
    )
    assert {"livekit.Ingress", "livekit.SIP"} <= set(SERVICES)
    spec = SERVICES["livekit.Egress"]["StartRoomCompositeEgress"]
    assert spec.input_type is api.RoomCompositeEgressRequest
    assert spec.output_type is api.EgressInfo
    for key in livekit_standin.handlers.implemented:
        service, method = key.split("/")
        assert method in SERVICES[f"livekit.{service}"], key


def test_fixture_defaults(livekit_standin: LiveKitStandin) -> None:
    assert livekit_standin.api_key == "devkey-meet-coordinator"
    assert len(livekit_standin.api_secret) >= 40
    assert livekit_standin.url == f"http://127.0.0.1:{livekit_standin.port}"
    assert livekit_standin.port > 0 and livekit_standin.webhook_url is None
