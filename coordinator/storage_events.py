"""Bucket notifications for ``POST /api/v1.0/recordings/storage-hook/`` (contract §4.6).

Pure functions, no I/O. The payload is an S3 event notification::

    {"Records": [{"s3": {"bucket": {"name": "<bucket>"},
                         "object": {"key": "recordings%2F<uuid>.ogg",
                                    "contentType": "audio/ogg"}}}]}

Only the first record counts. Two parsers (setting RECORDING_EVENT_PARSER_CLASS):

* ``minio`` (Meet's default, ``core.recording.event.parsers.MinioParser``): the key arrives
  URL-encoded (``/`` as ``%2F``) and ``contentType`` is required.
* ``s3`` (``core.recording.event.parsers.S3Parser``): ``contentType`` is not read; the type is
  guessed from the key's extension, and the key is URL-encoded first, keeping existing
  ``%xx`` escapes and ``+`` (AWS sends keys form-encoded but with raw ``/``).

Outcome of :func:`parse_storage_event`, in the contract's order:

1. empty or malformed payload (anything but the shape above with string fields)
   → :class:`InvalidStorageEvent` ``"Invalid request data."`` (403);
2. bucket ≠ AWS_STORAGE_BUCKET_NAME → :class:`InvalidStorageEvent`
   ``"Invalid bucket specified."`` (403);
3. type not ``audio/ogg`` / ``video/mp4`` → :class:`Ignored` (200 "Notification ignored.");
4. key not ``[<encoded folders>%2F]<RECORDING_OUTPUT_FOLDER>%2F<uuid>.<ext>`` (whole key)
   → :class:`Ignored`;
5. otherwise :class:`RecordingFile`.

No other exception escapes, whatever JSON value comes in. :func:`check_storage_hook_auth`
is the endpoint's bearer-token check.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, Literal, TypeAlias
from urllib.parse import quote
from uuid import UUID

from coordinator.errors import ConfigurationError, NotAuthenticated, PermissionDenied
from coordinator.settings import Secret

__all__ = [
    "ALLOWED_CONTENT_TYPES",
    "IGNORED_MESSAGE",
    "INVALID_BUCKET_MESSAGE",
    "INVALID_DATA_MESSAGE",
    "PROCESSED_MESSAGE",
    "RECORDING_NOT_FOUND_MESSAGE",
    "STORAGE_EVENT_REALM",
    "Ignored",
    "InvalidStorageEvent",
    "ParserName",
    "RecordingFile",
    "StorageEventConfig",
    "StorageHookAuth",
    "StorageHookUnauthorized",
    "StorageOutcome",
    "check_storage_hook_auth",
    "encode_s3_key",
    "not_savable_message",
    "outcome_body",
    "parse_parser_name",
    "parse_storage_event",
    "parse_storage_event_body",
]

INVALID_DATA_MESSAGE: Final = "Invalid request data."
INVALID_BUCKET_MESSAGE: Final = "Invalid bucket specified."
IGNORED_MESSAGE: Final = "Notification ignored."
PROCESSED_MESSAGE: Final = "Event processed."
RECORDING_NOT_FOUND_MESSAGE: Final = "No recording found for this event."
TOKEN_NOT_CONFIGURED_MESSAGE: Final = "Authentication is enabled but token is not configured."
MISSING_HEADER_MESSAGE: Final = "Authorization header is required"
BAD_HEADER_MESSAGE: Final = "Invalid authorization header format."
BAD_TOKEN_MESSAGE: Final = "Invalid token"
STORAGE_EVENT_REALM: Final = "Storage event API"

ALLOWED_CONTENT_TYPES: Final = frozenset({"audio/ogg", "video/mp4"})
_TYPES_BY_EXTENSION: Final = {"ogg": "audio/ogg", "mp4": "video/mp4"}

ParserName: TypeAlias = Literal["minio", "s3"]
_PARSER_NAMES: Final[dict[str, ParserName]] = {
    "minio": "minio",
    "s3": "s3",
    "core.recording.event.parsers.minioparser": "minio",
    "core.recording.event.parsers.s3parser": "s3",
}

_UUID = r"[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}"
_EXTENSION = r"[a-zA-Z0-9]{1,10}"
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


class InvalidStorageEvent(PermissionDenied):
    """403 ``{"detail": message}``: malformed payload or foreign bucket."""


class StorageHookUnauthorized(NotAuthenticated):
    """401 ``{"detail": message}``; answer with ``WWW-Authenticate: <www_authenticate>``."""

    www_authenticate: ClassVar[str] = f"Bearer realm='{STORAGE_EVENT_REALM}'"


@dataclass(frozen=True, slots=True)
class Ignored:
    """Answer 200 ``{"message": message}``: not a recording upload (other files are harmless)."""

    message: str = IGNORED_MESSAGE


@dataclass(frozen=True, slots=True)
class RecordingFile:
    """The recording ``recording_id`` was written as ``<folder>/<id>.<extension>``.

    ``extension`` is as found in the key (not lower-cased); the caller looks the recording
    up (404 "No recording found for this event." when unknown) and completes it.
    """

    recording_id: UUID
    extension: str


StorageOutcome: TypeAlias = Ignored | RecordingFile


@dataclass(frozen=True, slots=True)
class StorageEventConfig:
    """Env: AWS_STORAGE_BUCKET_NAME, RECORDING_OUTPUT_FOLDER, RECORDING_EVENT_PARSER_CLASS."""

    bucket: str
    output_folder: str = "recordings"
    parser: ParserName = "minio"


@dataclass(frozen=True, slots=True)
class StorageHookAuth:
    """Env: RECORDING_ENABLE_STORAGE_EVENT_AUTH (default true), RECORDING_STORAGE_EVENT_TOKEN."""

    enabled: bool = True
    token: Secret | None = None


def parse_parser_name(value: str) -> ParserName:
    """``minio``/``s3`` or Meet's class path (case-insensitive); raises ConfigurationError."""
    name = _PARSER_NAMES.get(value.strip().lower())
    if name is None:
        raise ConfigurationError(
            f"RECORDING_EVENT_PARSER_CLASS={value!r} is not supported: use minio, s3, "
            "core.recording.event.parsers.MinioParser or core.recording.event.parsers.S3Parser."
        )
    return name


