"""The access log, with the query strings of the login routes redacted.

OIDC authorization codes and states travel in the query of ``/authenticate/``, ``/callback/``
and ``/logout/``; they never reach the log, neither in the request line nor in a Referer.
The JSON access log (``LOG_FORMAT=json``) has no query string and no header at all: one line
per request with method, route template, path, status, duration, request id, user and peer.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

AUTH_PATHS = frozenset(
    f"/api/v1.0/{name}{slash}"
    for name in ("authenticate", "callback", "logout")
    for slash in ("", "/")
)
REDACTED = "[redacted]"


def redact_url(value: str) -> str:
    """``value`` with its query replaced by ``[redacted]`` when it is a login route's URL."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return REDACTED
    if parts.path in AUTH_PATHS and (parts.query or parts.fragment):
        return urlunsplit(parts._replace(query=REDACTED, fragment=""))
    return value


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access logger (same format, same fields) minus the login routes' queries."""

    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        line = list(super()._format_line(request, response, time))
        if request is None:
            return line
        redacted: list[tuple[str | tuple[str, str], str]] = []
        for key, value in line:
            if key == "first_request_line" and request.path in AUTH_PATHS:
                version = f"HTTP/{request.version.major}.{request.version.minor}"
                value = f"{request.method} {redact_url(request.path_qs)} {version}"
            elif isinstance(key, tuple) and key[1].lower() == "referer" and value != "-":
                value = redact_url(value)
            redacted.append((key, value))
        return redacted


class JsonAccessLogger(AbstractAccessLogger):
    """One structured line per request (the JSON formatter writes it as one object)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        from api.auth import IDENTITY
        from api.observability import request_id_of, route_template

        identity = request.get(IDENTITY)
        user = identity.user if identity is not None else None
        self.logger.info(
            "request",
            extra={
                "request_id": request_id_of(request),
                "fields": {
                    "method": request.method,
                    "route": route_template(request),
                    "path": request.path,
                    "status": response.status,
                    "duration_ms": round(time * 1000, 2),
                    "user_id": str(user.id) if user is not None else None,
                    "remote": request.remote,
                },
            },
        )


def access_logger_for(json_lines: bool) -> type[AbstractAccessLogger]:
    return JsonAccessLogger if json_lines else RedactingAccessLogger
