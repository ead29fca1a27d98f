"""Files (reference §2.8): background images. Every route is a 404 while FILE_UPLOAD_ENABLED is
off (before authentication, as Meet's permission does); the use cases are
:class:`coordinator.files.FileService`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, RootModel, StrictStr

from api import keys
from api.auth import require_user
from api.http import json_response, page_params, paginated, parse_body
from api.openapi import error_responses, operation
from api.recordings import ORIGINAL_URL_HEADER, timestamp
from api.schemas import Name255, Request, Response, SizedPageQuery, Storable, Text255
from coordinator.errors import InvalidRequest, NotFound
from coordinator.files import FileService, file_abilities, file_url
from coordinator.settings import FileSettings
from storage.files import FileFilters, FileRecord, Ordering

PREFIX = "/api/v1.0/files"
FILE_NOT_FOUND = "No File matches the given query."
FileType = Literal["background_image"]
UploadState = Literal["pending", "analyzing", "ready"]
FILE_TYPES = ("background_image",)
UPLOAD_STATES = ("pending", "analyzing", "ready")
ORDERING_FIELDS: tuple[Ordering, ...] = ("created_at", "updated_at", "title")
DEFAULT_ORDERING: list[tuple[Ordering, bool]] = [("updated_at", True)]
# django-filter's BooleanFilter: anything else is "no filter".
_TRUE = {"true", "True", "1"}
_FALSE = {"false", "False", "0"}

Description = Annotated[StrictStr, Storable]


class FileCreate(Request):
    id: Annotated[uuid.UUID, Field(strict=False)] | None = None
    type: FileType
    filename: Name255
    title: Text255 | None = None
    description: Description | None = None


class FileUpdate(Request):
    title: Name255 | None = None
    type: FileType | None = None
    description: Description | None = None


class FilePut(FileUpdate):
    title: Name255
    type: FileType


class FileCreatorOut(Response):
    id: uuid.UUID
    full_name: str | None
    short_name: str | None


class FileOut(Response):
    id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    title: str
    type: FileType
    creator: FileCreatorOut | None
    deleted_at: datetime | None
    hard_deleted_at: datetime | None
    filename: str
    upload_state: UploadState
    mimetype: str | None
    size: int | None
    description: str | None
    url: str | None
    abilities: dict[str, bool]


class CreatedFileOut(FileOut):
    policy: str | None


class FilePage(Response):
    count: int
    next: str | None
    previous: str | None
    results: list[FileOut]


class FileListQuery(SizedPageQuery):
    type: FileType | None = None
    upload_state: UploadState | None = None
    is_creator_me: str | None = None
    is_deleted: str | None = None
    ordering: str | None = None


class MediaAuthOut(RootModel[Literal["authorized"]]):
    """The JSON string ``"authorized"``; the S3 signature travels in the response headers."""


def file_json(record: FileRecord, settings: FileSettings, user_id: uuid.UUID) -> dict[str, Any]:
    creator = record.creator
    return {
        "id": str(record.id),
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
        "title": record.title,
        "type": record.type,
        "creator": (
            {
                "id": str(creator.id),
                "full_name": creator.full_name,
                "short_name": creator.short_name,
            }
            if creator is not None
            else None
        ),
        "deleted_at": timestamp(record.deleted_at) if record.deleted_at else None,
        "hard_deleted_at": timestamp(record.hard_deleted_at) if record.hard_deleted_at else None,
        "filename": record.filename,
        "upload_state": record.upload_state,
        "mimetype": record.mimetype,
        "size": record.size,
        "description": record.description,
        "url": file_url(settings, record),
        "abilities": file_abilities(record, user_id),
    }


def _service(request: web.Request) -> FileService:
    """The files service; a 404 while FILE_UPLOAD_ENABLED is off."""
    if not request.app[keys.SETTINGS].file_upload_enabled:
        raise NotFound()
    return request.app[keys.FILES]


def _file_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["file_id"])
    except ValueError:
        raise NotFound() from None


def _choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if value not in choices:
        raise InvalidRequest.fields(
            {name: [f"Select a valid choice. {value} is not one of the available choices."]}
        )
    return value


def _boolean(request: web.Request, name: str) -> bool | None:
    value = request.query.get(name)
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def _ordering(request: web.Request) -> list[tuple[Ordering, bool]]:
    """DRF's OrderingFilter: comma-separated fields, unknown ones dropped, else the default."""
    found: list[tuple[Ordering, bool]] = []
    for part in request.query.get("ordering", "").split(","):
        name = part.strip()
        descending = name.startswith("-")
        field = name.lstrip("-")
        for known in ORDERING_FIELDS:
            if field == known:
                found.append((known, descending))
    return found or DEFAULT_ORDERING


@operation(
    "GET",
    f"{PREFIX}/media-auth/",
    name="file_media_auth",
    summary="Reverse-proxy sub-request: may the caller download this file? (S3 headers)",
    tag="files",
    responses={200: MediaAuthOut, **error_responses(401, 403, 404, 502, 503)},
    security=True,
)
async def media_auth(request: web.Request) -> web.Response:
    service = _service(request)
    user = await require_user(request)
    headers = await service.media_auth(user.id, request.headers.get(ORIGINAL_URL_HEADER))
    response = json_response("authorized")
    response.headers.update(headers)
    return response


