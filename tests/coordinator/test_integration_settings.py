"""Settings of the flagged integrations (issue 8 point 4): Meet's names and defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.errors import ConfigurationError
from coordinator.settings import Settings

BASE = {"SECRET_KEY": "s" * 40, "LIVEKIT_API_SECRET": "l" * 40}


def test_defaults_follow_meet() -> None:
    settings = Settings.from_env(BASE)
    assert settings.connection_test_enabled is False
    assert settings.connection_test_token_ttl_seconds == 300
    assert settings.connection_test_room_extra_age_seconds == 10
    assert settings.connection_test_room_prefix == "connection-test"
    assert settings.connection_test_throttle_rate == (30, 60.0)
    assert settings.room_subtitle_enabled is False
    assert settings.room_subtitle_agent_name == "multi-user-transcriber"
    assert settings.metadata_collector_enabled is False
    assert settings.metadata_collector_agent_name == "metadata-collector"
    assert settings.room_telephony_enabled is False and settings.roomkit_enabled is False
    assert not settings.roomkit_server_to_server_api_token
    assert settings.roomkit_join_throttle_rate == (300, 60.0)
    assert settings.room_telephony_phone_number is None
    assert settings.room_telephony_default_country == "US"


def test_meet_names_are_read(tmp_path: Path) -> None:
    env = BASE | {
        "CONNECTION_TEST_ENABLED": "true",
        "CONNECTION_TEST_TOKEN_TTL_SECONDS": "120",
        "CONNECTION_TEST_ROOM_EXTRA_AGE_SECONDS": "5",
        "CONNECTION_TEST_THROTTLE_RATES": "10/hour",
        "ROOM_SUBTITLE_ENABLED": "1",
        "ROOM_SUBTITLE_AGENT_NAME": "subs",
        "METADATA_COLLECTOR_ENABLED": "yes",
        "METADATA_COLLECTOR_AGENT_NAME": "collector",
        "ROOMKIT_ENABLED": "true",
        "ROOMKIT_SERVER_TO_SERVER_API_TOKEN": "server-token",
        "ROOMKIT_JOIN_THROTTLE_RATES": "5/s",
        "ROOM_TELEPHONY_PHONE_NUMBER": "+33 1 23 45 67 89",
        "ROOM_TELEPHONY_DEFAULT_COUNTRY": "FR",
    }
    settings = Settings.from_env(env)
    assert settings.connection_test_enabled and settings.room_subtitle_enabled
    assert settings.connection_test_token_ttl_seconds == 120
    assert settings.connection_test_room_extra_age_seconds == 5
    assert settings.connection_test_throttle_rate == (10, 3600.0)
    assert settings.room_subtitle_agent_name == "subs"
    assert settings.metadata_collector_enabled
    assert settings.metadata_collector_agent_name == "collector"
    assert settings.roomkit_enabled
    assert settings.roomkit_server_to_server_api_token.get() == "server-token"
    assert "server-token" not in repr(settings)
    assert settings.roomkit_join_throttle_rate == (5, 1.0)
    assert settings.room_telephony_phone_number == "+33 1 23 45 67 89"
    assert settings.room_telephony_default_country == "FR"
    secret_file = tmp_path / "token"
    secret_file.write_text("from-a-file\n")
    from_file = Settings.from_env(
        BASE | {"ROOMKIT_SERVER_TO_SERVER_API_TOKEN_FILE": str(secret_file)}
    )
    assert from_file.roomkit_server_to_server_api_token.get() == "from-a-file"


@pytest.mark.parametrize("rate", ["30", "30/fortnight", "x/minute", "0/minute", "-1/s", "/m"])
def test_bad_throttle_rates_name_the_variable(rate: str) -> None:
    with pytest.raises(ConfigurationError, match="CONNECTION_TEST_THROTTLE_RATES"):
        Settings.from_env(BASE | {"CONNECTION_TEST_THROTTLE_RATES": rate})


def test_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent")
    with pytest.raises(ConfigurationError, match="ROOMKIT_SERVER_TO_SERVER_API_TOKEN_FILE"):
        Settings.from_env(BASE | {"ROOMKIT_SERVER_TO_SERVER_API_TOKEN_FILE": missing})
