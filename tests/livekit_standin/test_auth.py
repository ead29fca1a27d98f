"""Authentication (Go middleware: plain-text 401) and grant checks (twirp unauthenticated)."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable

import aiohttp
import jwt
import pytest
from livekit import api

from tests.livekit_standin import LiveKitStandin
from tests.livekit_standin.helpers import raw_post, serialized, token, twirp_url

OTHER_SECRET = "a-completely-different-secret-of-40-chars!!"


def _client(fake: LiveKitStandin, session: aiohttp.ClientSession, tok: str) -> api.LiveKitAPI:
    return api.LiveKitAPI(fake.url, token=tok, session=session)


async def test_wrong_secret_is_plain_401(
    livekit_standin: LiveKitStandin, session: aiohttp.ClientSession
) -> None:
    lk = api.LiveKitAPI(livekit_standin.url, livekit_standin.api_key, OTHER_SECRET, session=session)
    with pytest.raises(api.TwirpError) as err:
        await lk.room.list_rooms(api.ListRoomsRequest())
    # The real client cannot parse the plain-text body.
    assert (err.value.code, err.value.message, err.value.status) == ("unknown", "", 401)
    (call,) = livekit_standin.calls
    assert call.error_code == "unauthenticated_http" and call.claims is None


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("Token abc", "invalid authorization header. Must start with Bearer "),
        ("Bearer not-a-jwt", "invalid authorization token"),
    ],
)
async def test_middleware_messages(
    livekit_standin: LiveKitStandin,
    session: aiohttp.ClientSession,
    authorization: str,
    expected: str,
) -> None:
    url = twirp_url(livekit_standin.url, "RoomService", "ListRooms")
    status, headers, body = await raw_post(session, url, authorization=authorization)
    assert status == 401 and body.decode() == expected
    assert headers["Content-Type"].startswith("text/plain")


async def test_unknown_key_and_expired_token(
    livekit_standin: LiveKitStandin, session: aiohttp.ClientSession
) -> None:
    url = twirp_url(livekit_standin.url, "RoomService", "ListRooms")
    grants = api.VideoGrants(room_list=True)
    stranger = token("stranger", OTHER_SECRET, grants)
    status, _, body = await raw_post(session, url, authorization=f"Bearer {stranger}")
    assert (status, body.decode()) == (401, "invalid API key: stranger")

    fake = livekit_standin
    old = token(fake.api_key, fake.api_secret, grants, ttl=datetime.timedelta(minutes=-2))
    status, _, body = await raw_post(session, url, authorization=f"Bearer {old}")
    assert status == 401
    assert body.decode() == f"invalid token: {old}, error: Signature has expired"
    # Within the 60 s leeway the token is still accepted.
    recent = token(fake.api_key, fake.api_secret, grants, ttl=datetime.timedelta(seconds=-30))
    status, _, _ = await raw_post(session, url, authorization=f"Bearer {recent}")
    assert status == 200


async def test_hs512_and_missing_exp_are_rejected(session: aiohttp.ClientSession) -> None:
    secret = "s" * 64  # long enough for HS512 without a PyJWT warning
    async with LiveKitStandin(api_key="k", api_secret=secret) as fake:
        url = twirp_url(fake.url, "RoomService", "ListRooms")
        video = {"roomList": True}
        hs512 = jwt.encode({"iss": "k", "exp": 9_999_999_999, "video": video}, secret, "HS512")
        no_exp = jwt.encode({"iss": "k", "video": video}, secret, "HS256")
        for tok in (hs512, no_exp):
            status, _, body = await raw_post(session, url, authorization=f"Bearer {tok}")
            assert status == 401 and body.decode().startswith(f"invalid token: {tok}, error: ")


async def test_several_keys_iss_selects_secret(session: aiohttp.ClientSession) -> None:
    keys = {"key-one": "1" * 32, "key-two": "2" * 40}
    async with LiveKitStandin(keys=keys) as fake:
        assert (fake.api_key, fake.api_secret) == ("key-one", "1" * 32)
        for key, secret in keys.items():
            lk = api.LiveKitAPI(fake.url, key, secret, session=session)
            await lk.room.create_room(api.CreateRoomRequest(name=key))
        assert [c.api_key for c in fake.calls] == ["key-one", "key-two"]
        mixed = api.LiveKitAPI(fake.url, "key-one", "2" * 40, session=session)
        with pytest.raises(api.TwirpError) as err:
            await mixed.room.list_rooms(api.ListRoomsRequest())
        assert err.value.status == 401


async def test_no_token_means_no_grants(
    livekit_standin: LiveKitStandin, session: aiohttp.ClientSession
) -> None:
    url = twirp_url(livekit_standin.url, "RoomService", "CreateRoom")
    status, headers, body = await raw_post(
        session, url, body=serialized(api.CreateRoomRequest(name="x"))
    )
    assert status == 401 and headers["Content-Type"] == "application/json"
    assert body == b'{"code": "unauthenticated", "msg": "permissions denied"}'


async def test_access_token_query_parameter(
    livekit_standin: LiveKitStandin, session: aiohttp.ClientSession
) -> None:
    fake = livekit_standin
    tok = token(fake.api_key, fake.api_secret, api.VideoGrants(room_list=True))
    url = twirp_url(fake.url, "RoomService", "ListRooms") + f"?access_token={tok}"
    status, _, _ = await raw_post(session, url)
    assert status == 200


Call = Callable[[api.LiveKitAPI], Awaitable[object]]

CASES: list[tuple[str, api.VideoGrants, Call]] = [
    (
        "create without roomCreate",
        api.VideoGrants(room_list=True),
        lambda lk: lk.room.create_room(api.CreateRoomRequest(name="r")),
    ),
    (
        "list without roomList",
        api.VideoGrants(room_create=True),
        lambda lk: lk.room.list_rooms(api.ListRoomsRequest()),
    ),
    (
        "admin for another room",
        api.VideoGrants(room_admin=True, room="other"),
        lambda lk: lk.room.list_participants(api.ListParticipantsRequest(room="r")),
    ),
    (
        "room without roomAdmin",
        api.VideoGrants(room="r", room_join=False),
        lambda lk: lk.room.remove_participant(api.RoomParticipantIdentity(room="r", identity="a")),
    ),
    (
        "egress without roomRecord",
        api.VideoGrants(room_admin=True, room="r"),
        lambda lk: lk.egress.list_egress(api.ListEgressRequest()),
    ),
    (
        "dispatch without roomAdmin",
        api.VideoGrants(room_create=True, room="r"),
        lambda lk: lk.agent_dispatch.list_dispatch("r"),
    ),
]


@pytest.mark.parametrize(("grants", "call"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_missing_grant_is_unauthenticated(
    livekit_standin: LiveKitStandin,
    session: aiohttp.ClientSession,
    grants: api.VideoGrants,
    call: Call,
) -> None:
    livekit_standin.create_room("r")
    lk = _client(
        livekit_standin, session, token(livekit_standin.api_key, livekit_standin.api_secret, grants)
    )
    with pytest.raises(api.TwirpError) as err:
        await call(lk)
    assert (err.value.code, err.value.message, err.value.status) == (
        "unauthenticated",
        "permissions denied",
        401,
    )


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        LiveKitStandin(api_key="devkey", api_secret="secret")
