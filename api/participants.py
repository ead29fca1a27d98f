"""Participant management (§2.5): mute, update, remove, change role, raise hand, rename.

Every LiveKit call goes through the room's actor. LiveKit errors answer with the contract's
``{"error": …}`` bodies: "not found" → 404; an error answer → 502; unreachable or timed out →
503 (Meet answers 500 for both; we keep 5xx for the server's own bugs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api import keys
from api.auth import identify, livekit_token_claims
from api.http import json_response, parse_body
from api.openapi import error_responses, operation
from api.schemas import (
    FORBIDDEN_PERMISSION_FIELDS,
    ActionStatusOut,
    LiveRoomOut,
    MuteIn,
    RemoveParticipantIn,
    RenameIn,
    RoleIn,
    RoleOut,
    ToggleHandIn,
    UpdateParticipantIn,
)
from coordinator.errors import (
    CoordinatorError,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    Unavailable,
    UpstreamError,
)
from coordinator.room import (
    CheckPresence,
    MuteParticipant,
    RemoveParticipant,
    Snapshot,
    UpdateParticipant,
)
from coordinator.rooms import PRIVILEGED, require_privileged
from storage.records import RoomRecord, UserRecord

PREFIX = "/api/v1.0/rooms/{lookup}"
PARTICIPANT_NOT_FOUND = {"error": "Participant not found"}
UPDATE_FIELDS = ("metadata", "attributes", "permission", "name")
NOTHING_TO_UPDATE = (
    f"At least one of the following fields must be provided: {', '.join(UPDATE_FIELDS)}."
)
FORBIDDEN_PERMISSIONS = "Setting the following participant permissions is not allowed: "


@contextmanager
def livekit_failures(message: str) -> Iterator[None]:
    try:
        yield
    except NotFound:
        raise NotFound(body=PARTICIPANT_NOT_FOUND) from None
    except Unavailable as exc:
        raise Unavailable(body={"error": message}) from exc
    except UpstreamError as exc:
        raise UpstreamError(body={"error": message}) from exc


async def _room(request: web.Request, user: UserRecord | None) -> tuple[RoomRecord, str | None]:
    return await request.app[keys.ROOMS].get(request.match_info["lookup"], user)


async def _session_admin(request: web.Request) -> tuple[RoomRecord, UserRecord, str]:
    """A session-authenticated administrator or owner of the room (401/403/404 otherwise)."""
    identity = await identify(request, allow_bearer=False)
    if identity.user is None:
        raise NotAuthenticated()
    room, role = await _room(request, identity.user)
    require_privileged(role)
    assert role is not None
    return room, identity.user, role


def _token_for_room(request: web.Request, room: RoomRecord) -> dict[str, Any]:
    claims = livekit_token_claims(request)
    video = claims.get("video") if isinstance(claims.get("video"), dict) else {}
    if not isinstance(video, dict) or video.get("room") != str(room.id):
        raise PermissionDenied()  # a valid token, for another room: Meet's permission refusal
    return claims


def _call(request: web.Request, room: RoomRecord, command: Any) -> Any:
    return request.app[keys.DIRECTORY].call(str(room.id), command)


@operation(
    "POST",
    f"{PREFIX}/mute-participant/",
    name="mute_participant",
    summary="Mute a participant's track (administrators, or present participants if allowed)",
    tag="participants",
    body=MuteIn,
    responses={200: ActionStatusOut, **error_responses(400, 401, 403, 404, 502, 503)},
    security=True,
)
async def mute_participant(request: web.Request) -> web.Response:
    session = await identify(request, allow_bearer=False)
    lookup = request.match_info["lookup"]
    room, role = await request.app[keys.ROOMS].get(lookup, session.user)
    if session.user is None or role not in PRIVILEGED:
        claims = _token_for_room(request, room)
        if room.configuration.get("everyone_can_mute") is False:
            raise PermissionDenied()
        body = await parse_body(request, MuteIn)
        try:
            present = await _call(request, room, CheckPresence(claims["sub"]))
        except CoordinatorError:
            present = None  # fail closed
        if present is None:
            raise PermissionDenied(body={"error": "Could not verify caller presence"})
    else:
        body = await parse_body(request, MuteIn)
    with livekit_failures("Failed to mute participant"):
        await _call(request, room, MuteParticipant(body.participant_identity, body.track_sid))
    return json_response({"status": "success"})


@operation(
    "POST",
    f"{PREFIX}/update-participant/",
    name="update_participant",
    summary="Change a participant's metadata, attributes, permission or name",
    tag="participants",
    body=UpdateParticipantIn,
    responses={200: ActionStatusOut, **error_responses(400, 401, 403, 404, 502, 503)},
    security=True,
)
async def update_participant(request: web.Request) -> web.Response:
    room, _, _ = await _session_admin(request)
    body = await parse_body(request, UpdateParticipantIn)
    permission = body.permission.model_dump(exclude_none=True) if body.permission else None
    forbidden = [f for f in FORBIDDEN_PERMISSION_FIELDS if permission and f in permission]
    if forbidden:
        raise InvalidRequest.fields(
            {"permission": [FORBIDDEN_PERMISSIONS + ", ".join(forbidden) + "."]}
        )
    # As in Meet, a field counts as an update when given and neither null nor "": an empty
    # ``permission`` or ``metadata`` object is an update (it replaces the participant's).
    nothing = body.metadata is None and body.attributes is None and not body.name
    if nothing and permission is None:
        raise InvalidRequest.fields({"non_field_errors": [NOTHING_TO_UPDATE]})
    command = UpdateParticipant(
        body.participant_identity,
        metadata=json.dumps(body.metadata) if body.metadata is not None else None,
        attributes=body.attributes or None,
        name=body.name or None,
        permission=permission,
    )
    with livekit_failures("Failed to update participant"):
        await _call(request, room, command)
    return json_response({"status": "success"})


@operation(
    "POST",
    f"{PREFIX}/remove-participant/",
    name="remove_participant",
    summary="Remove a participant (and their lobby entry)",
    tag="participants",
    body=RemoveParticipantIn,
    responses={200: ActionStatusOut, **error_responses(400, 401, 403, 404, 502, 503)},
    security=True,
)
async def remove_participant(request: web.Request) -> web.Response:
    room, _, _ = await _session_admin(request)
    body = await parse_body(request, RemoveParticipantIn)
    with livekit_failures("Failed to remove participant"):
        await _call(request, room, RemoveParticipant(body.participant_identity))
    return json_response({"status": "success"})


@operation(
    "POST",
    f"{PREFIX}/update-participant-role/",
    name="update_participant_role",
    summary="Promote or demote a connected participant; persisted as their room role",
    tag="participants",
    body=RoleIn,
    responses={200: RoleOut, **error_responses(400, 401, 403, 404, 502, 503)},
    security=True,
)
async def update_participant_role(request: web.Request) -> web.Response:
    room, user, _ = await _session_admin(request)
    body = await parse_body(request, RoleIn)
    caller = user.sub or str(user.id)
    try:
        present = await _call(request, room, CheckPresence(caller))
    except CoordinatorError:
        present = None
    if present is None:
        raise PermissionDenied("You must be connected to the meeting to perform this action.")
    if body.participant_identity == caller:
        raise PermissionDenied(body={"error": "You cannot change your own role."})
    with livekit_failures("Failed to update participant role"):
        target = await _call(request, room, CheckPresence(body.participant_identity))
    if target is None:
        raise NotFound(body={"error": "Participant is not connected to this meeting."})
    await request.app[keys.ROOMS].assign_role(room, body.participant_identity, body.role)
    synced = True
    try:
        await _call(
            request,
            room,
            UpdateParticipant(body.participant_identity, attributes={"room_role": body.role}),
        )
    except CoordinatorError:
        synced = False
    return json_response({"role": body.role, "livekit_synced": synced})


@operation(
    "POST",
    f"{PREFIX}/toggle-hand/",
    name="toggle_hand",
    summary="Raise or lower the caller's hand (LiveKit token for this room)",
    tag="participants",
    body=ToggleHandIn,
    responses={200: ActionStatusOut, **error_responses(400, 403, 404, 502, 503)},
)
async def toggle_hand(request: web.Request) -> web.Response:
    room, _ = await _room(request, None)
    claims = _token_for_room(request, room)
    body = await parse_body(request, ToggleHandIn)
    raised_at = datetime.now(UTC).isoformat() if body.raised else ""
    command = UpdateParticipant(claims["sub"], attributes={"handRaisedAt": raised_at})
    with livekit_failures("Failed to update participant hand state"):
        await _call(request, room, command)
    return json_response({"status": "success"})


@operation(
    "POST",
    f"{PREFIX}/rename/",
    name="rename",
    summary="Rename the caller (LiveKit token for this room)",
    tag="participants",
    body=RenameIn,
    responses={200: ActionStatusOut, **error_responses(400, 403, 404, 502, 503)},
)
async def rename(request: web.Request) -> web.Response:
    room, _ = await _room(request, None)
    claims = _token_for_room(request, room)
    body = await parse_body(request, RenameIn)
    with livekit_failures("Failed to rename participant"):
        await _call(request, room, UpdateParticipant(claims["sub"], name=body.name))
    return json_response({"status": "success"})


@operation(
    "GET",
    f"{PREFIX}/live/",
    name="live_room",
    summary="The room actor's live snapshot (administrators, owners and staff)",
    tag="operators",
    responses={200: LiveRoomOut, **error_responses(401, 403, 404, 503)},
    security=True,
)
async def live_room(request: web.Request) -> web.Response:
    identity = await identify(request)
    if identity.user is None:
        raise NotAuthenticated()
    room, role = await _room(request, identity.user)
    if role not in PRIVILEGED and not identity.user.is_staff:
        raise PermissionDenied()
    return json_response(await _call(request, room, Snapshot()))
