"""Resource accesses (reference §2.6): room memberships and their role rules."""

from __future__ import annotations

import uuid

from aiohttp import web

from api import keys
from api.auth import require_user
from api.http import json_response, page_params, paginated, parse_body
from api.openapi import error_responses, operation
from api.schemas import AccessCreate, AccessOut, AccessPage, AccessPut, AccessUpdate, PageQuery
from api.views import access_json
from coordinator.accesses import ACCESS_NOT_FOUND
from coordinator.errors import NotFound

PREFIX = "/api/v1.0/resource-accesses"


def _access_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["access_id"])
    except ValueError:
        raise NotFound(ACCESS_NOT_FOUND) from None


@operation(
    "GET",
    f"{PREFIX}/",
    name="list_accesses",
    summary="Accesses of the rooms the caller administers",
    tag="resource-accesses",
    query=PageQuery,
    responses={200: AccessPage, **error_responses(401, 403, 404)},
    security=True,
)
async def list_accesses(request: web.Request) -> web.Response:
    user = await require_user(request)
    page, size = page_params(request, sized=False)
    result = await request.app[keys.ACCESSES].list(user, offset=(page - 1) * size, limit=size)
    results = [access_json(access) for access in result.items]
    return json_response(paginated(request, page, size, result, results))


@operation(
    "POST",
    f"{PREFIX}/",
    name="create_access",
    summary="Give a user a role in a room",
    tag="resource-accesses",
    body=AccessCreate,
    responses={201: AccessOut, **error_responses(400, 401, 403, 415)},
    security=True,
)
async def create_access(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, AccessCreate)
    access = await request.app[keys.ACCESSES].create(
        user, target_user_id=body.user, room_id=body.resource, role=body.role
    )
    return json_response(access_json(access), status=201)


@operation(
    "GET",
    f"{PREFIX}/{{access_id}}/",
    name="retrieve_access",
    summary="One access (administrators and owners of its room)",
    tag="resource-accesses",
    responses={200: AccessOut, **error_responses(401, 403, 404)},
    security=True,
)
async def retrieve_access(request: web.Request) -> web.Response:
    user = await require_user(request)
    access = await request.app[keys.ACCESSES].retrieve(user, _access_id(request))
    return json_response(access_json(access))


async def _update(request: web.Request, *, partial: bool) -> web.Response:
    user = await require_user(request)
    access_id = _access_id(request)
    body = await parse_body(request, AccessUpdate if partial else AccessPut)
    access = await request.app[keys.ACCESSES].update(user, access_id, role=body.role)
    return json_response(access_json(access))


@operation(
    "PUT",
    f"{PREFIX}/{{access_id}}/",
    name="update_access",
    summary="Change an access's role",
    tag="resource-accesses",
    body=AccessPut,
    responses={200: AccessOut, **error_responses(400, 401, 403, 404, 415)},
    security=True,
)
async def update_access(request: web.Request) -> web.Response:
    return await _update(request, partial=False)


@operation(
    "PATCH",
    f"{PREFIX}/{{access_id}}/",
    name="partial_update_access",
    summary="Change an access's role",
    tag="resource-accesses",
    body=AccessUpdate,
    responses={200: AccessOut, **error_responses(400, 401, 403, 404, 415)},
    security=True,
)
async def partial_update_access(request: web.Request) -> web.Response:
    return await _update(request, partial=True)


@operation(
    "DELETE",
    f"{PREFIX}/{{access_id}}/",
    name="delete_access",
    summary="Remove an access (never the last owner)",
    tag="resource-accesses",
    responses={204: None, **error_responses(401, 403, 404)},
    security=True,
)
async def delete_access(request: web.Request) -> web.Response:
    user = await require_user(request)
    await request.app[keys.ACCESSES].delete(user, _access_id(request))
    return web.Response(status=204)
