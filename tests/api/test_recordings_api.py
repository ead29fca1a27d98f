"""Recordings API (reference §2.7): list, retrieve, delete, media-auth, external-process-hook."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL as YURL

from api import keys
from api.app import create_app
from coordinator.settings import S3Settings, Secret, SummarySettings
from storage.recordings import RecordingRecord
from storage.records import RoomRecord, UserRecord
from tests.conftest import make_settings
from tests.support.factories import Factory, login
from tests.support.recordings import (
    count_recording_accesses,
    make_recording,
    read_recording,
)
from tests.support.sigv4 import EMPTY_PAYLOAD_SHA256, S3Config, sign_get_headers

Client = TestClient[Any, Any]
LogIn = Callable[[UserRecord], None]
MakeClient = Callable[..., Awaitable[Client]]

URL = "/api/v1.0/recordings/"
MEDIA_AUTH = f"{URL}media-auth/"
HOOK = f"{URL}external-process-hook/"
NOT_FOUND = {"detail": "No Recording matches the given query."}
FORBIDDEN = {"detail": "You do not have permission to perform this action."}
UNAUTHENTICATED = {"detail": "Authentication credentials were not provided."}

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
UNSAVED = ("initiated", "active", "stopped", "aborted", "failed_to_start", "failed_to_stop")
ROLES = ("member", "administrator", "owner")

S3 = S3Settings(
    endpoint_url="http://minio:9000",
    bucket="meet-media-storage",
    access_key="meet",
    secret_key=Secret("password-for-tests"),
    region="us-east-1",
)
HOOK_TOKEN = "summary-webhook-token-for-tests"


@pytest.fixture
def make_client(aiohttp_client: Any, database_url: str) -> MakeClient:
    """``await make_client(user, **settings_overrides)``: an app with those settings."""

    async def _make(user: UserRecord | None = None, **overrides: Any) -> Client:
        client: Client = await aiohttp_client(create_app(make_settings(database_url, **overrides)))
        if user is not None:
            login(client, client.app[keys.SESSIONS], user)
        return client

    return _make


async def recording_for(
    factory: Factory, role: str | None, **fields: Any
) -> tuple[RecordingRecord, RoomRecord, UserRecord]:
    """A recording owned by someone else, and a user holding ``role`` on it (None: unrelated)."""
    user = await factory.user()
    owner = await factory.user()
    room = await factory.room(owner=owner)
    accesses: list[tuple[UserRecord, str]] = [(owner, "owner")]
    if role is not None:
        accesses.append((user, role))
    recording = await make_recording(factory.sessionmaker, room, accesses=accesses, **fields)
    return recording, room, user


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def expected_payload(
    recording: RecordingRecord, room: RoomRecord, *, expired_at: str | None = None
) -> dict[str, Any]:
    extension = "ogg" if recording.mode == "transcript" else "mp4"
    return {
        "id": str(recording.id),
        "room": {
            "id": str(room.id),
            "name": room.name,
            "slug": room.slug,
            "access_level": room.access_level,
        },
        "created_at": iso(recording.created_at),
        "updated_at": iso(recording.updated_at),
        "status": recording.status,
        "mode": recording.mode,
        "options": recording.options,
        "key": f"recordings/{recording.id}.{extension}",
        "is_expired": False,
        "expired_at": expired_at,
    }


# -- list ------------------------------------------------------------------------------------


async def test_list_anonymous_is_401(client: Client, factory: Factory) -> None:
    await recording_for(factory, "owner")
    response = await client.get(URL)
    assert response.status == 401
    assert await response.json() == UNAUTHENTICATED
    assert response.headers["WWW-Authenticate"] == "Session"


async def test_list_shows_only_the_callers_recordings_whatever_their_role(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    user = await factory.user()
    mine: set[str] = set()
    for role in ROLES:
        room = await factory.room()
        recording = await make_recording(factory.sessionmaker, room, accesses=[(user, role)])
        mine.add(str(recording.id))
    await recording_for(factory, "owner")  # someone else's
    # Being a room's owner grants nothing on its recordings.
    own_room = await factory.room(owner=user)
    await make_recording(factory.sessionmaker, own_room, accesses=[(await factory.user(), "owner")])
    # Team accesses do not count while teams are not resolved.
    await make_recording(factory.sessionmaker, own_room, status="saved", teams=[("staff", "owner")])
    log_in(user)
    response = await client.get(URL)
    assert response.status == 200
    body = await response.json()
    assert {item["id"] for item in body["results"]} == mine
    assert body["count"] == 3 and body["next"] is None and body["previous"] is None


async def test_list_items_are_full_recording_objects(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    recording, room, user = await recording_for(factory, "member", mode="transcript")
    log_in(user)
    body = await (await client.get(URL)).json()
    assert body["results"] == [expected_payload(recording, room)]


async def test_list_is_distinct(client: Client, factory: Factory, log_in: LogIn) -> None:
    user = await factory.user()
    room = await factory.room()
    others = [(await factory.user(), role) for role in ROLES]
    recording = await make_recording(
        factory.sessionmaker,
        room,
        accesses=[(user, "administrator"), *others],
        teams=[("team-a", "member"), ("team-b", "owner")],
    )
    log_in(user)
    body = await (await client.get(URL)).json()
    assert body["count"] == 1
    assert [item["id"] for item in body["results"]] == [str(recording.id)]


async def test_list_is_newest_first(client: Client, factory: Factory, log_in: LogIn) -> None:
    user = await factory.user()
    room = await factory.room()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    offsets = [3, 1, 4, 0, 2]
    ids = {}
    for offset in offsets:
        recording = await make_recording(
            factory.sessionmaker,
            room,
            status="saved",
            accesses=[(user, "owner")],
            created_at=start + timedelta(hours=offset),
        )
        ids[offset] = str(recording.id)
    log_in(user)
    body = await (await client.get(URL)).json()
    assert [item["id"] for item in body["results"]] == [ids[o] for o in sorted(offsets)[::-1]]


async def test_list_is_paginated(client: Client, factory: Factory, log_in: LogIn) -> None:
    user = await factory.user()
    room = await factory.room()
    for _ in range(23):
        await make_recording(factory.sessionmaker, room, accesses=[(user, "member")])
    log_in(user)
    body = await (await client.get(URL)).json()
    assert body["count"] == 23 and len(body["results"]) == 20 and body["previous"] is None
    page2 = await (await client.get(YURL(body["next"]).path_qs)).json()
    assert len(page2["results"]) == 3 and page2["next"] is None and page2["previous"]
    seen = {item["id"] for item in body["results"]} | {item["id"] for item in page2["results"]}
    assert len(seen) == 23

    sized = await (await client.get(URL, params={"page_size": "5", "page": "5"})).json()
    assert len(sized["results"]) == 3 and sized["next"] is None
    bad_size = await (await client.get(URL, params={"page_size": "abc"})).json()
    assert len(bad_size["results"]) == 20  # a bad page_size falls back to the default

    response = await client.get(URL, params={"page": "9"})
    assert response.status == 404
    assert await response.json() == {"detail": "Invalid page."}
    assert (await client.get(URL, params={"page": "zero"})).status == 404


async def test_list_page_size_is_capped_at_100(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    user = await factory.user()
    room = await factory.room()
    for _ in range(101):
        await make_recording(factory.sessionmaker, room, accesses=[(user, "member")])
    log_in(user)
    body = await (await client.get(URL, params={"page_size": "1000"})).json()
    assert body["count"] == 101 and len(body["results"]) == 100 and body["next"]


# -- retrieve --------------------------------------------------------------------------------


async def test_retrieve_anonymous_is_401(client: Client, factory: Factory) -> None:
    recording, _, _ = await recording_for(factory, "owner")
    response = await client.get(f"{URL}{recording.id}/")
    assert response.status == 401
    assert await response.json() == UNAUTHENTICATED


@pytest.mark.parametrize(
    ("role", "status", "body"),
    [(None, 404, NOT_FOUND), ("member", 403, FORBIDDEN)],
)
async def test_retrieve_refused(
    client: Client,
    factory: Factory,
    log_in: LogIn,
    role: str | None,
    status: int,
    body: dict[str, str],
) -> None:
    recording, _, user = await recording_for(factory, role)
    log_in(user)
    response = await client.get(f"{URL}{recording.id}/")
    assert response.status == status
    assert await response.json() == body


async def test_retrieve_room_owner_without_recording_access_is_404(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    user = await factory.user()
    room = await factory.room(owner=user)
    recording = await make_recording(
        factory.sessionmaker, room, accesses=[(await factory.user(), "owner")]
    )
    log_in(user)
    response = await client.get(f"{URL}{recording.id}/")
    assert response.status == 404
    assert await response.json() == NOT_FOUND


async def test_retrieve_unknown_or_malformed_id_is_404(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    log_in(await factory.user())
    response = await client.get(f"{URL}{uuid.uuid4()}/")
    assert response.status == 404
    assert await response.json() == NOT_FOUND
    for bad in ("not-a-uuid", "123", "media-auths"):
        response = await client.get(f"{URL}{bad}/")
        assert response.status == 404, bad
        assert (await response.json())["detail"]


@pytest.mark.parametrize("role", ["administrator", "owner"])
@pytest.mark.parametrize("mode", ["screen_recording", "transcript"])
async def test_retrieve_privileged_gets_the_exact_payload(
    client: Client, factory: Factory, log_in: LogIn, role: str, mode: str
) -> None:
    recording, room, user = await recording_for(
        factory, role, mode=mode, options={"language": "fr", "transcribe": True}
    )
    stored = await read_recording(factory.sessionmaker, recording.id)
    assert stored is not None
    log_in(user)
    response = await client.get(f"{URL}{recording.id}/")
    assert response.status == 200
    assert await response.json() == expected_payload(stored, room)


@pytest.mark.parametrize("status", [*ACTIVE, *FINAL])
async def test_retrieve_any_status(
    client: Client, factory: Factory, log_in: LogIn, status: str
) -> None:
    recording, _, user = await recording_for(factory, "owner", status=status)
    log_in(user)
    response = await client.get(f"{URL}{recording.id}/")
    assert response.status == 200
    assert (await response.json())["status"] == status


async def test_retrieve_computes_expiration(factory: Factory, make_client: MakeClient) -> None:
    user = await factory.user()
    room = await factory.room()
    now = datetime.now(UTC)
    fresh = await make_recording(factory.sessionmaker, room, accesses=[(user, "owner")])
    old_created = now - timedelta(days=3)
    old = await make_recording(
        factory.sessionmaker, room, accesses=[(user, "owner")], created_at=old_created
    )
    client = await make_client(user, recording_expiration_days=2)

    body = await (await client.get(f"{URL}{fresh.id}/")).json()
    assert body["is_expired"] is False
    assert body["expired_at"] == iso(fresh.created_at + timedelta(days=2))

    body = await (await client.get(f"{URL}{old.id}/")).json()
    assert body["is_expired"] is True
    assert body["expired_at"] == iso(old_created + timedelta(days=2))

    listed = await (await client.get(URL)).json()
    assert [item["is_expired"] for item in listed["results"]] == [False, True]


async def test_retrieve_uses_the_output_folder(factory: Factory, make_client: MakeClient) -> None:
    recording, _, user = await recording_for(factory, "owner", mode="transcript")
    client = await make_client(user, recording_output_folder="media/rec")
    body = await (await client.get(f"{URL}{recording.id}/")).json()
    assert body["key"] == f"media/rec/{recording.id}.ogg"


# -- delete ----------------------------------------------------------------------------------


async def test_delete_anonymous_is_401(client: Client, factory: Factory) -> None:
    recording, _, _ = await recording_for(factory, "owner")
    response = await client.delete(f"{URL}{recording.id}/")
    assert response.status == 401
    assert await read_recording(factory.sessionmaker, recording.id) is not None


async def test_delete_unrelated_or_unknown_is_404(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    recording, _, user = await recording_for(factory, None)
    log_in(user)
    for target in (str(recording.id), str(uuid.uuid4()), "nope"):
        response = await client.delete(f"{URL}{target}/")
        assert response.status == 404, target
    response = await client.delete(f"{URL}{recording.id}/")
    assert await response.json() == NOT_FOUND
    assert await read_recording(factory.sessionmaker, recording.id) is not None


# role → status → expected HTTP status
DELETE_MATRIX = [
    *[("member", status, 403) for status in (*ACTIVE, *FINAL)],
    *[(role, status, 403) for role in ("administrator", "owner") for status in ACTIVE],
    *[(role, status, 204) for role in ("administrator", "owner") for status in FINAL],
]


@pytest.mark.parametrize(("role", "status", "expected"), DELETE_MATRIX)
async def test_delete_matrix(
    client: Client, factory: Factory, log_in: LogIn, role: str, status: str, expected: int
) -> None:
    recording, _, user = await recording_for(factory, role, status=status)
    log_in(user)
    response = await client.delete(f"{URL}{recording.id}/")
    assert response.status == expected
    stored = await read_recording(factory.sessionmaker, recording.id)
    accesses = await count_recording_accesses(factory.sessionmaker, recording.id)
    if expected == 204:
        assert await response.read() == b""
        assert stored is None and accesses == 0
        assert (await client.get(f"{URL}{recording.id}/")).status == 404
    else:
        assert await response.json() == FORBIDDEN
        assert stored is not None and stored.status == status and accesses == 2


async def test_delete_requires_csrf_with_a_session(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    recording, _, user = await recording_for(factory, "owner")
    log_in(user)
    response = await client.delete(f"{URL}{recording.id}/", headers={"X-CSRFToken": "wrong"})
    assert response.status == 403
    assert await read_recording(factory.sessionmaker, recording.id) is not None


async def test_delete_leaves_other_recordings_alone(
    client: Client, factory: Factory, log_in: LogIn
) -> None:
    recording, room, user = await recording_for(factory, "owner")
    sibling = await make_recording(factory.sessionmaker, room, accesses=[(user, "owner")])
    log_in(user)
    assert (await client.delete(f"{URL}{recording.id}/")).status == 204
    assert await read_recording(factory.sessionmaker, sibling.id) is not None
    assert await count_recording_accesses(factory.sessionmaker, sibling.id) == 1


# -- media-auth ------------------------------------------------------------------------------


def media_url(recording_id: uuid.UUID | str, extension: str = "mp4") -> str:
    return f"/media/recordings/{recording_id}.{extension}"


async def test_media_auth_anonymous_is_401(make_client: MakeClient, factory: Factory) -> None:
    recording, _, _ = await recording_for(factory, "owner")
    client = await make_client(s3=S3)
    response = await client.get(MEDIA_AUTH, headers={"X-Original-URL": media_url(recording.id)})
    assert response.status == 401
    assert await response.json() == UNAUTHENTICATED


@pytest.mark.parametrize(
    "original",
    [
        None,
        "",
        "/media/recordings/",
        "/media/recordings/not-a-uuid.mp4",
        "/media/other/{id}.mp4",
        "/recordings/{id}.mp4",
        "/media/recordings/{id}",
        "/media/recordings/{id}.",
        "/media/recordings/{id}.mp4/extra",
    ],
)
async def test_media_auth_bad_original_url_is_403(
    make_client: MakeClient, factory: Factory, original: str | None
) -> None:
    recording, _, user = await recording_for(factory, "owner")
    client = await make_client(user, s3=S3)
    headers = {} if original is None else {"X-Original-URL": original.format(id=recording.id)}
    response = await client.get(MEDIA_AUTH, headers=headers)
    assert response.status == 403
    assert await response.json() == FORBIDDEN


@pytest.mark.parametrize("extension", ["avi", "MP4", "webm", "txt"])
async def test_media_auth_unsupported_extension_is_400(
    make_client: MakeClient, factory: Factory, extension: str
) -> None:
    recording, _, user = await recording_for(factory, "owner")
    client = await make_client(user, s3=S3)
    headers = {"X-Original-URL": media_url(recording.id, extension)}
    response = await client.get(MEDIA_AUTH, headers=headers)
    assert response.status == 400
    assert await response.json() == {"detail": "Unsupported extension."}


async def test_media_auth_unknown_recording_is_404(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client(await factory.user(), s3=S3)
    response = await client.get(MEDIA_AUTH, headers={"X-Original-URL": media_url(uuid.uuid4())})
    assert response.status == 404
    assert await response.json() == {"detail": "No recording found for this event."}


@pytest.mark.parametrize(
    ("mode", "extension"), [("screen_recording", "ogg"), ("transcript", "mp4")]
)
async def test_media_auth_extension_mismatch_is_404(
    make_client: MakeClient, factory: Factory, mode: str, extension: str
) -> None:
    recording, _, user = await recording_for(factory, "owner", mode=mode)
    client = await make_client(user, s3=S3)
    headers = {"X-Original-URL": media_url(recording.id, extension)}
    response = await client.get(MEDIA_AUTH, headers=headers)
    assert response.status == 404
    assert await response.json() == {"detail": "No recording found with this extension."}


@pytest.mark.parametrize("role", [None, "member"])
async def test_media_auth_without_retrieve_ability_is_403(
    make_client: MakeClient, factory: Factory, role: str | None
) -> None:
    recording, _, user = await recording_for(factory, role)
    client = await make_client(user, s3=S3)
    response = await client.get(MEDIA_AUTH, headers={"X-Original-URL": media_url(recording.id)})
    assert response.status == 403
    assert await response.json() == FORBIDDEN
    assert "Authorization" not in response.headers


@pytest.mark.parametrize("status", UNSAVED)
async def test_media_auth_unsaved_recording_is_403(
    make_client: MakeClient, factory: Factory, status: str
) -> None:
    recording, _, user = await recording_for(factory, "owner", status=status)
    client = await make_client(user, s3=S3)
    response = await client.get(MEDIA_AUTH, headers={"X-Original-URL": media_url(recording.id)})
    assert response.status == 403
    assert await response.json() == FORBIDDEN


def parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.partition(" ")
    fields = dict(part.strip().split("=", 1) for part in rest.split(","))
    return {"algorithm": algorithm, **fields}


@pytest.mark.parametrize("role", ["administrator", "owner"])
@pytest.mark.parametrize("status", SAVED)
@pytest.mark.parametrize(
    ("mode", "extension"), [("screen_recording", "mp4"), ("transcript", "ogg")]
)
async def test_media_auth_authorizes_with_a_sigv4_signature(
    make_client: MakeClient,
    factory: Factory,
    role: str,
    status: str,
    mode: str,
    extension: str,
) -> None:
    recording, _, user = await recording_for(factory, role, status=status, mode=mode)
    client = await make_client(user, s3=S3)
    original = f"https://meet.example.com{media_url(recording.id, extension)}?download=1"
    before = datetime.now(UTC).replace(microsecond=0)
    response = await client.get(MEDIA_AUTH, headers={"X-Original-URL": original})
    after = datetime.now(UTC)
    assert response.status == 200
    assert await response.json() == "authorized"

    amz_date = response.headers["X-Amz-Date"]
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= signed_at <= after
    key = f"recordings/{recording.id}.{extension}"
    config = S3Config(S3.endpoint_url, S3.bucket, S3.access_key, S3.secret_key, S3.region)
    expected = sign_get_headers(config, key, signed_at)
    for name, value in expected.items():
        assert response.headers[name] == value, name
    assert response.headers["X-Amz-Content-SHA256"] == EMPTY_PAYLOAD_SHA256
    assert response.headers["Host"] == "minio:9000"
    authorization = parse_authorization(response.headers["Authorization"])
    assert authorization["algorithm"] == "AWS4-HMAC-SHA256"
    assert authorization["Credential"] == f"meet/{amz_date[:8]}/us-east-1/s3/aws4_request"
    assert authorization["SignedHeaders"] == "host;x-amz-content-sha256;x-amz-date"
    # A signature for another key (another recording) does not match.
    other = sign_get_headers(config, f"recordings/{uuid.uuid4()}.{extension}", signed_at)
    assert other["Authorization"] != response.headers["Authorization"]


async def test_media_auth_without_object_storage_is_503(
    make_client: MakeClient, factory: Factory
) -> None:
    recording, _, user = await recording_for(factory, "owner")
    client = await make_client(user)
    response = await client.get(MEDIA_AUTH, headers={"X-Original-URL": media_url(recording.id)})
    assert response.status == 503
    assert await response.json() == {"detail": "Object storage is not configured."}


# -- external-process-hook -------------------------------------------------------------------


def bearer(token: str = HOOK_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def hook_client(make_client: MakeClient) -> Client:
    return await make_client(summary=SummarySettings(webhook_api_token=Secret(HOOK_TOKEN)))


async def job_recording(factory: Factory, status: str = "saved") -> RecordingRecord:
    recording, _, _ = await recording_for(
        factory, None, status=status, mode="transcript", external_process_id=f"job-{uuid.uuid4()}"
    )
    return recording


async def status_of(factory: Factory, recording: RecordingRecord) -> str:
    stored = await read_recording(factory.sessionmaker, recording.id)
    assert stored is not None
    return stored.status


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Authorization header is required"),
        ({"Authorization": ""}, "Authorization header is required"),
        ({"Authorization": "Bearer"}, "Invalid authorization header format."),
        ({"Authorization": "Bearer   "}, "Invalid authorization header format."),
        ({"Authorization": f"Token {HOOK_TOKEN}"}, "Invalid authorization header format."),
        ({"Authorization": HOOK_TOKEN}, "Invalid authorization header format."),
        ({"Authorization": "Bearer wrong-token"}, "Invalid token"),
        ({"Authorization": f"Bearer {HOOK_TOKEN}x"}, "Invalid token"),
    ],
)
async def test_hook_refuses_bad_tokens(
    hook_client: Client, factory: Factory, headers: dict[str, str], message: str
) -> None:
    recording = await job_recording(factory)
    payload = {"job_id": recording.external_process_id, "type": "transcript", "status": "success"}
    response = await hook_client.post(HOOK, json=payload, headers=headers)
    assert response.status == 401
    assert await response.json() == {"detail": message}
    assert response.headers["WWW-Authenticate"] == "Bearer realm='External process webhook API'"
    assert await status_of(factory, recording) == "saved"


async def test_hook_accepts_a_lowercase_scheme(hook_client: Client, factory: Factory) -> None:
    recording = await job_recording(factory)
    payload = {"job_id": recording.external_process_id, "type": "transcript", "status": "success"}
    response = await hook_client.post(
        HOOK, json=payload, headers={"Authorization": f"bearer {HOOK_TOKEN}"}
    )
    assert response.status == 200
    assert await status_of(factory, recording) == "external_process_successful"


async def test_hook_token_not_configured_is_401(client: Client, factory: Factory) -> None:
    recording = await job_recording(factory)
    payload = {"job_id": recording.external_process_id, "type": "transcript", "status": "success"}
    for headers in ({}, bearer(), bearer("")):
        response = await client.post(HOOK, json=payload, headers=headers)
        assert response.status == 401
        assert await response.json() == {
            "detail": "Authentication is enabled but token is not configured."
        }
    assert await status_of(factory, recording) == "saved"


async def test_hook_ignores_a_session(make_client: MakeClient, factory: Factory) -> None:
    recording = await job_recording(factory)
    client = await make_client(
        await factory.user(), summary=SummarySettings(webhook_api_token=Secret(HOOK_TOKEN))
    )
    payload = {"job_id": recording.external_process_id, "type": "transcript", "status": "success"}
    assert (await client.post(HOOK, json=payload)).status == 401
    assert await status_of(factory, recording) == "saved"


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({}, {"job_id": ["This field is required."]}),
        ({"type": "transcript", "status": "success"}, {"job_id": ["This field is required."]}),
        ({"job_id": ""}, {"job_id": ["This field may not be blank."]}),
        ({"job_id": "   "}, {"job_id": ["This field may not be blank."]}),
        ({"job_id": None}, None),
        ({"job_id": {"id": 1}}, None),
        ({"job_id": ["a"]}, None),
        ({"job_id": True}, None),
        ({"job_id": "x", "type": {"a": 1}}, None),
        ({"job_id": "x", "status": ["success"]}, None),
    ],
)
async def test_hook_validates_the_body(
    hook_client: Client, factory: Factory, payload: dict[str, Any], errors: Any
) -> None:
    recording = await job_recording(factory)
    response = await hook_client.post(HOOK, json=payload, headers=bearer())
    assert response.status == 400
    body = await response.json()
    if errors is not None:
        assert body == errors
    else:
        assert set(body) <= {"job_id", "type", "status"} and body
    assert await status_of(factory, recording) == "saved"


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'"job"', "application/json", 400),
        (b"job_id=x", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_hook_rejects_malformed_bodies(
    hook_client: Client, factory: Factory, data: bytes, content_type: str, status: int
) -> None:
    recording = await job_recording(factory)
    headers = {**bearer(), "Content-Type": content_type}
    response = await hook_client.post(HOOK, data=data, headers=headers)
    assert response.status == status
    assert isinstance(await response.json(), dict)
    assert await status_of(factory, recording) == "saved"


@pytest.mark.parametrize(
    ("event_status", "expected"),
    [("success", "external_process_successful"), ("failure", "external_process_failed")],
)
async def test_hook_transcript_result_sets_the_status(
    hook_client: Client, factory: Factory, event_status: str, expected: str
) -> None:
    recording = await job_recording(factory, status="notification_succeeded")
    untouched = await job_recording(factory)
    payload = {
        "job_id": recording.external_process_id,
        "type": "transcript",
        "status": event_status,
    }
    response = await hook_client.post(HOOK, json=payload, headers=bearer())
    assert response.status == 200
    assert await response.json() == {"message": "Event processed."}
    assert await status_of(factory, recording) == expected
    assert await status_of(factory, untouched) == "saved"
    stored = await read_recording(factory.sessionmaker, recording.id)
    assert stored is not None and stored.updated_at >= recording.updated_at


async def test_hook_unknown_job_is_ignored(hook_client: Client, factory: Factory) -> None:
    recording = await job_recording(factory)
    for job_id in ("unknown-job", 12345):
        payload = {"job_id": job_id, "type": "transcript", "status": "success"}
        response = await hook_client.post(HOOK, json=payload, headers=bearer())
        assert response.status == 200
        assert await response.json() == {"message": "Event processed."}
    assert await status_of(factory, recording) == "saved"


@pytest.mark.parametrize(
    "extra",
    [
        {"type": "summary", "status": "success"},
        {"type": "summary", "status": "failure"},
        {"type": "transcript", "status": "pending"},
        {"type": "transcript"},
        {"status": "success"},
        {},
        {"type": None, "status": None},
        {"type": "", "status": ""},
        {"type": "TRANSCRIPT", "status": "success"},
    ],
)
async def test_hook_other_events_change_nothing(
    hook_client: Client, factory: Factory, extra: dict[str, Any]
) -> None:
    recording = await job_recording(factory)
    response = await hook_client.post(
        HOOK, json={"job_id": recording.external_process_id, **extra}, headers=bearer()
    )
    assert response.status == 200
    assert await response.json() == {"message": "Event processed."}
    assert await status_of(factory, recording) == "saved"


async def test_hook_ignores_unknown_fields(hook_client: Client, factory: Factory) -> None:
    recording = await job_recording(factory)
    payload = {
        "job_id": recording.external_process_id,
        "type": "transcript",
        "status": "failure",
        "error": {"code": 42},
    }
    response = await hook_client.post(HOOK, json=payload, headers=bearer())
    assert response.status == 200
    assert await status_of(factory, recording) == "external_process_failed"
