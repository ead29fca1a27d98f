"""The LiveKit server stand-in: Twirp over HTTP on 127.0.0.1 plus test controls.

Request pipeline for ``/twirp/...`` (the order of the Go server):

1. auth middleware (plain-text 401 on a bad token);
2. only POST (``bad_route``), known service (else Go mux's plain 404), known
   method (``bad_route``), Content-Type JSON or protobuf (``bad_route``);
3. body ≤ 10 MiB (plain 413), decoded (``malformed``);
4. the call is recorded in :attr:`LiveKitStandin.calls`;
5. an injected fault, if any (see :mod:`.faults`);
6. the handler: grant checks, then semantics; ``unimplemented`` when absent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from aiohttp import web
from livekit.protocol import egress as eg
from livekit.protocol import models
from livekit.protocol.room import CreateRoomRequest
from livekit.protocol.webhook import WebhookEvent

from .auth import DEFAULT_API_KEY, DEFAULT_API_SECRET, AuthFailure, AuthResult, KeyRing
from .control_http import add_control_routes
from .egress import EgressEngine, EgressMode, EgressScript, EgressTiming
from .faults import Fault, FaultTable
from .handlers import Handlers, unimplemented
from .records import CallRecord, DataPacketRecord
from .rooms import DEFAULT_MAX_METADATA_SIZE, RoomManager
from .sip import SIPDispatchRules
from .twirp import (
    JSON,
    PROTOBUF,
    SERVICES,
    MethodSpec,
    TwirpError,
    bad_route,
    decode_request,
    encode_response,
    media_type,
)
from .webhooks import WebhookEmitter

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_API_REQUEST_BODY_SIZE = 10 * 1024 * 1024


def _go_quote(value: str) -> str:
    """Go ``%q`` for the strings that appear in twirp messages."""
    return json.dumps(value)


class LiveKitStandin:
    """An in-process LiveKit server for tests (see the package docstring).

    ``keys`` (API key → secret, every secret ≥ 32 bytes) defaults to
    ``{api_key: api_secret}``; the first pair is :attr:`api_key` / :attr:`api_secret`
    and, unless ``webhook_api_key`` names another, signs webhooks.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        keys: Mapping[str, str] | None = None,
        port: int = 0,
        webhook_url: str | None = None,
        webhook_api_key: str | None = None,
        egress_mode: EgressMode = "manual",
        egress_timing: EgressTiming | None = None,
        enable_remote_unmute: bool = False,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
        output_dir: Path | None = None,
        webhook_max_retries: int = 4,
        webhook_retry_delay: float = 0.02,
        webhook_timeout: float = 2.0,
    ) -> None:
        self._keyring = KeyRing(keys if keys is not None else {api_key: api_secret})
        self._api_key, self._api_secret = next(iter(self._keyring.keys.items()))
        signing_key = webhook_api_key or self._api_key
        signing_secret = self._keyring.secret_for(signing_key)
        if signing_secret is None:
            raise ValueError(f"webhook_api_key {signing_key!r} is not one of the keys")
        self.webhooks = WebhookEmitter(
            api_key=signing_key,
            api_secret=signing_secret,
            secret_for=self._keyring.secret_for,
            url=webhook_url,
            max_retries=webhook_max_retries,
            retry_delay=webhook_retry_delay,
            timeout=webhook_timeout,
        )
        self.rooms = RoomManager(
            self.webhooks.emit,
            enable_remote_unmute=enable_remote_unmute,
            max_metadata_size=max_metadata_size,
        )
        self.egress = EgressEngine(
            self.rooms,
            lambda event, extra: self.webhooks.emit(event, extra=extra),
            mode=egress_mode,
            timing=egress_timing,
            output_dir=output_dir,
        )
        self.sip = SIPDispatchRules()
        self.handlers = Handlers(self.rooms, self.egress, self.sip)
        self.faults = FaultTable()
        self.calls: list[CallRecord] = []
        self._port = port
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    # -------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (valid once started)."""
        if self._runner is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://{HOST}:{self._port}"

    @property
    def port(self) -> int:
        """The bound port (0 before start when ephemeral)."""
        return self._port

    @property
    def api_key(self) -> str:
        """The primary API key."""
        return self._api_key

    @property
    def api_secret(self) -> str:
        """The primary API secret."""
        return self._api_secret

    @property
    def keys(self) -> dict[str, str]:
        """Every accepted API key → secret."""
        return self._keyring.keys

    @property
    def webhook_url(self) -> str | None:
        """Default webhook URL; settable at any time (``None`` = record only)."""
        return self.webhooks.url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self.webhooks.url = url

    async def start(self) -> LiveKitStandin:
        """Bind 127.0.0.1:<port> and open the webhook session. Returns ``self``."""
        if self._runner is not None:
            raise RuntimeError("already started")
        app = web.Application(client_max_size=MAX_API_REQUEST_BODY_SIZE)
        app.router.add_route("*", "/twirp/{tail:.*}", self._handle_twirp)
        add_control_routes(app, self)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, HOST, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._closing.clear()
        await self.webhooks.start()
        return self

    async def stop(self) -> None:
        """Release stalls, cancel egress timers and webhook deliveries, close the port."""
        if self._runner is None:
            return
        self._closing.set()
        await self.egress.close()
        await self.webhooks.close()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> LiveKitStandin:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------- twirp route
    async def _handle_twirp(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        parts = path.split("/")
        service_full = parts[2] if len(parts) > 2 else ""
        methods = SERVICES.get(service_full)
        spec = None
        if methods is not None and len(parts) == 4 and parts[1] == "twirp":
            spec = methods.get(parts[3])
        record: CallRecord | None = None
        if spec is not None:
            record = CallRecord(
                service=spec.service,
                method=spec.name,
                content_type=request.headers.get("Content-Type", ""),
                headers=dict(request.headers),
            )
            self.calls.append(record)
        response = await self._answer(request, spec, methods is not None, record)
        if record is not None and response is not None:
            record.status = response.status
        return response if response is not None else web.Response()

    async def _answer(
        self,
        request: web.Request,
        spec: MethodSpec | None,
        service_known: bool,
        record: CallRecord | None,
    ) -> web.StreamResponse | None:
        try:
            auth = self._keyring.authenticate(
                request.headers.get("Authorization"), request.query.get("access_token")
            )
        except AuthFailure as exc:
            if record is not None:
                record.error_code = "unauthenticated_http"
            return web.Response(status=401, text=str(exc))
        if record is not None:
            record.claims, record.raw_claims, record.api_key = (
                auth.claims,
                auth.raw_claims,
                auth.api_key,
            )
        try:
            return await self._serve(request, spec, service_known, auth, record)
        except TwirpError as err:
            if record is not None:
                record.error_code = err.code
            return err.to_response()

    async def _serve(
        self,
        request: web.Request,
        spec: MethodSpec | None,
        service_known: bool,
        auth: AuthResult,
        record: CallRecord | None,
    ) -> web.StreamResponse | None:
        if request.method != "POST":
            msg = f"unsupported method {_go_quote(request.method)} (only POST is allowed)"
            raise bad_route(msg, request.method, request.path)
        if not service_known:
            return web.Response(status=404, text="404 page not found\n")
        if spec is None or record is None:
            msg = f"no handler for path {_go_quote(request.path)}"
            raise bad_route(msg, request.method, request.path)
        encoding = media_type(request.headers.get("Content-Type", ""))
        if encoding not in (JSON, PROTOBUF):
            ctype = _go_quote(request.headers.get("Content-Type", ""))
            raise bad_route(f"unexpected Content-Type: {ctype}", request.method, request.path)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="http: request body too large")
        message = decode_request(body, encoding, spec.input_type)
        record.request = message
        fault = self.faults.take(spec.service, spec.name)
        if fault is not None:
            record.fault = fault.kind
            early = await self._apply_fault(request, fault)
            if early is not None or fault.kind == "drop":
                return early
        handler = self.handlers.get(spec)
        if handler is None:
            raise unimplemented(spec)
        try:
            result = handler(auth.claims, message)
        except TwirpError:
            raise
        except Exception as exc:
            log.exception("stand-in handler %s failed", spec.key)
            raise TwirpError("internal", f"stand-in error: {exc}") from exc
        return encode_response(result, encoding)

    async def _apply_fault(self, request: web.Request, fault: Fault) -> web.StreamResponse | None:
        if fault.kind == "error":
            raise TwirpError(fault.code, fault.message, status=fault.status)
        if fault.kind == "http":
            return web.Response(status=fault.http_status, text=fault.body)
        if fault.kind == "drop":
            if request.transport is not None:
                request.transport.close()
            return None
        try:
            await asyncio.wait_for(self._closing.wait(), fault.seconds)
        except TimeoutError:
            return None
        raise TwirpError("unavailable", "server shutting down")

    # -------------------------------------------------------------- faults API
    def inject_fault(self, method: str, fault: Fault) -> None:
        """Register ``fault`` for ``method`` (``"Service/Method"``, ``"Method"`` or ``"*"``)."""
        self.faults.add(method, fault)

    def fail(
        self,
        method: str,
        code: str,
        message: str = "",
        *,
        status: int | None = None,
        times: int | None = 1,
    ) -> None:
        """Answer ``method`` with a Twirp error."""
        self.faults.add(method, Fault.error(code, message, status=status, times=times))

    def stall(self, method: str, seconds: float, *, times: int | None = 1) -> None:
        """Hold ``method`` for ``seconds`` before answering."""
        self.faults.add(method, Fault.stall(seconds, times=times))

    def drop(self, method: str, *, times: int | None = 1) -> None:
        """Close the connection of ``method`` without answering."""
        self.faults.add(method, Fault.drop(times=times))

    def http_error(
        self,
        method: str,
        status: int = 500,
        body: str = "Internal Server Error",
        *,
        times: int | None = 1,
    ) -> None:
        """Answer ``method`` with a plain-text HTTP error."""
        self.faults.add(method, Fault.http(status, body, times=times))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.faults.clear()

    # --------------------------------------------------------------- records
    def calls_for(self, method: str) -> list[CallRecord]:
        """Recorded calls of ``method`` (``"Service/Method"`` or bare ``"Method"``)."""
        return [c for c in self.calls if c.matches(method)]

    @property
    def data_packets(self) -> list[DataPacketRecord]:
        """Every packet accepted by SendData, in order."""
        return self.rooms.data_packets

    @property
    def events(self) -> list[WebhookEvent]:
        """Every webhook event emitted (delivered or not), in order."""
        return self.webhooks.events

    # ------------------------------------------------------- room controls
    def room(self, name: str) -> models.Room | None:
        """A copy of the room ``name``, or ``None``."""
        rooms = self.rooms.list_rooms([name])
        return rooms[0] if rooms else None

    def participants(self, room: str) -> list[models.ParticipantInfo]:
        """Copies of the participants of ``room`` (empty if unknown)."""
        return self.rooms.participants(room)

    def create_room(self, name: str, *, metadata: str = "") -> models.Room:
        """Get-or-create a room as CreateRoom would (``room_started`` on creation)."""
        return self.rooms.create_room(CreateRoomRequest(name=name, metadata=metadata))

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
        """A participant connects (room auto-created); see :meth:`RoomManager.join`."""
        return self.rooms.join(
            room,
            identity,
            name=name,
            metadata=metadata,
            attributes=attributes,
            kind=kind,
            permission=permission,
            active=active,
        )

    def activate(self, room: str, identity: str) -> models.ParticipantInfo:
        """A JOINED participant becomes ACTIVE (``participant_joined``)."""
        return self.rooms.activate(room, identity)

    def leave(
        self,
        room: str,
        identity: str,
        *,
        reason: models.DisconnectReason = models.DisconnectReason.CLIENT_INITIATED,
    ) -> models.ParticipantInfo:
        """A participant disconnects (``participant_left``)."""
        return self.rooms.leave(room, identity, reason=reason)

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
    ) -> models.TrackInfo:
        """A participant publishes a track (``track_published``)."""
        return self.rooms.publish(
            room,
            identity,
            type=type,
            source=source,
            name=name,
            muted=muted,
            width=width,
            height=height,
        )

    def unpublish(self, room: str, identity: str, track_sid: str) -> models.TrackInfo:
        """A participant unpublishes a track (``track_unpublished``)."""
        return self.rooms.unpublish(room, identity, track_sid)

    def close_room(self, room: str) -> models.Room:
        """The room closes (e.g. empty timeout): everyone leaves, ``room_finished``."""
        return self.rooms.close_room(room)

    # ----------------------------------------------------- egress controls
    def egress_info(self, egress_id: str) -> eg.EgressInfo:
        """A copy of the egress ``egress_id`` (``KeyError`` if unknown)."""
        return self.egress.info(egress_id)

    def advance_egress(
        self,
        egress_id: str,
        status: eg.EgressStatus,
        *,
        error: str | None = None,
        error_code: int | None = None,
        details: str | None = None,
        duration: float | None = None,
        size: int | None = None,
    ) -> eg.EgressInfo:
        """Move an egress to ``status``; see :meth:`EgressEngine.advance`."""
        return self.egress.advance(
            egress_id,
            status,
            error=error,
            error_code=error_code,
            details=details,
            duration=duration,
            size=size,
        )

    def script_next_egress(self, script: EgressScript) -> None:
        """Script the fate of the next egress started."""
        self.egress.script_next(script)

    def script_egress(self, egress_id: str, script: EgressScript) -> None:
        """Script the fate of an existing egress."""
        self.egress.script(egress_id, script)
