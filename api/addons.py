"""Add-on sessions (reference §2.9, flag ADDONS_ENABLED): ``/api/v1.0/addons/sessions/…``.

``init`` and ``poll`` authenticate with the ``addonsSid`` cookie and the session's CSRF token
alone (the add-on has no login yet); ``exchange`` needs the logged-in user, whose add-on JWT it
binds to the session. See :mod:`coordinator.addons`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from pydantic import BaseModel

from api import keys
from api.auth import require_user
from api.http import json_response, read_json
from api.openapi import error_responses, operation
from coordinator.addons import AddonSessions, CsrfMismatch, SessionNotFound, TransitTokenRefused
from coordinator.errors import InvalidRequest, NotAuthenticated, NotFound
from coordinator.throttle import Throttle

PREFIX = "/api/v1.0/addons/sessions"
ADDON_SESSIONS = web.AppKey("addon_sessions", AddonSessions)


INIT_THROTTLE = web.AppKey("addons_init_throttle", Throttle)


async def addons_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS].addons
    if settings.enabled:
        app[ADDON_SESSIONS] = AddonSessions(settings, app[keys.SESSIONMAKER])
        throttle = Throttle.of(settings.init_throttle_rate)
        if throttle is not None:
            app[INIT_THROTTLE] = throttle
    yield


class InitOut(BaseModel):
    transit_token: str
    csrf_token: str


class PendingOut(BaseModel):
    state: str


class AuthenticatedOut(BaseModel):
    state: str
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class ExchangeIn(BaseModel):
    transit_token: str


class ExchangeOut(BaseModel):
    status: str


def _sessions(request: web.Request) -> AddonSessions:
    if not request.app[keys.SETTINGS].addons.enabled:
        raise NotFound()
    return request.app[ADDON_SESSIONS]


@operation(
    "POST",
    f"{PREFIX}/init/",
    name="addons_session_init",
    summary="Open an add-on session: transit and CSRF tokens, the addonsSid cookie",
    tag="addons",
    responses={201: InitOut, **error_responses(404)},
)
async def init(request: web.Request) -> web.Response:
    sessions = _sessions(request)
    if INIT_THROTTLE in request.app:
        keys.Throttles.check(request.app[INIT_THROTTLE], f"ip:{request.remote}")
    new = await sessions.init()
    response = json_response(
        {"transit_token": new.transit_token, "csrf_token": new.csrf_token}, status=201
    )
    settings = request.app[keys.SETTINGS].addons
    # Sent by a frame of a third-party site: SameSite=None, hence Secure; never readable by JS.
    response.set_cookie(
        settings.session_id_cookie,
        new.session_id,
        max_age=settings.session_ttl,
        httponly=True,
        secure=True,
        samesite="None",
        path="/",
    )
    return response


@operation(
    "POST",
    f"{PREFIX}/poll/",
    name="addons_session_poll",
    summary="Poll an add-on session: 202 while pending, the add-on token once (then it ends)",
    tag="addons",
    responses={
        200: AuthenticatedOut,
        202: PendingOut,
        **error_responses(400, 401, 404),
    },
)
async def poll(request: web.Request) -> web.Response:
    sessions = _sessions(request)
    cookie_name = request.app[keys.SETTINGS].addons.session_id_cookie
    session_id = request.cookies.get(cookie_name)
    if not session_id:
        raise NotAuthenticated("Missing credentials.")
    csrf = request.headers.get("X-CSRFToken")
    if not csrf:
        raise InvalidRequest("Missing CSRF token.")
    try:
        tokens = await sessions.poll(session_id, csrf)
    except CsrfMismatch:
        raise InvalidRequest("Invalid CSRF token.") from None
    except SessionNotFound:
        raise NotFound("Session not found.") from None
    if tokens is None:
        return json_response({"state": "pending"}, status=202)
    response = json_response(
        {
            "state": "authenticated",
            "access_token": tokens.access_token,
            "token_type": tokens.token_type,
            "expires_in": tokens.expires_in,
            "scope": tokens.scope,
        }
    )
    response.headers["Cache-Control"] = "no-store"
    response.del_cookie(cookie_name, path="/", secure=True, httponly=True, samesite="None")
    return response


@operation(
    "POST",
    f"{PREFIX}/exchange/",
    name="addons_session_exchange",
    summary="Redeem a transit token (single use) for the logged-in user's add-on token",
    tag="addons",
    body=ExchangeIn,
    responses={200: ExchangeOut, **error_responses(400, 401, 403, 404, 415)},
    security=True,
)
async def exchange(request: web.Request) -> web.Response:
    user = await require_user(request)
    sessions = _sessions(request)
    data = await read_json(request)
    transit = data.get("transit_token") if isinstance(data, dict) else None
    if not transit or not isinstance(transit, str):
        raise InvalidRequest("Missing transit_token.")
    try:
        await sessions.exchange(transit, user.id)
    except TransitTokenRefused:
        raise InvalidRequest("Invalid or expired transit token.") from None
    return json_response({"status": "ok"})
