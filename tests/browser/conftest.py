"""Headless Chromium (Debian's, never downloaded) driving tests/browser/page against the real stack.

The server runs with the OIDC and LiveKit stand-ins; ``FRONTEND_DIST_DIR`` serves our page at
``/``. Without Chromium the tests are skipped with a warning in the summary (the Makefile
installs it when it can); ``BROWSER_TESTS_REQUIRED=1`` turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.app import create_app
from coordinator.settings import LiveKitSettings, OIDCSettings, Secret
from tests.conftest import make_settings
from tests.livekit_standin import LiveKitStandin
from tests.oidc_provider import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, OIDCProvider

PAGE_DIR = Path(__file__).parent / "page"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIPPED = "BROWSER TESTS SKIPPED"


def chromium_path() -> str | None:
    """``BROWSER_TEST_CHROMIUM``, else Debian's ``chromium`` on PATH."""
    configured = os.environ.get("BROWSER_TEST_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium")


def _missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make install)"
    if chromium_path() is None:
        return "no chromium executable (apt-get install chromium, or set BROWSER_TEST_CHROMIUM)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The warning the fixture emits must reach the summary, not become an error.
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.filterwarnings(f"always:{SKIPPED}:pytest.PytestWarning"))


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    reason = _missing()
    if reason is not None:
        message = f"{SKIPPED}: {reason}"
        if os.environ.get("BROWSER_TESTS_REQUIRED") == "1":
            pytest.fail(message)
        warnings.warn(message, pytest.PytestWarning, stacklevel=1)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Exchange:
    method: str
    path: str
    status: int


@dataclass
class Visitor:
    """One browser context (its own cookies) on our page, with its HTTP log."""

    page: Any
    base_url: str
    log: list[Exchange] = field(default_factory=list)

    async def call(self, expression: str, *args: Any) -> Any:
        """``meet.<expression>(...args)`` in the page, awaited."""
        return await self.page.evaluate(f"(args) => meet.{expression}(...args)", list(args))

    async def navigate(self, expression: str, *args: Any) -> None:
        """Run ``meet.<expression>(...)``, which leaves the page, and wait for where it lands."""
        async with self.page.expect_navigation():
            await self.page.evaluate(
                f"(args) => {{ setTimeout(() => meet.{expression}(...args), 0); }}", list(args)
            )

    async def ready(self) -> None:
        await self.page.wait_for_function("window.meet !== undefined")

    def seen(self, path: str) -> list[int]:
        """The statuses answered for ``path`` (path and query), in order."""
        return [exchange.status for exchange in self.log if exchange.path == path]


@dataclass
class Stack:
    client: TestClient[Any, Any]
    provider: OIDCProvider
    livekit: LiveKitStandin
    browser: Any

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def visitor(self, **context_options: Any) -> Visitor:
        """A new browser context (no cookies) on our page; options go to ``new_context``."""
        context = await self.browser.new_context(**context_options)
        page = await context.new_page()
        visitor = Visitor(page, self.base_url)
        origin = self.base_url

        def record(response: Any) -> None:
            url: str = response.url
            if url.startswith(origin):
                visitor.log.append(
                    Exchange(response.request.method, url[len(origin) :], response.status)
                )

        page.on("response", record)
        await page.goto(f"{origin}/")
        await visitor.ready()
        return visitor


@pytest.fixture
async def stack(
    browser: Any,  # first: without Chromium, skip before starting anything else
    aiohttp_client: Any,
    database_url: str,
    oidc_provider: OIDCProvider,
    livekit_standin: LiveKitStandin,
) -> Stack:
    oidc = OIDCSettings(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=Secret(DEFAULT_CLIENT_SECRET),
        authorization_endpoint=oidc_provider.authorization_endpoint,
        token_endpoint=oidc_provider.token_endpoint,
        user_endpoint=oidc_provider.userinfo_endpoint,
        jwks_endpoint=oidc_provider.jwks_uri,
        logout_endpoint=oidc_provider.end_session_endpoint,
        issuer=oidc_provider.issuer,
    )
    livekit = LiveKitSettings(
        api_key=livekit_standin.api_key,
        api_secret=Secret(livekit_standin.api_secret),
        api_url=livekit_standin.url,
        timeout_seconds=1.0,
    )
    settings = make_settings(
        database_url, oidc=oidc, livekit=livekit, frontend_dist_dir=str(PAGE_DIR)
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    livekit_standin.webhook_url = str(client.make_url("/api/v1.0/rooms/webhooks-livekit/"))
    return Stack(client, oidc_provider, livekit_standin, browser)
