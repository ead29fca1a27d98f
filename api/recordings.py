"""Recordings (reference §2.7): list, retrieve, delete, media-auth and the summary-service hook.

Roles come from RecordingAccess only (being in a room never grants access to its recordings).
Abilities are decided by :mod:`coordinator.recording_abilities`; where DESIGN §5 departs from
the reference, ``notification_succeeded`` is final, hence deletable.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import ConfigDict, Field, RootModel, StringConstraints

from api import keys
from api.auth import require_user
from api.http import json_response, page_params, paginated, parse_body
from api.openapi import error_responses, operation
from api.schemas import AccessLevel, MessageOut, Request, Response, SizedPageQuery
from coordinator.errors import InvalidRequest, NotFound, PermissionDenied
from coordinator.recording_abilities import (
    SUPPORTED_EXTENSIONS,
    expired_at,
    is_expired,
    is_saved,
    recording_abilities,
    recording_extension,
    recording_key,
)
from coordinator.settings import Settings
from storage import recording_queries as queries
from storage.recording_queries import RecordingEntry

PREFIX = "/api/v1.0/recordings"
RECORDING_NOT_FOUND = "No Recording matches the given query."
UNKNOWN_MEDIA = "No recording found for this event."
EXTENSION_MISMATCH = "No recording found with this extension."
UNSUPPORTED_EXTENSION = "Unsupported extension."
EVENT_PROCESSED = {"message": "Event processed."}
ORIGINAL_URL_HEADER = "X-Original-URL"
MEDIA_PATH = re.compile(
    r"/media/recordings/"
    r"(?P<recording_id>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"\.(?P<extension>[A-Za-z0-9]{1,10})$"
)
WEBHOOK_REALM = "Bearer realm='External process webhook API'"
EXTERNAL_PROCESS_STATUSES = {
    "success": "external_process_successful",
    "failure": "external_process_failed",
}

RecordingStatus = Literal[
    "initiated",
    "active",
    "stopped",
    "saved",
    "aborted",
    "failed_to_start",
    "failed_to_stop",
    "notification_succeeded",
    "external_process_successful",
    "external_process_failed",
]


# -- models (requests and responses, documented in the OpenAPI document) --------------------


class RecordingRoomOut(Response):
    id: uuid.UUID
    name: str
    slug: str
    access_level: AccessLevel


class RecordingOut(Response):
    id: uuid.UUID
    room: RecordingRoomOut
    created_at: datetime
    updated_at: datetime
    status: RecordingStatus
    mode: Literal["screen_recording", "transcript"]
    options: dict[str, Any]
    key: str
    is_expired: bool
    expired_at: datetime | None


class RecordingPage(Response):
    count: int
    next: str | None
    previous: str | None
    results: list[RecordingOut]


class MediaAuthOut(RootModel[Literal["authorized"]]):
    """The JSON string ``"authorized"``; the S3 signature travels in the response headers."""


EventText = Annotated[str, StringConstraints(strip_whitespace=True)]


class ExternalProcessEventIn(Request):
    """A summary-service event; like Meet's serializer, lenient on ``type`` and ``status``."""

    model_config = ConfigDict(strict=False, coerce_numbers_to_str=True, extra="ignore")

    job_id: Annotated[EventText, Field(min_length=1)]
    type: EventText | None = None
    status: EventText | None = None


# -- serialisation ---------------------------------------------------------------------------


def timestamp(value: datetime) -> str:
    """ISO-8601 in UTC with a trailing ``Z``, as DRF renders datetimes."""
    text = value.astimezone(UTC).isoformat()
    return f"{text[:-6]}Z" if text.endswith("+00:00") else text


def recording_json(entry: RecordingEntry, settings: Settings, now: datetime) -> dict[str, Any]:
    recording, room = entry.recording, entry.room
    days = settings.recording_expiration_days
    expiry = expired_at(recording.created_at, days)
    return {
        "id": str(recording.id),
        "room": {
            "id": str(room.id),
            "name": room.name,
            "slug": room.slug,
            "access_level": room.access_level,
        },
        "created_at": timestamp(recording.created_at),
        "updated_at": timestamp(recording.updated_at),
        "status": recording.status,
        "mode": recording.mode,
        "options": recording.options,
        "key": recording_key(settings.recording_output_folder, recording.id, recording.mode),
        "is_expired": is_expired(recording.created_at, days, now),
        "expired_at": timestamp(expiry) if expiry is not None else None,
    }


def _recording_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["recording_id"])
    except ValueError:
        raise NotFound() from None  # DRF: a malformed pk is a bare 404 "Not found."


# -- routes (static paths first: they must win over ``{recording_id}``) -----------------------