@operation(
    "GET",
    f"{PREFIX}/",
    name="list_files",
    summary="The caller's files (filters type, upload_state, is_creator_me, is_deleted)",
    tag="files",
    query=FileListQuery,
    responses={200: FilePage, **error_responses(400, 401, 404)},
    security=True,
)
async def list_files(request: web.Request) -> web.Response:
    service = _service(request)
    user = await require_user(request)
    filters = FileFilters(
        type=_choice(request, "type", FILE_TYPES),
        upload_state=_choice(request, "upload_state", UPLOAD_STATES),
        is_creator_me=_boolean(request, "is_creator_me"),
        is_deleted=_boolean(request, "is_deleted"),
    )
    page, size = page_params(request, sized=True)
    result = await service.list(
        user.id, filters, _ordering(request), offset=(page - 1) * size, limit=size
    )
    results = [file_json(record, service.settings, user.id) for record in result.items]
    return json_response(paginated(request, page, size, result, results))


@operation(
    "POST",
    f"{PREFIX}/",
    name="create_file",
    summary="Create a pending file; `policy` is a presigned PUT to its temporary key",
    tag="files",
    body=FileCreate,
    responses={201: CreatedFileOut, **error_responses(400, 401, 403, 404, 415, 502, 503)},
    security=True,
)
async def create_file(request: web.Request) -> web.Response:
    service = _service(request)
    user = await require_user(request)
    body = await parse_body(request, FileCreate)
    created = await service.create(
        user.id,
        file_type=body.type,
        filename=body.filename,
        title=body.title,
        description=body.description,
        file_id=body.id,
    )
    data = file_json(created.record, service.settings, user.id)
    data["policy"] = created.policy
    return json_response(data, status=201)


async def _get(request: web.Request) -> tuple[FileService, uuid.UUID, FileRecord]:
    service = _service(request)
    user = await require_user(request)
    record = await service.get(user.id, _file_id(request))
    if record is None:
        raise NotFound(FILE_NOT_FOUND)
    return service, user.id, record


@operation(
    "GET",
    f"{PREFIX}/{{file_id}}/",
    name="retrieve_file",
    summary="One of the caller's files",
    tag="files",
    responses={200: FileOut, **error_responses(401, 404)},
    security=True,
)
async def retrieve_file(request: web.Request) -> web.Response:
    service, user_id, record = await _get(request)
    return json_response(file_json(record, service.settings, user_id))


async def _update(request: web.Request, *, partial: bool) -> web.Response:
    service = _service(request)
    user = await require_user(request)
    file_id = _file_id(request)
    body = await parse_body(request, FileUpdate if partial else FilePut)
    values = body.model_dump(exclude_unset=True, include={"title", "type", "description"})
    if "title" in values and values["title"] is None:
        raise InvalidRequest.fields({"title": ["This field may not be null."]})
    if "type" in values and values["type"] is None:
        raise InvalidRequest.fields({"type": ["This field may not be null."]})
    record = await service.update(user.id, file_id, values)
    if record is None:
        raise NotFound(FILE_NOT_FOUND)
    return json_response(file_json(record, service.settings, user.id))


@operation(
    "PUT",
    f"{PREFIX}/{{file_id}}/",
    name="update_file",
    summary="Update a file's title, type and description",
    tag="files",
    body=FilePut,
    responses={200: FileOut, **error_responses(400, 401, 404, 415)},
    security=True,
)
async def update_file(request: web.Request) -> web.Response:
    return await _update(request, partial=False)


@operation(
    "PATCH",
    f"{PREFIX}/{{file_id}}/",
    name="partial_update_file",
    summary="Update a file's title, type or description",
    tag="files",
    body=FileUpdate,
    responses={200: FileOut, **error_responses(400, 401, 404, 415)},
    security=True,
)
async def partial_update_file(request: web.Request) -> web.Response:
    return await _update(request, partial=True)


@operation(
    "DELETE",
    f"{PREFIX}/{{file_id}}/",
    name="delete_file",
    summary="Soft delete a file (purged later by purge-deleted-files)",
    tag="files",
    responses={204: None, **error_responses(401, 404)},
    security=True,
)
async def delete_file(request: web.Request) -> web.Response:
    service = _service(request)
    user = await require_user(request)
    if not await service.soft_delete(user.id, _file_id(request)):
        raise NotFound(FILE_NOT_FOUND)
    return web.Response(status=204)


@operation(
    "POST",
    f"{PREFIX}/{{file_id}}/upload-ended/",
    name="file_upload_ended",
    summary="Check the uploaded bytes and mark the file ready (or reject and delete it)",
    tag="files",
    responses={200: FileOut, **error_responses(400, 401, 404, 502, 503)},
    security=True,
)
async def upload_ended(request: web.Request) -> web.Response:
    service = _service(request)
    user = await require_user(request)
    record = await service.upload_ended(user.id, _file_id(request))
    if record is None:
        raise NotFound(FILE_NOT_FOUND)
    return json_response(file_json(record, service.settings, user.id))
