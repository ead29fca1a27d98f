"""Rooms CRUD (reference §2.4) and the creation callback."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api import keys
from api.auth import current_user, require_user
from api.http import json_response, page_params, paginated, parse_body, parse_query
from api.openapi import error_responses, operation
from api.schemas import (
    CreationCallbackIn,
    CreationCallbackOut,
    RoomCreate,
    RoomOut,
    RoomPage,
    RoomPut,
    RoomRetrieveQuery,
    RoomUpdate,
    SizedPageQuery,
    UnregisteredRoomOut,
    dump_configuration,
)
from api.views import room_json, unregistered_room_json
from coordinator.rooms import RoomChanges, RoomView
from storage.records import Page

PREFIX = "/api/v1.0/rooms"


@operation(
    "POST",
    f"{PREFIX}/creation-callback/",
    name="room_creation_callback",
    summary="One-time read of the slug stored for a creation callback id",
    tag="rooms",
    body=CreationCallbackIn,
    responses={200: CreationCallbackOut, **error_responses(400, 415, 429)},
)
async def creation_callback(request: web.Request) -> web.Response:
    throttles = request.app[keys.THROTTLES]
    throttles.check(throttles.creation_callback, f"ip:{request.remote}")
    body = await parse_body(request, CreationCallbackIn)
    room = request.app[keys.ROOMS].pop_creation_callback(body.callback_id)
    return json_response({"status": "success", "room": room})


@operation(
    "GET",
    f"{PREFIX}/",
    name="list_rooms",
    summary="Rooms where the caller has an access",
    tag="rooms",
    query=SizedPageQuery,
    responses={200: RoomPage, **error_responses(403, 404)},
    security=True,
)
async def list_rooms(request: web.Request) -> web.Response:
    page, size = page_params(request, sized=True)
    user = await current_user(request)
    if user is None:
        result: Page[RoomView] = Page([], 0)
    else:
        result = await request.app[keys.ROOMS].list(user, offset=(page - 1) * size, limit=size)
    users: dict[Any, dict[str, Any]] = {}
    results = [room_json(view, users) for view in result.items]
    return json_response(paginated(request, page, size, result, results))


@operation(
    "POST",
    f"{PREFIX}/",
    name="create_room",
    summary="Create a room; the caller becomes its owner",
    tag="rooms",
    query=RoomRetrieveQuery,
    body=RoomCreate,
    responses={201: RoomOut, **error_responses(400, 401, 403, 415)},
    security=True,
)
async def create_room(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, RoomCreate)
    # The web app sends ?username= (maybe empty); as in Meet, it names the owner's token.
    query = parse_query(request, RoomRetrieveQuery)
    view = await request.app[keys.ROOMS].create(
        user,
        name=body.name,
        access_level=body.access_level,
        configuration=dump_configuration(body.configuration),
        callback_id=body.callback_id,
        username=query.username or None,
    )
    return json_response(room_json(view), status=201)


@operation(
    "GET",
    f"{PREFIX}/{{lookup}}/",
    name="retrieve_room",
    summary="A room by id or slug, with a LiveKit token when the caller may join",
    tag="rooms",
    query=RoomRetrieveQuery,
    responses={
        200: (RoomOut, UnregisteredRoomOut),
        **error_responses(400, 403, 404),
    },
    security=True,
)
async def retrieve_room(request: web.Request) -> web.Response:
    query = parse_query(request, RoomRetrieveQuery)
    user = await current_user(request)
    view = await request.app[keys.ROOMS].retrieve(
        request.match_info["lookup"], user, username=query.username or None
    )
    if isinstance(view, RoomView):
        return json_response(room_json(view))
    return json_response(unregistered_room_json(view))


async def _update(request: web.Request, *, partial: bool) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, RoomUpdate if partial else RoomPut)
    changes = RoomChanges(
        name=body.name,
        access_level=body.access_level,
        configuration=dump_configuration(body.configuration),
        fields_set=set(body.model_fields_set),
    )
    view = await request.app[keys.ROOMS].update(request.match_info["lookup"], user, changes)
    return json_response(room_json(view))


@operation(
    "PUT",
    f"{PREFIX}/{{lookup}}/",
    name="update_room",
    summary="Replace a room's name, access level and configuration",
    tag="rooms",
    body=RoomPut,
    responses={200: RoomOut, **error_responses(400, 401, 403, 404, 415)},
    security=True,
)
async def update_room(request: web.Request) -> web.Response:
    return await _update(request, partial=False)


@operation(
    "PATCH",
    f"{PREFIX}/{{lookup}}/",
    name="partial_update_room",
    summary="Change some of a room's name, access level and configuration",
    tag="rooms",
    body=RoomUpdate,
    responses={200: RoomOut, **error_responses(400, 401, 403, 404, 415)},
    security=True,
)
async def partial_update_room(request: web.Request) -> web.Response:
    return await _update(request, partial=True)


@operation(
    "DELETE",
    f"{PREFIX}/{{lookup}}/",
    name="delete_room",
    summary="Delete a room (owners only)",
    tag="rooms",
    responses={204: None, **error_responses(401, 403, 404)},
    security=True,
)
async def delete_room(request: web.Request) -> web.Response:
    user = await require_user(request)
    await request.app[keys.ROOMS].delete(request.match_info["lookup"], user)
    return web.Response(status=204)
