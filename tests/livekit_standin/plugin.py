"""pytest plugin: the ``livekit_standin`` fixture.

Register with ``pytest_plugins = ["tests.livekit_standin.plugin"]`` in the root
conftest, or import the fixture into a test module. The fixture is async and
function-scoped: it starts a :class:`LiveKitStandin` in the test's event loop
with the default key pair (``devkey-meet-coordinator`` and a 48-character
secret), manual egress mode and no webhook URL (set ``fake.webhook_url`` after
start), and stops it after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .server import LiveKitStandin


@pytest_asyncio.fixture
async def livekit_standin() -> AsyncIterator[LiveKitStandin]:
    """A started stand-in on an ephemeral loopback port."""
    async with LiveKitStandin() as fake:
        yield fake
