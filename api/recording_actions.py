"""Recording start/stop (§2.5), the storage hook (§4.6) and room invitations, via the actors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictStr, ValidationError

from api import keys
from api.auth import require_user
from api.http import json_response, read_json
from api.openapi import error_responses, operation
from api.schemas import MessageOut, Request, Response, SchemaBool, Storable
from coordinator.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Unavailable,
    UpstreamError,
)
from coordinator.outbox import enqueue_invitation
from coordinator.room import RECORDING_CONFLICT, FinishRecording, StartRecording, StopRecording
from coordinator.rooms import require_privileged
from coordinator.storage_events import (
    PROCESSED_MESSAGE,
    RECORDING_NOT_FOUND_MESSAGE,
    Ignored,
    StorageEventConfig,
    StorageHookAuth,
    check_storage_hook_auth,
    not_savable_message,
    parse_storage_event_body,
)
from storage import recordings as recording_store

log = logging.getLogger(__name__)

PREFIX = "/api/v1.0/rooms/{lookup}"
Mode = Literal["screen_recording", "transcript"]


class RecordingOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    language: Annotated[StrictStr, Field(max_length=50), Storable] | None = None
    transcribe: SchemaBool | None = None
    collect_metadata: SchemaBool | None = None
    original_mode: Mode | None = None


class StartRecordingIn(Request):
    schema_fields = frozenset({"options"})
    mode: Mode
    options: RecordingOptions | None = None


class InviteIn(Request):
    emails: Annotated[list[StrictStr], Field(min_length=1, max_length=200)]


class InviteOut(Response):
    status: Literal["success"]
    message: str


class _Email(BaseModel):
    email: EmailStr


def _flag(enabled: bool) -> None:
    if not enabled:
        raise NotFound()


@operation(
    "POST",
    f"{PREFIX}/start-recording/",
    name="start_recording",
    summary="Start recording the room (administrators and owners; RECORDING_ENABLE)",
    tag="recordings",
    body=StartRecordingIn,
    responses={201: MessageOut, **error_responses(400, 401, 403, 404, 409, 502, 503)},
    security=True,
)
async def start_recording(request: web.Request) -> web.Response:
    user = await require_user(request)
    _flag(request.app[keys.SETTINGS].recording_enable)
    try:
        body = StartRecordingIn.model_validate(await read_json(request))
    except (ValidationError, InvalidRequest):
        raise InvalidRequest("Invalid request.") from None
    room, role = await request.app[keys.ROOMS].get(request.match_info["lookup"], user)
    require_privileged(role)
    options = body.options.model_dump(exclude_none=True) if body.options else {}
    with livekit_failures(f"Recording failed to start for room {room.slug}"):
        reply = await request.app[keys.DIRECTORY].call(
            str(room.id), StartRecording(body.mode, options, user.id)
        )
    if reply == RECORDING_CONFLICT:
        raise Conflict(body={"error": f"A recording is already in progress for room {room.slug}"})
    return json_response(reply, status=201)


@operation(
    "POST",
    f"{PREFIX}/stop-recording/",
    name="stop_recording",
    summary="Stop the room's active recording",
    tag="recordings",
    responses={200: MessageOut, **error_responses(401, 403, 404, 502, 503)},
    security=True,
)
async def stop_recording(request: web.Request) -> web.Response:
    user = await require_user(request)
    _flag(request.app[keys.SETTINGS].recording_enable)
    room, role = await request.app[keys.ROOMS].get(request.match_info["lookup"], user)
    require_privileged(role)
    with livekit_failures(f"Recording failed to stop for room {room.slug}"):
        reply = await request.app[keys.DIRECTORY].call(str(room.id), StopRecording())
    return json_response(reply)


@contextmanager
def livekit_failures(message: str) -> Iterator[None]:
    """LiveKit failures (and a room too busy to run the command in time) answer 502/503 with
    the contract's ``{"error": …}`` body, as on every endpoint that calls LiveKit."""
    try:
        yield
    except (Unavailable, UpstreamError) as exc:
        if "error" in exc.body:
            raise
        raise type(exc)(body={"error": message}) from exc


@operation(
    "POST",
    "/api/v1.0/recordings/storage-hook/",
    name="storage_hook",
    summary="Bucket notification: a recording's file is saved (RECORDING_STORAGE_EVENT_ENABLE)",
    tag="recordings",
    responses={200: MessageOut, **error_responses(401, 403, 404)},
)
async def storage_hook(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    _flag(settings.recording_storage_event_enable)
    token = settings.recording_storage_event_token
    check_storage_hook_auth(
        request.headers.get("Authorization"),
        StorageHookAuth(
            enabled=settings.recording_enable_storage_event_auth,
            token=token if token else None,
        ),
    )
    raw = await request.read()
    config = StorageEventConfig(
        bucket=settings.s3.bucket,
        output_folder=settings.recording_output_folder,
        parser=settings.recording_event_parser,  # type: ignore[arg-type]
    )
    outcome = parse_storage_event_body(raw, config)
    if isinstance(outcome, Ignored):
        return json_response({"message": "Notification ignored."})
    async with request.app[keys.SESSIONMAKER]() as session:
        record = await recording_store.get_recording(session, outcome.recording_id)
    if record is None:
        raise NotFound(RECORDING_NOT_FOUND_MESSAGE)
    result = await request.app[keys.DIRECTORY].call(str(record.room_id), FinishRecording(record.id))
    if result == "not_found":
        raise NotFound(RECORDING_NOT_FOUND_MESSAGE)
    if result == "not_savable":
        raise PermissionDenied(not_savable_message(record.id))
    return json_response({"message": PROCESSED_MESSAGE})


@operation(
    "POST",
    f"{PREFIX}/invite/",
    name="invite",
    summary="E-mail invitations to join the room (sent through the outbox)",
    tag="rooms",
    body=InviteIn,
    responses={200: InviteOut, **error_responses(400, 401, 403, 404, 429)},
    security=True,
)
async def invite(request: web.Request) -> web.Response:
    user = await require_user(request)
    room, role = await request.app[keys.ROOMS].get(request.match_info["lookup"], user)
    require_privileged(role)
    data = await read_json(request)
    emails = data.get("emails") if isinstance(data, dict) else None
    if emails is None:
        raise InvalidRequest.fields({"emails": ["This field is required."]})
    if not isinstance(emails, list):
        raise InvalidRequest.fields({"emails": ['Expected a list of items but got type "str".']})
    if not emails:
        raise InvalidRequest.fields({"emails": ["This list may not be empty."]})
    throttles = request.app[keys.THROTTLES]
    limit = throttles.invite_max_recipients  # INVITE_MAX_RECIPIENTS
    if len(emails) > limit:
        raise InvalidRequest.fields(
            {"emails": [f"Ensure this field has no more than {limit} elements."]}
        )
    invalid: dict[str, list[str]] = {}
    for index, value in enumerate(emails):
        try:
            _Email(email=value)
        except ValidationError:
            invalid[str(index)] = ["Enter a valid email address."]
    if invalid:
        raise InvalidRequest.fields({"emails": invalid})
    recipients = list(dict.fromkeys(str(e) for e in emails))
    # INVITE_THROTTLE_RATES counts invitation e-mails per user, whatever the calls.
    throttles.check(throttles.invite, f"user:{user.id}", cost=len(recipients))
    await enqueue_invitation(
        request.app[keys.SESSIONMAKER],
        room_slug=room.slug,
        sender_email=user.email or "",
        recipients=recipients,
        language=user.language,
    )
    request.app[keys.OUTBOX].wake()
    return json_response({"status": "success", "message": "invitations sent"})
