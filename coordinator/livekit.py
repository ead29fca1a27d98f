"""The LiveKit adapter: the only module that imports ``livekit``.

Every call runs under an explicit ``asyncio.timeout`` (livekit-api 1.2.2 never applies its own,
livekit.md Q1) and errors are classified by HTTP status, not by Twirp code (Q3/Q4):

- 404 → :class:`LiveKitNotFound` (a subclass of ``NotFound``);
- any other answered error → :class:`LiveKitError` (``UpstreamError``, 502);
- refused connections, resets and timeouts → :class:`LiveKitUnavailable` (``Unavailable``, 503).

One shared ``aiohttp.ClientSession`` is used for every call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from google.protobuf import json_format
from livekit import api
from livekit.protocol import agent_dispatch as agent_proto
from livekit.protocol import egress as egress_proto
from livekit.protocol import models
from livekit.protocol import sip as sip_proto

from coordinator.deadlines import time_left
from coordinator.errors import NotFound, Unavailable, UpstreamError
from coordinator.media import Egress, FileResult, Participant, RoomInfo, Track, WebhookEvent
from coordinator.settings import EncodingSettings, LiveKitSettings, S3Settings
from coordinator.telemetry import Metrics
from coordinator.webhook_reader import InvalidWebhook, verify_and_read

log = logging.getLogger(__name__)
call_log = logging.getLogger("meet.livekit")
T = TypeVar("T")
__all__ = [
    "InvalidWebhook",
    "LiveKitAdapter",
    "LiveKitError",
    "LiveKitNotFound",
    "LiveKitUnavailable",
    "SIPDispatchRule",
]


class LiveKitNotFound(NotFound):
    default_message = "Not found in LiveKit."


class LiveKitError(UpstreamError):
    default_message = "LiveKit answered with an error."

    def __init__(self, message: str | None = None, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.livekit_status = status
        self.livekit_code = code


class LiveKitUnavailable(Unavailable):
    default_message = "LiveKit is unavailable."


def _track(info: models.TrackInfo) -> Track:
    return Track(
        sid=info.sid,
        kind=models.TrackType.Name(info.type),
        source=models.TrackSource.Name(info.source),
        name=info.name,
        muted=info.muted,
    )


def _participant(info: models.ParticipantInfo) -> Participant:
    return Participant(
        identity=info.identity,
        sid=info.sid,
        name=info.name,
        state=models.ParticipantInfo.State.Name(info.state),
        joined_at=int(info.joined_at),
        tracks=tuple(_track(t) for t in info.tracks),
        attributes=dict(info.attributes),
        metadata=info.metadata,
        joined_at_ms=int(info.joined_at_ms),
    )


def _egress(info: egress_proto.EgressInfo) -> Egress:
    files = tuple(
        FileResult(
            filename=f.filename,
            location=f.location,
            size=int(f.size),
            duration_ns=int(f.duration),
            started_at_ns=int(f.started_at),
            ended_at_ns=int(f.ended_at),
        )
        for f in info.file_results
    )
    return Egress(
        egress_id=info.egress_id,
        room_name=info.room_name,
        status=egress_proto.EgressStatus.Name(info.status),
        error=info.error,
        started_at_ns=int(info.started_at),
        ended_at_ns=int(info.ended_at),
        files=files,
    )


def webhook_event(event: Any) -> WebhookEvent:
    """A protobuf ``WebhookEvent`` as a plain value (the reference mapping for
    ``coordinator.webhook_reader``, which reads the JSON body directly on the hot path)."""
    room_name = event.room.name or event.egress_info.room_name
    return WebhookEvent(
        id=event.id,
        event=event.event,
        created_at=int(event.created_at),
        room_name=room_name,
        room_sid=event.room.sid,
        participant=_participant(event.participant) if event.HasField("participant") else None,
        track=_track(event.track) if event.HasField("track") else None,
        egress=_egress(event.egress_info) if event.HasField("egress_info") else None,
    )


@dataclass(frozen=True, slots=True)
class SIPDispatchRule:
    """A SIP dispatch rule as LiveKit lists it (direct rules carry a room and a PIN)."""

    rule_id: str
    name: str
    room_name: str
    pin: str


def _sip_rule(info: sip_proto.SIPDispatchRuleInfo) -> SIPDispatchRule:
    direct = info.rule.dispatch_rule_direct
    return SIPDispatchRule(info.sip_dispatch_rule_id, info.name, direct.room_name, direct.pin)


AUTH_HEADER_REUSE_SECONDS = 60.0  # a signed API token is reused this long (it is valid 6 h)
AUTH_HEADERS_KEPT = 256  # distinct grants (one per room for room calls) remembered at most


class SignedHeaders:
    """A service's ``Authorization`` headers, signed once per grants and reused for a minute.

    livekit-api signs a new token (``AccessToken.to_jwt``) for every call: ~0.3-0.5 ms of CPU,
    more than the rest of the call's client side. The token it signs is valid for 6 h; one
    signed at most ``AUTH_HEADER_REUSE_SECONDS`` ago is as good, for the same grants."""

    def __init__(self, sign: Callable[..., dict[str, str]], clock: Callable[[], float]) -> None:
        self._sign = sign
        self._clock = clock
        self._signed: dict[str, tuple[float, dict[str, str]]] = {}

    def __call__(self, grants: Any, sip: Any = None) -> dict[str, str]:
        key = f"{grants!r}|{sip!r}"  # the grants are dataclasses: their repr names every field
        now = self._clock()
        known = self._signed.get(key)
        if known is None or now - known[0] >= AUTH_HEADER_REUSE_SECONDS:
            if len(self._signed) >= AUTH_HEADERS_KEPT:
                self._signed.clear()
            known = self._signed[key] = (now, self._sign(grants, sip))
        return dict(known[1])


class LiveKitAdapter:
    """Room service, egress and agent calls; webhook verification."""

    def __init__(
        self,
        settings: LiveKitSettings,
        session: aiohttp.ClientSession,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._api = api.LiveKitAPI(
            settings.api_url, settings.api_key, settings.api_secret.get(), session=session
        )
        for service in (self._api.room, self._api.egress, self._api.sip, self._api.agent_dispatch):
            service._auth_header = SignedHeaders(service._auth_header, time.monotonic)  # type: ignore[method-assign]
        self.timeout = settings.timeout_seconds
        # Told of every call: method, seconds taken, error class name or None (operators' view).
        self.observe: Callable[[str, float, str | None], None] | None = None

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` under the deadline, timed and counted (``meet_livekit_call_*``), logged
        as one line with the request id (also sent as ``X-Request-ID`` by the HTTP session)."""
        started = time.perf_counter()
        kind: str | None = "error"
        try:
            result = await self._classified_call(what, call)
            kind = None
            return result
        except LiveKitNotFound:
            kind = "not_found"
            raise
        except LiveKitUnavailable as exc:
            kind = "timeout" if isinstance(exc.__cause__, TimeoutError) else "unreachable"
            if isinstance(exc.__cause__, api.ServerError):
                kind = "error"  # LiveKit (or its proxy) answered 502/503/504
            raise
        except asyncio.CancelledError:
            kind = "cancelled"  # not LiveKit's failure: timed, not counted as an error
            raise
        finally:
            elapsed = time.perf_counter() - started
            if self._metrics is not None:
                counted = None if kind == "cancelled" else kind
                self._metrics.observe_livekit(what, elapsed, counted)
            if self.observe is not None:
                failure = sys.exc_info()[1]  # the exception on its way out, if any
                self.observe(
                    what,
                    elapsed,
                    type(failure).__name__ if isinstance(failure, Exception) else None,
                )
            call_log.info(
                "livekit call",
                extra={
                    "fields": {
                        "method": what,
                        "duration_ms": round(elapsed * 1000, 2),
                        "outcome": kind or "ok",
                    }
                },
            )

    async def _classified_call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        timeout = time_left(self.timeout)  # the command's deadline counts its time queued
        try:
            async with asyncio.timeout(timeout):
                return await call()
        except api.ServerError as exc:
            if exc.status == 404:
                raise LiveKitNotFound(f"{what}: {exc.message or 'not found'}") from exc
            if exc.status in (502, 503, 504):
                raise LiveKitUnavailable(f"{what}: LiveKit answered {exc.status}") from exc
            raise LiveKitError(
                f"{what}: LiveKit answered {exc.status} {exc.code}",
                status=exc.status,
                code=str(exc.code),
            ) from exc
        except TimeoutError as exc:
            raise LiveKitUnavailable(f"{what}: no answer within {timeout:.3g} s") from exc
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            raise LiveKitUnavailable(f"{what}: {type(exc).__name__}") from exc

    # -- webhooks ------------------------------------------------------------------------

    def verify_webhook(self, body: str | bytes, authorization: str) -> WebhookEvent:
        """Verify the raw body against the raw Authorization header; raise InvalidWebhook."""
        return verify_and_read(
            body, authorization, self._settings.api_key, self._settings.api_secret.get()
        )

    # -- rooms ---------------------------------------------------------------------------

    async def get_room(self, room: str) -> RoomInfo | None:
        response = await self._call(
            "ListRooms", lambda: self._api.room.list_rooms(api.ListRoomsRequest(names=[room]))
        )
        for info in response.rooms:
            if info.name == room:
                return RoomInfo(info.name, info.sid, info.metadata, info.num_participants)
        return None

    async def merge_room_metadata(
        self, room: str, changes: dict[str, Any], *, remove: tuple[str, ...] = ()
    ) -> bool:
        """Merge ``changes`` into the room's JSON metadata; False when the room is absent.

        A merge that changes nothing (the same status again, keys already gone) writes
        nothing."""
        info = await self.get_room(room)
        if info is None:
            return False
        try:
            current = json.loads(info.metadata) if info.metadata else {}
        except ValueError:
            current = None
        if not isinstance(current, dict):
            current = None  # not an object: replaced by one
        merged = dict(current or {})
        merged.update(changes)
        for key in remove:
            merged.pop(key, None)
        if merged == current:
            return True
        request = api.UpdateRoomMetadataRequest(room=room, metadata=json.dumps(merged))
        try:
            await self._call(
                "UpdateRoomMetadata", lambda: self._api.room.update_room_metadata(request)
            )
        except LiveKitNotFound:
            return False
        return True

    async def send_data(self, room: str, payload: dict[str, Any]) -> None:
        request = api.SendDataRequest(
            room=room,
            data=json.dumps(payload).encode(),
            kind=models.DataPacket.Kind.RELIABLE,
        )
        await self._call("SendData", lambda: self._api.room.send_data(request))

    async def list_participants(self, room: str) -> list[Participant]:
        response = await self._call(
            "ListParticipants",
            lambda: self._api.room.list_participants(api.ListParticipantsRequest(room=room)),
        )
        return [_participant(p) for p in response.participants]

    async def get_participant(self, room: str, identity: str) -> Participant | None:
        """The participant, or None when LiveKit does not know it (or it disconnected)."""
        request = api.RoomParticipantIdentity(room=room, identity=identity)
        try:
            info = await self._call(
                "GetParticipant", lambda: self._api.room.get_participant(request)
            )
        except LiveKitNotFound:
            return None
        participant = _participant(info)
        return participant if participant.present else None

    async def remove_participant(self, room: str, identity: str) -> None:
        request = api.RoomParticipantIdentity(room=room, identity=identity)
        await self._call("RemoveParticipant", lambda: self._api.room.remove_participant(request))

    async def mute_track(self, room: str, identity: str, track_sid: str) -> None:
        request = api.MuteRoomTrackRequest(
            room=room, identity=identity, track_sid=track_sid, muted=True
        )
        await self._call("MutePublishedTrack", lambda: self._api.room.mute_published_track(request))

    async def update_participant(
        self,
        room: str,
        identity: str,
        *,
        metadata: str | None = None,
        attributes: dict[str, str] | None = None,
        name: str | None = None,
        permission: dict[str, Any] | None = None,
    ) -> Participant:
        request = api.UpdateParticipantRequest(room=room, identity=identity)
        if metadata is not None:
            request.metadata = metadata
        if attributes:
            request.attributes.update(attributes)
        if name is not None:
            request.name = name
        if permission is not None:
            request.permission.CopyFrom(_permission(permission))
        info = await self._call(
            "UpdateParticipant", lambda: self._api.room.update_participant(request)
        )
        return _participant(info)

    # -- egress --------------------------------------------------------------------------

    async def list_egress(
        self, *, room: str | None = None, egress_id: str | None = None, active: bool = False
    ) -> list[Egress]:
        request = api.ListEgressRequest(
            room_name=room or "", egress_id=egress_id or "", active=active
        )
        try:
            response = await self._call("ListEgress", lambda: self._api.egress.list_egress(request))
        except LiveKitNotFound:
            return []
        return [_egress(e) for e in response.items]

    async def stop_egress(self, egress_id: str) -> Egress:
        request = api.StopEgressRequest(egress_id=egress_id)
        return _egress(
            await self._call("StopEgress", lambda: self._api.egress.stop_egress(request))
        )

    async def start_recording_egress(
        self,
        room: str,
        *,
        filepath: str,
        audio_only: bool,
        s3: S3Settings,
        encoding: EncodingSettings | None = None,
    ) -> Egress:
        """The recording egress of §3.3: room composite to one S3 file (MP4 or audio OGG)."""
        upload = api.S3Upload(
            access_key=s3.access_key,
            secret=s3.secret_key.get(),
            region=s3.region,
            endpoint=s3.endpoint_url,
            bucket=s3.bucket,
            force_path_style=True,
        )
        output = api.EncodedFileOutput(
            file_type=api.EncodedFileType.OGG if audio_only else api.EncodedFileType.MP4,
            filepath=filepath,
            s3=upload,
        )
        request = api.RoomCompositeEgressRequest(room_name=room, file_outputs=[output])
        if audio_only:
            request.audio_only = True
        else:
            request.layout = "speaker-light"
            if encoding is not None and encoding.enabled:
                request.advanced.CopyFrom(
                    api.EncodingOptions(
                        width=encoding.width,
                        height=encoding.height,
                        framerate=encoding.framerate,
                        video_codec=api.VideoCodec.H264_MAIN,
                        video_bitrate=encoding.video_bitrate,
                        audio_codec=api.AudioCodec.AAC,
                        audio_bitrate=encoding.audio_bitrate,
                        audio_frequency=48000,
                        key_frame_interval=encoding.key_frame_interval,
                    )
                )
            else:
                request.preset = api.EncodingOptionsPreset.H264_720P_30
        egress = await self.start_room_composite_egress(request)
        if not egress.egress_id:
            raise LiveKitError("StartRoomCompositeEgress: no egress id in the answer")
        return egress

    async def start_room_composite_egress(self, request: Any) -> Egress:
        info = await self._call(
            "StartRoomCompositeEgress",
            lambda: self._api.egress.start_room_composite_egress(request),
        )
        return _egress(info)

    async def delete_room(self, room: str) -> None:
        """DeleteRoom (connection-test cleanup); :class:`LiveKitNotFound` when it is gone."""
        request = api.DeleteRoomRequest(room=room)
        await self._call("DeleteRoom", lambda: self._api.room.delete_room(request))

    # -- agent dispatch (subtitles, metadata collector) ----------------------------------

    async def create_agent_dispatch(self, room: str, agent_name: str, metadata: str = "") -> str:
        """Dispatch ``agent_name`` to ``room`` (AgentDispatchService.CreateDispatch); its id."""
        request = agent_proto.CreateAgentDispatchRequest(
            agent_name=agent_name, room=room, metadata=metadata
        )
        dispatch = await self._call(
            "CreateDispatch", lambda: self._api.agent_dispatch.create_dispatch(request)
        )
        if not dispatch.id:
            raise LiveKitError("CreateDispatch: no dispatch id in the answer")
        return str(dispatch.id)

    async def delete_agent_dispatch(self, room: str, dispatch_id: str) -> None:
        """DeleteDispatch; :class:`LiveKitNotFound` when the room or the dispatch is gone."""
        await self._call(
            "DeleteDispatch",
            lambda: self._api.agent_dispatch.delete_dispatch(dispatch_id, room),
        )

    # -- SIP dispatch rules (telephony, roomkit) ----------------------------------------

    async def list_sip_dispatch_rules(self) -> list[SIPDispatchRule]:
        """Every SIP dispatch rule (LiveKit cannot filter by name server-side)."""
        request = sip_proto.ListSIPDispatchRuleRequest()
        response = await self._call(
            "ListSIPDispatchRule", lambda: self._api.sip.list_dispatch_rule(request)
        )
        return [_sip_rule(info) for info in response.items]

    async def create_sip_dispatch_rule(self, name: str, *, room_name: str, pin: str) -> str:
        """A "direct" rule routing callers who type ``pin`` to ``room_name``; its id."""
        rule = sip_proto.SIPDispatchRule(
            dispatch_rule_direct=sip_proto.SIPDispatchRuleDirect(room_name=room_name, pin=pin)
        )
        request = sip_proto.CreateSIPDispatchRuleRequest(
            dispatch_rule=sip_proto.SIPDispatchRuleInfo(rule=rule, name=name)
        )
        info = await self._call(
            "CreateSIPDispatchRule", lambda: self._api.sip.create_dispatch_rule(request)
        )
        return str(info.sip_dispatch_rule_id)

    async def delete_sip_dispatch_rule(self, rule_id: str) -> None:
        request = sip_proto.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule_id)
        await self._call(
            "DeleteSIPDispatchRule", lambda: self._api.sip.delete_dispatch_rule(request)
        )


def _permission(values: dict[str, Any]) -> models.ParticipantPermission:
    permission = models.ParticipantPermission()
    sources = values.get("can_publish_sources")
    plain = {k: v for k, v in values.items() if k != "can_publish_sources"}
    json_format.ParseDict(plain, permission)
    if sources is not None:
        permission.can_publish_sources.extend(
            [models.TrackSource.Value(str(s).upper()) for s in sources]  # type: ignore[misc]
        )
    return permission
