"""``/ops/``: the on-call dashboard (staff users, or the ``OPS_TOKEN`` bearer).

The page (static files under ``api/static/ops/``, no build step, no external request) reads
``/ops/api/state/`` once, then follows ``/ops/api/events/``: server-sent events carrying every
actor event as it is published (``room``) and, each second, the whole state (``state``). Many
dashboards cost one state serialisation per second and one bounded queue each; a dashboard too
slow to read its queue is cut off (it reconnects) instead of slowing the actors.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from api import keys
from api.auth import INVALID_TOKEN, bearer_token, current_user
from api.http import dumps, json_response
from api.openapi import operation
from coordinator.errors import InvalidRequest, NotAuthenticated, NotFound, PermissionDenied
from coordinator.events import EventBus
from coordinator.ops import Cached, OpsMonitor, OpsPipeline
from coordinator.room import Snapshot

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static" / "ops"
STATIC_FILES = {"ops.js": "text/javascript", "ops.css": "text/css"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SSE_QUEUE = 256  # events a dashboard may fall behind before it is cut off
TICK_SECONDS = 1.0
ROOMS_SHOWN = 500
DETAIL_TIMEOUT = 2.0
NOT_STAFF = "You do not have permission to perform this action."

EVENTS = web.AppKey("ops_events", EventBus)
MONITOR = web.AppKey("ops_monitor", OpsMonitor)
PIPELINE = web.AppKey("ops_pipeline", OpsPipeline)


def install(app: web.Application) -> None:
    """The bus and the counters (before ``rooms_ctx`` builds the directory and the adapter)."""
    bus = EventBus()
    monitor = OpsMonitor()
    bus.listen(monitor.on_event)
    app[EVENTS] = bus
    app[MONITOR] = monitor
    app[STATE_CACHE] = Cached(lambda: _serialised_state(app), TICK_SECONDS * 0.9)
    app.on_response_prepare.append(_count_request)
    app.on_shutdown.append(_end_streams)
    app.cleanup_ctx.append(_pipeline_ctx)


async def _pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    app[PIPELINE] = OpsPipeline(app[keys.SESSIONMAKER])
    yield


async def _count_request(request: web.Request, response: web.StreamResponse) -> None:
    if not request.path.startswith("/ops/"):
        request.app[MONITOR].on_request(response.status)


async def _end_streams(app: web.Application) -> None:
    app[EVENTS].close()


# -- access --------------------------------------------------------------------------------


def _ops_token(request: web.Request) -> bool:
    expected = request.app[keys.SETTINGS].ops_token
    supplied = bearer_token(request)
    if not expected or supplied is None:
        return False
    return hmac.compare_digest(supplied.encode(), expected.get().encode())


async def require_operator(request: web.Request) -> str:
    """``"ops-token"`` or the staff user's id; 401 (bad or no credentials) or 403 otherwise.

    Cookie sessions go through the CSRF checks on unsafe methods (``api.auth.identify``)."""
    if _ops_token(request):
        return "ops-token"
    user = await current_user(request)  # a forged bearer is 401 here
    if user is None:
        raise NotAuthenticated(INVALID_TOKEN if bearer_token(request) else None)
    if not user.is_staff:
        raise PermissionDenied(NOT_STAFF)
    return str(user.id)


# -- the page --------------------------------------------------------------------------------


def _html(body: str, *, status: int = 200) -> web.Response:
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


FORBIDDEN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>403 · operations</title><link rel="stylesheet" href="/ops/static/ops.css"></head>
<body class="message"><main><h1>403 · staff only</h1>
<p>The operations dashboard is for staff accounts. You are signed in without staff rights.</p>
<p><a href="/api/v1.0/logout/">Sign out</a> · <a href="/">Home</a></p></main></body></html>
"""


@operation(
    "GET",
    "/ops",
    name="ops_slashless",
    summary="Redirect to /ops/",
    tag="operators",
    responses={301: None},
    document=False,
)
async def ops_slashless(request: web.Request) -> web.StreamResponse:
    return web.Response(status=301, headers={"Location": "/ops/"})


@operation(
    "GET",
    "/ops/",
    name="ops_page",
    summary="Operations dashboard (staff)",
    tag="operators",
    responses={200: None},
    document=False,
)
async def ops_page(request: web.Request) -> web.StreamResponse:
    try:
        await require_operator(request)
    except PermissionDenied:
        return _html(FORBIDDEN_PAGE, status=403)
    except NotAuthenticated:
        if bearer_token(request):
            raise
        login = request.app.router["oidc_authenticate"].url_for().with_query(returnTo="/ops/")
        return web.Response(status=302, headers={"Location": str(login)})
    return _html((STATIC / "index.html").read_text(encoding="utf-8"))


@operation(
    "GET",
    "/ops/static/{name}",
    name="ops_static",
    summary="Dashboard assets",
    tag="operators",
    responses={200: None},
    document=False,
)
async def ops_static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        raise NotFound()
    response = web.Response(
        body=(STATIC / name).read_bytes(), content_type=content_type, charset="utf-8"
    )
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# -- data ------------------------------------------------------------------------------------


async def _health(app: web.Application) -> dict[str, Any]:
    directory: Any = app[keys.DIRECTORY]
    health = getattr(directory, "health", None)
    if health is None:
        return {"engine": app[keys.SETTINGS].engine, "hosts": []}
    try:
        result = health()
        if inspect.isawaitable(result):
            async with asyncio.timeout(DETAIL_TIMEOUT):
                result = await result
    except Exception as exc:
        log.warning("ops: engine health unavailable: %s", exc)
        return {"engine": app[keys.SETTINGS].engine, "hosts": [], "error": str(exc)}
    return dict(result)


