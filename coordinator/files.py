"""User uploads (reference §2.8): background images stored in the bucket.

The web app's flow: ``POST /files/`` creates a pending row and answers a presigned PUT to the
temporary key ``<FILE_UPLOAD_TMP_PATH>/<id><.ext>``; the browser PUTs the bytes there; then
``upload-ended`` claims the row (``pending`` → ``analyzing``, one conditional UPDATE, so a
second concurrent call is refused), copies the object to its final key
``<FILE_UPLOAD_PATH>/<id><.ext>`` (later writes to the temporary key, the presigned URL cannot be
revoked, are ignored), reads its size and first 2 KiB, sniffs the type from the magic numbers
and the extension and, within the limits, marks it ``ready`` (fixing the stored
``Content-Type``); outside them the file is soft and hard deleted with its objects and the call
is a 400. Any other failure puts the row back to ``pending`` (the caller may retry).
"""

from __future__ import annotations

import logging
import mimetypes
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from os.path import splitext
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from coordinator.errors import CoordinatorError, InvalidRequest, PermissionDenied, Unavailable
from coordinator.object_storage import NOT_CONFIGURED, ObjectMissing, ObjectStorage
from coordinator.settings import FileRestriction, FileSettings
from storage import files as queries
from storage.engine import SessionMaker
from storage.files import FileFilters, FileRecord, Ordering
from storage.models import utcnow
from storage.records import Page

_log = logging.getLogger(__name__)

SNIFF_BYTES = 2048
NOT_PENDING = {"file": "This action is only available for files in PENDING state."}
NOT_UPLOADED = {"file": "The file has not been uploaded."}
EXTENSION_NOT_ALLOWED = {"filename": ["This file extension is not allowed."]}
ID_EXISTS = {"id": ["A file with this ID already exists. You cannot override it."]}
QUOTA_REACHED = "You have reached the maximum number of files for this type."
SIZE_EXCEEDED = "The file size is higher than the allowed max size."
TYPE_NOT_ALLOWED = "The file type is not allowed."
UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
#: Only a plain extension goes into a storage key (a filename's other bytes never do).
_KEY_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,16}")


# ------------------------------------------------------------------ mimetype sniffing
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"MZ", 0, "application/x-dosexec"),
    (b"\x7fELF", 0, "application/x-executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "application/x-ole-storage"),
    (b"\x1f\x8b", 0, "application/gzip"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"\x00\x00\x01\x00", 0, "image/vnd.microsoft.icon"),
)
_GENERIC = {
    "application/octet-stream",
    "application/x-ole-storage",
    "application/zip",
    "text/plain",
}


def _sniff_content(head: bytes) -> str:
    if not head:
        return "application/x-empty"
    for magic, offset, mimetype in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return mimetype
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    text = head.lstrip().lower()
    if text.startswith(b"<?xml"):
        return "text/xml"
    if text.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    if text.startswith(b"<svg"):
        return "image/svg+xml"
    try:
        # A cut in the middle of a multi-byte character at the end is still text.
        head.decode("utf-8") if len(head) < SNIFF_BYTES else head[:-3].decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    if any(byte < 0x20 and byte not in b"\t\n\r\f\x1b" for byte in head):
        return "application/octet-stream"
    return "text/plain"


def detect_mimetype(head: bytes, filename: str | None = None) -> str:
    """Magic numbers first; the extension only refines a generic answer (Meet's rule)."""
    from_content = _sniff_content(head)
    from_extension = mimetypes.guess_type(filename, strict=False)[0] if filename else None
    if from_content in _GENERIC and from_extension:
        return from_extension
    return from_content


# ------------------------------------------------------------------ keys and abilities
def key_extension(filename: str) -> str:
    extension = splitext(filename)[1]
    return extension if _KEY_EXTENSION.fullmatch(extension) else ""


def file_key(settings: FileSettings, record: FileRecord) -> str:
    return f"{settings.upload_path}/{record.id}{key_extension(record.filename)}"


def temporary_key(settings: FileSettings, record: FileRecord) -> str:
    return f"{settings.upload_tmp_path}/{record.id}{key_extension(record.filename)}"


def file_abilities(record: FileRecord, user_id: uuid.UUID | None) -> dict[str, bool]:
    """Meet's File abilities: everything is the creator's; a deleted file only hard-deletes."""
    is_creator = user_id is not None and record.creator is not None and record.creator.id == user_id
    live = is_creator and record.deleted_at is None
    return {
        "destroy": live,
        "hard_delete": is_creator,
        "media_auth": live,
        "partial_update": live,
        "retrieve": is_creator,
        "update": live,
        "upload_ended": live,
    }


