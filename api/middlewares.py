"""The error middleware (errors → contract bodies) and the CSRF cookie middleware."""

from __future__ import annotations

import logging

from aiohttp import web

from api import keys
from api.auth import NotAuthenticatedSession, new_csrf_token
from api.http import json_response
from api.openapi import Handler
from api.session import CSRF_COOKIE, SESSION_COOKIE
from coordinator.errors import CoordinatorError, NotAuthenticated

log = logging.getLogger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CoordinatorError as exc:
        response = json_response(exc.body, status=exc.status)
        if isinstance(exc, NotAuthenticatedSession) or (
            isinstance(exc, NotAuthenticated) and exc.status == 401
        ):
            response.headers["WWW-Authenticate"] = getattr(exc, "www_authenticate", "Session")
        return response
    except web.HTTPException as exc:
        if exc.status == 405:
            return json_response({"detail": f'Method "{request.method}" not allowed.'}, status=405)
        if exc.status == 404:
            return json_response({"detail": "Not found."}, status=404)
        if exc.status == 413:
            return json_response({"detail": "Request body too large."}, status=413)
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_response({"detail": exc.reason}, status=exc.status)
        raise
    except Exception:
        log.exception("Unhandled error on %s %s", request.method, request.path)
        return json_response({"detail": "A server error occurred."}, status=500)


@web.middleware
async def csrf_cookie_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Responses to a logged-in browser hand out a readable ``csrftoken`` cookie if it has none.

    The login callback sets one too; anonymous callers need none (CSRF only guards sessions).
    """
    response = await handler(request)
    if CSRF_COOKIE not in request.cookies and SESSION_COOKIE in request.cookies:
        set_csrf_cookie(request, response)
    return response


def set_csrf_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """A new readable ``csrftoken``; Secure when CSRF_COOKIE_SECURE or SESSION_COOKIE_SECURE."""
    settings = request.app[keys.SETTINGS]
    response.set_cookie(
        CSRF_COOKIE,
        new_csrf_token(),
        max_age=365 * 24 * 3600,
        samesite="Lax",
        path="/",
        secure=settings.csrf_cookie_secure or settings.session_cookie_secure,
    )
