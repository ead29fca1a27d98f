"""Twirp transport details, checked with raw HTTP requests (JSON like the Node SDK)."""

from __future__ import annotations

import io
import json

import aiohttp
import pytest
from livekit import api

from tests.livekit_standin import LiveKitStandin
from tests.livekit_standin.helpers import raw_post, serialized, token, twirp_url

ALL = api.VideoGrants(room_create=True, room_list=True, room_record=True)


@pytest.fixture
def bearer(livekit_standin: LiveKitStandin) -> str:
    return "Bearer " + token(livekit_standin.api_key, livekit_standin.api_secret, ALL)


async def test_json_requests_get_json_answers(
    livekit_standin: LiveKitStandin, session: aiohttp.ClientSession, bearer: str
) -> None:
    url = twirp_url(livekit_standin.url, "RoomService", "CreateRoom")
    body = json.dumps({"name": "json-room", "emptyTimeout": 60, "unknown_field": 1})
    status, headers, raw = await raw_post(
        session,
        url,
        body=body,
        content_type="application/json; charset=utf-8",
        authorization=bearer,
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    room = json.loads(raw)
    # proto field names, defaults included, int64 as strings
    assert room["name"] == "json-room" and room["empty_timeout"] == 60
    assert room["num_participants"] == 0 and room["metadata"] == ""
    assert isinstance(room["creation_time"], str)

    url = twirp_url(livekit_standin.url, "RoomService", "ListRooms")
    status, _, raw = await raw_post(
        session, url, body="{}", content_type="application/json", authorization=bearer
    )
    assert status == 200 and [r["name"] for r in json.loads(raw)["rooms"]] == ["json-room"]
    assert [c.content_type for c in livekit_standin.calls] == [
        "application/json; charset=utf-8",
        "application/json",
    ]


async def test_bad_routes(
    livekit_standin: LiveKitStandin, session: aiohttp.ClientSession, bearer: str
) -> None:
    base = livekit_standin.url
    url = twirp_url(base, "RoomService", "ListRooms")
    path = "/twirp/livekit.RoomService/ListRooms"

    status, headers, raw = await raw_post(
        session, url, content_type="text/plain", authorization=bearer
    )
    assert (status, headers["Content-Type"]) == (404, "application/json")
    assert json.loads(raw) == {
        "code": "bad_route",
        "msg": 'unexpected Content-Type: "text/plain"',
        "meta": {"twirp_invalid_route": f"POST {path}"},
    }

    status, _, raw = await raw_post(session, url, method="GET", authorization=bearer)
    assert status == 404
    assert json.loads(raw)["msg"] == 'unsupported method "GET" (only POST is allowed)'

    unknown = twirp_url(base, "RoomService", "Nope")
    status, _, raw = await raw_post(session, unknown, authorization=bearer)
    assert status == 404 and json.loads(raw)["code"] == "bad_route"
    assert json.loads(raw)["msg"] == 'no handler for path "/twirp/livekit.RoomService/Nope"'

    # An unknown service never reaches twirp: Go's mux answers a plain 404.
    status, headers, raw = await raw_post(
        session, twirp_url(base, "Nope", "X"), authorization=bearer
    )
    assert (status, raw) == (404, b"404 page not found\n")


async def test_malformed_bodies(
    livekit_standin: LiveKitStandin, session: aiohttp.ClientSession, bearer: str
) -> None:
    url = twirp_url(livekit_standin.url, "RoomService", "CreateRoom")
    status, _, raw = await raw_post(session, url, body=b"\xff\xff\xff", authorization=bearer)
    assert status == 400
    assert json.loads(raw) == {
        "code": "malformed",
        "msg": "the protobuf request could not be decoded",
    }
    for bad in ("{not json", "", '{"name": 5}'):
        status, _, raw = await raw_post(
            session, url, body=bad, content_type="application/json", authorization=bearer
        )
        assert status == 400, bad
        assert json.loads(raw)["msg"] == "the json request could not be decoded"


async def test_unimplemented_and_too_large(
    livekit_standin: LiveKitStandin, session: aiohttp.ClientSession, bearer: str
) -> None:
    url = twirp_url(livekit_standin.url, "RoomService", "PerformRpc")
    status, _, raw = await raw_post(
        session, url, body=serialized(api.PerformRpcRequest(room="r")), authorization=bearer
    )
    assert status == 501 and json.loads(raw)["code"] == "unimplemented"

    url = twirp_url(livekit_standin.url, "RoomService", "CreateRoom")
    big = serialized(api.CreateRoomRequest(name="r", metadata="x" * (10 * 1024 * 1024 + 1)))
    headers = {"Content-Type": "application/protobuf", "Authorization": bearer}
    async with session.post(url, data=io.BytesIO(big), headers=headers) as resp:
        assert (resp.status, await resp.read()) == (413, b"http: request body too large")


async def test_client_reads_twirp_errors(lk: api.LiveKitAPI) -> None:
    with pytest.raises(api.TwirpError) as err:
        await lk.room.delete_room(api.DeleteRoomRequest(room="missing"))
    assert (err.value.code, err.value.message, err.value.status) == (
        "not_found",
        "requested room does not exist",
        404,
    )
