"""Helpers for the stand-in's tests: raw Twirp calls and tokens."""

from __future__ import annotations

import datetime
from typing import Any

import aiohttp
from google.protobuf.message import Message
from livekit import api


def token(
    key: str,
    secret: str,
    grants: api.VideoGrants | None = None,
    *,
    ttl: datetime.timedelta = datetime.timedelta(minutes=5),
) -> str:
    """A service token like the client mints."""
    tok = api.AccessToken(key, secret).with_ttl(ttl)
    if grants is not None:
        tok.with_grants(grants)
    return tok.to_jwt()


async def raw_post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    body: bytes | str = b"",
    content_type: str | None = "application/protobuf",
    authorization: str | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], bytes]:
    """Send a raw request; return (status, headers, body)."""
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if authorization is not None:
        headers["Authorization"] = authorization
    data = body.encode() if isinstance(body, str) else body
    async with session.request(method, url, data=data, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def twirp_url(base: str, service: str, method: str) -> str:
    """``<base>/twirp/livekit.<service>/<method>``."""
    return f"{base}/twirp/livekit.{service}/{method}"


def serialized(msg: Message) -> bytes:
    """``msg`` in protobuf wire format."""
    return msg.SerializeToString()


def claims_video(record: Any) -> dict[str, Any]:
    """The raw ``video`` claim of a recorded call."""
    video = record.raw_claims.get("video", {})
    assert isinstance(video, dict)
    return video
