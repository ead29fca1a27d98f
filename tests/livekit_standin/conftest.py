"""Shared fixtures for the stand-in's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from livekit import api

from tests.livekit_standin import LiveKitStandin, WebhookSink
from tests.livekit_standin.plugin import livekit_standin  # noqa: F401


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session closed after the test."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest_asyncio.fixture
async def lk(
    livekit_standin: LiveKitStandin,  # noqa: F811
    session: aiohttp.ClientSession,
) -> api.LiveKitAPI:
    """The real LiveKitAPI client, pointed at the stand-in (uses ``session``)."""
    return api.LiveKitAPI(
        livekit_standin.url, livekit_standin.api_key, livekit_standin.api_secret, session=session
    )


@pytest_asyncio.fixture
async def sink(livekit_standin: LiveKitStandin) -> AsyncIterator[WebhookSink]:  # noqa: F811
    """A verifying webhook receiver, set as the stand-in's webhook URL."""
    async with WebhookSink(livekit_standin.api_key, livekit_standin.api_secret) as receiver:
        livekit_standin.webhook_url = receiver.url
        yield receiver
