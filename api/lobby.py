"""The lobby (§2.5): request-entry, waiting-participants, enter. State lives in the room actor."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api import keys
from api.auth import current_user, require_user
from api.http import json_response, parse_body
from api.openapi import error_responses, operation
from api.schemas import EnterIn, MessageOut, RequestEntryIn, RequestEntryOut, WaitingOut
from coordinator.errors import NotFound
from coordinator.identity import is_user_identity
from coordinator.room import DecideEntry, ListWaiting, LobbyEntry, RequestEntry
from coordinator.rooms import can_join, require_privileged
from coordinator.tokens import participant_color
from storage.records import UserRecord

PREFIX = "/api/v1.0/rooms/{lookup}"
LOBBY_COOKIE = "lobbyParticipantId"
NO_LOBBY = {"message": "Room has no lobby system."}


async def _participant_id(request: web.Request, user: UserRecord | None) -> tuple[str, bool]:
    """The caller's lobby participant id and whether it is newly issued.

    The id comes only from a lobby cookie we signed; a bare, forged or tampered value is no
    cookie. Throttles first (429 before any work): per user, per signed cookie (Meet's
    ``REQUEST_ENTRY_THROTTLE_RATES``), and new anonymous participants per IP (ours), so a
    cookieless flood cannot fill the lobby.
    """
    throttles = request.app[keys.THROTTLES]
    lobby_ids = request.app[keys.LOBBY_IDS]
    participant_id = lobby_ids.read(request.cookies.get(LOBBY_COOKIE))
    if user is not None:
        throttles.check(throttles.request_entry, f"user:{user.id}")
    elif participant_id is not None:
        throttles.check(throttles.request_entry, f"lobby:{participant_id}")
    else:
        throttles.check(throttles.request_entry_new_participant, f"ip:{request.remote}")
    sessionmaker = request.app[keys.SESSIONMAKER]
    if participant_id is not None and not await is_user_identity(sessionmaker, participant_id):
        return participant_id, False
    while True:  # an id taken for a user's identity is never handed out (nor accepted)
        participant_id = lobby_ids.new()
        if not await is_user_identity(sessionmaker, participant_id):
            return participant_id, True


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
    participant_id, issued = await _participant_id(request, user)
    body = await parse_body(request, RequestEntryIn)
    rooms = request.app[keys.ROOMS]
    room, role = await rooms.get(request.match_info["lookup"], user)
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
    if issued:
        response.set_cookie(
            LOBBY_COOKIE,
            request.app[keys.LOBBY_IDS].sign(participant_id),
            httponly=True,
            secure=True,
            samesite="Lax",
            path="/",
        )
    return response


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
