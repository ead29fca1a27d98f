"""The error middleware (errors → contract bodies) and the CSRF cookie middleware."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_to_bytes

from aiohttp import web
from yarl import URL

from api import keys
from api.auth import NotAuthenticatedSession, new_csrf_token
from api.http import json_response
from api.openapi import Handler
from api.session import CSRF_COOKIE, SESSION_COOKIE
from coordinator.errors import CoordinatorError, NotAuthenticated, Unavailable
from storage.engine import is_outage, outage_summary

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
    except Exception as exc:
        if is_outage(exc):  # one line, no traceback (nor the statement's parameters)
            log.warning(
                "Database unavailable on %s %s: %s",
                request.method,
                request.path,
                outage_summary(exc),
            )
            return json_response(Unavailable().body, status=Unavailable.status)
        log.exception("Unhandled error on %s %s", request.method, request.path)
        return json_response({"detail": "A server error occurred."}, status=500)


API_PREFIXES = ("/api/", "/external-api/")
_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]")


@web.middleware
async def path_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad bytes are 404; an unknown slashless API path whose slashed form is a route redirects.

    A path whose percent-decoding is not UTF-8 or holds a control byte (NUL...) names nothing
    we serve. Under :data:`API_PREFIXES`, as Django's ``APPEND_SLASH`` does, a path without its
    trailing slash redirects to the slashed one when that resolves (for any method): 301 for
    GET/HEAD, 308 otherwise so that the method and body are kept; the query string is kept.
    """
    raw = request.rel_url.raw_path
    decoded = unquote_to_bytes(raw)
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return not_found()
    if _CONTROL_BYTES.search(decoded):
        return not_found()
    failure = request.match_info.http_exception
    if (
        failure is not None
        and failure.status == 404
        and not raw.endswith("/")
        and raw.startswith(API_PREFIXES)
    ):
        slashed = URL.build(
            path=raw + "/", query_string=request.rel_url.raw_query_string, encoded=True
        )
        match = await request.app.router.resolve(request.clone(rel_url=slashed))
        if match.http_exception is None or match.http_exception.status != 404:
            status = 301 if request.method in ("GET", "HEAD") else 308
            return web.Response(status=status, headers={"Location": str(slashed)})
    return await handler(request)


def not_found() -> web.Response:
    return json_response({"detail": "Not found."}, status=404)


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
