"""The test-control surface over HTTP (JSON), for the CLI mode: ``/_fake/*``.

Every endpoint mirrors a :class:`~.server.LiveKitStandin` method. Requests and
responses are JSON; protobuf messages are rendered with proto field names. Enum
values are given by name (``"AUDIO"``, ``"EGRESS_ACTIVE"``) or number. A failed
control call answers 400 ``{"error": "..."}``. No authentication: loopback only.

Endpoints:

* ``GET /_fake/state``: rooms (with participants) and egresses;
* ``POST /_fake/rooms`` ``{name, metadata?}``: get-or-create a room;
* ``POST /_fake/join`` ``{room, identity, name?, metadata?, attributes?, active?}``;
* ``POST /_fake/activate`` ``{room, identity}``;
* ``POST /_fake/leave`` ``{room, identity, reason?}``;
* ``POST /_fake/publish`` ``{room, identity, type?, source?, name?, muted?, width?, height?}``;
* ``POST /_fake/unpublish`` ``{room, identity, track_sid}``;
* ``POST /_fake/close_room`` ``{room}``;
* ``POST /_fake/advance_egress`` ``{egress_id, status, error?, error_code?, details?,
  duration?, size?}``;
* ``POST /_fake/script_next_egress`` ``{reject?: {code, message}, outcome?, error?,
  error_code?, after?}``;
* ``POST /_fake/faults`` ``{method, kind, code?, message?, status?, seconds?,
  http_status?, body?, times?}``; ``DELETE /_fake/faults`` clears them;
* ``GET /_fake/calls?method=``: recorded Twirp calls (raw claims included);
* ``GET /_fake/webhooks``: webhook URL, emitted events and delivery attempts;
* ``POST /_fake/webhook_url`` ``{url}`` (``null`` stops delivering);
* ``POST /_fake/drain`` ``{max_wait?}``: wait for pending webhook deliveries;
* ``GET /_fake/data_packets``: packets sent with SendData (``data`` base64).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from livekit.protocol import egress as eg
from livekit.protocol import models

from .egress import EgressScript
from .faults import Fault
from .twirp import TwirpError

if TYPE_CHECKING:
    from .server import LiveKitStandin

Json = dict[str, Any]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def to_json(msg: Message) -> Json:
    """A protobuf message as a JSON object with proto field names."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _enum(wrapper: Any, value: Any) -> Any:
    return wrapper.Value(value) if isinstance(value, str) else int(value)


def _script(body: Json) -> EgressScript:
    reject = body.get("reject")
    if reject:
        return EgressScript.reject_start(reject["code"], reject.get("message", ""))
    return EgressScript(
        outcome=body.get("outcome"),
        error=body.get("error"),
        error_code=body.get("error_code"),
        after=float(body.get("after", 0.0)),
    )


def _fault(body: Json) -> Fault:
    times = body.get("times", 1)
    kind = body["kind"]
    if kind == "error":
        return Fault.error(
            body["code"], body.get("message", ""), status=body.get("status"), times=times
        )
    if kind == "stall":
        return Fault.stall(float(body["seconds"]), times=times)
    if kind == "drop":
        return Fault.drop(times=times)
    if kind == "http":
        return Fault.http(int(body.get("http_status", 500)), body.get("body", "error"), times=times)
    raise ValueError(f"unknown fault kind {kind!r}")


