"""The log formatters, the last-line scrubber, request ids and the logging settings."""

from __future__ import annotations

import io
import json
import logging

import pytest

from coordinator.errors import ConfigurationError
from coordinator.logs import JsonFormatter, TextFormatter, formatter_for, scrub
from coordinator.settings import Settings
from coordinator.telemetry import REQUEST_ID, valid_request_id

BASE_ENV = {"SECRET_KEY": "k" * 40, "LIVEKIT_API_SECRET": "s" * 40}


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi_123", "abc.def-ghi_123"),
        ("basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln here", "eyJzdWIiOiJ4In0"),
        ("GET /api/v1.0/callback/?code=C0DE123&state=ST4TE", "C0DE123"),
        ("GET /api/v1.0/callback/?code=C0DE123&state=ST4TE", "ST4TE"),
        ("https://s3/x?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA", "deadbeef"),
        ("Cookie: sessionid=s3ss10n; csrftoken=csrfv4lue", "s3ss10n"),
        ("Cookie: sessionid=s3ss10n; csrftoken=csrfv4lue", "csrfv4lue"),
    ],
)
def test_scrub_redacts_credentials(text: str, secret: str) -> None:
    assert secret not in scrub(text)
    assert "[redacted]" in scrub(text)


def test_scrub_keeps_ordinary_text() -> None:
    text = "GET /api/v1.0/rooms/abc-defg-hij/?page=2 took 12 ms"
    assert scrub(text) == text


def record(message: str, **extra: object) -> logging.LogRecord:
    result = logging.makeLogRecord({"name": "meet.test", "levelname": "INFO", "msg": message})
    for key, value in extra.items():
        setattr(result, key, value)
    return result


def test_json_lines_carry_fields_and_the_current_request_id() -> None:
    token = REQUEST_ID.set("req-1")
    try:
        line = json.loads(JsonFormatter().format(record("hello", fields={"room": "r1"})))
    finally:
        REQUEST_ID.reset(token)
    assert line["message"] == "hello" and line["room"] == "r1" and line["request_id"] == "req-1"
    assert line["logger"] == "meet.test" and line["level"] == "INFO" and "ts" in line
    try:
        raise ValueError("bad Bearer secret-value-1")
    except ValueError:
        import sys

        failing = record("failed")
        failing.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(failing))
    assert "ValueError" in line["exc"] and "secret-value-1" not in line["exc"]


def test_text_lines_are_for_humans() -> None:
    text = TextFormatter().format(record("hello", fields={"room": "r 1", "n": 2}))
    assert text.endswith('hello room="r 1" n=2')


def test_auto_format_is_text_on_a_terminal_only() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(formatter_for("auto", Terminal()), TextFormatter)
    assert isinstance(formatter_for("auto", io.StringIO()), JsonFormatter)
    assert isinstance(formatter_for("text", io.StringIO()), TextFormatter)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc-123", "abc-123"),
        ("a" * 128, "a" * 128),
        ("a" * 129, None),
        ("", None),
        ("two words", None),
        ("x\r\ny", None),
        ("café", None),
        (None, None),
    ],
)
def test_request_ids_are_bounded_and_safe(value: str | None, expected: str | None) -> None:
    assert valid_request_id(value) == expected


def test_logging_and_sentry_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            **BASE_ENV,
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "debug",
            "SENTRY_DSN": "https://key@sentry.example/1",
            "DJANGO_CONFIGURATION": "Staging",
            "PROMETHEUS_MULTIPROC_DIR": "/run/meet-metrics",
        }
    )
    assert settings.log_format == "text" and settings.log_level == "DEBUG"
    assert settings.sentry_dsn.get() == "https://key@sentry.example/1"
    assert "key@" not in repr(settings)
    assert settings.sentry_environment == "staging"
    assert settings.prometheus_multiproc_dir == "/run/meet-metrics"
    defaults = Settings.from_env(BASE_ENV)
    assert defaults.log_format == "auto" and defaults.log_level == "INFO"
    assert not defaults.sentry_dsn and defaults.sentry_environment == "production"
    for name, bad in (("LOG_FORMAT", "xml"), ("LOG_LEVEL", "loud")):
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_env({**BASE_ENV, name: bad})
