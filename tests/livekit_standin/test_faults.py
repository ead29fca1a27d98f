"""Fault injection: Twirp errors, stalls (client timeouts), dropped connections, 5xx."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from livekit import api

from tests.livekit_standin import Fault, LiveKitStandin

LIST = api.ListRoomsRequest()


async def test_twirp_error_one_shot_then_normal(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI
) -> None:
    livekit_standin.fail("RoomService/ListRooms", "unavailable", "try later")
    with pytest.raises(api.TwirpError) as err:
        await lk.room.list_rooms(LIST)
    assert (err.value.code, err.value.message, err.value.status) == (
        "unavailable",
        "try later",
        503,
    )
    await lk.room.list_rooms(LIST)
    assert [c.fault for c in livekit_standin.calls] == ["error", None]


async def test_persistent_fault_until_cleared(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI
) -> None:
    livekit_standin.inject_fault("*", Fault.error("internal", "boom", status=502, times=None))
    for _ in range(3):
        with pytest.raises(api.TwirpError) as err:
            await lk.room.create_room(api.CreateRoomRequest(name="r"))
        assert (err.value.code, err.value.status) == ("internal", 502)
    livekit_standin.clear_faults()
    await lk.room.create_room(api.CreateRoomRequest(name="r"))


async def test_faults_match_bare_method_and_count(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI
) -> None:
    livekit_standin.fail("ListRooms", "resource_exhausted", "slow down", times=2)
    for _ in range(2):
        with pytest.raises(api.TwirpError) as err:
            await lk.room.list_rooms(LIST)
        assert err.value.status == 429
    await lk.room.list_rooms(LIST)
    await lk.room.create_room(api.CreateRoomRequest(name="unaffected"))


async def test_stall_needs_a_caller_timeout(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI
) -> None:
    livekit_standin.stall("ListRooms", 30.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await lk.room.list_rooms(LIST)
    assert time.monotonic() - started < 2.0
    livekit_standin.stall("CreateRoom", 0.05)
    room = await lk.room.create_room(api.CreateRoomRequest(name="late"))
    assert room.name == "late"


async def test_stop_releases_stalled_requests(session: aiohttp.ClientSession) -> None:
    fake = LiveKitStandin()
    await fake.start()
    lk = api.LiveKitAPI(fake.url, fake.api_key, fake.api_secret, session=session)
    fake.stall("ListRooms", 30.0)
    pending = asyncio.ensure_future(lk.room.list_rooms(LIST))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await fake.stop()
    assert time.monotonic() - started < 2.0
    with pytest.raises((api.TwirpError, aiohttp.ClientError)):
        await pending


async def test_drop_raises_client_error(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI
) -> None:
    livekit_standin.drop("RoomService/CreateRoom")
    with pytest.raises(aiohttp.ClientError):
        await lk.room.create_room(api.CreateRoomRequest(name="r"))
    (call,) = livekit_standin.calls
    assert call.fault == "drop" and call.status is None
    assert livekit_standin.room("r") is None
    await lk.room.create_room(api.CreateRoomRequest(name="r"))


async def test_plain_http_error(livekit_standin: LiveKitStandin, lk: api.LiveKitAPI) -> None:
    livekit_standin.http_error("ListRooms", 502, "Bad Gateway")
    with pytest.raises(api.TwirpError) as err:
        await lk.room.list_rooms(LIST)
    assert (err.value.code, err.value.message, err.value.status) == ("unknown", "", 502)
