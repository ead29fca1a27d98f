"""pytest plugin: the ``summary_standin`` fixture.

Import the fixture into a test module (``from tests.summary_standin.plugin import
summary_standin_fixture  # noqa: F401``) or register this module in ``pytest_plugins``.
It is async and function-scoped: a started :class:`SummaryStandin` on an ephemeral loopback
port with token :data:`DEFAULT_TOKEN`, stopped after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .server import SummaryStandin


@pytest_asyncio.fixture(name="summary_standin")
async def summary_standin_fixture() -> AsyncIterator[SummaryStandin]:
    """A started stand-in (token ``summary-standin-token``)."""
    async with SummaryStandin() as standin:
        yield standin
