"""``POST /api/v1.0/rooms/webhooks-livekit/`` (§3.4): verified, filtered, applied by the actor.

Verification uses the raw body and the raw ``Authorization`` header. Answers: 401 without the
header, 400 when the signature or body does not verify, 422 for an unknown event type, 200
otherwise — 5xx only when LiveKit should retry (the room could not apply the event).
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from api import keys
from api.http import MAX_BODY_BYTES, dumps
from api.openapi import operation
from api.schemas import WebhookOut
from coordinator.errors import CoordinatorError
from coordinator.livekit import InvalidWebhook
from coordinator.media import WEBHOOK_EVENTS
from coordinator.room import ApplyWebhook

log = logging.getLogger(__name__)

SUCCESS = {"status": "success"}
ERROR = {"status": "error"}
# The two bodies encoded once (``json_response`` would serialise and encode them per event);
# the responses are byte for byte what ``api.http.json_response`` makes of them.
SUCCESS_BODY = dumps(SUCCESS).encode()
ERROR_BODY = dumps(ERROR).encode()
_JSON = {"Content-Type": "application/json; charset=utf-8"}


def _answer(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, headers=_JSON)


@operation(
    "POST",
    "/api/v1.0/rooms/webhooks-livekit/",
    name="livekit_webhook",
    summary="LiveKit webhook receiver (signed by the LiveKit server)",
    tag="livekit",
    responses={200: WebhookOut, 400: WebhookOut, 401: WebhookOut, 422: WebhookOut, 503: WebhookOut},
)
async def livekit_webhook(request: web.Request) -> web.Response:
    metrics = request.app[keys.METRICS]
    authorization = request.headers.get("Authorization")
    if not authorization:
        metrics.observe_webhook("unverified", "refused")
        return _answer(ERROR_BODY, 401)
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        metrics.observe_webhook("unverified", "refused")
        return _answer(ERROR_BODY, 400)
    try:
        event = request.app[keys.LIVEKIT].verify_webhook(raw, authorization)  # the raw bytes
    except InvalidWebhook as exc:
        log.info("webhook refused: %s", exc)
        metrics.observe_webhook("unverified", "refused")
        return _answer(ERROR_BODY, 400)
    if event.event not in WEBHOOK_EVENTS:
        metrics.observe_webhook(event.event, "unknown_event")
        return _answer(ERROR_BODY, 422)
    settings = request.app[keys.SETTINGS]
    room = event.room_name
    if not room or room.startswith(settings.connection_test_room_prefix):
        metrics.observe_webhook(event.event, "ignored")
        return _answer(SUCCESS_BODY)
    pattern = settings.livekit.webhook_events_filter_regex
    if pattern and not re.search(pattern, room):
        metrics.observe_webhook(event.event, "ignored")
        return _answer(SUCCESS_BODY)
    try:
        await request.app[keys.DIRECTORY].call(room, ApplyWebhook(event))
        await request.app[keys.INTEGRATIONS].on_webhook(event)  # SIP rules, agent dispatches
    except CoordinatorError as exc:
        log.warning("webhook %s for room %s not applied: %s", event.id, room, exc)
        metrics.observe_webhook(event.event, "unavailable")
        return _answer(ERROR_BODY, 503)
    metrics.observe_webhook(event.event, "applied", event.created_at)
    return _answer(SUCCESS_BODY)
