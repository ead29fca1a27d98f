"""Egress output handling: validation, filename resolution, storage locations, redaction.

Mirrors ``livekit/egress`` ``pkg/config/output*.go`` and ``livekit/protocol`` ``egress/redact.go``:

* ``{room_name}``, ``{room_id}``, ``{time}`` (``2006-01-02T150405``) and ``{utc}``
  (``20060102150405`` + milliseconds) are replaced in file paths;
* an empty path, or one ending in ``/``, becomes ``<room_name>-<time><ext>``; a
  known wrong extension is replaced, a missing one appended;
* ``DEFAULT_FILETYPE`` is resolved when the pipeline starts: OGG when there is
  no video, MP4 otherwise (until then the filename has no extension);
* S3/GCP/Azure/AliOSS credentials are replaced by ``{access_key}``-style markers
  in the echoed request.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias, TypeVar
from urllib.parse import urlsplit

from livekit.protocol import egress as eg

from .twirp import TwirpError

_EXTENSIONS = {eg.EncodedFileType.MP4: ".mp4", eg.EncodedFileType.OGG: ".ogg"}
_EXTENSIONS[eg.EncodedFileType.MP3] = ".mp3"
_KNOWN_EXTENSIONS = {".mp4", ".ogg", ".mp3", ".ts", ".webm", ".m3u8", ".jpeg", ".jpg", ".png"}


def invalid(field: str) -> TwirpError:
    """egress ``ErrInvalidInput(field)``."""
    return TwirpError("invalid_argument", f"request has missing or invalid field: {field}")


def clean_path(filepath: str) -> str:
    """egress ``clean``: normalise, strip leading ``../``, keep a trailing ``/``."""
    trailing = filepath.endswith("/")
    cleaned = posixpath.normpath(filepath) if filepath else ""
    while cleaned.startswith("../"):
        cleaned = cleaned[3:]
    if cleaned in ("", ".", ".."):
        return ""
    return cleaned + "/" if trailing and not cleaned.endswith("/") else cleaned


def replacements(room_name: str, room_id: str, now: datetime) -> dict[str, str]:
    """The filename template values at ``now``."""
    utc = now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"
    return {
        "{room_name}": room_name,
        "{room_id}": room_id,
        "{time}": now.strftime("%Y-%m-%dT%H%M%S"),
        "{utc}": utc,
    }


def apply_template(filepath: str, values: dict[str, str]) -> str:
    """Replace every template placeholder in ``filepath``."""
    for placeholder, value in values.items():
        filepath = filepath.replace(placeholder, value)
    return filepath


def resolve_filename(
    filepath: str, file_type: eg.EncodedFileType, identifier: str, now: datetime
) -> str:
    """egress ``updateFilepath`` for an already template-replaced ``filepath``."""
    ext = _EXTENSIONS.get(file_type, ".mp4")
    if not filepath or filepath.endswith("/"):
        return f"{filepath}{identifier}-{now.strftime('%Y-%m-%dT%H%M%S')}{ext}"
    if filepath.endswith(ext):
        return filepath
    dot = filepath.rfind(".")
    if dot > -1 and filepath[dot:] in _KNOWN_EXTENSIONS:
        filepath = filepath[:dot]
    return filepath + ext


def location(output: eg.EncodedFileOutput | eg.SegmentedFileOutput, key: str) -> str:
    """The URL an uploaded object would have (``livekit/storage`` rules), or ``key``
    itself for a local file."""
    kind = output.WhichOneof("output")
    if kind == "s3":
        s3 = output.s3
        if not s3.endpoint:
            return f"https://{s3.bucket}.s3.amazonaws.com/{key}"
        parts = urlsplit(s3.endpoint if "://" in s3.endpoint else f"https://{s3.endpoint}")
        if s3.force_path_style:
            return f"{parts.scheme}://{parts.netloc}/{s3.bucket}/{key}"
        return f"{parts.scheme}://{s3.bucket}.{parts.netloc}/{key}"
    if kind == "gcp":
        return f"https://{output.gcp.bucket}.storage.googleapis.com/{key}"
    if kind == "azure":
        az = output.azure
        return f"https://{az.account_name}.blob.core.windows.net/{az.container_name}/{key}"
    if kind == "aliOSS":
        return f"https://{output.aliOSS.bucket}.{output.aliOSS.endpoint}/{key}"
    return key


def _redact(value: str, marker: str) -> str:
    return marker if value else ""


def redact_upload(output: eg.EncodedFileOutput | eg.SegmentedFileOutput) -> None:
    """protocol ``RedactUpload``, in place (including its session-token quirk: the
    session token is blanked or marked according to ``assume_role_external_id``)."""
    kind = output.WhichOneof("output")
    if kind == "s3":
        s3 = output.s3
        s3.access_key = _redact(s3.access_key, "{access_key}")
        s3.secret = _redact(s3.secret, "{secret}")
        s3.session_token = _redact(s3.assume_role_external_id, "{session_token}")
        s3.assume_role_external_id = _redact(s3.assume_role_external_id, "{external_id}")
    elif kind == "gcp":
        output.gcp.credentials = _redact(output.gcp.credentials, "{credentials}")
    elif kind == "azure":
        output.azure.account_name = _redact(output.azure.account_name, "{account_name}")
        output.azure.account_key = _redact(output.azure.account_key, "{account_key}")
    elif kind == "aliOSS":
        output.aliOSS.access_key = _redact(output.aliOSS.access_key, "{access_key}")
        output.aliOSS.secret = _redact(output.aliOSS.secret, "{secret}")


@dataclass
class FilePlan:
    """A file output as planned at start: the template-replaced path and its request."""

    output: eg.EncodedFileOutput
    filepath: str
    identifier: str
    resolved: str | None = None

    @property
    def known_type(self) -> bool:
        """True when the request named the file type (resolved at start)."""
        return self.output.file_type != eg.EncodedFileType.DEFAULT_FILETYPE

    def resolve(self, has_video: bool, now: datetime) -> str:
        """The storage filename, computed once (at start for an explicit file type,
        when the pipeline starts for ``DEFAULT_FILETYPE``)."""
        if self.resolved is None:
            file_type = self.output.file_type
            if not self.known_type:
                file_type = eg.EncodedFileType.MP4 if has_video else eg.EncodedFileType.OGG
            self.resolved = resolve_filename(self.filepath, file_type, self.identifier, now)
        return self.resolved


Composite: TypeAlias = eg.RoomCompositeEgressRequest | eg.TrackCompositeEgressRequest


def plan_outputs(
    req: Composite, room_name: str, room_id: str, now: datetime
) -> tuple[list[FilePlan], int]:
    """Validate the encoded outputs of ``req`` (egress ``updateEncodedOutputs``) and
    return the file plans plus the total number of outputs."""
    files = list(req.file_outputs)
    if len(files) > 1:
        raise invalid("multiple file outputs")
    legacy = req.WhichOneof("output")
    if not files and legacy == "file":
        files = [req.file]
    streams = list(req.stream_outputs) or ([req.stream] if legacy == "stream" else [])
    if len(req.stream_outputs) > 1:
        raise invalid("multiple stream outputs")
    segments = list(req.segment_outputs) or ([req.segments] if legacy == "segments" else [])
    if len(req.segment_outputs) > 1:
        raise invalid("multiple segmented file outputs")
    values = replacements(room_name, room_id, now)
    plans = [FilePlan(f, apply_template(clean_path(f.filepath), values), room_name) for f in files]
    count = len(plans) + sum(len(s.urls) for s in streams) + len(segments)
    count += len(req.image_outputs)
    if count == 0:
        raise invalid("output")
    return plans, count


R = TypeVar("R", eg.RoomCompositeEgressRequest, eg.TrackCompositeEgressRequest)


def redacted_copy(req: R) -> R:
    """A copy of ``req`` with upload credentials redacted (protocol ``RedactEncodedOutputs``)."""
    out = type(req)()
    out.CopyFrom(req)
    if len(out.file_outputs) == 1:
        redact_upload(out.file_outputs[0])
    if len(out.segment_outputs) == 1:
        redact_upload(out.segment_outputs[0])
    legacy = out.WhichOneof("output")
    if legacy == "file":
        redact_upload(out.file)
    elif legacy == "segments":
        redact_upload(out.segments)
    return out
