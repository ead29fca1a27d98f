"""Rooms, participants, tracks and agent dispatches, with the webhooks the server emits.

:class:`RoomManager` holds the state and implements both the RoomService /
AgentDispatchService semantics (raising :class:`~.twirp.TwirpError` with the Go
server's messages) and the test-control operations (join, leave, publish, …).
Every returned protobuf message is a copy: mutating it does not change the state.

Webhooks emitted (payload shapes follow livekit-server's telemetry):

* ``room_started`` (full room) when a room is created by CreateRoom, a join or a dispatch;
* ``participant_joined`` (full room and participant) when a participant becomes ACTIVE;
* ``participant_connection_aborted`` when a participant that never became ACTIVE leaves;
* ``participant_left`` (participant with ``disconnect_reason``), preceded by a
  ``track_unpublished`` for each of its tracks;
* ``track_published`` / ``track_unpublished``: room ``{sid, name}``, participant
  ``{sid, identity}`` and the full track;
* ``room_finished`` (full room) after every participant left, on DeleteRoom or close.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from google.protobuf.message import Message
from livekit.protocol import agent_dispatch as ad
from livekit.protocol import models
from livekit.protocol import room as room_pb
from livekit.protocol.webhook import WebhookEvent

from .ids import AGENT_DISPATCH_PREFIX, PARTICIPANT_PREFIX, ROOM_PREFIX, TRACK_PREFIX, new_id
from .records import DataPacketRecord
from .twirp import TwirpError

DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20
MAX_ROOM_NAME_LENGTH = 256
DEFAULT_MAX_METADATA_SIZE = 512 * 1024

ROOM_NOT_FOUND = "requested room does not exist"
PARTICIPANT_NOT_FOUND = "participant does not exist"

_DEFAULT_CODECS = (
    ("audio/opus", ""),
    ("audio/red", ""),
    ("video/VP8", ""),
    ("video/H264", ""),
    ("video/VP9", ""),
    ("video/AV1", ""),
)

State = models.ParticipantInfo.State


class RoomListener(Protocol):
    """Notified of room changes (the egress engine uses this)."""

    def participant_active(self, room_name: str) -> None: ...

    def room_closed(self, room_name: str) -> None: ...


@dataclass
class RoomState:
    """A live room: the ``Room`` message plus its participants and dispatches."""

    room: models.Room
    participants: dict[str, models.ParticipantInfo] = field(default_factory=dict)
    dispatches: dict[str, ad.AgentDispatch] = field(default_factory=dict)


M = TypeVar("M", bound=Message)


def _copy(msg: M) -> M:
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def _default_permission() -> models.ParticipantPermission:
    return models.ParticipantPermission(can_subscribe=True, can_publish=True, can_publish_data=True)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RoomManager:
    """State and semantics of rooms; see the module docstring."""

    def __init__(
        self,
        emit: Callable[[WebhookEvent], object],
        *,
        enable_remote_unmute: bool = False,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
    ) -> None:
        self.rooms: dict[str, RoomState] = {}
        self.data_packets: list[DataPacketRecord] = []
        self.listeners: list[RoomListener] = []
        self.enable_remote_unmute = enable_remote_unmute
        self.max_metadata_size = max_metadata_size
        self._emit = emit

    # ------------------------------------------------------------------ helpers
    def _event(self, name: str, **fields: Message) -> None:
        event = WebhookEvent(event=name)
        for key, value in fields.items():
            getattr(event, key).CopyFrom(value)
        self._emit(event)

    def get(self, name: str) -> RoomState:
        """The state of room ``name`` or ``not_found "requested room does not exist"``."""
        state = self.rooms.get(name)
        if state is None:
            raise TwirpError("not_found", ROOM_NOT_FOUND)
        return state

    def _participant(self, room: str, identity: str) -> tuple[RoomState, models.ParticipantInfo]:
        state = self.get(room)
        participant = state.participants.get(identity)
        if participant is None:
            raise TwirpError("not_found", PARTICIPANT_NOT_FOUND)
        return state, participant

    def _refresh_counts(self, state: RoomState) -> None:
        visible = [p for p in state.participants.values() if not p.permission.hidden]
        state.room.num_participants = len(visible)
        state.room.num_publishers = sum(1 for p in visible if p.is_publisher)

    def set_active_recording(self, room: str, active: bool) -> None:
        """Set ``Room.active_recording`` (used by the egress engine)."""
        state = self.rooms.get(room)
        if state is not None:
            state.room.active_recording = active

    def check_metadata(self, metadata: str, *, with_limit: bool) -> None:
        """Raise ``invalid_argument`` when ``metadata`` is over the limit; ``with_limit``
        selects the ``twirp.InvalidArgumentError`` form used by the update methods."""
        if self.max_metadata_size and len(metadata.encode()) > self.max_metadata_size:
            if with_limit:  # twirp.InvalidArgumentError(argument, validationMsg)
                raise TwirpError(
                    "invalid_argument",
                    f"metadata size exceeds limits {self.max_metadata_size}",
                    meta={"argument": "metadata size exceeds limits"},
                )
            raise TwirpError("invalid_argument", "metadata size exceeds limits")

    # -------------------------------------------------------------------- rooms
    def create_room(self, req: room_pb.CreateRoomRequest) -> models.Room:
        """Get-or-create; ``room_started`` only on creation."""
        if len(req.name) > MAX_ROOM_NAME_LENGTH:
            raise TwirpError(
                "invalid_argument",
                f"room name length exceeds limits: max length {MAX_ROOM_NAME_LENGTH}",
            )
        self.check_metadata(req.metadata, with_limit=False)
        existing = self.rooms.get(req.name)
        if existing is not None:
            return _copy(existing.room)
        state = self._new_room(
            req.name,
            empty_timeout=req.empty_timeout,
            departure_timeout=req.departure_timeout,
            max_participants=req.max_participants,
            metadata=req.metadata,
        )
        for agent in req.agents:
            self._add_dispatch(state, agent.agent_name, agent.metadata)
        return _copy(state.room)

    def ensure_room(self, name: str) -> RoomState:
        """The room ``name``, auto-created (with ``room_started``) if missing."""
        return self.rooms.get(name) or self._new_room(name)

    def _new_room(
        self,
        name: str,
        *,
        empty_timeout: int = 0,
        departure_timeout: int = 0,
        max_participants: int = 0,
        metadata: str = "",
    ) -> RoomState:
        now_ms = _now_ms()
        room = models.Room(
            sid=new_id(ROOM_PREFIX),
            name=name,
            empty_timeout=empty_timeout or DEFAULT_EMPTY_TIMEOUT,
            departure_timeout=departure_timeout or DEFAULT_DEPARTURE_TIMEOUT,
            max_participants=max_participants,
            creation_time=now_ms // 1000,
            creation_time_ms=now_ms,
            metadata=metadata,
            enabled_codecs=[models.Codec(mime=m, fmtp_line=f) for m, f in _DEFAULT_CODECS],
        )
        state = RoomState(room=room)
        self.rooms[name] = state
        self._event("room_started", room=state.room)
        return state

    def list_rooms(self, names: Iterable[str] = ()) -> list[models.Room]:
        """All rooms, or those named in ``names`` that exist."""
        wanted = list(names)
        states = (
            [self.rooms[n] for n in wanted if n in self.rooms] if wanted else self.rooms.values()
        )
        return [_copy(s.room) for s in states]

    def close_room(
        self, name: str, reason: models.DisconnectReason = models.DisconnectReason.ROOM_CLOSED
    ) -> models.Room:
        """Disconnect everyone (``reason``), notify listeners, emit ``room_finished``."""
        state = self.get(name)
        for identity in list(state.participants):
            self.leave(name, identity, reason=reason)
        for listener in self.listeners:
            listener.room_closed(name)
        del self.rooms[name]
        self._event("room_finished", room=state.room)
        return _copy(state.room)

    def update_room_metadata(self, name: str, metadata: str) -> models.Room:
        """UpdateRoomMetadata semantics (size check, then room lookup)."""
        self.check_metadata(metadata, with_limit=True)
        state = self.get(name)
        state.room.metadata = metadata
        return _copy(state.room)

    # ------------------------------------------------------------- participants
    def join(
        self,
        room: str,
        identity: str,
        *,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        kind: models.ParticipantInfo.Kind = models.ParticipantInfo.Kind.STANDARD,
        permission: models.ParticipantPermission | None = None,
        active: bool = True,
    ) -> models.ParticipantInfo:
        """Connect a participant (auto-creating the room); ACTIVE unless ``active=False``."""
        state = self.ensure_room(room)
        if identity in state.participants:  # DUPLICATE_IDENTITY: the old session is closed
            self.leave(room, identity, reason=models.DisconnectReason.DUPLICATE_IDENTITY)
        now_ms = _now_ms()
        participant = models.ParticipantInfo(
            sid=new_id(PARTICIPANT_PREFIX),
            identity=identity,
            name=name,
            metadata=metadata,
            attributes=dict(attributes or {}),
            kind=kind,
            state=State.JOINED,
            joined_at=now_ms // 1000,
            joined_at_ms=now_ms,
            version=1,
            permission=permission if permission is not None else _default_permission(),
        )
        state.participants[identity] = participant
        self._refresh_counts(state)
        if active:
            return self.activate(room, identity)
        return _copy(participant)

    def activate(self, room: str, identity: str) -> models.ParticipantInfo:
        """Move a participant to ACTIVE and emit ``participant_joined``."""
        state, participant = self._participant(room, identity)
        if participant.state != State.ACTIVE:
            participant.state = State.ACTIVE
            participant.version += 1
            self._event("participant_joined", room=state.room, participant=participant)
            for listener in self.listeners:
                listener.participant_active(room)
        return _copy(participant)

    def leave(
        self,
        room: str,
        identity: str,
        *,
        reason: models.DisconnectReason = models.DisconnectReason.CLIENT_INITIATED,
    ) -> models.ParticipantInfo:
        """Disconnect a participant: ``track_unpublished`` per track, then
        ``participant_left`` (or ``participant_connection_aborted`` if never ACTIVE)."""
        state, participant = self._participant(room, identity)
        for track in list(participant.tracks):
            self.unpublish(room, identity, track.sid)
        was_active = participant.state == State.ACTIVE
        del state.participants[identity]
        participant.state = State.DISCONNECTED
        participant.disconnect_reason = reason
        self._refresh_counts(state)
        name = "participant_left" if was_active else "participant_connection_aborted"
        self._event(name, room=state.room, participant=participant)
        return _copy(participant)

    def participants(self, room: str) -> list[models.ParticipantInfo]:
        """ListParticipants: an unknown room gives an empty list."""
        state = self.rooms.get(room)
        return [_copy(p) for p in state.participants.values()] if state else []

    def get_participant(self, room: str, identity: str) -> models.ParticipantInfo:
        """GetParticipant: ``not_found "participant does not exist"``."""
        state = self.rooms.get(room)
        participant = state.participants.get(identity) if state else None
        if participant is None:
            raise TwirpError("not_found", PARTICIPANT_NOT_FOUND)
        return _copy(participant)

    def remove_participant(self, room: str, identity: str) -> None:
        """RemoveParticipant: ``not_found "participant not found"`` (RoomService pre-check)."""
        state = self.rooms.get(room)
        if state is None or identity not in state.participants:
            raise TwirpError("not_found", "participant not found")
        self.leave(room, identity, reason=models.DisconnectReason.PARTICIPANT_REMOVED)

    def update_participant(self, req: room_pb.UpdateParticipantRequest) -> models.ParticipantInfo:
        """UpdateParticipant: non-empty name/metadata replace, attributes merge
        (an empty value deletes the key), permission replaces when present."""
        self.check_metadata(req.metadata, with_limit=True)
        _, participant = self._participant(req.room, req.identity)
        if req.name:
            participant.name = req.name
        if req.metadata:
            participant.metadata = req.metadata
        for key, value in req.attributes.items():
            if value:
                participant.attributes[key] = value
            else:
                participant.attributes.pop(key, None)
        if req.HasField("permission"):
            participant.permission.CopyFrom(req.permission)
        participant.version += 1
        return _copy(participant)

    # ------------------------------------------------------------------- tracks
    def publish(
        self,
        room: str,
        identity: str,
        *,
        type: models.TrackType = models.TrackType.AUDIO,
        source: models.TrackSource | None = None,
        name: str = "",
        muted: bool = False,
        width: int = 0,
        height: int = 0,
        mime_type: str = "",
    ) -> models.TrackInfo:
        """Publish a track and emit ``track_published``."""
        state, participant = self._participant(room, identity)
        if source is None:
            is_audio = type == models.TrackType.AUDIO
            source = models.TrackSource.MICROPHONE if is_audio else models.TrackSource.CAMERA
        if not mime_type:
            mime_type = "audio/opus" if type == models.TrackType.AUDIO else "video/VP8"
        track = models.TrackInfo(
            sid=new_id(TRACK_PREFIX),
            type=type,
            source=source,
            name=name,
            muted=muted,
            width=width,
            height=height,
            mime_type=mime_type,
        )
        participant.tracks.append(track)
        participant.is_publisher = True
        participant.version += 1
        self._refresh_counts(state)
        self._track_event("track_published", state, participant, track)
        return _copy(track)

    def unpublish(self, room: str, identity: str, track_sid: str) -> models.TrackInfo:
        """Unpublish a track and emit ``track_unpublished``."""
        state, participant = self._participant(room, identity)
        for index, track in enumerate(participant.tracks):
            if track.sid == track_sid:
                removed = _copy(track)
                del participant.tracks[index]
                participant.version += 1
                self._refresh_counts(state)
                self._track_event("track_unpublished", state, participant, removed)
                return removed
        raise KeyError(f"participant {identity!r} has no track {track_sid!r}")

    def _track_event(
        self,
        name: str,
        state: RoomState,
        participant: models.ParticipantInfo,
        track: models.TrackInfo,
    ) -> None:
        self._event(
            name,
            room=models.Room(sid=state.room.sid, name=state.room.name),
            participant=models.ParticipantInfo(sid=participant.sid, identity=participant.identity),
            track=track,
        )

    def mute_track(
        self, room: str, identity: str, track_sid: str, muted: bool
    ) -> models.TrackInfo | None:
        """MutePublishedTrack: participant lookup, then the remote-unmute check; an
        unknown ``track_sid`` returns ``None`` (an empty response, no error)."""
        _, participant = self._participant(room, identity)
        if not muted and not self.enable_remote_unmute:
            raise TwirpError("failed_precondition", "remote unmute not enabled")
        for track in participant.tracks:
            if track.sid == track_sid:
                track.muted = muted
                participant.version += 1
                return _copy(track)
        return None

    # --------------------------------------------------------------------- data
    def send_data(self, req: room_pb.SendDataRequest) -> DataPacketRecord:
        """SendData: nonce check, room lookup, then record the packet."""
        if len(req.nonce) not in (0, 16):
            raise TwirpError(
                "invalid_argument",
                f"nonce should be 16-bytes or not present, got: {len(req.nonce)} bytes",
            )
        self.get(req.room)
        record = DataPacketRecord(
            room=req.room,
            data=req.data,
            kind=req.kind,
            destination_identities=tuple(req.destination_identities),
            destination_sids=tuple(req.destination_sids),
            topic=req.topic if req.HasField("topic") else None,
            nonce=req.nonce,
        )
        self.data_packets.append(record)
        return record

    # ---------------------------------------------------------- agent dispatch
    def _add_dispatch(self, state: RoomState, agent_name: str, metadata: str) -> ad.AgentDispatch:
        dispatch = ad.AgentDispatch(
            id=new_id(AGENT_DISPATCH_PREFIX),
            agent_name=agent_name,
            room=state.room.name,
            metadata=metadata,
            state=ad.AgentDispatchState(created_at=time.time_ns()),
        )
        state.dispatches[dispatch.id] = dispatch
        return dispatch

    def create_dispatch(self, req: ad.CreateAgentDispatchRequest) -> ad.AgentDispatch:
        """CreateDispatch: auto-creates the room (room auto-create is on by default)."""
        state = self.ensure_room(req.room)
        dispatch = self._add_dispatch(state, req.agent_name, req.metadata)
        dispatch.attributes.update(req.attributes)
        dispatch.deployment = req.deployment
        return _copy(dispatch)

    def delete_dispatch(self, room: str, dispatch_id: str) -> ad.AgentDispatch:
        """DeleteDispatch: ``not_found "dispatch ID not found"`` for an unknown id."""
        state = self.get(room)
        dispatch = state.dispatches.pop(dispatch_id, None)
        if dispatch is None:
            raise TwirpError("not_found", "dispatch ID not found")
        dispatch.state.deleted_at = time.time_ns()
        return _copy(dispatch)

    def list_dispatch(self, room: str, dispatch_id: str = "") -> list[ad.AgentDispatch]:
        """ListDispatch: unknown room is ``not_found``; an unknown id gives an empty list."""
        state = self.get(room)
        return [
            _copy(d) for d in state.dispatches.values() if not dispatch_id or d.id == dispatch_id
        ]
