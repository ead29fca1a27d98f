"""The lobby (§2.5): request-entry, waiting-participants, enter. State lives in the room actor."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from api import keys
from api.auth import current_user, require_user
from api.http import json_response, parse_body
from api.openapi import error_responses, operation
from api.schemas import EnterIn, MessageOut, RequestEntryIn, RequestEntryOut, WaitingOut
from coordinator.errors import NotFound, Throttled
from coordinator.room import DecideEntry, ListWaiting, LobbyEntry, RequestEntry
from coordinator.rooms import can_join, require_privileged
from coordinator.throttle import throttled_message
from coordinator.tokens import participant_color

PREFIX = "/api/v1.0/rooms/{lookup}"
LOBBY_COOKIE = "lobbyParticipantId"
NO_LOBBY = {"message": "Room has no lobby system."}


def _throttle(request: web.Request, key: str | None) -> None:
    if key is None:
        return  # Meet does not throttle callers before they hold a lobby cookie
    wait = request.app[keys.THROTTLES].request_entry.hit(key)
    if wait is not None:
        raise Throttled(throttled_message(wait))


@operation(
    "POST",
    f"{PREFIX}/request-entry/",
    name="request_entry",
    summary="Ask to enter a room; bypasses the lobby when the access level allows",
    tag="lobby",
    body=RequestEntryIn,
    responses={200: RequestEntryOut, **error_responses(400, 403, 404, 429, 503)},
)
async def request_entry(request: web.Request) -> web.Response:
    user = await current_user(request)
    cookie = request.cookies.get(LOBBY_COOKIE)
    _throttle(request, f"user:{user.id}" if user else (f"lobby:{cookie}" if cookie else None))
    body = await parse_body(request, RequestEntryIn)
    rooms = request.app[keys.ROOMS]
    room, role = await rooms.get(request.match_info["lookup"], user)
    participant_id = cookie if cookie and _is_uuid(cookie) else str(uuid.uuid4())
    identity = (user.sub or str(user.id)) if user else participant_id
    if can_join(room.access_level, user, role):
        entry: LobbyEntry | None = LobbyEntry(
            participant_id, body.username, participant_color(participant_id), "accepted", 0.0
        )
    else:
        entry = await request.app[keys.DIRECTORY].call(
            str(room.id), RequestEntry(participant_id, body.username, identity)
        )
    assert entry is not None
    payload: dict[str, Any] = entry.as_json() | {"livekit": None}
    if entry.status == "accepted":
        access = rooms.livekit_access(
            room_name=str(room.id),
            configuration=room.configuration,
            user=user,
            role=role,
            username=body.username,
            identity=participant_id,
            color=entry.color,
        )
        payload["livekit"] = {"url": access.url, "room": access.room, "token": access.token}
    response = json_response(payload)
    if cookie != participant_id:
        response.set_cookie(
            LOBBY_COOKIE, participant_id, httponly=True, secure=True, samesite="Lax", path="/"
        )
    return response


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@operation(
    "GET",
    f"{PREFIX}/waiting-participants/",
    name="waiting_participants",
    summary="The participants waiting in the lobby (administrators and owners)",
    tag="lobby",
    responses={200: WaitingOut, **error_responses(401, 403, 404, 503)},
    security=True,
)
async def waiting_participants(request: web.Request) -> web.Response:
    user = await require_user(request)
    room, role = await request.app[keys.ROOMS].get(request.match_info["lookup"], user)
    require_privileged(role)
    if room.access_level == "public":
        return json_response({"participants": []})
    waiting = await request.app[keys.DIRECTORY].call(str(room.id), ListWaiting())
    return json_response({"participants": waiting})


@operation(
    "POST",
    f"{PREFIX}/enter/",
    name="enter",
    summary="Accept or deny a waiting participant",
    tag="lobby",
    body=EnterIn,
    responses={200: MessageOut, **error_responses(400, 401, 403, 404, 503)},
    security=True,
)
async def enter(request: web.Request) -> web.Response:
    user = await require_user(request)
    room, role = await request.app[keys.ROOMS].get(request.match_info["lookup"], user)
    require_privileged(role)
    body = await parse_body(request, EnterIn)
    if room.access_level == "public":
        raise NotFound(body=NO_LOBBY)
    entry = await request.app[keys.DIRECTORY].call(
        str(room.id), DecideEntry(str(body.participant_id), body.allow_entry)
    )
    if entry is None:
        raise NotFound(body={"message": "Participant not found."})
    return json_response({"message": "Participant was updated."})
