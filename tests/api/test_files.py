"""Files API (reference §2.8) against moto's S3 server, side by side with Meet's
``core/tests/files/`` (each test names the Meet test it answers in its docstring)."""

from __future__ import annotations

import asyncio
import itertools
import operator
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from api import keys
from api.app import create_app
from coordinator.object_storage import ObjectStorage
from coordinator.settings import FileRestriction, FileSettings, S3Settings
from storage import files as file_queries
from storage.files import FileRecord
from storage.records import UserRecord
from tests.conftest import make_settings
from tests.support.factories import Factory, login

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

URL = "/api/v1.0/files/"
MEDIA_AUTH = f"{URL}media-auth/"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 3
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200
UNAUTHENTICATED = {"detail": "Authentication credentials were not provided."}
NOT_PENDING = {"file": "This action is only available for files in PENDING state."}
TEXT_ALLOWED = FileRestriction(
    allowed_extensions=(".txt", ".pdf", ".png"),
    allowed_mimetypes=("text/html", "text/plain"),
)
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def files_settings(**limits: Any) -> FileSettings:
    restriction = replace(FileRestriction(), **limits)
    return FileSettings(restrictions={"background_image": restriction})


@pytest.fixture
def make_client(aiohttp_client: Any, database_url: str, s3_settings: S3Settings) -> MakeClient:
    """``await make_client(user, **settings_overrides)``: the app with files on and moto."""

    async def _make(user: UserRecord | None = None, **overrides: Any) -> Client:
        overrides.setdefault("file_upload_enabled", True)
        overrides.setdefault("s3", s3_settings)
        client: Client = await aiohttp_client(create_app(make_settings(database_url, **overrides)))
        if user is not None:
            login(client, client.app[keys.SESSIONS], user)
        return client

    return _make


@pytest.fixture
async def bucket(s3_settings: S3Settings) -> AsyncIterator[ObjectStorage]:
    async with ObjectStorage(s3_settings) as storage:
        yield storage


async def make_file(
    factory: Factory,
    creator: UserRecord | None,
    *,
    filename: str = "bg.png",
    title: str | None = None,
    state: str = "pending",
    description: str | None = None,
    **values: Any,
) -> FileRecord:
    """Meet's FileFactory: a row straight in the database."""
    if creator is None:
        creator = await factory.user()
    async with factory.sessionmaker.begin() as session:
        record = await file_queries.create_file(
            session,
            file_id=uuid.uuid4(),
            creator_id=creator.id,
            file_type="background_image",
            title=title or filename.rsplit(".", 1)[0],
            filename=filename,
            description=description,
            max_count=None,
        )
        assert record is not None
        if state != "pending" or values:
            await file_queries.update_file(session, record.id, upload_state=state, **values)
        updated = await file_queries.get_file(session, record.id)
    return updated or record  # a hard-deleted file is not readable any more


async def read_file(factory: Factory, file_id: uuid.UUID | str) -> FileRecord | None:
    async with factory.sessionmaker() as session:
        return await file_queries.get_file(session, uuid.UUID(str(file_id)))


async def count_rows(factory: Factory) -> int:
    from sqlalchemy import func, select

    from storage.models import File

    async with factory.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(File)) or 0)


async def object_exists(bucket: ObjectStorage, key: str) -> bool:
    from coordinator.object_storage import ObjectMissing

    try:
        await bucket.head(key)
    except ObjectMissing:
        return False
    return True


def keys_of(record: FileRecord | dict[str, Any]) -> tuple[str, str]:
    if isinstance(record, dict):
        file_id, filename = record["id"], record["filename"]
    else:
        file_id, filename = str(record.id), record.filename
    extension = "." + filename.rsplit(".", 1)[1] if "." in filename else ""
    return f"files/{file_id}{extension}", f"tmp/files/{file_id}{extension}"


# -- the web app's flow, end to end ----------------------------------------------------------


