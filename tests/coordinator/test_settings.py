"""Configuration from the environment: Meet's names, clear errors, hidden secrets."""

from __future__ import annotations

import pytest

from coordinator.errors import ConfigurationError
from coordinator.settings import Settings, normalize_database_url
from coordinator.throttle import Rate, parse_rate

BASE = {"SECRET_KEY": "s" * 40, "LIVEKIT_API_SECRET": "l" * 40}


def test_defaults_follow_meet() -> None:
    settings = Settings.from_env(BASE)
    assert settings.resource_default_access_level == "public"
    assert settings.allow_unregistered_rooms is True
    assert settings.recording_enable is False
    assert settings.database_url == "sqlite+aiosqlite:///meet.db"
    assert settings.livekit.default_sources == (
        "camera",
        "microphone",
        "screen_share",
        "screen_share_audio",
    )


def test_meet_env_file_names_are_read() -> None:
    env = BASE | {
        "LIVEKIT_API_KEY": "key",
        "LIVEKIT_API_URL": "https://lk.example.com",
        "RESOURCE_DEFAULT_ACCESS_LEVEL": "restricted",
        "ALLOW_UNREGISTERED_ROOMS": "False",
        "RECORDING_ENABLE": "true",
        "OIDC_RP_CLIENT_ID": "meet",
        "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://idp/authorize",
        "OIDC_FALLBACK_TO_EMAIL_FOR_IDENTIFICATION": "1",
    }
    settings = Settings.from_env(env)
    assert settings.livekit.api_key == "key"
    assert settings.livekit.api_url == "https://lk.example.com"
    assert settings.resource_default_access_level == "restricted"
    assert settings.allow_unregistered_rooms is False
    assert settings.recording_enable is True
    assert settings.oidc.client_id == "meet"
    assert settings.oidc.audience == "meet"
    assert settings.oidc.fallback_to_email_for_identification is True


def test_recording_and_notification_variables_are_read() -> None:
    env = BASE | {
        "AWS_S3_ENDPOINT_URL": "http://minio:9000",
        "AWS_STORAGE_BUCKET_NAME": "meet-media-storage",
        "AWS_S3_ACCESS_KEY_ID": "meet",
        "AWS_S3_SECRET_ACCESS_KEY": "s3-secret-value",
        "RECORDING_EVENT_PARSER_CLASS": "core.recording.event.parsers.S3Parser",
        "RECORDING_STORAGE_EVENT_TOKEN": "hook-token",
        "SUMMARY_SERVICE_VERSION": "2",
        "SUMMARY_SERVICE_ENDPOINT": "http://summary/api/v2/async-jobs/transcribe/",
        "SUMMARY_SERVICE_API_TOKEN": "summary-token",
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": "587",
        "EMAIL_USE_TLS": "true",
        "EMAIL_HOST_PASSWORD": "smtp-password",
        "SCREEN_RECORDING_BASE_URL": "https://meet/recording",
        "RECORDING_ENCODING_ENABLED": "true",
        "RECORDING_ENCODING_WIDTH": "1920",
    }
    settings = Settings.from_env(env)
    assert settings.s3.endpoint_url == "http://minio:9000"
    assert settings.s3.bucket == "meet-media-storage" and settings.s3.configured
    assert settings.s3.secret_key.get() == "s3-secret-value"
    assert settings.recording_event_parser == "s3"
    assert settings.recording_storage_event_token.get() == "hook-token"
    assert settings.summary.version == 2 and settings.summary.api_token.get() == "summary-token"
    assert settings.email.host == "smtp.example.com" and settings.email.port == 587
    assert settings.email.use_tls is True
    assert settings.recording_download_base_url == "https://meet/recording"
    assert settings.encoding.enabled and settings.encoding.width == 1920
    text = repr(settings)
    for secret in ("s3-secret-value", "hook-token", "summary-token", "smtp-password"):
        assert secret not in text


