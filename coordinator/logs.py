"""Log lines: one JSON object a line (``LOG_FORMAT=json``) or text for humans, never a secret.

Structured fields travel in ``extra={"fields": {...}}``; the current request id
(:data:`coordinator.telemetry.REQUEST_ID`) is added to every line logged while one is set.
Every line (message, fields, traceback) goes through :func:`scrub`, a last line of defence:
JWTs, ``Bearer``/``Basic`` credentials, the session and CSRF cookies and credential-like query
parameters (OIDC ``code``/``state``, tokens, S3 signatures) are replaced by ``[redacted]``.
The sources avoid logging them in the first place (no headers, no query strings of the login
routes, SQL parameters hidden). aiosqlite's DEBUG lines carry SQL parameters, so that logger
never goes below INFO.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

from coordinator.telemetry import REQUEST_ID

REDACTED = "[redacted]"
LOG_FORMATS = ("auto", "json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Loggers whose DEBUG output holds SQL parameters or raw protocol data.
_NEVER_DEBUG = ("aiosqlite", "asyncpg")
_CREDENTIAL_NAMES = (
    r"code|state|session_state|token|access_token|id_token|refresh_token|password|passwd|"
    r"secret|client_secret|api_key|apikey|key|signature|sig|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|sessionid|csrftoken|csrfmiddlewaretoken"
)
_PATTERNS = (
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s,;\"']+"), rf"\1\2{REDACTED}"),
    (re.compile(rf"(?i)([?&;]\s*(?:{_CREDENTIAL_NAMES})=)[^&#\s\"';]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(sessionid|csrftoken)=[^;\s\"',&]+"), rf"\1={REDACTED}"),
)


def scrub(text: str) -> str:
    """``text`` with credentials replaced by ``[redacted]`` (see the module docstring)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub_value(value: Any) -> Any:
    """:func:`scrub` applied to every string inside ``value`` (dicts, lists, tuples)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value


# Fields of every line of this process: a supervised worker's index and pid (configure_logging).
PROCESS_FIELDS: dict[str, Any] = {}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(PROCESS_FIELDS)
    request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
    if request_id:
        fields["request_id"] = request_id
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        fields.update(extra)
    return fields


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...fields, "exc"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(scrub_value(line), default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...``, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if fields:
            pairs = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
            head, newline, rest = text.partition("\n")
            text = f"{head} {pairs}{newline}{rest}"
        return scrub(text)


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=\n') else text


def formatter_for(log_format: str, stream: IO[str] | None = None) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT``; ``auto`` is JSON unless ``stream`` is a terminal."""
    if log_format == "auto":
        isatty = getattr(stream or sys.stderr, "isatty", None)
        log_format = "text" if callable(isatty) and isatty() else "json"
    return TextFormatter() if log_format == "text" else JsonFormatter()


def configure_logging(
    log_format: str = "auto", level: str = "INFO", *, worker: int | None = None
) -> logging.Handler:
    """One stderr handler on the root logger with the chosen format and level; ``worker``: a
    supervised worker's index, written with its pid on every line (``worker=1 pid=…``)."""
    PROCESS_FIELDS.clear()
    if worker is not None:
        PROCESS_FIELDS.update(worker=worker, pid=os.getpid())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(log_format, sys.stderr))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    guard_secret_loggers()
    return handler


def guard_secret_loggers() -> None:
    """Loggers whose DEBUG lines carry SQL parameters stay at INFO or above."""
    for name in _NEVER_DEBUG:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def is_json_format(log_format: str, stream: IO[str] | None = None) -> bool:
    return isinstance(formatter_for(log_format, stream), JsonFormatter)


__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REDACTED",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "formatter_for",
    "guard_secret_loggers",
    "is_json_format",
    "scrub",
    "scrub_value",
]
