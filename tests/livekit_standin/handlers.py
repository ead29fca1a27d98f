"""Twirp method handlers: grant checks (in the Go server's order) then the semantics.

Each handler takes the verified claims (``None`` without a token) and the decoded
request, and returns the response message or raises :class:`~.twirp.TwirpError`.
Methods of the served services that have no handler answer ``unimplemented``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message
from livekit.api.access_token import Claims
from livekit.protocol import agent_dispatch as ad
from livekit.protocol import egress as eg
from livekit.protocol import room as room_pb
from livekit.protocol import sip as sip_pb
from livekit.protocol.models import DisconnectReason

from .auth import require_admin, require_flag, require_sip_admin
from .egress import EgressEngine
from .rooms import RoomManager
from .sip import SIPDispatchRules
from .twirp import MethodSpec, TwirpError

Handler = Callable[[Claims | None, Any], Message]


def unimplemented(spec: MethodSpec) -> TwirpError:
    """The answer for a method the stand-in does not emulate."""
    return TwirpError(
        "unimplemented", f"{spec.service}.{spec.name} is not implemented by the LiveKit stand-in"
    )


class Handlers:
    """The dispatch table; :meth:`get` returns ``None`` for unimplemented methods."""

    def __init__(
        self, rooms: RoomManager, egress: EgressEngine, sip: SIPDispatchRules | None = None
    ) -> None:
        self.rooms = rooms
        self.egress = egress
        self.sip = sip if sip is not None else SIPDispatchRules()
        self._table: dict[str, Handler] = {
            "RoomService/CreateRoom": self.create_room,
            "RoomService/ListRooms": self.list_rooms,
            "RoomService/DeleteRoom": self.delete_room,
            "RoomService/ListParticipants": self.list_participants,
            "RoomService/GetParticipant": self.get_participant,
            "RoomService/RemoveParticipant": self.remove_participant,
            "RoomService/MutePublishedTrack": self.mute_published_track,
            "RoomService/UpdateParticipant": self.update_participant,
            "RoomService/UpdateSubscriptions": self.update_subscriptions,
            "RoomService/SendData": self.send_data,
            "RoomService/UpdateRoomMetadata": self.update_room_metadata,
            "Egress/StartRoomCompositeEgress": self.start_room_composite,
            "Egress/StartTrackCompositeEgress": self.start_track_composite,
            "Egress/StopEgress": self.stop_egress,
            "Egress/ListEgress": self.list_egress,
            "Egress/UpdateLayout": self.update_layout,
            "AgentDispatchService/CreateDispatch": self.create_dispatch,
            "AgentDispatchService/DeleteDispatch": self.delete_dispatch,
            "AgentDispatchService/ListDispatch": self.list_dispatch,
            "SIP/CreateSIPDispatchRule": self.create_sip_dispatch_rule,
            "SIP/ListSIPDispatchRule": self.list_sip_dispatch_rule,
            "SIP/DeleteSIPDispatchRule": self.delete_sip_dispatch_rule,
        }

    def get(self, spec: MethodSpec) -> Handler | None:
        """The handler for ``spec`` or ``None``."""
        return self._table.get(spec.key)

    @property
    def implemented(self) -> list[str]:
        """The ``"Service/Method"`` keys that have a handler."""
        return sorted(self._table)

    # ------------------------------------------------------------ RoomService
    def create_room(self, claims: Claims | None, req: room_pb.CreateRoomRequest) -> Message:
        require_flag(claims, "room_create")
        return self.rooms.create_room(req)

    def list_rooms(self, claims: Claims | None, req: room_pb.ListRoomsRequest) -> Message:
        require_flag(claims, "room_list")
        return room_pb.ListRoomsResponse(rooms=self.rooms.list_rooms(req.names))

    def delete_room(self, claims: Claims | None, req: room_pb.DeleteRoomRequest) -> Message:
        require_flag(claims, "room_create")
        self.rooms.close_room(req.room, reason=DisconnectReason.ROOM_DELETED)
        return room_pb.DeleteRoomResponse()

    def list_participants(
        self, claims: Claims | None, req: room_pb.ListParticipantsRequest
    ) -> Message:
        require_admin(claims, req.room)
        return room_pb.ListParticipantsResponse(participants=self.rooms.participants(req.room))

    def get_participant(
        self, claims: Claims | None, req: room_pb.RoomParticipantIdentity
    ) -> Message:
        require_admin(claims, req.room)
        return self.rooms.get_participant(req.room, req.identity)

    def remove_participant(
        self, claims: Claims | None, req: room_pb.RoomParticipantIdentity
    ) -> Message:
        require_admin(claims, req.room)
        self.rooms.remove_participant(req.room, req.identity)
        return room_pb.RemoveParticipantResponse()

    def mute_published_track(
        self, claims: Claims | None, req: room_pb.MuteRoomTrackRequest
    ) -> Message:
        require_admin(claims, req.room)
        track = self.rooms.mute_track(req.room, req.identity, req.track_sid, req.muted)
        return room_pb.MuteRoomTrackResponse(track=track)

    def update_participant(
        self, claims: Claims | None, req: room_pb.UpdateParticipantRequest
    ) -> Message:
        # Go checks the size limits before the grant.
        self.rooms.check_metadata(req.metadata, with_limit=True)
        require_admin(claims, req.room)
        return self.rooms.update_participant(req)

    def update_subscriptions(
        self, claims: Claims | None, req: room_pb.UpdateSubscriptionsRequest
    ) -> Message:
        require_admin(claims, req.room)
        self.rooms.get_participant(req.room, req.identity)
        return room_pb.UpdateSubscriptionsResponse()

    def send_data(self, claims: Claims | None, req: room_pb.SendDataRequest) -> Message:
        require_admin(claims, req.room)
        self.rooms.send_data(req)
        return room_pb.SendDataResponse()

    def update_room_metadata(
        self, claims: Claims | None, req: room_pb.UpdateRoomMetadataRequest
    ) -> Message:
        self.rooms.check_metadata(req.metadata, with_limit=True)
        require_admin(claims, req.room)
        return self.rooms.update_room_metadata(req.room, req.metadata)

    # ----------------------------------------------------------------- Egress
    def start_room_composite(
        self, claims: Claims | None, req: eg.RoomCompositeEgressRequest
    ) -> Message:
        require_flag(claims, "room_record")
        return self.egress.start_room_composite(req)

    def start_track_composite(
        self, claims: Claims | None, req: eg.TrackCompositeEgressRequest
    ) -> Message:
        require_flag(claims, "room_record")
        return self.egress.start_track_composite(req)

    def stop_egress(self, claims: Claims | None, req: eg.StopEgressRequest) -> Message:
        require_flag(claims, "room_record")
        return self.egress.stop(req.egress_id)

    def list_egress(self, claims: Claims | None, req: eg.ListEgressRequest) -> Message:
        require_flag(claims, "room_record")
        items = self.egress.list_egress(req.room_name, req.egress_id, req.active)
        return eg.ListEgressResponse(items=items)

    def update_layout(self, claims: Claims | None, req: eg.UpdateLayoutRequest) -> Message:
        require_flag(claims, "room_record")
        return self.egress.update_layout(req.egress_id, req.layout)

    # --------------------------------------------------- AgentDispatchService
    def create_dispatch(self, claims: Claims | None, req: ad.CreateAgentDispatchRequest) -> Message:
        require_admin(claims, req.room)
        return self.rooms.create_dispatch(req)

    def delete_dispatch(self, claims: Claims | None, req: ad.DeleteAgentDispatchRequest) -> Message:
        require_admin(claims, req.room)
        return self.rooms.delete_dispatch(req.room, req.dispatch_id)

    def list_dispatch(self, claims: Claims | None, req: ad.ListAgentDispatchRequest) -> Message:
        require_admin(claims, req.room)
        dispatches = self.rooms.list_dispatch(req.room, req.dispatch_id)
        return ad.ListAgentDispatchResponse(agent_dispatches=dispatches)

    # -------------------------------------------------------------------- SIP
    def create_sip_dispatch_rule(
        self, claims: Claims | None, req: sip_pb.CreateSIPDispatchRuleRequest
    ) -> Message:
        require_sip_admin(claims)
        return self.sip.create(req)

    def list_sip_dispatch_rule(
        self, claims: Claims | None, req: sip_pb.ListSIPDispatchRuleRequest
    ) -> Message:
        require_sip_admin(claims)
        return sip_pb.ListSIPDispatchRuleResponse(items=self.sip.list(req))

    def delete_sip_dispatch_rule(
        self, claims: Claims | None, req: sip_pb.DeleteSIPDispatchRuleRequest
    ) -> Message:
        require_sip_admin(claims)
        return self.sip.delete(req)
