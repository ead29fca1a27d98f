"""Request ids, request metrics, the per-process metric sampler, and Sentry.

- :func:`request_middleware` (outermost) gives every request an id: the caller's
  ``X-Request-ID`` when it is 1-128 of ``[A-Za-z0-9._:-]``, else a fresh one. The id is set in
  :data:`coordinator.telemetry.REQUEST_ID` while the handler runs (so actor commands, their
  effects and LiveKit calls carry it), stored on the request for the access log, and answered
  in ``X-Request-ID``. Each request is timed into ``meet_http_request_duration_seconds`` under
  its route template (``unmatched`` when no route matched), never its raw path.
- :func:`sample` refreshes the gauges read from this process (room actors, mailboxes, the
  database pool); the scrape calls it, and in multi-process mode :func:`sampler_ctx` calls it
  every few seconds so the other processes' values stay fresh in the shared directory.
- :func:`init_sentry`: Meet's ``SENTRY_DSN``, with the aiohttp integration, no PII and every
  event scrubbed (:func:`scrub_event`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api import keys
from api.access_log import redact_url
from api.openapi import Handler
from coordinator.logs import REDACTED, scrub, scrub_value
from coordinator.settings import Settings
from coordinator.telemetry import (
    REQUEST_ID,
    REQUEST_ID_HEADER,
    EngineStats,
    new_request_id,
    valid_request_id,
)
from storage import outbox as outbox_store

log = logging.getLogger(__name__)
SAMPLE_EVERY_SECONDS = 5.0
UNMATCHED = "unmatched"


def route_template(request: web.BaseRequest) -> str:
    """The matched route's template (``/api/v1.0/rooms/{room_id}/``), or ``unmatched``."""
    match_info = getattr(request, "match_info", None)
    if match_info is None or match_info.http_exception is not None:
        return UNMATCHED
    route = match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else UNMATCHED


def request_id_of(request: web.BaseRequest) -> str | None:
    try:
        return request[keys.REQUEST_ID]
    except KeyError:
        return None


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
    request[keys.REQUEST_ID] = request_id
    token = REQUEST_ID.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away
        raise
    finally:
        REQUEST_ID.reset(token)
        metrics = request.app.get(keys.METRICS)
        if metrics is not None:
            elapsed = time.perf_counter() - started
            metrics.observe_request(route_template(request), request.method, status, elapsed)


async def answer_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer (streamed ones too) carries ``X-Request-ID``."""
    request_id = request_id_of(request)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


def sample(app: web.Application) -> None:
    """This process's gauges: room actors and mailboxes, the database pool."""
    metrics = app[keys.METRICS]
    directory = app.get(keys.DIRECTORY)
    if directory is not None:
        stats = getattr(directory, "stats", None)
        if callable(stats):
            metrics.set_engine(stats())
        else:  # an engine without local actors: what it can tell
            metrics.set_engine(EngineStats(actors=len(directory.active_rooms())))
    sessionmaker = app.get(keys.SESSIONMAKER)
    engine = sessionmaker.kw.get("bind") if sessionmaker is not None else None
    if engine is not None:
        metrics.set_pool(engine.sync_engine.pool)
    dispatcher = app.get(keys.OUTBOX)
    if dispatcher is not None:
        metrics.outbox_delivered.set(dispatcher.delivered)
        metrics.outbox_failed_attempts.set(dispatcher.failed_attempts)
    reconciler = app.get(keys.RECONCILER)
    if reconciler is not None:
        metrics.recording_repairs.set(reconciler.repairs)


async def sample_database(app: web.Application) -> None:
    """The outbox backlog by kind and status and its oldest pending row (one process is
    enough: the values are the database's)."""
    async with app[keys.SESSIONMAKER]() as session:
        backlog, oldest = await outbox_store.backlog(session)
    age = 0.0
    if oldest is not None:
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
    app[keys.METRICS].set_outbox(backlog, age)


async def sampler_ctx(app: web.Application) -> AsyncIterator[None]:
    """Multi-process mode: refresh this process's gauges every few seconds."""
    task = None
    if app[keys.METRICS].multiprocess_directory and app[keys.SETTINGS].background_tasks:
        task = asyncio.create_task(_sample_forever(app), name="metrics-sampler")
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _sample_forever(app: web.Application) -> None:
    while True:
        try:
            sample(app)
        except Exception:
            log.exception("metrics sampling failed")
        await asyncio.sleep(SAMPLE_EVERY_SECONDS)


# -- Sentry --------------------------------------------------------------------------------

_DROPPED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-csrftoken"}
)
EXTRA_DENYLIST = [
    "code",
    "state",
    "session_state",
    "access_token",
    "id_token",
    "refresh_token",
    "client_secret",
    "api_secret",
    "secret_key",
    "ops_token",
    "supplied",
    "expected",
    "authorization",
    "x-csrftoken",
]


def scrub_event(event: Any, _hint: Any = None) -> Any:
    """Sentry ``before_send``: no cookies, credentials, bodies or login-route queries."""
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        request.pop("data", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                k: v for k, v in headers.items() if k.lower() not in _DROPPED_HEADERS
            }
        if request.get("query_string"):
            request["query_string"] = REDACTED
        if isinstance(request.get("url"), str):
            request["url"] = scrub(redact_url(request["url"]))
    return scrub_value(event)


def scrub_breadcrumb(crumb: Any, _hint: Any = None) -> Any:
    return scrub_value(crumb)


def init_sentry(settings: Settings) -> bool:
    """Report errors to Sentry when ``SENTRY_DSN`` is set; True when it was.

    Environment: ``SENTRY_ENVIRONMENT`` (else Meet's ``DJANGO_CONFIGURATION``, lower-cased);
    release: the service's version. No user data, cookies, bodies or query strings; headers
    and frame variables named like credentials are filtered, then :func:`scrub_event` runs.
    """
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get(),
        environment=settings.sentry_environment,
        release=settings.version,
        integrations=[AioHttpIntegration(transaction_style="method_and_path_pattern")],
        auto_enabling_integrations=False,  # importing every library it knows costs seconds
        # No PII: sentry-sdk 2.75 replaces ``send_default_pii=False`` (deprecated) by this.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "denylist", "terms": EXTRA_DENYLIST}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "database_query_data": False,
            "stack_frame_variables": {"mode": "denylist", "terms": EXTRA_DENYLIST},
        },
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
    )
    sentry_sdk.set_tag("application", "backend")
    return True


__all__ = [
    "answer_request_id",
    "init_sentry",
    "request_middleware",
    "route_template",
    "sample",
    "sample_database",
    "sampler_ctx",
    "scrub_event",
]