def file_url(settings: FileSettings, record: FileRecord) -> str | None:
    if record.upload_state != "ready":
        return None
    return f"{settings.media_base_url}/media/{quote(file_key(settings, record))}"


def media_path_pattern(settings: FileSettings) -> re.Pattern[str]:
    return re.compile(
        rf"/media/(?P<key>{re.escape(settings.upload_path)}/(?P<pk>{UUID_PATTERN})"
        r"(?:\.[A-Za-z0-9]{1,16})?)$"
    )


class FileRejected(InvalidRequest):
    """Over the size limit or of a type not allowed: the file was deleted."""


@dataclass(frozen=True, slots=True)
class CreatedFile:
    record: FileRecord
    policy: str


class FileService:
    """The files' use cases; SQL in ``storage.files``, bytes in :class:`ObjectStorage`."""

    def __init__(
        self, settings: FileSettings, sessionmaker: SessionMaker, storage: ObjectStorage
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.storage = storage

    def _limits(self, file_type: str) -> FileRestriction | None:
        if not self.settings.apply_restrictions:
            return None
        return self.settings.restrictions.get(file_type)

    async def create(
        self,
        user_id: uuid.UUID,
        *,
        file_type: str,
        filename: str,
        title: str | None,
        description: str | None,
        file_id: uuid.UUID | None,
    ) -> CreatedFile:
        if not self.storage.configured:
            raise Unavailable(NOT_CONFIGURED)
        root, extension = splitext(filename)
        limits = self._limits(file_type)
        if limits is not None and extension.lower() not in limits.allowed_extensions:
            _log.info("create file: extension not allowed")
            raise InvalidRequest.fields(EXTENSION_NOT_ALLOWED)
        new_id = file_id or uuid.uuid4()
        async with self.sessionmaker.begin() as session:
            if file_id is not None and await queries.file_exists(session, file_id):
                raise InvalidRequest.fields(ID_EXISTS)
            try:
                record = await queries.create_file(
                    session,
                    file_id=new_id,
                    creator_id=user_id,
                    file_type=file_type,
                    title=title or root,
                    filename=filename,
                    description=description,
                    max_count=limits.max_count_by_user if limits is not None else None,
                )
            except queries.DuplicateFileId:
                raise InvalidRequest.fields(ID_EXISTS) from None
            if record is None:
                _log.info("create file: user reached the maximum for %s", file_type)
                raise PermissionDenied(QUOTA_REACHED)
        policy = await self.storage.presigned_put_url(
            temporary_key(self.settings, record), self.settings.upload_policy_expiration
        )
        return CreatedFile(record, policy)

    async def get(self, user_id: uuid.UUID, file_id: uuid.UUID) -> FileRecord | None:
        """The caller's own live file (deleted or others' files are None: a 404)."""
        async with self.sessionmaker() as session:
            record = await queries.get_file(session, file_id, creator_id=user_id)
        if record is None or record.deleted_at is not None:
            return None
        return record

    async def list(
        self,
        user_id: uuid.UUID,
        filters: FileFilters,
        ordering: list[tuple[Ordering, bool]],
        *,
        offset: int,
        limit: int,
    ) -> Page[FileRecord]:
        async with self.sessionmaker() as session:
            return await queries.list_files(
                session, user_id, filters, ordering, offset=offset, limit=limit
            )

    async def update(
        self, user_id: uuid.UUID, file_id: uuid.UUID, values: dict[str, Any]
    ) -> FileRecord | None:
        async with self.sessionmaker.begin() as session:
            record = await queries.get_file(session, file_id, creator_id=user_id)
            if record is None or record.deleted_at is not None:
                return None
            await queries.update_file(session, file_id, **values)
            return await queries.get_file(session, file_id)

    async def soft_delete(self, user_id: uuid.UUID, file_id: uuid.UUID) -> bool:
        async with self.sessionmaker.begin() as session:
            record = await queries.get_file(session, file_id, creator_id=user_id)
            if record is None or record.deleted_at is not None:
                return False
            return await queries.soft_delete(session, file_id)

    async def upload_ended(self, user_id: uuid.UUID, file_id: uuid.UUID) -> FileRecord | None:
        """None when the caller has no such live file (404); see the module docstring."""
        async with self.sessionmaker.begin() as session:
            record = await queries.get_file(session, file_id, creator_id=user_id)
            if record is None or record.deleted_at is not None:
                return None
            if not await queries.claim_pending(session, file_id):
                raise InvalidRequest(body=NOT_PENDING)
        try:
            return await self._analyse(record)
        except FileRejected:
            raise  # the file and its objects are deleted
        except BaseException:
            await self._set_state(file_id, "pending")
            raise

    async def _set_state(self, file_id: uuid.UUID, state: str) -> None:
        async with self.sessionmaker.begin() as session:
            await queries.update_file(session, file_id, upload_state=state)

    async def _analyse(self, record: FileRecord) -> FileRecord:
        key = file_key(self.settings, record)
        try:
            await self.storage.copy(temporary_key(self.settings, record), key)
        except ObjectMissing:
            raise InvalidRequest(body=NOT_UPLOADED) from None
        head = await self.storage.head(key)
        first_bytes = await self.storage.read_start(key, SNIFF_BYTES) if head.size else b""
        mimetype = detect_mimetype(first_bytes, record.filename)
        limits = self._limits(record.type)
        rejection: str | None = None
        if limits is not None:
            if head.size > limits.max_size:
                _log.info("upload_ended: file size (%s) for file %s too big", head.size, key)
                rejection = SIZE_EXCEEDED
            elif mimetype not in limits.allowed_mimetypes:
                _log.warning("upload_ended: mimetype not allowed %s for file %s", mimetype, key)
                rejection = TYPE_NOT_ALLOWED
        if rejection is not None:
            async with self.sessionmaker.begin() as session:
                await queries.mark_deleted(session, record.id)
            await self._purge(record)  # the row stays hard-deleted if the bucket fails now
            raise FileRejected(rejection)
        async with self.sessionmaker.begin() as session:
            await queries.update_file(
                session, record.id, upload_state="ready", mimetype=mimetype, size=head.size
            )
            ready = await queries.get_file(session, record.id)
        if head.content_type != mimetype:
            _log.info("upload_ended: content type mismatch, updating to %s", mimetype)
            await self.storage.copy(key, key, content_type=mimetype, metadata=head.metadata)
        assert ready is not None
        return ready

    async def _delete_objects(self, record: FileRecord) -> bool:
        """Best effort: False when the bucket could not be reached (the purge retries)."""
        try:
            await self.storage.delete(file_key(self.settings, record))
            await self.storage.delete(temporary_key(self.settings, record))
        except CoordinatorError:
            _log.warning("could not delete the objects of file %s", record.id)
            return False
        return True

    async def media_auth(self, user_id: uuid.UUID, original_url: str | None) -> dict[str, str]:
        """The S3 headers letting the proxy GET ``original_url``; 403 for anything else."""
        if not original_url:
            raise PermissionDenied()
        match = media_path_pattern(self.settings).search(unquote(urlsplit(original_url).path))
        if match is None:
            raise PermissionDenied()
        async with self.sessionmaker() as session:
            record = await queries.get_file(session, uuid.UUID(match["pk"]))
        if record is None or not file_abilities(record, user_id)["media_auth"]:
            raise PermissionDenied()
        if record.upload_state != "ready" or match["key"] != file_key(self.settings, record):
            raise PermissionDenied()
        return self.storage.media_auth_headers(match["key"])

    # -------------------------------------------------------------- commands
    async def _purge(self, record: FileRecord) -> bool:
        if not await self._delete_objects(record):
            return False
        async with self.sessionmaker.begin() as session:
            await queries.delete_row(session, record.id)
        return True

    async def clean_pending(self, hours: int, now: datetime | None = None) -> int:
        """Delete (row and objects) the files pending for more than ``hours``."""
        before = (now or utcnow()) - timedelta(hours=hours)
        async with self.sessionmaker() as session:
            stale = await queries.stale_pending(session, before)
        count = 0
        for record in stale:
            async with self.sessionmaker.begin() as session:
                await queries.mark_deleted(session, record.id)
            count += await self._purge(record)
        return count

    async def purge_deleted(self, now: datetime | None = None) -> int:
        """Remove hard-deleted files and files soft-deleted FILE_PURGE_GRACE_DAYS ago."""
        before = (now or utcnow()) - timedelta(days=self.settings.purge_grace_days)
        async with self.sessionmaker() as session:
            records = await queries.purgeable(session, before)
        count = 0
        for record in records:
            async with self.sessionmaker.begin() as session:
                await queries.mark_deleted(session, record.id)
            count += await self._purge(record)
        return count
