"""Users (reference §2.3): ``/users/me/``, self-service preferences, the guarded listing."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from api import keys
from api.auth import require_user
from api.http import (
    MethodNotAllowed,
    json_response,
    page_params,
    paginated,
    parse_body,
    parse_query,
)
from api.openapi import error_responses, operation
from api.schemas import UserListQuery, UserOut, UserPage, UserUpdate, dump_configuration
from api.views import user_json
from coordinator.errors import NotFound, PermissionDenied
from storage import users as user_store
from storage.records import Page, UserRecord

PREFIX = "/api/v1.0/users"


@operation(
    "GET",
    f"{PREFIX}/me/",
    name="users_me",
    summary="The authenticated user",
    tag="users",
    responses={200: UserOut, **error_responses(401, 403)},
    security=True,
)
async def users_me(request: web.Request) -> web.Response:
    return json_response(user_json(await require_user(request)))


@operation(
    "GET",
    f"{PREFIX}/",
    name="list_users",
    summary="Search users by e-mail (empty unless ALLOW_UNSECURE_USER_LISTING)",
    tag="users",
    query=UserListQuery,
    responses={200: UserPage, **error_responses(400, 401, 403, 404)},
    security=True,
)
async def list_users(request: web.Request) -> web.Response:
    await require_user(request)
    query = parse_query(request, UserListQuery)
    page, size = page_params(request, sized=False)
    result: Page[UserRecord] = Page([], 0)
    if request.app[keys.SETTINGS].allow_unsecure_user_listing:
        async with request.app[keys.SESSIONMAKER]() as session:
            result = await user_store.list_users(
                session, query=query.q, offset=(page - 1) * size, limit=size
            )
    results = [user_json(user) for user in result.items]
    return json_response(paginated(request, page, size, result, results))


async def _update(request: web.Request) -> web.Response:
    user = await require_user(request)
    try:
        target = uuid.UUID(request.match_info["user_id"])
    except ValueError:
        raise NotFound("No User matches the given query.") from None
    if target != user.id:
        raise PermissionDenied()
    body = await parse_body(request, UserUpdate)
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in ("language", "timezone", "default_room_access_level")
        if name in body.model_fields_set and getattr(body, name) is not None
    }
    if "default_room_access_level" in body.model_fields_set:
        changes["default_room_access_level"] = body.default_room_access_level or None
    if "default_room_configuration" in body.model_fields_set:
        changes["default_room_configuration"] = dump_configuration(body.default_room_configuration)
    async with request.app[keys.SESSIONMAKER].begin() as session:
        updated = await user_store.update_user(session, user.id, **changes)
    request.app[keys.ROOMS].cache.forget_user(user.id)
    return json_response(user_json(updated))


for _method, _name in (("PUT", "update_user"), ("PATCH", "partial_update_user")):
    operation(
        _method,
        f"{PREFIX}/{{user_id}}/",
        name=_name,
        summary="Update the caller's own preferences",
        tag="users",
        body=UserUpdate,
        responses={200: UserOut, **error_responses(400, 401, 403, 404, 415)},
        security=True,
    )(_update)


async def _not_allowed(request: web.Request) -> web.Response:
    """Other methods on the users routes: authentication first, then 405, as DRF orders it."""
    await require_user(request)
    raise MethodNotAllowed(f'Method "{request.method}" not allowed.')


for _label, _path, _methods in (
    ("list", f"{PREFIX}/", ("POST", "PUT", "PATCH", "DELETE")),
    ("me", f"{PREFIX}/me/", ("POST", "PUT", "PATCH", "DELETE")),
    ("detail", f"{PREFIX}/{{user_id}}/", ("GET", "POST", "DELETE")),
):
    for _method in _methods:
        operation(
            _method,
            _path,
            name=f"users_{_label}_{_method.lower()}_not_allowed",
            summary="Not allowed",
            tag="users",
            responses={},
            document=False,
        )(_not_allowed)