def encode_s3_key(key: str) -> str:
    """URL-encode a raw S3 key like Meet's S3 parser: ``/`` → ``%2F``, keep ``%xx`` and ``+``.

    A ``%`` that does not start a valid escape is encoded (``%25``).
    """
    pieces: list[str] = []
    position = 0
    for escape in _ESCAPE.finditer(key):
        pieces.append(_quote_raw(key[position : escape.start()]))
        pieces.append(escape.group())
        position = escape.end()
    pieces.append(_quote_raw(key[position:]))
    return "".join(pieces)


def _quote_raw(text: str) -> str:
    return quote(text.encode("utf-8", errors="surrogatepass"), safe="+")


def _key_pattern(output_folder: str) -> re.Pattern[str]:
    folder = re.escape(quote(output_folder, safe=""))
    return re.compile(
        rf"(?:[^%]+%2F)*{folder}%2F(?P<recording_id>{_UUID})\.(?P<extension>{_EXTENSION})"
    )


def _invalid_data() -> InvalidStorageEvent:
    return InvalidStorageEvent(INVALID_DATA_MESSAGE)


@dataclass(frozen=True, slots=True)
class _Event:
    bucket: str
    key: str
    content_type: str | None


def _field(mapping: object, name: str) -> object:
    if not isinstance(mapping, dict) or name not in mapping:
        raise _invalid_data()
    return mapping[name]


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _invalid_data()
    return value


def _extract(data: object, parser: ParserName) -> _Event:
    if not data:
        raise _invalid_data()
    records = _field(data, "Records")
    if not isinstance(records, list) or not records:
        raise _invalid_data()
    s3 = _field(records[0], "s3")
    bucket = _string(_field(_field(s3, "bucket"), "name"))
    file_object = _field(s3, "object")
    key = _string(_field(file_object, "key"))
    if parser == "minio":
        return _Event(bucket, key, _string(_field(file_object, "contentType")))
    return _Event(bucket, encode_s3_key(key), None)


def _guess_type(encoded_key: str) -> str | None:
    _, dot, extension = encoded_key.rpartition(".")
    return _TYPES_BY_EXTENSION.get(extension.lower()) if dot else None


def parse_storage_event(data: object, config: StorageEventConfig) -> StorageOutcome:
    """Classify a decoded JSON notification (see the module docstring for the rules).

    Raises only :class:`InvalidStorageEvent`.
    """
    event = _extract(data, config.parser)
    if event.bucket != config.bucket:
        raise InvalidStorageEvent(INVALID_BUCKET_MESSAGE)
    content_type = event.content_type if config.parser == "minio" else _guess_type(event.key)
    if content_type not in ALLOWED_CONTENT_TYPES:
        return Ignored()
    match = _key_pattern(config.output_folder).fullmatch(event.key)
    if match is None:
        return Ignored()
    return RecordingFile(UUID(match["recording_id"]), match["extension"])


def parse_storage_event_body(body: bytes, config: StorageEventConfig) -> StorageOutcome:
    """:func:`parse_storage_event` on a raw request body; undecodable JSON is invalid data."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise _invalid_data() from None
    return parse_storage_event(data, config)


def check_storage_hook_auth(authorization: str | None, auth: StorageHookAuth) -> None:
    """Accept or raise :class:`StorageHookUnauthorized` (401) for the ``Authorization`` header.

    Auth disabled → every request passes. Enabled without a token → "Authentication is
    enabled but token is not configured.". Otherwise the header must be ``Bearer <token>``:
    scheme case-insensitive, surrounding and separating whitespace tolerated, token compared
    in constant time.
    """
    if not auth.enabled:
        return
    if auth.token is None or not auth.token:
        raise StorageHookUnauthorized(TOKEN_NOT_CONFIGURED_MESSAGE)
    if not authorization or not authorization.strip():
        raise StorageHookUnauthorized(MISSING_HEADER_MESSAGE)
    parts = authorization.strip().split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise StorageHookUnauthorized(BAD_HEADER_MESSAGE)
    supplied = parts[1].strip().encode("utf-8", errors="surrogatepass")
    expected = auth.token.get().encode("utf-8", errors="surrogatepass")
    if not hmac.compare_digest(supplied, expected):
        raise StorageHookUnauthorized(BAD_TOKEN_MESSAGE)


def outcome_body(outcome: StorageOutcome) -> Mapping[str, str]:
    """The 200 body: ``{"message": "Notification ignored."}`` or ``"Event processed."``."""
    if isinstance(outcome, Ignored):
        return {"message": outcome.message}
    return {"message": PROCESSED_MESSAGE}


def not_savable_message(recording_id: UUID) -> str:
    """The 403 detail when the recording is not active/stopped (contract wording)."""
    return (
        f"Recording with ID {recording_id} cannot be saved because it is either, "
        "in an error state or has already been saved."
    )
