"""The scheme and host the client used, from a trusted proxy's headers (Django's rules).

Only when the operator says the proxy is trusted — ``SECURE_PROXY_SSL_HEADER`` for the scheme,
``USE_X_FORWARDED_HOST`` for the host — and otherwise the headers are ignored, since any
client can send them. The request is cloned early in the middleware chain, so every absolute
URL built downstream (pagination links, OIDC ``redirect_uri``, post-login and logout
redirects) sees ``request.url`` as the client did.
"""

from __future__ import annotations

import re

from aiohttp import web

from api import keys
from api.openapi import Handler
from coordinator.errors import InvalidRequest

# Django's host_validation_re: a name or a bracketed IPv6 address, then an optional port.
_HOST = re.compile(r"([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(:[0-9]+)?", re.IGNORECASE)
INVALID_HOST = "Invalid X-Forwarded-Host header."


def forwarded_scheme(request: web.Request, header: str, secure_value: str) -> str | None:
    """``https`` when the header's first value is ``secure_value``, ``http`` for any other
    value, None when the proxy sent no such header (Django's ``HttpRequest.scheme``)."""
    value = request.headers.get(header)
    if value is None:
        return None
    return "https" if value.split(",", 1)[0].strip() == secure_value else "http"


def forwarded_host(request: web.Request) -> str | None:
    value = request.headers.get("X-Forwarded-Host")
    if value is None:
        return None
    host = value.strip()
    if not _HOST.fullmatch(host):
        raise InvalidRequest(INVALID_HOST)  # Django: DisallowedHost, a 400
    return host


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[keys.SETTINGS]
    scheme = None
    if settings.secure_proxy_ssl_header is not None:
        scheme = forwarded_scheme(request, *settings.secure_proxy_ssl_header)
    host = forwarded_host(request) if settings.use_x_forwarded_host else None
    if scheme is None and host is None:
        return await handler(request)
    return await handler(request.clone(scheme=scheme or request.scheme, host=host or request.host))
