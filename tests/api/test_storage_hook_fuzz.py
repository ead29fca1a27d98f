"""Garbage, hostile and oversized storage events never produce a 5xx (hypothesis, real HTTP)."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from coordinator.settings import S3Settings, Secret
from tests.conftest import make_settings
from tests.support.server import ServerThread

TOKEN = "hook-token-" + "h" * 30
BUCKET = "meet-media-storage"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
keys_ = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda u, e: f"recordings%2F{u}.{e}", st.uuids(), st.sampled_from(["ogg", "mp4", "wav"])
    ),
    st.just("recordings%2F" + "a" * 5000 + ".ogg"),
)
events = st.builds(
    lambda bucket, key, ctype: {
        "Records": [
            {"s3": {"bucket": {"name": bucket}, "object": {"key": key, "contentType": ctype}}}
        ]
    },
    st.sampled_from([BUCKET, "other", ""]),
    keys_,
    st.sampled_from(["audio/ogg", "video/mp4", "text/plain", ""]),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[str]:
    path = tmp_path_factory.mktemp("hook") / "meet.db"
    shutil.copy(sqlite_template, path)
    app_settings = make_settings(
        f"sqlite+aiosqlite:///{path}",
        recording_enable=True,
        recording_storage_event_enable=True,
        recording_storage_event_token=Secret(TOKEN),
        s3=S3Settings(endpoint_url="http://127.0.0.1:9", bucket=BUCKET),
        background_tasks=False,
    )
    thread = ServerThread(lambda: create_app(app_settings)).start()
    try:
        yield thread.url
    finally:
        thread.stop()


def post(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{url}/api/v1.0/recordings/storage-hook/",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@given(payload=st.one_of(json_values, events))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_any_json_payload_is_answered_without_5xx(server: str, payload: Any) -> None:
    status, body = post(server, json.dumps(payload).encode())
    assert status < 500
    assert isinstance(body, dict)


@given(raw=st.binary(max_size=300))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_any_bytes_are_answered_without_5xx(server: str, raw: bytes) -> None:
    status, body = post(server, raw)
    assert status < 500 and isinstance(body, dict)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        json.dumps(
            {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": "k" * 900_000}}}]}
        ).encode(),
        b"x" * (2 * 1024 * 1024),
    ],
)
def test_hostile_and_oversized_payloads(server: str, body: bytes) -> None:
    status, payload = post(server, body)
    assert 400 <= status < 500 and isinstance(payload, dict)


def test_unknown_recording_is_404(server: str) -> None:
    event = {
        "Records": [
            {
                "s3": {
                    "bucket": {"name": BUCKET},
                    "object": {
                        "key": f"recordings%2F{uuid.uuid4()}.ogg",
                        "contentType": "audio/ogg",
                    },
                }
            }
        ]
    }
    status, body = post(server, json.dumps(event).encode())
    assert status == 404 and body == {"detail": "No recording found for this event."}