async def build_state(app: web.Application) -> dict[str, Any]:
    monitor = app[MONITOR]
    directory = app[keys.DIRECTORY]
    monitor.forget_rooms(directory.active_rooms())
    rooms = monitor.room_list()
    pipeline = app[PIPELINE]
    recording = await pipeline.read(r["room"] for r in rooms)
    in_flight = {r["room"]: r for r in recording.get("in_flight", ())}
    for room in rooms:
        room["label"] = pipeline.labels.get(room["room"], room["room"])
        known = in_flight.get(room["room"])
        if known is not None and room["recording"] is not None:
            room["recording"]["seconds"] = known["seconds"]  # the database knows since when
    dispatcher = app[keys.OUTBOX]
    bus = app[EVENTS]
    return {
        "now": time.time(),
        "version": app[keys.SETTINGS].version,
        "rooms": rooms[:ROOMS_SHOWN],
        "rooms_total": len(rooms),
        "totals": monitor.totals(),
        "rates": monitor.rates(),
        "series": monitor.series(),
        "livekit": monitor.livekit(),
        "webhook_lag": monitor.webhook_lag(),
        "pipeline": recording
        | {"delivered": dispatcher.delivered, "failed_attempts": dispatcher.failed_attempts},
        "engine": await _health(app),
        "events": monitor.recent_events(40),
        "streams": {"subscribers": bus.subscribers, "dropped": bus.dropped_subscribers},
    }


async def _serialised_state(app: web.Application) -> str:
    return dumps(await build_state(app))


STATE_CACHE = web.AppKey("ops_state_cache", Cached[str])  # one serialisation per tick


@operation(
    "GET",
    "/ops/api/state/",
    name="ops_state",
    summary="Dashboard state: rooms, rates, LiveKit calls, recording pipeline, engine",
    tag="operators",
    responses={200: None},
    document=False,
)
async def ops_state(request: web.Request) -> web.Response:
    await require_operator(request)
    body = await request.app[STATE_CACHE].get()
    return web.Response(text=body, content_type="application/json")


@operation(
    "GET",
    "/ops/api/rooms/{room}/",
    name="ops_room",
    summary="One live room: participants, tracks, lobby, recording, last events",
    tag="operators",
    responses={200: None},
    document=False,
)
async def ops_room(request: web.Request) -> web.Response:
    await require_operator(request)
    room = request.match_info["room"]
    directory = request.app[keys.DIRECTORY]
    if room not in directory.active_rooms():
        raise NotFound("This room is not live.")
    try:
        async with asyncio.timeout(DETAIL_TIMEOUT):
            snapshot: dict[str, Any] = await directory.call(room, Snapshot())
    except TimeoutError:
        snapshot = {"room": room, "error": "The room did not answer in time."}
    snapshot["label"] = request.app[PIPELINE].labels.get(room, room)
    snapshot["events"] = request.app[MONITOR].room_events(room)
    return json_response(snapshot)


@operation(
    "POST",
    "/ops/api/outbox/{id}/retry/",
    name="ops_retry",
    summary="Retry a notification now (through the outbox)",
    tag="operators",
    responses={200: None},
    document=False,
)
async def ops_retry(request: web.Request) -> web.Response:
    await require_operator(request)  # a cookie session passes the CSRF checks first
    try:
        message_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise InvalidRequest("Not a valid notification id.") from None
    if not await request.app[PIPELINE].retry_now(message_id):
        raise NotFound("No such notification waiting or failed.")
    request.app[keys.OUTBOX].wake()
    log.info("ops: notification %s set to retry now", message_id)
    return json_response({"id": str(message_id), "status": "pending"})


# -- live updates ------------------------------------------------------------------------------


def _frame(kind: str, data: str) -> bytes:
    return f"event: {kind}\ndata: {data}\n\n".encode()


@operation(
    "GET",
    "/ops/api/events/",
    name="ops_events",
    summary="Server-sent events: actor events as they happen, the state each second",
    tag="operators",
    responses={200: None},
    document=False,
)
async def ops_events(request: web.Request) -> web.StreamResponse:
    await require_operator(request)
    app = request.app
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    cache = app[STATE_CACHE]
    with app[EVENTS].subscribe(SSE_QUEUE) as subscription:
        try:
            await response.write(b"retry: 2000\n\n" + _frame("state", await cache.get()))
            next_tick = loop.time() + TICK_SECONDS
            while True:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                try:
                    async with asyncio.timeout(max(0.0, next_tick - loop.time())):
                        event = await subscription.get()
                except TimeoutError:
                    event = {}
                if event is None:  # fell too far behind, or the server is stopping
                    await response.write(_frame("bye", '"reconnect"'))
                    break
                chunks = [_frame("room", dumps(event))] if event else []
                while len(chunks) < 64 and (more := subscription.poll()) is not None:
                    chunks.append(_frame("room", dumps(more)))
                if loop.time() >= next_tick:
                    chunks.append(_frame("state", await cache.get()))
                    next_tick = loop.time() + TICK_SECONDS
                if chunks:
                    await response.write(b"".join(chunks))
        except ConnectionError:
            pass  # the dashboard went away
    return response