def add_control_routes(app: web.Application, fake: LiveKitStandin) -> None:
    """Register the ``/_fake/*`` endpoints for ``fake`` on ``app``."""

    def post(path: str, action: Callable[[Json], Any]) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            body = await request.json() if request.can_read_body else {}
            try:
                result = action(body)
                if isinstance(result, Awaitable):
                    result = await result
            except (KeyError, ValueError, TypeError, TimeoutError, TwirpError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            if isinstance(result, Message):
                result = to_json(result)
            return web.json_response(result if result is not None else {})

        app.router.add_post(f"/_fake/{path}", handler)

    post("rooms", lambda b: fake.create_room(b["name"], metadata=b.get("metadata", "")))
    post(
        "join",
        lambda b: fake.join(
            b["room"],
            b["identity"],
            name=b.get("name", ""),
            metadata=b.get("metadata", ""),
            attributes=b.get("attributes"),
            active=b.get("active", True),
        ),
    )
    post("activate", lambda b: fake.activate(b["room"], b["identity"]))
    post(
        "leave",
        lambda b: fake.leave(
            b["room"],
            b["identity"],
            reason=_enum(models.DisconnectReason, b.get("reason", "CLIENT_INITIATED")),
        ),
    )
    post(
        "publish",
        lambda b: fake.publish(
            b["room"],
            b["identity"],
            type=_enum(models.TrackType, b.get("type", "AUDIO")),
            source=_enum(models.TrackSource, b["source"]) if "source" in b else None,
            name=b.get("name", ""),
            muted=bool(b.get("muted", False)),
            width=int(b.get("width", 0)),
            height=int(b.get("height", 0)),
        ),
    )
    post("unpublish", lambda b: fake.unpublish(b["room"], b["identity"], b["track_sid"]))
    post("close_room", lambda b: fake.close_room(b["room"]))
    post(
        "advance_egress",
        lambda b: fake.advance_egress(
            b["egress_id"],
            _enum(eg.EgressStatus, b["status"]),
            error=b.get("error"),
            error_code=b.get("error_code"),
            details=b.get("details"),
            duration=b.get("duration"),
            size=b.get("size"),
        ),
    )
    post("script_next_egress", lambda b: fake.script_next_egress(_script(b)))
    post("faults", lambda b: fake.inject_fault(b["method"], _fault(b)))
    post("drain", lambda b: fake.webhooks.drain(float(b.get("max_wait", 5.0))))

    def set_url(body: Json) -> Json:
        fake.webhook_url = body.get("url")
        return {"url": fake.webhook_url}

    post("webhook_url", set_url)

    async def clear_faults(_: web.Request) -> web.StreamResponse:
        fake.clear_faults()
        return web.json_response({})

    async def state(_: web.Request) -> web.StreamResponse:
        rooms = [
            {**to_json(s.room), "participants": [to_json(p) for p in s.participants.values()]}
            for s in fake.rooms.rooms.values()
        ]
        egresses = [to_json(i) for i in fake.egress.all_egresses()]
        return web.json_response({"rooms": rooms, "egresses": egresses})

    async def calls(request: web.Request) -> web.StreamResponse:
        method = request.query.get("method")
        selected = fake.calls_for(method) if method else fake.calls
        return web.json_response(
            [
                {
                    "service": c.service,
                    "method": c.method,
                    "status": c.status,
                    "error_code": c.error_code,
                    "fault": c.fault,
                    "content_type": c.content_type,
                    "request": to_json(c.request) if c.request is not None else None,
                    "claims": dict(c.raw_claims),
                }
                for c in selected
            ]
        )

    async def webhooks(_: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "url": fake.webhook_url,
                "events": [to_json(e) for e in fake.webhooks.events],
                "deliveries": [
                    {
                        "event_id": d.event_id,
                        "event": d.event,
                        "url": d.url,
                        "attempt": d.attempt,
                        "status": d.status,
                        "error": d.error,
                        "redelivery": d.redelivery,
                    }
                    for d in fake.webhooks.deliveries
                ],
            }
        )

    async def data_packets(_: web.Request) -> web.StreamResponse:
        return web.json_response(
            [
                {
                    "room": p.room,
                    "data": base64.b64encode(p.data).decode(),
                    "kind": models.DataPacket.Kind.Name(p.kind),
                    "destination_identities": list(p.destination_identities),
                    "topic": p.topic,
                }
                for p in fake.data_packets
            ]
        )

    app.router.add_delete("/_fake/faults", clear_faults)
    app.router.add_get("/_fake/state", state)
    app.router.add_get("/_fake/calls", calls)
    app.router.add_get("/_fake/webhooks", webhooks)
    app.router.add_get("/_fake/data_packets", data_packets)