async def test_background_image_end_to_end_through_the_web_app_calls(
    make_client: MakeClient, factory: Factory, s3_settings: S3Settings
) -> None:
    """frontend-calls §7: create → PUT to the policy → upload-ended → listed with a url →
    media-auth gives the proxy the headers that fetch the very bytes from the bucket."""
    user = await factory.user()
    client = await make_client(user)
    created = await client.post(URL, json={"filename": "beach.png", "type": "background_image"})
    assert created.status == 201
    body = await created.json()
    assert body["upload_state"] == "pending" and body["url"] is None
    policy = body["policy"]

    # The browser's XHR: no cookies, X-amz-acl and Content-Type; only a 200 counts.
    async with (
        aiohttp.ClientSession() as browser,
        browser.put(
            policy, data=PNG, headers={"X-amz-acl": "private", "Content-Type": "image/png"}
        ) as put,
    ):
        assert put.status == 200

    ended = await client.post(f"{URL}{body['id']}/upload-ended/")
    assert ended.status == 200
    ready = await ended.json()
    assert ready["upload_state"] == "ready"
    assert ready["mimetype"] == "image/png" and ready["size"] == len(PNG)
    assert ready["url"] == f"/media/files/{body['id']}.png"

    listing = await client.get(
        "/api/v1.0/files?page=1&page_size=20&is_creator_me=true&type=background_image"
        "&upload_state=ready&is_deleted=false"
    )
    assert listing.status == 200
    page = await listing.json()
    assert page["count"] == 1
    assert [(item["id"], item["url"], item["title"]) for item in page["results"]] == [
        (body["id"], ready["url"], "beach")
    ]

    auth = await client.get(
        MEDIA_AUTH, headers={"X-Original-URL": f"https://meet.example.com{ready['url']}"}
    )
    assert auth.status == 200
    assert await auth.json() == "authorized"
    forwarded = {
        name: auth.headers[name]
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "Host")
    }
    assert (
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
        in (forwarded["Authorization"])
    )
    # The signature is the one an independent SigV4 implementation computes.
    from tests.support.sigv4 import S3Config, sign_get_headers

    signed_at = datetime.strptime(forwarded["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    oracle = S3Config(
        s3_settings.endpoint_url,
        s3_settings.bucket,
        s3_settings.access_key,
        s3_settings.secret_key,
        s3_settings.region,
    )
    assert sign_get_headers(oracle, f"files/{body['id']}.png", signed_at) == forwarded
    # What the proxy does: GET the object with those headers.
    object_url = f"{s3_settings.endpoint_url}/{s3_settings.bucket}/files/{body['id']}.png"
    async with aiohttp.ClientSession() as proxy, proxy.get(object_url, headers=forwarded) as got:
        assert got.status == 200
        assert got.headers["Content-Type"] == "image/png"
        assert await got.read() == PNG

    deleted = await client.delete(f"{URL}{body['id']}/")
    assert deleted.status == 204
    after = await client.get(f"{URL}?is_deleted=false")
    assert (await after.json())["count"] == 0


# -- create (test_api_files_create.py) -------------------------------------------------------


@SQLITE
async def test_create_anonymous_is_401(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_create_anonymous"""
    client = await make_client()
    response = await client.post(URL, json={"title": "My file", "type": "background_image"})
    assert response.status == 401
    assert await response.json() == UNAUTHENTICATED
    assert await count_rows(factory) == 0


@SQLITE
async def test_create_success_policy(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_create_authenticated_success, …_create_file_authenticated_success"""
    user = await factory.user()
    client = await make_client(user)
    before = datetime.now(UTC).replace(microsecond=0)
    response = await client.post(
        URL, json={"title": "Eiffle tower", "filename": "file.png", "type": "background_image"}
    )
    assert response.status == 201
    body = await response.json()
    record = await read_file(factory, body["id"])
    assert record is not None and record.creator is not None
    assert record.creator.id == user.id
    assert (record.title, record.type, record.filename, record.upload_state) == (
        "Eiffle tower",
        "background_image",
        "file.png",
        "pending",
    )
    assert body["creator"] == {
        "id": str(user.id),
        "full_name": user.full_name,
        "short_name": user.short_name,
    }
    policy = urlsplit(body["policy"])
    assert policy.scheme == "http"
    assert policy.path.endswith(f"/tmp/files/{record.id}.png")
    query = parse_qs(policy.query)
    date = query.pop("X-Amz-Date")[0]
    signed_at = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= signed_at <= datetime.now(UTC)
    assert query.pop("X-Amz-Algorithm") == ["AWS4-HMAC-SHA256"]
    assert query.pop("X-Amz-Credential") == [f"meet/{date[:8]}/us-east-1/s3/aws4_request"]
    assert query.pop("X-Amz-Expires") == ["60"]
    assert query.pop("X-Amz-SignedHeaders") == ["host;x-amz-acl"]
    assert query.pop("X-Amz-Signature")
    assert query == {}


@SQLITE
async def test_create_needs_a_filename(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_create_file_authenticated_no_filename"""
    client = await make_client(await factory.user())
    response = await client.post(URL, json={"title": "my item", "type": "background_image"})
    assert response.status == 400
    assert await response.json() == {"filename": ["This field is required."]}


@SQLITE
async def test_create_refuses_other_extensions(make_client: MakeClient, factory: Factory) -> None:
    """…_extension_not_allowed, …_no_extension_but_checking_it_should_fail,
    …_hidden_file_but_checking_extension_should_fail"""
    client = await make_client(await factory.user())
    for filename in ("file.notallowed", "file", ".file", "file.png.exe"):
        body = {"type": "background_image", "filename": filename}
        response = await client.post(URL, json=body)
        assert response.status == 400
        assert await response.json() == {"filename": ["This file extension is not allowed."]}
    assert await count_rows(factory) == 0


@SQLITE
async def test_create_extension_case_insensitive(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_create_file_authenticated_extension_case_insensitive"""
    client = await make_client(await factory.user())
    response = await client.post(URL, json={"type": "background_image", "filename": "file.JPG"})
    assert response.status == 201
    assert (await response.json())["title"] == "file"


@SQLITE
async def test_create_without_restrictions(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_create_file_authenticated_not_checking_extension"""
    client = await make_client(await factory.user(), files=FileSettings(apply_restrictions=False))
    response = await client.post(
        URL, json={"type": "background_image", "filename": "file.notallowed"}
    )
    assert response.status == 201
    assert (await response.json())["title"] == "file"


@SQLITE
async def test_every_route_is_404_when_disabled(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_create_file_disabled (and every other route: §2.8 "404 everywhere")"""
    user = await factory.user()
    record = await make_file(factory, user, state="ready")
    client = await make_client(user, file_upload_enabled=False)
    anonymous = await make_client(file_upload_enabled=False)
    calls = [
        ("GET", URL, None),
        ("POST", URL, {"type": "background_image", "filename": "file.JPG"}),
        ("GET", f"{URL}{record.id}/", None),
        ("PATCH", f"{URL}{record.id}/", {"title": "x"}),
        ("PUT", f"{URL}{record.id}/", {"title": "x", "type": "background_image"}),
        ("DELETE", f"{URL}{record.id}/", None),
        ("POST", f"{URL}{record.id}/upload-ended/", None),
        ("GET", MEDIA_AUTH, None),
    ]
    for caller in (client, anonymous):
        for method, path, body in calls:
            response = await caller.request(method, path, json=body)
            assert response.status == 404, (method, path)
            assert await response.json() == {"detail": "Not found."}
    assert await count_rows(factory) == 1


@SQLITE
async def test_create_quota(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_create_file_too_many; deleted files do not count"""
    user = await factory.user()
    client = await make_client(user, files=files_settings(max_count_by_user=1))
    first = await client.post(URL, json={"type": "background_image", "filename": "1.png"})
    assert first.status == 201
    second = await client.post(URL, json={"type": "background_image", "filename": "2.png"})
    assert second.status == 403
    assert await second.json() == {
        "detail": "You have reached the maximum number of files for this type."
    }
    assert await count_rows(factory) == 1
    # Another user has a quota of their own; a deleted file frees the slot.
    other = await make_client(await factory.user(), files=files_settings(max_count_by_user=1))
    assert (
        await other.post(URL, json={"type": "background_image", "filename": "1.png"})
    ).status == 201
    assert (await client.delete(f"{URL}{(await first.json())['id']}/")).status == 204
    third = await client.post(URL, json={"type": "background_image", "filename": "3.png"})
    assert third.status == 201


async def test_create_quota_holds_under_concurrent_creations(
    make_client: MakeClient, factory: Factory
) -> None:
    """Hostile: a burst of creations cannot overshoot max_count_by_user (the count and the
    insert are one statement under the creator's lock)."""
    user = await factory.user()
    client = await make_client(user, files=files_settings(max_count_by_user=3))
    responses = await asyncio.gather(
        *(
            client.post(URL, json={"type": "background_image", "filename": f"{n}.png"})
            for n in range(10)
        )
    )
    statuses = sorted(response.status for response in responses)
    assert statuses == [201] * 3 + [403] * 7
    assert await count_rows(factory) == 3


@SQLITE
async def test_create_forced_id(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_create_force_id_success, test_api_files_create_force_id_existing"""
    client = await make_client(await factory.user())
    forced = uuid.uuid4()
    body = {"id": str(forced), "type": "background_image", "filename": "my_file.png"}
    response = await client.post(URL, json=body)
    assert response.status == 201
    assert (await response.json())["id"] == str(forced)
    # Somebody else's id (or one's own) cannot be taken over.
    existing = await make_file(factory, None)
    again = await client.post(URL, json={**body, "id": str(existing.id)})
    assert again.status == 400
    assert await again.json() == {
        "id": ["A file with this ID already exists. You cannot override it."]
    }
    assert await count_rows(factory) == 2


@SQLITE
async def test_create_concurrently_by_two_users(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_create_file_race_condition"""
    one = await make_client(await factory.user())
    two = await make_client(await factory.user())
    body = {"type": "background_image", "filename": "my_file.png"}
    first, second = await asyncio.gather(
        one.post(URL, json={**body, "title": "my item 1"}),
        two.post(URL, json={**body, "title": "my item 2"}),
    )
    assert (first.status, second.status) == (201, 201)


ODD_INPUTS = [
    ("filename", "a\x00b.png", 400),
    ("filename", "\ud800.png", 400),
    ("title", "nul \x00", 400),
    ("filename", "x" * 252 + ".png", 400),
    ("filename", "../../etc/passwd.png", 201),
    ("filename", "fi\nle\u202e\U0001f600.png", 201),
    ("title", "line\r\nbreak \u202egnp.exe", 201),
]


async def test_create_with_odd_bytes(make_client: MakeClient, factory: Factory) -> None:
    """Hostile: NUL and lone surrogates are 400 on both databases; path-like or control
    characters are stored as text and never reach a storage key (only the id and extension)."""
    client = await make_client(await factory.user())
    for field, value, status in ODD_INPUTS:
        body = {"type": "background_image", "filename": "ok.png", field: value}
        response = await client.post(URL, json=body)
        assert response.status == status, (field, value)
        data = await response.json()
        if status == 201:
            assert data[field] == value
            assert urlsplit(data["policy"]).path.endswith(f"/tmp/files/{data['id']}.png")
        else:
            assert field in data


# -- list, filters, ordering (test_api_files_list*.py) ----------------------------------------


@SQLITE
async def test_list_anonymous_and_empty(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_list_anonymous_not_allowed, …_authentificated_user_allowed"""
    assert (await (await make_client()).get(URL)).status == 401
    client = await make_client(await factory.user())
    response = await client.get(URL)
    assert response.status == 200
    assert await response.json() == {"count": 0, "next": None, "previous": None, "results": []}


@SQLITE
async def test_list_format(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_list_format: other users' and hard-deleted files never show"""
    user = await factory.user()
    record = await make_file(factory, user, title="item 1")
    await make_file(factory, None, title="item 2")
    now = datetime.now(UTC)
    await make_file(factory, user, title="hard", deleted_at=now, hard_deleted_at=now)
    client = await make_client(user)
    response = await client.get(URL)
    assert response.status == 200
    content = await response.json()
    results = content.pop("results")
    assert content == {"count": 1, "next": None, "previous": None}

    def z(value: datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")

    assert results == [
        {
            "id": str(record.id),
            "created_at": z(record.created_at),
            "creator": {
                "id": str(user.id),
                "full_name": user.full_name,
                "short_name": user.short_name,
            },
            "title": "item 1",
            "updated_at": z(record.updated_at),
            "type": "background_image",
            "upload_state": "pending",
            "url": None,
            "mimetype": None,
            "filename": "bg.png",
            "size": None,
            "description": None,
            "deleted_at": None,
            "hard_deleted_at": None,
            "abilities": {
                "destroy": True,
                "hard_delete": True,
                "media_auth": True,
                "partial_update": True,
                "retrieve": True,
                "update": True,
                "upload_ended": True,
            },
        }
    ]


@SQLITE
async def test_list_pagination(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_list_pagination"""
    user = await factory.user()
    ids = {str((await make_file(factory, user)).id) for _ in range(3)}
    client = await make_client(user)
    first = await (await client.get(f"{URL}?page_size=2")).json()
    assert first["count"] == 3
    assert first["next"] == str(client.make_url(f"{URL}?page=2&page_size=2"))
    assert first["previous"] is None
    second = await (await client.get(f"{URL}?page=2&page_size=2")).json()
    assert second["next"] is None
    assert second["previous"] == str(client.make_url(f"{URL}?page_size=2"))
    assert {item["id"] for item in first["results"] + second["results"]} == ids


@SQLITE
async def test_list_filters(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_list_filter_unknown_field, …_is_creator_me_true, …_is_creator_me_invalid,
    …_type_and_upload_status, …_is_deleted, …_unknown_type"""
    user = await factory.user()
    other = await factory.user()
    await make_file(factory, other, state="ready")
    pending = await make_file(factory, user)
    ready = [await make_file(factory, user, state="ready") for _ in range(2)]
    gone = await make_file(factory, user, state="ready", deleted_at=datetime.now(UTC))
    client = await make_client(user)

    async def ids(query: str) -> set[str]:
        response = await client.get(f"{URL}?{query}")
        assert response.status == 200, query
        body = await response.json()
        assert body["count"] == len(body["results"])
        return {item["id"] for item in body["results"]}

    mine = {str(f.id) for f in [pending, *ready, gone]}
    assert await ids("unknown=true") == mine
    assert await ids("is_creator_me=true") == mine
    assert await ids("is_creator_me=invalid") == mine
    assert await ids("is_creator_me=false") == set()
    assert await ids("type=background_image&upload_state=ready") == {
        str(f.id) for f in [*ready, gone]
    }
    assert await ids("type=background_image") == mine
    assert await ids("is_deleted=true") == {str(gone.id)}
    assert await ids("is_deleted=false") == {str(f.id) for f in [pending, *ready]}
    response = await client.get(f"{URL}?type=unknown")
    assert response.status == 400
    assert await response.json() == {
        "type": ["Select a valid choice. unknown is not one of the available choices."]
    }
    bad_state = await client.get(f"{URL}?upload_state=%00")
    assert bad_state.status == 400


@SQLITE
async def test_list_ordering(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_list_ordering_default, test_api_files_list_ordering_by_fields"""
    user = await factory.user()
    base = datetime.now(UTC)
    for n, title in enumerate(["b", "D", "a", "c"]):
        record = await make_file(factory, user, title=title)
        async with factory.sessionmaker.begin() as session:
            await file_queries.update_file(
                session, record.id, created_at=base - timedelta(minutes=n)
            )
    client = await make_client(user)
    for query, field, descending in [
        ("", "updated_at", True),
        ("?ordering=created_at", "created_at", False),
        ("?ordering=-created_at", "created_at", True),
        ("?ordering=updated_at", "updated_at", False),
        ("?ordering=-updated_at", "updated_at", True),
        ("?ordering=title", "title", False),
        ("?ordering=-title,created_at", "title", True),
        ("?ordering=nope,-password", "updated_at", True),
    ]:
        results = (await (await client.get(f"{URL}{query}")).json())["results"]
        assert len(results) == 4
        compare = operator.ge if descending else operator.le
        values = [item[field] for item in results]
        for first, second in itertools.pairwise(values):
            assert compare(first, second), (query, values)


# -- retrieve, update, delete ----------------------------------------------------------------


@SQLITE
async def test_update_and_retrieve(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_update_anonymous_forbidden, test_api_files_update_description_and_title"""
    user = await factory.user()
    record = await make_file(factory, user, title="Old title", description="Old description")
    anonymous = await make_client()
    response = await anonymous.put(
        f"{URL}{record.id}/", json={"title": "x", "type": "background_image"}
    )
    assert response.status == 401
    assert await response.json() == UNAUTHENTICATED
    client = await make_client(user)
    patched = await client.patch(
        f"{URL}{record.id}/", json={"description": "New description", "title": "New title"}
    )
    assert patched.status == 200
    body = await patched.json()
    assert (body["description"], body["title"]) == ("New description", "New title")
    stored = await read_file(factory, record.id)
    assert stored is not None and stored.title == "New title"
    # Read-only fields are ignored; PUT needs title and type.
    await client.patch(f"{URL}{record.id}/", json={"upload_state": "ready", "size": 1})
    stored = await read_file(factory, record.id)
    assert stored is not None and (stored.upload_state, stored.size) == ("pending", None)
    put = await client.put(f"{URL}{record.id}/", json={"title": "T"})
    assert put.status == 400 and "type" in await put.json()
    got = await client.get(f"{URL}{record.id}/")
    assert got.status == 200 and (await got.json())["title"] == "New title"


@SQLITE
async def test_others_files_are_404(make_client: MakeClient, factory: Factory) -> None:
    """Hostile: another user's file id, a deleted file, a malformed id — all 404 (Meet's
    FilePermission), and nothing changes."""
    owner = await factory.user()
    record = await make_file(factory, owner, state="pending")
    gone = await make_file(factory, owner, deleted_at=datetime.now(UTC))
    intruder = await make_client(await factory.user())
    owner_client = await make_client(owner)
    for client, target in ((intruder, str(record.id)), (owner_client, str(gone.id))):
        for method, path, body in [
            ("GET", f"{URL}{target}/", None),
            ("PATCH", f"{URL}{target}/", {"title": "pwned"}),
            ("PUT", f"{URL}{target}/", {"title": "pwned", "type": "background_image"}),
            ("DELETE", f"{URL}{target}/", None),
            ("POST", f"{URL}{target}/upload-ended/", None),
        ]:
            response = await client.request(method, path, json=body)
            assert response.status == 404, (method, path)
            assert await response.json() == {"detail": "No File matches the given query."}
    for bad in ("not-a-uuid", "%00", "1" * 300):
        assert (await intruder.get(f"{URL}{bad}/")).status == 404
    stored = await read_file(factory, record.id)
    assert stored is not None and stored.title == "bg" and stored.deleted_at is None


@SQLITE
async def test_delete(make_client: MakeClient, factory: Factory) -> None:
    """test_api_files_delete_anonymous, test_api_files_delete_authenticated_owner"""
    user = await factory.user()
    record = await make_file(factory, user)
    assert (await (await make_client()).delete(f"{URL}{record.id}/")).status == 401
    client = await make_client(user)
    response = await client.delete(f"{URL}{record.id}/")
    assert response.status == 204
    stored = await read_file(factory, record.id)
    assert stored is not None and stored.deleted_at is not None
    assert stored.hard_deleted_at is None
    # Soft-deleted files still list (is_deleted=true) with the abilities Meet gives them.
    listed = (await (await client.get(f"{URL}?is_deleted=true")).json())["results"]
    assert listed[0]["abilities"] == {
        "destroy": False,
        "hard_delete": True,
        "media_auth": False,
        "partial_update": False,
        "retrieve": True,
        "update": False,
        "upload_ended": False,
    }


# -- media-auth (test_api_files_media_auth.py) ----------------------------------------------


@SQLITE
async def test_media_auth(
    make_client: MakeClient, factory: Factory, bucket: ObjectStorage, s3_settings: S3Settings
) -> None:
    """test_api_files_media_auth_anonymous_not_authorized, test_api_files_media_get_own,
    test_api_files_media_auth_rejects (pending, analyzing), …_own_file_deleted"""
    user = await factory.user()
    record = await make_file(factory, user, state="ready")
    key = keys_of(record)[0]
    await bucket.put(key, b"my prose", "text/plain")
    original = f"http://localhost/media/{key}"

    anonymous = await make_client()
    assert (await anonymous.get(MEDIA_AUTH, headers={"X-Original-URL": original})).status == 401

    client = await make_client(user)
    before = datetime.now(UTC).replace(microsecond=0)
    response = await client.get(MEDIA_AUTH, headers={"X-Original-URL": original})
    assert response.status == 200
    assert "AWS4-HMAC-SHA256 Credential=" in response.headers["Authorization"]
    signed_at = datetime.strptime(response.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    assert before <= signed_at.replace(tzinfo=UTC) <= datetime.now(UTC)
    headers = {
        name: response.headers[name]
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "Host")
    }
    url = f"{s3_settings.endpoint_url}/{s3_settings.bucket}/{key}"
    async with aiohttp.ClientSession() as proxy, proxy.get(url, headers=headers) as got:
        assert await got.read() == b"my prose"

    for state in ("pending", "analyzing"):
        waiting = await make_file(factory, user, state=state)
        path = f"http://localhost/media/{keys_of(waiting)[0]}"
        refused = await client.get(MEDIA_AUTH, headers={"X-Original-URL": path})
        assert refused.status == 403, state
    async with factory.sessionmaker.begin() as session:
        await file_queries.soft_delete(session, record.id)
    assert (await client.get(MEDIA_AUTH, headers={"X-Original-URL": original})).status == 403


@SQLITE
async def test_media_auth_hostile(make_client: MakeClient, factory: Factory) -> None:
    """Hostile: another user's ready file, no header, other paths, a wrong extension, odd
    bytes — all 403 (Meet answers 403 without detail), never a signature."""
    owner = await factory.user()
    record = await make_file(factory, owner, state="ready")
    key = keys_of(record)[0]
    intruder = await make_client(await factory.user())
    originals = [
        f"http://localhost/media/{key}",
        f"http://localhost/media/{key[:-4]}.jpg",
        f"http://localhost/media/tmp/{key}",
        f"http://localhost/media/files/../{key}",
        f"http://localhost/media/recordings/{record.id}.mp4",
        f"http://localhost/media/files/{uuid.uuid4()}.png",
        "http://localhost/media/files/%00.png",
        "http://localhost/media/files/\u00e9\u202e.png",
    ]
    for original in originals:
        response = await intruder.get(MEDIA_AUTH, headers={"X-Original-URL": original})
        assert response.status == 403, original
        assert "Authorization" not in response.headers
    assert (await intruder.get(MEDIA_AUTH)).status == 403
    owner_client = await make_client(owner)
    wrong_extension = f"http://localhost/media/{key[:-4]}.jpg"
    response = await owner_client.get(MEDIA_AUTH, headers={"X-Original-URL": wrong_extension})
    assert response.status == 403


# -- upload-ended (test_api_files_upload_ended.py) -------------------------------------------


@SQLITE
async def test_upload_ended_states(make_client: MakeClient, factory: Factory) -> None:
    """test_api_file_upload_ended_anonymous, …_non_creator_not_found,
    …_on_wrong_upload_state; a missing upload is a 400 and the file stays pending"""
    user = await factory.user()
    record = await make_file(factory, user)
    assert (await (await make_client()).post(f"{URL}{record.id}/upload-ended/")).status == 401
    stranger = await make_client(await factory.user())
    assert (await stranger.post(f"{URL}{record.id}/upload-ended/")).status == 404
    client = await make_client(user)
    ready = await make_file(factory, user, state="ready")
    response = await client.post(f"{URL}{ready.id}/upload-ended/")
    assert response.status == 400
    assert await response.json() == NOT_PENDING
    missing = await client.post(f"{URL}{record.id}/upload-ended/")
    assert missing.status == 400
    assert await missing.json() == {"file": "The file has not been uploaded."}
    stored = await read_file(factory, record.id)
    assert stored is not None and stored.upload_state == "pending"


@SQLITE
async def test_upload_ended_success(
    make_client: MakeClient, factory: Factory, bucket: ObjectStorage
) -> None:
    """test_api_file_upload_ended_success; …_mimetype_not_allowed_not_checking_mimetype"""
    user = await factory.user()
    for files in (
        FileSettings(restrictions={"background_image": TEXT_ALLOWED}),
        FileSettings(
            apply_restrictions=False,
            restrictions={"background_image": replace(TEXT_ALLOWED, allowed_mimetypes=("x/y",))},
        ),
    ):
        record = await make_file(factory, user, filename="my_file.txt", mimetype="text/html")
        await bucket.put(keys_of(record)[1], b"my prose", "binary/octet-stream")
        client = await make_client(user, files=files)
        response = await client.post(f"{URL}{record.id}/upload-ended/")
        assert response.status == 200
        assert (await response.json())["mimetype"] == "text/plain"
        stored = await read_file(factory, record.id)
        assert stored is not None
        assert (stored.upload_state, stored.mimetype, stored.size) == ("ready", "text/plain", 8)


@SQLITE
async def test_upload_ended_rejections_delete_the_file(
    make_client: MakeClient, factory: Factory, bucket: ObjectStorage
) -> None:
    """test_api_file_upload_ended_mimetype_not_allowed, test_api_upload_ended_file_size_exceeded;
    hostile: a .png whose bytes are an EXE, and one over max_size, are rejected and deleted"""
    user = await factory.user()
    cases = [
        ("my_file.txt", b"my prose", replace(TEXT_ALLOWED, allowed_mimetypes=("application/pdf",))),
        ("my_file.txt", b"my prose", replace(TEXT_ALLOWED, max_size=0)),
        ("innocent.png", EXE, FileRestriction()),
        ("big.png", PNG + b"\x00" * 1000, FileRestriction(max_size=len(PNG) + 999)),
    ]
    for filename, data, limits in cases:
        record = await make_file(factory, user, filename=filename)
        final, temporary = keys_of(record)
        await bucket.put(temporary, data, "image/png")
        client = await make_client(
            user, files=FileSettings(restrictions={"background_image": limits})
        )
        response = await client.post(f"{URL}{record.id}/upload-ended/")
        assert response.status == 400, filename
        assert "detail" in await response.json()
        assert await read_file(factory, record.id) is None
        assert await count_rows(factory) == 0
        assert not await object_exists(bucket, final)
        assert not await object_exists(bucket, temporary)


@SQLITE
async def test_upload_ended_fixes_the_stored_content_type(
    make_client: MakeClient, factory: Factory, bucket: ObjectStorage
) -> None:
    """test_api_upload_ended_mismatch_mimetype_with_object_storage"""
    user = await factory.user()
    record = await make_file(factory, user, filename="my_file.pdf")
    final, temporary = keys_of(record)
    client_storage = bucket
    await client_storage.put(temporary, b'<meta http-equiv="refresh" content="0">', "text/html")
    await client_storage.copy(
        temporary, temporary, content_type="text/html", metadata={"foo": "bar"}
    )
    assert (await bucket.head(temporary)).content_type == "text/html"
    limits = replace(TEXT_ALLOWED, allowed_mimetypes=("text/html", "application/pdf"))
    client = await make_client(user, files=FileSettings(restrictions={"background_image": limits}))
    response = await client.post(f"{URL}{record.id}/upload-ended/")
    assert response.status == 200
    assert (await response.json())["mimetype"] == "application/pdf"
    head = await bucket.head(final)
    assert head.content_type == "application/pdf"
    assert head.metadata == {"foo": "bar"}


async def test_upload_ended_concurrent_calls(
    make_client: MakeClient, factory: Factory, bucket: ObjectStorage
) -> None:
    """test_api_file_upload_ended_concurrent_calls_are_serialized (here four at once)"""
    user = await factory.user()
    record = await make_file(factory, user, filename="bg.png")
    await bucket.put(keys_of(record)[1], PNG, "image/png")
    client = await make_client(user)
    responses = await asyncio.gather(
        *(client.post(f"{URL}{record.id}/upload-ended/") for _ in range(4))
    )
    assert sorted(response.status for response in responses) == [200, 400, 400, 400]
    for response in responses:
        if response.status == 400:
            assert await response.json() == NOT_PENDING
    stored = await read_file(factory, record.id)
    assert stored is not None and stored.upload_state == "ready"


# -- a hanging object storage ----------------------------------------------------------------


@pytest.fixture
async def hanging_s3() -> AsyncIterator[str]:
    """A socket that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@SQLITE
async def test_a_hanging_object_storage_is_a_json_503(
    make_client: MakeClient, factory: Factory, s3_settings: S3Settings, hanging_s3: str
) -> None:
    """Hostile dependency: presigning needs no network (201), but upload-ended and the
    commands against a bucket that never answers end within the timeout with a JSON 503, and
    the file goes back to pending."""
    user = await factory.user()
    s3 = replace(s3_settings, endpoint_url=hanging_s3, timeout_seconds=0.3)
    client = await make_client(user, s3=s3)
    created = await client.post(URL, json={"type": "background_image", "filename": "a.png"})
    assert created.status == 201
    file_id = (await created.json())["id"]
    started = asyncio.get_running_loop().time()
    response = await client.post(f"{URL}{file_id}/upload-ended/")
    assert response.status == 503
    assert await response.json() == {"detail": "Object storage is unavailable."}
    assert asyncio.get_running_loop().time() - started < 3
    stored = await read_file(factory, file_id)
    assert stored is not None and stored.upload_state == "pending"


@SQLITE
async def test_without_object_storage_create_is_503(
    make_client: MakeClient, factory: Factory
) -> None:
    client = await make_client(await factory.user(), s3=S3Settings())
    response = await client.post(URL, json={"type": "background_image", "filename": "a.png"})
    assert response.status == 503
    assert await response.json() == {"detail": "Object storage is not configured."}
