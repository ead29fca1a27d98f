"""``POST /api/v1.0/diagnostics/connection/`` (§2.9, flag CONNECTION_TEST_ENABLED).

Open to anonymous callers (someone who cannot join a room may well not be logged in). Order as
in Meet: the session (with CSRF) is read, the caller is throttled (per user, else per address),
then the flag answers 404 when off. Each call gets a room of its own and a short-lived token.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from api import keys
from api.auth import identify
from api.http import json_response
from api.openapi import error_responses, operation
from coordinator.errors import NotFound, Throttled
from coordinator.integrations import connection_test
from coordinator.throttle import throttled_message


class ConnectionTestLiveKitOut(BaseModel):
    url: str
    room: str
    token: str
    expires_in: int


class ConnectionTestOut(BaseModel):
    livekit: ConnectionTestLiveKitOut


@operation(
    "POST",
    "/api/v1.0/diagnostics/connection/",
    name="diagnostics_connection",
    summary="A short-lived LiveKit token for a fresh connection-test room",
    tag="diagnostics",
    responses={200: ConnectionTestOut, **error_responses(403, 404, 429)},
)
async def connection(request: web.Request) -> web.Response:
    identity = await identify(request, allow_bearer=False)
    key = f"user:{identity.user.id}" if identity.user else f"ip:{request.remote}"
    wait = request.app[keys.INTEGRATION_THROTTLES].connection_test.hit(key)
    if wait is not None:
        raise Throttled(throttled_message(wait))
    settings = request.app[keys.SETTINGS]
    if not settings.connection_test_enabled:
        raise NotFound()
    test = connection_test(settings, identity.user)
    request.app[keys.INTEGRATIONS].schedule_connection_test_cleanup(test.room)
    return json_response(
        {
            "livekit": {
                "url": test.url,
                "room": test.room,
                "token": test.token,
                "expires_in": test.expires_in,
            }
        }
    )
