"""Operator views: the notification outbox (staff) and Prometheus metrics."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict

from api import keys, observability
from api.auth import INVALID_TOKEN, bearer_token, require_user
from api.http import json_response
from api.openapi import error_responses, operation
from coordinator.errors import NotAuthenticated, PermissionDenied
from storage import outbox as outbox_store


class OpsTokenRequired(NotAuthenticated):
    """401 with ``WWW-Authenticate: Bearer``: /metrics asks for the OPS_TOKEN."""

    www_authenticate = "Bearer"

    def __init__(self) -> None:
        super().__init__(INVALID_TOKEN)


class OutboxOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    counts: dict[str, int]
    messages: list[dict[str, Any]]


@operation(
    "GET",
    "/api/v1.0/outbox/",
    name="outbox",
    summary="Notifications not yet delivered or given up, with their last error (staff)",
    tag="operators",
    responses={200: OutboxOut, **error_responses(401, 403)},
    security=True,
)
async def outbox(request: web.Request) -> web.Response:
    user = await require_user(request)
    if not user.is_staff:
        raise PermissionDenied()
    status = request.query.get("status")
    if status not in ("pending", "failed", "succeeded"):
        status = "failed"
    async with request.app[keys.SESSIONMAKER]() as session:
        counts = await outbox_store.counts_by_status(session)
        messages = await outbox_store.list_messages(session, status=status, limit=100)
    return json_response(
        {
            "counts": counts,
            "messages": [
                {
                    "id": str(m.id),
                    "kind": m.kind,
                    "recording": str(m.recording_id) if m.recording_id else None,
                    "status": m.status,
                    "attempts": m.attempts,
                    "next_attempt_at": m.next_attempt_at.isoformat(),
                    "last_error": m.last_error,
                    "created_at": m.created_at.isoformat(),
                }
                for m in messages
            ],
        }
    )


@operation(
    "GET",
    "/metrics",
    name="metrics",
    summary="Prometheus metrics",
    tag="operators",
    responses={200: None},
    document=False,
)
async def metrics(request: web.Request) -> web.Response:
    expected = request.app[keys.SETTINGS].ops_token
    if expected:
        supplied = bearer_token(request) or ""
        if not hmac.compare_digest(supplied.encode(), expected.get().encode()):
            raise OpsTokenRequired()
    observability.sample(request.app)
    await observability.sample_database(request.app)
    body = request.app[keys.METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
