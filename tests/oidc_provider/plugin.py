"""Pytest plugin: the ``oidc_provider`` fixture.

Register it from the root conftest (``pytest_plugins = ["tests.oidc_provider.plugin"]``)
or import the fixture into a test module. ``oidc_provider_fixture`` is the same fixture
under another module-level name, so that ruff's F811 ("redefinition of unused name") does
not fire on every test parameter called ``oidc_provider``::

    from tests.oidc_provider.plugin import oidc_provider_fixture  # noqa: F401
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest_asyncio
from joserfc.jwk import RSAKey

from .server import OIDCProvider
from .tokens import generate_rsa_key


@functools.cache
def _fixture_key() -> RSAKey:
    """One signing key per test process: RSA generation costs ~0.1 s per provider."""
    return generate_rsa_key()


@pytest_asyncio.fixture(name="oidc_provider")
async def oidc_provider_fixture() -> AsyncIterator[OIDCProvider]:
    """A running :class:`OIDCProvider` on ``127.0.0.1`` (random port), in the test's loop.

    It has one client, ``meet-coordinator`` / ``DEFAULT_CLIENT_SECRET``, whose redirect
    URIs are ``http://127.0.0.1:*/api/v1.0/callback/`` and the ``localhost`` equivalent;
    add more with ``oidc_provider.add_redirect_uri(...)``. No user is logged in: set
    ``oidc_provider.next_user`` (or ``logged_in_user``) before walking the login flow.
    """
    async with OIDCProvider(key=_fixture_key()) as provider:
        yield provider


#: The fixture under its own name, for ``pytest_plugins`` and plain imports.
oidc_provider = oidc_provider_fixture
