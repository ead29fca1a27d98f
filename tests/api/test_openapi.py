"""The OpenAPI document, and schemathesis finding no 5xx and no schema contradiction."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.openapi import REGISTRY
from api.session import SessionCodec
from coordinator.cache import LookupCache
from coordinator.sessions import LoginSessions
from storage.engine import create_engine, create_sessionmaker
from tests.conftest import TEST_SECRET_KEY, make_settings, run_in_thread
from tests.support.factories import Factory
from tests.support.server import ServerThread


class Live:
    def __init__(self, url: str, cookies: dict[str, str], room_id: str) -> None:
        self.url = url
        self.cookies = cookies
        self.room_id = room_id


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Live]:
    path = tmp_path_factory.mktemp("openapi") / "meet.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    seeded: dict[str, Any] = {}

    async def seed() -> None:
        engine = create_engine(url)
        factory = Factory(create_sessionmaker(engine))
        user = await factory.user()
        seeded["user"] = user
        seeded["room"] = await factory.room(owner=user, name="fuzzed room")
        sessions = LoginSessions(factory.sessionmaker, LookupCache(0))
        seeded["sid"] = await sessions.open(user.id, max_age=24 * 3600)
        await engine.dispose()

    run_in_thread(seed())
    server = ServerThread(lambda: create_app(make_settings(url))).start()
    session = SessionCodec(TEST_SECRET_KEY, max_age=3600).encode(
        {"sid": seeded["sid"], "uid": str(seeded["user"].id), "exp": 2**40}
    )
    try:
        yield Live(server.url, {"sessionid": session, "csrftoken": "csrf"}, str(seeded["room"].id))
    finally:
        server.stop()


def test_document_is_served_and_generated_from_models(live: Live) -> None:
    with urllib.request.urlopen(f"{live.url}/api/v1.0/openapi.json") as response:
        document = json.load(response)
    assert document["openapi"].startswith("3.1")
    create = document["paths"]["/api/v1.0/rooms/"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/RoomCreate")
    room_create = document["components"]["schemas"]["RoomCreate"]
    assert room_create["required"] == ["name"]
    with urllib.request.urlopen(f"{live.url}/api/v1.0/docs/") as response:
        assert b"openapi.json" in response.read()


@pytest.fixture(scope="module")
def api_schema(live: Live) -> Any:
    with urllib.request.urlopen(f"{live.url}/api/v1.0/openapi.json") as response:
        document = json.load(response)
    return schemathesis.openapi.from_dict(document)


# Their callers sign every request (LiveKit): fuzzed requests are refused before anything else.
SIGNED_ENDPOINTS = {
    "/api/v1.0/rooms/webhooks-livekit/",
    "/api/v1.0/recordings/external-process-hook/",
    "/api/v1.0/recordings/storage-hook/",
    "/api/v1.0/roomkit/join/",  # the SIP module's server-to-server token
}
OPERATIONS = [(op.method, op.path) for op in REGISTRY.operations]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_conforms_to_its_schema(api_schema: Any, live: Live, method: str, path: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def exercise(case: Any) -> None:
        # Generated bearer tokens would all be refused: exercise the session path instead.
        if case.headers:
            case.headers.pop("Authorization", None)
        response = case.call_and_validate(
            base_url=live.url,
            cookies=live.cookies,
            headers={"X-CSRFToken": "csrf"},
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )
        statuses.add(response.status_code)

    statuses: set[int] = set()
    exercise()
    if path not in SIGNED_ENDPOINTS:
        assert statuses - {401}, f"{method} {path} never got past authentication"
