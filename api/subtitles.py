"""``POST /api/v1.0/rooms/{id}/start-subtitle/`` (§2.5, flag ROOM_SUBTITLE_ENABLED).

Authenticated by the caller's LiveKit token for this room only (anonymous participants too),
never by the session. Order as in Meet: a sent token is verified first (403 "Invalid LiveKit
token: …"), then the flag (404), the room (404), then the token must be for this room (403
"Authentication credentials were not provided." without one, "You do not have permission…"
for another room). LiveKit failures answer 502/503 with the contract's body.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api import keys
from api.auth import livekit_token_claims
from api.http import json_response
from api.openapi import error_responses, operation
from api.schemas import ActionStatusOut
from coordinator.errors import (
    CoordinatorError,
    NotFound,
    PermissionDenied,
    Unavailable,
    UpstreamError,
)
from coordinator.integrations import start_subtitles

BEARER_FORMAT = "Authorization header must be: Bearer <token>"


def livekit_claims_if_sent(request: web.Request) -> dict[str, Any] | None:
    """The verified claims when an Authorization header is sent; None without one."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise PermissionDenied(BEARER_FORMAT)
    return livekit_token_claims(request)


@operation(
    "POST",
    "/api/v1.0/rooms/{lookup}/start-subtitle/",
    name="start_subtitle",
    summary="Dispatch the subtitles agent to the room (LiveKit token for this room)",
    tag="participants",
    responses={200: ActionStatusOut, **error_responses(403, 404, 502, 503)},
)
async def start_subtitle(request: web.Request) -> web.Response:
    claims = livekit_claims_if_sent(request)
    settings = request.app[keys.SETTINGS]
    if not settings.room_subtitle_enabled:
        raise NotFound()
    room, _ = await request.app[keys.ROOMS].get(request.match_info["lookup"], None)
    if claims is None:  # Meet's scheme sends no WWW-Authenticate, hence 403 and not 401
        raise PermissionDenied("Authentication credentials were not provided.")
    video = claims.get("video")
    if not isinstance(video, dict) or video.get("room") != str(room.id):
        raise PermissionDenied()
    body = {"error": f"Subtitles failed to start for room {room.slug}"}
    try:
        await start_subtitles(settings, request.app[keys.LIVEKIT], room)
    except Unavailable as exc:
        raise Unavailable(body=body) from exc
    except CoordinatorError as exc:
        raise UpstreamError(body=body) from exc
    return json_response({"status": "success"})