@operation(
    "GET",
    f"{PREFIX}/media-auth/",
    name="recording_media_auth",
    summary="Reverse-proxy sub-request: may the caller download this recording file?",
    tag="recordings",
    responses={200: MediaAuthOut, **error_responses(400, 401, 403, 404, 503)},
    security=True,
)
async def media_auth(request: web.Request) -> web.Response:
    user = await require_user(request)
    original_url = request.headers.get(ORIGINAL_URL_HEADER)
    if not original_url:
        raise PermissionDenied()
    match = MEDIA_PATH.search(urlsplit(original_url).path)
    if match is None:
        raise PermissionDenied()
    extension = match["extension"]
    if extension not in SUPPORTED_EXTENSIONS:
        raise InvalidRequest(UNSUPPORTED_EXTENSION)
    async with request.app[keys.SESSIONMAKER]() as session:
        entry = await queries.recording_for_user(session, uuid.UUID(match["recording_id"]), user.id)
    if entry is None:
        raise NotFound(UNKNOWN_MEDIA)
    recording = entry.recording
    if extension != recording_extension(recording.mode):
        raise NotFound(EXTENSION_MISMATCH)
    if not recording_abilities(entry.roles, recording.status)["retrieve"]:
        raise PermissionDenied()
    if not is_saved(recording.status):
        raise PermissionDenied()
    settings = request.app[keys.SETTINGS]
    key = recording_key(settings.recording_output_folder, recording.id, recording.mode)
    headers = request.app[keys.STORAGE].media_auth_headers(key)
    response = json_response("authorized")
    response.headers.update(headers)
    return response


def _unauthorized(message: str) -> web.Response:
    response = json_response({"detail": message}, status=401)
    response.headers["WWW-Authenticate"] = WEBHOOK_REALM
    return response


def _check_webhook_token(request: web.Request) -> web.Response | None:
    """None when the bearer token is the configured one, otherwise the 401 to answer."""
    expected = request.app[keys.SETTINGS].summary.webhook_api_token.get()
    if not expected:
        return _unauthorized("Authentication is enabled but token is not configured.")
    header = request.headers.get("Authorization")
    if not header:
        return _unauthorized("Authorization header is required")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _unauthorized("Invalid authorization header format.")
    if not secrets.compare_digest(token.encode(), expected.encode()):
        return _unauthorized("Invalid token")
    return None


@operation(
    "POST",
    f"{PREFIX}/external-process-hook/",
    name="recording_external_process_hook",
    summary="Summary-service events (Bearer SUMMARY_SERVICE_WEBHOOK_API_TOKEN)",
    tag="recordings",
    body=ExternalProcessEventIn,
    responses={200: MessageOut, **error_responses(400, 401, 415)},
)
async def external_process_hook(request: web.Request) -> web.Response:
    refused = _check_webhook_token(request)
    if refused is not None:
        return refused
    event = await parse_body(request, ExternalProcessEventIn)
    status = EXTERNAL_PROCESS_STATUSES.get(event.status or "")
    if event.type == "transcript" and status is not None:
        async with request.app[keys.SESSIONMAKER].begin() as session:
            await queries.set_status_by_external_process_id(session, event.job_id, status)
    return json_response(EVENT_PROCESSED)


@operation(
    "GET",
    f"{PREFIX}/",
    name="list_recordings",
    summary="Recordings where the caller holds any access, newest first",
    tag="recordings",
    query=SizedPageQuery,
    responses={200: RecordingPage, **error_responses(401, 403, 404)},
    security=True,
)
async def list_recordings(request: web.Request) -> web.Response:
    user = await require_user(request)
    page, size = page_params(request, sized=True)
    async with request.app[keys.SESSIONMAKER]() as session:
        result = await queries.list_visible_recordings(
            session, user.id, offset=(page - 1) * size, limit=size
        )
    settings, now = request.app[keys.SETTINGS], datetime.now(UTC)
    results = [recording_json(entry, settings, now) for entry in result.items]
    return json_response(paginated(request, page, size, result, results))


@operation(
    "GET",
    f"{PREFIX}/{{recording_id}}/",
    name="retrieve_recording",
    summary="One recording (owners and administrators of the recording)",
    tag="recordings",
    responses={200: RecordingOut, **error_responses(401, 403, 404)},
    security=True,
)
async def retrieve_recording(request: web.Request) -> web.Response:
    user = await require_user(request)
    recording_id = _recording_id(request)
    async with request.app[keys.SESSIONMAKER]() as session:
        entry = await queries.recording_for_user(session, recording_id, user.id)
    if entry is None or not entry.roles:
        raise NotFound(RECORDING_NOT_FOUND)
    if not recording_abilities(entry.roles, entry.recording.status)["retrieve"]:
        raise PermissionDenied()
    settings = request.app[keys.SETTINGS]
    return json_response(recording_json(entry, settings, datetime.now(UTC)))


@operation(
    "DELETE",
    f"{PREFIX}/{{recording_id}}/",
    name="delete_recording",
    summary="Delete a finished recording (rows only; the file is left to the bucket lifecycle)",
    tag="recordings",
    responses={204: None, **error_responses(401, 403, 404)},
    security=True,
)
async def delete_recording(request: web.Request) -> web.Response:
    user = await require_user(request)
    recording_id = _recording_id(request)
    async with request.app[keys.SESSIONMAKER].begin() as session:
        entry = await queries.recording_for_user(session, recording_id, user.id)
        if entry is None or not entry.roles:
            raise NotFound(RECORDING_NOT_FOUND)
        if not recording_abilities(entry.roles, entry.recording.status)["destroy"]:
            raise PermissionDenied()
        await queries.delete_recording(session, recording_id)
    return web.Response(status=204)
