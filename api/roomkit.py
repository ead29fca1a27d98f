"""``POST /api/v1.0/roomkit/join/`` (§2.9, flag ROOMKIT_ENABLED): a meeting-room device dials in.

Server to server: ``Authorization: Bearer <ROOMKIT_SERVER_TO_SERVER_API_TOKEN>`` (compared in
constant time; a PIN alone never authenticates). Order as in Meet: authentication (401), the
throttle (one bucket: every caller is the SIP module), the flag (404), the body (400), the room by
PIN (404), then its SIP dispatch rule is ensured (idempotent). LiveKit failures answer 502/503.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from api import keys
from api.http import MAX_BODY_BYTES, json_response, read_json
from api.openapi import error_responses, operation
from api.schemas import ActionStatusOut
from coordinator.errors import (
    CoordinatorError,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    Throttled,
    Unavailable,
    UpstreamError,
)
from coordinator.throttle import throttled_message

NO_ROOM = "No room found for this PIN code."
SIP_FAILED = {"detail": "Could not create dispatch rule."}


class RoomkitNotAuthenticated(NotAuthenticated):
    www_authenticate = "Bearer realm='Roomkit server to server'"


class RoomkitJoinIn(BaseModel):
    pin_code: str


def authenticate(request: web.Request) -> None:
    required = request.app[keys.SETTINGS].roomkit_server_to_server_api_token
    if not required:
        raise RoomkitNotAuthenticated("Server-to-server token is not configured.")
    header = request.headers.get("Authorization")
    if not header:
        raise RoomkitNotAuthenticated("Authorization header is missing.")
    parts = header.split(" ")
    if len(parts) != 2 or parts[0] != "Bearer":
        raise RoomkitNotAuthenticated("Invalid authorization header.")
    if not hmac.compare_digest(parts[1].encode(), required.get().encode()):
        raise RoomkitNotAuthenticated("Invalid server-to-server token.")


def pin_code(data: Any, length: int) -> str:
    """DRF ``CharField`` reading of ``pin_code`` (numbers become strings, whitespace trimmed)."""
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else type(data).__name__
        raise InvalidRequest.fields(
            {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}
        )
    if "pin_code" not in data:
        raise InvalidRequest.fields({"pin_code": ["This field is required."]})
    value = data["pin_code"]
    if value is None:
        raise InvalidRequest.fields({"pin_code": ["This field may not be null."]})
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidRequest.fields({"pin_code": ["Not a valid string."]})
    text = str(value).strip()
    if not text:
        raise InvalidRequest.fields({"pin_code": ["This field may not be blank."]})
    if len(text) != length:
        raise InvalidRequest.fields({"pin_code": ["PIN code length is invalid."]})
    return text


async def read_body(request: web.Request) -> Any:
    """JSON, or a multipart form as DRF's parsers also accept; other types are 415."""
    if request.content_type == "multipart/form-data":
        if request.content_length and request.content_length > MAX_BODY_BYTES:
            raise InvalidRequest("Request body too large.")
        form = await request.post()
        return {key: form[key] for key in form}
    return await read_json(request)


@operation(
    "POST",
    "/api/v1.0/roomkit/join/",
    name="roomkit_join",
    summary="Prepare a room for a meeting-room (SIP) device joining by PIN (server to server)",
    tag="livekit",
    body=RoomkitJoinIn,
    responses={200: ActionStatusOut, **error_responses(400, 401, 404, 429, 502, 503)},
)
async def roomkit_join(request: web.Request) -> web.Response:
    authenticate(request)
    wait = request.app[keys.INTEGRATION_THROTTLES].roomkit_join.hit("roomkit")
    if wait is not None:
        raise Throttled(throttled_message(wait))
    settings = request.app[keys.SETTINGS]
    if not settings.roomkit_enabled:
        raise NotFound()
    pin = pin_code(await read_body(request), settings.room_telephony_pin_length)
    integrations = request.app[keys.INTEGRATIONS]
    room = await integrations.room_by_pin(pin)
    if room is None:
        raise NotFound(NO_ROOM)
    try:
        await integrations.ensure_sip_rule(room)
    except Unavailable as exc:
        raise Unavailable(body=SIP_FAILED) from exc
    except CoordinatorError as exc:
        raise UpstreamError(body=SIP_FAILED) from exc
    return json_response({"status": "success"})
