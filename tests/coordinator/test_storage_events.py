"""Storage-hook payload parsing and bearer check (contract §4.6)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.errors import ConfigurationError, NotAuthenticated, PermissionDenied
from coordinator.settings import Secret
from coordinator.storage_events import (
    Ignored,
    InvalidStorageEvent,
    RecordingFile,
    StorageEventConfig,
    StorageHookAuth,
    StorageHookUnauthorized,
    check_storage_hook_auth,
    encode_s3_key,
    not_savable_message,
    outcome_body,
    parse_parser_name,
    parse_storage_event,
    parse_storage_event_body,
)

BUCKET = "meet-media-storage"
RID = UUID("0f0e8d3c-9a8b-4c2d-8e1f-123456789abc")
MINIO = StorageEventConfig(bucket=BUCKET)
S3 = StorageEventConfig(bucket=BUCKET, parser="s3")


def event(
    key: str = f"recordings%2F{RID}.ogg",
    content_type: str | None = "audio/ogg",
    bucket: Any = BUCKET,
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key}
    if content_type is not None:
        obj["contentType"] = content_type
    return {"Records": [{"s3": {"bucket": {"name": bucket}, "object": obj}}]}


def invalid_data(data: object, config: StorageEventConfig = MINIO) -> None:
    with pytest.raises(InvalidStorageEvent) as info:
        parse_storage_event(data, config)
    assert info.value.body == {"detail": "Invalid request data."}


# --------------------------------------------------------------------------- MinIO parser
def test_minio_audio_recording() -> None:
    assert parse_storage_event(event(), MINIO) == RecordingFile(RID, "ogg")


def test_minio_video_recording_in_encoded_parent_folders() -> None:
    data = event(f"tenant%2Fprod%2Frecordings%2F{RID}.mp4", "video/mp4")
    assert parse_storage_event(data, MINIO) == RecordingFile(RID, "mp4")


def test_minio_only_first_record_counts() -> None:
    data = event()
    data["Records"].append({"garbage": True})
    assert parse_storage_event(data, MINIO) == RecordingFile(RID, "ogg")


def test_uppercase_uuid_and_extension_are_accepted_as_found() -> None:
    key = f"recordings%2F{str(RID).upper()}.OGG"
    assert parse_storage_event(event(key), MINIO) == RecordingFile(RID, "OGG")


@pytest.mark.parametrize("content_type", ["image/png", "audio/ogg; codecs=opus", "", "AUDIO/OGG"])
def test_other_content_types_are_ignored(content_type: str) -> None:
    assert parse_storage_event(event(content_type=content_type), MINIO) == Ignored()


@pytest.mark.parametrize(
    "key",
    [
        f"recordings/{RID}.ogg",  # not encoded
        f"other%2F{RID}.ogg",  # wrong folder
        f"myrecordings%2F{RID}.ogg",
        f"recordings%2F{RID}.ogg.bak",  # trailing text
        f"recordings%2F{RID}",  # no extension
        f"recordings%2F{RID}.averylongextension",
        "recordings%2Fnot-a-uuid.ogg",
        f"recordings%2F%2F{RID}.ogg",
        f"%2Frecordings%2F{RID}.ogg",  # empty parent folder
        f"a%20b%2Frecordings%2F{RID}.ogg",  # '%' inside a parent folder name
        "",
    ],
)
def test_keys_outside_the_recordings_folder_are_ignored(key: str) -> None:
    assert parse_storage_event(event(key), MINIO) == Ignored()


def test_configured_output_folder() -> None:
    config = StorageEventConfig(bucket=BUCKET, output_folder="meet.rec")
    assert parse_storage_event(event(f"meet.rec%2F{RID}.ogg"), config) == RecordingFile(RID, "ogg")
    # the folder is matched literally ('.' is not a wildcard)
    assert parse_storage_event(event(f"meetxrec%2F{RID}.ogg"), config) == Ignored()


def test_bucket_is_checked_before_the_type() -> None:
    with pytest.raises(InvalidStorageEvent) as info:
        parse_storage_event(event(bucket="other", content_type="image/png"), MINIO)
    assert info.value.body == {"detail": "Invalid bucket specified."}
    assert isinstance(info.value, PermissionDenied) and info.value.status == 403


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        [],
        "",
        0,
        False,
        "Records",
        [event()],
        {"Records": []},
        {"Records": {}},
        {"Records": [None]},
        {"Records": [{}]},
        {"Records": [{"s3": None}]},
        {"Records": [{"s3": {"bucket": {}, "object": {"key": "k", "contentType": "a"}}}]},
        {"Records": [{"s3": {"bucket": {"name": BUCKET}}}]},
        event(content_type=None),  # MinIO requires contentType
        event(key=5),  # type: ignore[arg-type]
        event(bucket=None),
        event(bucket=12),
        event(content_type=["audio/ogg"]),  # type: ignore[arg-type]
    ],
)
def test_malformed_payloads_are_invalid_data(data: object) -> None:
    invalid_data(data)


# --------------------------------------------------------------------------- S3 parser
def test_s3_raw_key_is_encoded_and_type_guessed() -> None:
    assert parse_storage_event(event(f"recordings/{RID}.mp4", None), S3) == RecordingFile(
        RID, "mp4"
    )


def test_s3_ignores_content_type_field() -> None:
    data = event(f"recordings/{RID}.ogg", "image/png")
    assert parse_storage_event(data, S3) == RecordingFile(RID, "ogg")


def test_s3_keeps_existing_escapes_and_plus() -> None:
    key = f"my+folder/sub%2Fdir/recordings/{RID}.ogg"
    assert encode_s3_key(key) == f"my+folder%2Fsub%2Fdir%2Frecordings%2F{RID}.ogg"
    assert parse_storage_event(event(key, None), S3) == RecordingFile(RID, "ogg")
    key = f"a%20b/recordings/{RID}.ogg"  # an escape inside a parent folder name
    assert parse_storage_event(event(key, None), S3) == Ignored()


def test_s3_already_encoded_key() -> None:
    assert parse_storage_event(event(f"recordings%2F{RID}.ogg", None), S3) == RecordingFile(
        RID, "ogg"
    )


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("a b/c", "a%20b%2Fc"),
        ("100%", "100%25"),
        ("%zz%2f", "%25zz%2f"),
        ("é+€", "%C3%A9+%E2%82%AC"),
        ("\ud800", "%ED%A0%80"),  # lone surrogate: never raises
    ],
)
def test_encode_s3_key(raw: str, encoded: str) -> None:
    assert encode_s3_key(raw) == encoded


@pytest.mark.parametrize("key", [f"recordings/{RID}.png", f"recordings/{RID}", "recordings/x.ogg"])
def test_s3_unknown_extension_or_path_is_ignored(key: str) -> None:
    assert parse_storage_event(event(key, None), S3) == Ignored()


def test_s3_contenttype_is_optional_but_key_is_not() -> None:
    invalid_data({"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {}}}]}, S3)


# --------------------------------------------------------------------------- parser names
@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("minio", "minio"),
        ("S3", "s3"),
        ("core.recording.event.parsers.MinioParser", "minio"),
        (" core.recording.event.parsers.S3Parser ", "s3"),
    ],
)
def test_parser_names(value: str, name: str) -> None:
    assert parse_parser_name(value) == name


def test_unknown_parser_name_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="RECORDING_EVENT_PARSER_CLASS"):
        parse_parser_name("core.recording.event.parsers.GcsParser")


def test_response_bodies_and_messages() -> None:
    assert outcome_body(Ignored()) == {"message": "Notification ignored."}
    assert outcome_body(RecordingFile(RID, "ogg")) == {"message": "Event processed."}
    assert not_savable_message(RID) == (
        f"Recording with ID {RID} cannot be saved because it is either, "
        "in an error state or has already been saved."
    )


# --------------------------------------------------------------------------- raw bodies
@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000, b"1" * 5000, b"null"],
)
def test_undecodable_bodies_are_invalid_data(body: bytes) -> None:
    with pytest.raises(InvalidStorageEvent) as info:
        parse_storage_event_body(body, MINIO)
    assert info.value.message == "Invalid request data."


def test_body_roundtrip() -> None:
    body = json.dumps(event()).encode()
    assert parse_storage_event_body(body, MINIO) == RecordingFile(RID, "ogg")


def test_huge_hostile_key_is_ignored_quickly() -> None:
    key = "a" * 2_000_000 + f"%2Frecordings%2F{RID}.ogg" + "%2F" * 100_000
    assert parse_storage_event(event(key), MINIO) == Ignored()
    key = "a%2F" * 500_000 + "recordings%2F" + str(RID) + ".og!"
    assert parse_storage_event(event(key), MINIO) == Ignored()


def test_deeply_nested_record_value() -> None:
    nested: Any = []
    for _ in range(50_000):
        nested = [nested]
    data = event()
    data["Records"][0]["s3"]["object"]["extra"] = nested
    assert parse_storage_event(data, MINIO) == RecordingFile(RID, "ogg")
    invalid_data({"Records": nested})


# --------------------------------------------------------------------------- property
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=30,
)
plausible_keys = st.sampled_from(
    ["Records", "s3", "bucket", "name", "object", "key", "contentType"]
)


def plausible(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(
        plausible_keys | st.text(max_size=3), children, max_size=4
    )


plausible_values = st.recursive(
    json_scalars
    | st.sampled_from([BUCKET, "audio/ogg", "video/mp4", f"recordings%2F{RID}.ogg"])
    | st.builds(lambda s: f"{s}recordings%2F{RID}.mp4", st.text(max_size=5)),
    plausible,
    max_leaves=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_values | plausible_values, parser=st.sampled_from(["minio", "s3"]))
def test_any_json_value_yields_an_outcome_or_invalid_storage_event(
    data: object, parser: str
) -> None:
    config = StorageEventConfig(bucket=BUCKET, parser="s3" if parser == "s3" else "minio")
    try:
        outcome = parse_storage_event(data, config)
    except InvalidStorageEvent as exc:
        assert exc.message in {"Invalid request data.", "Invalid bucket specified."}
    else:
        assert isinstance(outcome, Ignored | RecordingFile)


@settings(max_examples=150, deadline=None)
@given(
    key=st.text(),
    content_type=st.one_of(st.none(), st.text(), st.sampled_from(["audio/ogg", "video/mp4"])),
    parser=st.sampled_from(["minio", "s3"]),
)
def test_any_record_strings(key: str, content_type: str | None, parser: str) -> None:
    config = StorageEventConfig(bucket=BUCKET, parser="s3" if parser == "s3" else "minio")
    try:
        outcome = parse_storage_event(event(key, content_type), config)
    except InvalidStorageEvent as exc:
        assert (parser, content_type, exc.message) == ("minio", None, "Invalid request data.")
    else:
        if isinstance(outcome, RecordingFile):
            assert str(outcome.recording_id) in key.lower()


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_body_yields_an_outcome_or_invalid_storage_event(body: bytes) -> None:
    try:
        parse_storage_event_body(body, MINIO)
    except InvalidStorageEvent:
        pass


# --------------------------------------------------------------------------- bearer auth
TOKEN = StorageHookAuth(enabled=True, token=Secret("s3cr3t-token"))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer s3cr3t-token",
        "bearer s3cr3t-token",
        "BEARER   s3cr3t-token  ",
        " Bearer\ts3cr3t-token",
    ],
)
def test_valid_bearer_headers(header: str) -> None:
    check_storage_hook_auth(header, TOKEN)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Authorization header is required"),
        ("", "Authorization header is required"),
        ("   ", "Authorization header is required"),
        ("Bearer", "Invalid authorization header format."),
        ("Token s3cr3t-token", "Invalid authorization header format."),
        ("s3cr3t-token", "Invalid authorization header format."),
        ("Bearer wrong", "Invalid token"),
        ("Bearer s3cr3t-token extra", "Invalid token"),
        ("Bearer s3cr3t-tokén", "Invalid token"),
        ("Bearer \udcff", "Invalid token"),
    ],
)
def test_rejected_bearer_headers(header: str | None, message: str) -> None:
    with pytest.raises(StorageHookUnauthorized) as info:
        check_storage_hook_auth(header, TOKEN)
    assert isinstance(info.value, NotAuthenticated) and info.value.status == 401
    assert info.value.body == {"detail": message}
    assert info.value.www_authenticate == "Bearer realm='Storage event API'"


@pytest.mark.parametrize("token", [None, Secret("")])
def test_token_not_configured(token: Secret | None) -> None:
    with pytest.raises(StorageHookUnauthorized) as info:
        check_storage_hook_auth("Bearer anything", StorageHookAuth(enabled=True, token=token))
    assert info.value.message == "Authentication is enabled but token is not configured."


@pytest.mark.parametrize("header", [None, "", "garbage", "Bearer wrong"])
def test_auth_disabled_accepts_everything(header: str | None) -> None:
    check_storage_hook_auth(header, StorageHookAuth(enabled=False, token=None))