def test_django_secret_key_is_accepted() -> None:
    settings = Settings.from_env({"DJANGO_SECRET_KEY": "d" * 40, "LIVEKIT_API_SECRET": "l" * 40})
    assert settings.secret_key.get() == "d" * 40


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"LIVEKIT_API_SECRET": "l" * 40}, "SECRET_KEY"),
        ({"SECRET_KEY": "short", "LIVEKIT_API_SECRET": "l" * 40}, "SECRET_KEY"),
        ({"SECRET_KEY": "s" * 40}, "LIVEKIT_API_SECRET"),
        (BASE | {"RECORDING_ENABLE": "perhaps"}, "RECORDING_ENABLE"),
        (BASE | {"RESOURCE_DEFAULT_ACCESS_LEVEL": "open"}, "RESOURCE_DEFAULT_ACCESS_LEVEL"),
        (BASE | {"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        (BASE | {"ROOM_TELEPHONY_PIN_LENGTH": "3"}, "ROOM_TELEPHONY_PIN_LENGTH"),
        (BASE | {"LIVEKIT_DEFAULT_SOURCES": "camera,hologram"}, "LIVEKIT_DEFAULT_SOURCES"),
        (BASE | {"FRONTEND_CONFIGURATION": "{nope"}, "FRONTEND_CONFIGURATION"),
        (BASE | {"RECORDING_EXPIRATION_DAYS": "ten"}, "RECORDING_EXPIRATION_DAYS"),
        (BASE | {"MEET_ENGINE": "ray"}, "DATABASE_URL"),  # Ray mode refuses SQLite
        (BASE | {"MEET_ENGINE": "ray", "DB_ENGINE": "sqlite3"}, "DATABASE_URL"),
        (BASE | {"MEET_ENGINE": "grid"}, "MEET_ENGINE"),
        (BASE | {"RAY_HOSTS": "0"}, "RAY_HOSTS"),
        (BASE | {"RECORDING_EVENT_PARSER_CLASS": "xml"}, "RECORDING_EVENT_PARSER_CLASS"),
        (BASE | {"SUMMARY_SERVICE_VERSION": "two"}, "SUMMARY_SERVICE_VERSION"),
    ],
)
def test_misconfiguration_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///tmp/meet.db", "sqlite+aiosqlite:///tmp/meet.db"),
        ("sqlite+aiosqlite:///meet.db", "sqlite+aiosqlite:///meet.db"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_url_forms(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


def test_meet_db_variables() -> None:
    env = BASE | {
        "DB_ENGINE": "django.db.backends.postgresql_psycopg2",
        "DB_NAME": "meet",
        "DB_USER": "dinum",
        "DB_PASSWORD": "p@ss/word",
        "DB_HOST": "postgresql",
        "DB_PORT": "5433",
    }
    url = Settings.from_env(env).database_url
    assert url == "postgresql+asyncpg://dinum:p%40ss%2Fword@postgresql:5433/meet"


def test_secrets_never_show() -> None:
    env = BASE | {
        "OIDC_RP_CLIENT_SECRET": "oidc-very-secret",
        "DATABASE_URL": "postgresql://user:dbpassword@host/db",
    }
    settings = Settings.from_env(env)
    text = repr(settings) + str(settings)
    for secret in ("s" * 40, "l" * 40, "oidc-very-secret", "dbpassword"):
        assert secret not in text


def test_invalid_webhook_filter_regex_disables_the_filter() -> None:
    settings = Settings.from_env(BASE | {"LIVEKIT_WEBHOOK_EVENTS_FILTER_REGEX": "(["})
    assert settings.livekit.webhook_events_filter_regex is None


# -- throttle rates (Meet's REQUEST_ENTRY_THROTTLE_RATES / CREATION_CALLBACK_THROTTLE_RATES) ---


def test_throttle_rates_are_read_in_drf_syntax() -> None:
    defaults = Settings.from_env(BASE).throttles
    assert defaults.request_entry == Rate(150, 60.0)  # Meet's defaults
    assert defaults.creation_callback == Rate(600, 60.0)
    env = BASE | {
        "REQUEST_ENTRY_THROTTLE_RATES": "2/minute",
        "CREATION_CALLBACK_THROTTLE_RATES": "10/s",
        "REQUEST_ENTRY_NEW_PARTICIPANT_THROTTLE_RATES": "100/hour",
        "INVITE_THROTTLE_RATES": "1000/day",
        "INVITE_MAX_RECIPIENTS": "7",
    }
    throttles = Settings.from_env(env).throttles
    assert throttles.request_entry == Rate(2, 60.0)
    assert throttles.creation_callback == Rate(10, 1.0)
    assert throttles.request_entry_new_participant == Rate(100, 3600.0)
    assert throttles.invite == Rate(1000, 86400.0)
    assert throttles.invite_max_recipients == 7
    assert Settings.from_env(BASE | {"INVITE_THROTTLE_RATES": "none"}).throttles.invite is None
    blank = Settings.from_env(BASE | {"REQUEST_ENTRY_THROTTLE_RATES": " "}).throttles
    assert blank.request_entry == Rate(150, 60.0)  # blank is unset, as for other variables


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5/sec", Rate(5, 1.0)),
        ("5/Minutes", Rate(5, 60.0)),
        (" 7 / h ", Rate(7, 3600.0)),
        ("0/day", Rate(0, 86400.0)),
        ("None", None),
    ],
)
def test_parse_rate(value: str, expected: Rate | None) -> None:
    assert parse_rate(value) == expected


@pytest.mark.parametrize("value", ["150", "x/minute", "150/week", "150/", "-1/minute", "1.5/s"])
def test_bad_throttle_rates_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match="REQUEST_ENTRY_THROTTLE_RATES"):
        Settings.from_env(BASE | {"REQUEST_ENTRY_THROTTLE_RATES": value})


def test_ray_engine_settings() -> None:
    defaults = Settings.from_env(BASE)
    assert (defaults.engine, defaults.ray_address, defaults.ray_namespace) == (
        "local",
        None,
        "meet-coordinator",
    )
    assert defaults.ray_hosts == 2
    settings = Settings.from_env(
        BASE
        | {
            "MEET_ENGINE": "ray",
            "DATABASE_URL": "postgresql://meet@127.0.0.1/meet",
            "RAY_ADDRESS": "127.0.0.2:6379",
            "RAY_NAMESPACE": "meet-staging",
            "RAY_HOSTS": "4",
        }
    )
    assert settings.engine == "ray"
    assert (settings.ray_address, settings.ray_namespace, settings.ray_hosts) == (
        "127.0.0.2:6379",
        "meet-staging",
        4,
    )
