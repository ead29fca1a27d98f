"""Recording predicates and ability tables (reference §1.4, §4.1, §4.8; DESIGN §5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coordinator.recording_abilities import (
    access_abilities,
    expired_at,
    is_expired,
    is_final,
    is_saved,
    recording_abilities,
    recording_extension,
    recording_key,
)
from storage.models import RECORDING_STATUSES

ACTIVE = ("initiated", "active")
FINAL = (
    "stopped",
    "saved",
    "aborted",
    "failed_to_start",
    "failed_to_stop",
    "notification_succeeded",  # DESIGN §5: final, hence deletable
    "external_process_successful",
    "external_process_failed",
)
SAVED = (
    "saved",
    "notification_succeeded",
    "external_process_successful",
    "external_process_failed",
)


def test_status_sets_cover_every_status() -> None:
    assert set(ACTIVE) | set(FINAL) == set(RECORDING_STATUSES)
    assert not set(ACTIVE) & set(FINAL)


@pytest.mark.parametrize("status", RECORDING_STATUSES)
def test_is_final(status: str) -> None:
    assert is_final(status) is (status in FINAL)


@pytest.mark.parametrize("status", RECORDING_STATUSES)
def test_is_saved(status: str) -> None:
    assert is_saved(status) is (status in SAVED)


def test_unknown_status_is_neither_final_nor_saved() -> None:
    assert not is_final("bogus") and not is_saved("bogus")


# roles → privileged (owner or administrator on the recording)
ROLE_SETS: list[tuple[tuple[str, ...], bool]] = [
    ((), False),
    (("member",), False),
    (("administrator",), True),
    (("owner",), True),
    (("member", "administrator"), True),  # e.g. a direct access and a team access
    (("member", "owner"), True),
]


@pytest.mark.parametrize(("roles", "privileged"), ROLE_SETS)
@pytest.mark.parametrize("status", RECORDING_STATUSES)
def test_recording_abilities_matrix(roles: tuple[str, ...], privileged: bool, status: str) -> None:
    final = status in FINAL
    assert recording_abilities(roles, status) == {
        "destroy": privileged and final,
        "partial_update": False,
        "retrieve": privileged,
        "stop": privileged and not final,
        "update": False,
    }


@pytest.mark.parametrize(
    ("roles", "status", "destroy", "stop"),
    [
        (("owner",), "active", False, True),
        (("owner",), "saved", True, False),
        (("administrator",), "notification_succeeded", True, False),
        (("member",), "saved", False, False),
        (("member",), "active", False, False),
    ],
)
def test_recording_abilities_examples(
    roles: tuple[str, ...], status: str, destroy: bool, stop: bool
) -> None:
    abilities = recording_abilities(roles, status)
    assert (abilities["destroy"], abilities["stop"]) == (destroy, stop)


def _abilities(
    destroy: bool, update: bool, retrieve: bool, set_role_to: list[str]
) -> dict[str, Any]:
    return {
        "destroy": destroy,
        "update": update,
        "partial_update": update,
        "retrieve": retrieve,
        "set_role_to": set_role_to,
    }


NOTHING = _abilities(False, False, False, [])
READ_ONLY = _abilities(False, False, True, [])

# requester roles, target access role, number of owners → abilities (§1.4 access-object table)
ACCESS_MATRIX: list[tuple[tuple[str, ...], str, int, dict[str, Any]]] = [
    ((), "owner", 1, NOTHING),
    ((), "administrator", 1, NOTHING),
    ((), "member", 1, NOTHING),
    (("member",), "owner", 1, READ_ONLY),
    (("member",), "administrator", 1, READ_ONLY),
    (("member",), "member", 1, READ_ONLY),
    (("administrator",), "owner", 2, READ_ONLY),
    (("administrator",), "administrator", 1, _abilities(True, True, True, ["member"])),
    (("administrator",), "member", 1, _abilities(True, True, True, ["administrator"])),
    (("owner",), "owner", 2, _abilities(True, True, True, ["administrator", "member"])),
    (("owner",), "owner", 3, _abilities(True, True, True, ["administrator", "member"])),
    (("owner",), "owner", 1, READ_ONLY),  # the last owner is protected, even from themself
    (("owner",), "administrator", 1, _abilities(True, True, True, ["member", "owner"])),
    (("owner",), "member", 1, _abilities(True, True, True, ["administrator", "owner"])),
]


@pytest.mark.parametrize(("roles", "target", "owners", "expected"), ACCESS_MATRIX)
def test_access_abilities_matrix(
    roles: tuple[str, ...], target: str, owners: int, expected: dict[str, Any]
) -> None:
    assert access_abilities(roles, target, owners) == expected


@pytest.mark.parametrize("target", ["member", "administrator", "owner"])
@pytest.mark.parametrize("roles", [("member",), ("administrator",), ("owner",)])
@pytest.mark.parametrize("owners", [1, 2])
def test_access_abilities_never_offer_the_current_role(
    roles: tuple[str, ...], target: str, owners: int
) -> None:
    offered = access_abilities(roles, target, owners)["set_role_to"]
    assert target not in offered
    assert offered == sorted(offered)


@pytest.mark.parametrize(
    ("mode", "extension"),
    [("screen_recording", "mp4"), ("transcript", "ogg"), ("something_new", "mp4")],
)
def test_recording_key_per_mode(mode: str, extension: str) -> None:
    recording_id = uuid.uuid4()
    assert recording_extension(mode) == extension
    assert (
        recording_key("recordings", recording_id, mode) == f"recordings/{recording_id}.{extension}"
    )
    assert (
        recording_key("out/dir", str(recording_id), mode) == f"out/dir/{recording_id}.{extension}"
    )


CREATED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("days", [None, 0])
def test_no_expiration_when_unset(days: int | None) -> None:
    assert expired_at(CREATED, days) is None
    assert is_expired(CREATED, days, CREATED + timedelta(days=3650)) is False


def test_expiration_is_created_at_plus_days() -> None:
    assert expired_at(CREATED, 2) == CREATED + timedelta(days=2)
    assert is_expired(CREATED, 2, CREATED + timedelta(days=1)) is False
    assert is_expired(CREATED, 2, CREATED + timedelta(days=2)) is False  # not past yet
    assert is_expired(CREATED, 2, CREATED + timedelta(days=2, microseconds=1)) is True
