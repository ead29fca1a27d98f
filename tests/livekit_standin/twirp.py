"""Twirp v8 wire details: error bodies, status codes, service table and body codecs.

Contracts:

* Error bodies are ``{"code", "msg"[, "meta"]}`` sent with *exactly*
  ``Content-Type: application/json`` (no charset parameter), like Go twirp.
* The service table is built from the protobuf service descriptors shipped in
  ``livekit-protocol``; there is no hand-written type table.
* JSON responses use proto field names and include default-valued fields; JSON
  requests ignore unknown fields (twirp v8 ``DiscardUnknown``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import DecodeError, Message
from livekit.protocol import agent_dispatch, connector, egress, ingress, room, sip

PROTOBUF = "application/protobuf"
JSON = "application/json"

#: Go twirp ``ServerHTTPStatusFromErrorCode`` (twirp v8.1.3, as used by livekit-server).
STATUS_BY_CODE: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
}


class TwirpError(Exception):
    """A Twirp error. ``status`` defaults to the Go twirp status for ``code``."""

    def __init__(
        self,
        code: str,
        msg: str,
        *,
        status: int | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        if status is None and code not in STATUS_BY_CODE:
            raise ValueError(f"unknown twirp code {code!r}; pass status= explicitly")
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status if status is not None else STATUS_BY_CODE[code]
        self.meta = dict(meta or {})

    def to_response(self) -> web.Response:
        """Render as the Go twirp error body with exactly ``application/json``."""
        body: dict[str, object] = {"code": self.code, "msg": self.msg}
        if self.meta:
            body["meta"] = self.meta
        return web.Response(
            status=self.status,
            body=json.dumps(body).encode(),
            headers={"Content-Type": JSON},
        )


def bad_route(msg: str, method: str, path: str) -> TwirpError:
    """Go twirp ``badRouteError``."""
    return TwirpError("bad_route", msg, meta={"twirp_invalid_route": f"{method} {path}"})


PERMISSION_DENIED_MSG = "permissions denied"


def permission_denied() -> TwirpError:
    """livekit ``twirpAuthError(ErrPermissionDenied)``: ``unauthenticated`` (401), not 403."""
    return TwirpError("unauthenticated", PERMISSION_DENIED_MSG)


@dataclass(frozen=True)
class MethodSpec:
    """One Twirp method: ``service`` is the bare name (``RoomService``), ``name`` the method."""

    service: str
    name: str
    input_type: type[Message]
    output_type: type[Message]

    @property
    def key(self) -> str:
        """``"<Service>/<Method>"``, the key used for faults and call records."""
        return f"{self.service}/{self.name}"


_FILES: tuple[FileDescriptor, ...] = (
    room.DESCRIPTOR,
    egress.DESCRIPTOR,
    agent_dispatch.DESCRIPTOR,
    ingress.DESCRIPTOR,
    sip.DESCRIPTOR,
    connector.DESCRIPTOR,
)


def _load_services() -> dict[str, dict[str, MethodSpec]]:
    services: dict[str, dict[str, MethodSpec]] = {}
    for file_desc in _FILES:
        for svc in file_desc.services_by_name.values():
            methods = {
                m.name: MethodSpec(
                    service=svc.name,
                    name=m.name,
                    input_type=message_factory.GetMessageClass(m.input_type),
                    output_type=message_factory.GetMessageClass(m.output_type),
                )
                for m in svc.methods
            }
            services[svc.full_name] = methods
    return services


#: ``"livekit.RoomService"`` -> method name -> spec.
SERVICES: dict[str, dict[str, MethodSpec]] = _load_services()


def find_method(service: str, method: str) -> MethodSpec | None:
    """Look a method up by bare service name (``"Egress"``) and method name."""
    return SERVICES.get(f"livekit.{service}", {}).get(method)


def media_type(content_type: str) -> str:
    """The media type as twirp compares it: before ``;``, trimmed, lower-cased."""
    return content_type.split(";", 1)[0].strip().lower()


def decode_request(body: bytes, encoding: str, cls: type[Message]) -> Message:
    """Decode a request body, raising twirp ``malformed`` like the generated Go code."""
    if encoding == JSON:
        try:
            return json_format.Parse(body.decode("utf-8"), cls(), ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise TwirpError("malformed", "the json request could not be decoded") from exc
    try:
        return cls.FromString(body)
    except (DecodeError, ValueError) as exc:
        raise TwirpError("malformed", "the protobuf request could not be decoded") from exc


def encode_response(msg: Message, encoding: str) -> web.Response:
    """A 200 response in the request's encoding."""
    if encoding == JSON:
        text = json_format.MessageToJson(
            msg,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            indent=None,
        )
        return web.Response(status=200, body=text.encode(), headers={"Content-Type": JSON})
    return web.Response(
        status=200, body=msg.SerializeToString(), headers={"Content-Type": PROTOBUF}
    )
