"""Shared fixtures: both databases, the app on a real loopback server, factories."""

from __future__ import annotations

import asyncio
import os
import shutil
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from api import keys
from api.app import create_app
from coordinator.settings import LiveKitSettings, Secret, Settings
from storage.engine import create_engine, create_sessionmaker
from storage.migrate import upgrade
from storage.models import Base
from tests.livekit_standin import LiveKitStandin
from tests.support.factories import Factory, login
from tests.support.postgres import PostgresCluster, find_bindir


def run_in_thread(coroutine: Any) -> None:
    """Run ``coroutine`` to completion on a private loop (callers may be inside a loop)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


# Ray reads this when it is imported, and any test may import it first: set before any test
# runs, so the session's local Ray advertises 127.0.0.1 (ray.md). Nodes and front ends that
# tests start for a multi-node cluster are given environments without it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

TEST_SECRET_KEY = "test-secret-key-" + "k" * 40
LIVEKIT_KEY = "devkey-meet-coordinator"
LIVEKIT_SECRET = "livekit-test-secret-" + "s" * 40


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    run_in_thread(upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    """A migrated PostgreSQL database: TEST_DATABASE_URL, or a throwaway cluster."""
    import os

    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        from coordinator.settings import normalize_database_url

        url = normalize_database_url(configured, variable="TEST_DATABASE_URL")
        run_in_thread(upgrade(url))
        yield url
        return
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL initdb/pg_ctl not found: the PostgreSQL variant is SKIPPED"
        warnings.warn(message, pytest.PytestWarning, stacklevel=1)
        pytest.skip(message)
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        url = cluster.url()
        run_in_thread(upgrade(url))
        yield url
    finally:
        cluster.stop()


pytest_plugins = [
    "tests.oidc_provider.plugin",
    "tests.livekit_standin.plugin",
    "tests.summary_standin.plugin",
    "tests.smtp_server",
    "tests.s3_server",
]

TABLES = ", ".join(table.name for table in reversed(Base.metadata.sorted_tables))


# -- engines: the behavioural suites run on both (``pytestmark = ENGINES``) ------------------

ENGINES = pytest.mark.parametrize("engine", ["local", "ray"], indirect=True)
ENGINE_UNDER_TEST = {"name": "local"}  # read by make_settings
RAY_TEST_NAMESPACE = "meet-coordinator-tests"
RAY_TEST_HOSTS = 2


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[list[str]]:
    """A local Ray (2 CPUs, no dashboard, its temp dir removed after) and the room hosts that
    every Ray test shares (each test's app configures them with its own settings)."""
    import os
    import tempfile

    from coordinator.engines import ray as ray_engine

    folder = tempfile.mkdtemp(prefix="meet-ray-")  # short: Ray's socket paths are limited
    saved = {name: os.environ.get(name) for name in ("RAY_TMPDIR", "RAY_AUTH_MODE")}
    os.environ["RAY_TMPDIR"] = folder
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        ray_engine.connect(None, namespace=RAY_TEST_NAMESPACE, num_cpus=2)
        names = ray_engine.ensure_hosts(RAY_TEST_HOSTS, {}, namespace=RAY_TEST_NAMESPACE)
        yield names
        ray_engine.remove_hosts(names, namespace=RAY_TEST_NAMESPACE)
    finally:
        ray_engine.disconnect()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """The engine under test: "local" unless a module parametrizes it (``ENGINES``)."""
    name: str = getattr(request, "param", "local")
    if name == "ray":
        request.getfixturevalue("ray_cluster")
    ENGINE_UNDER_TEST["name"] = name
    yield name
    ENGINE_UNDER_TEST["name"] = "local"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The Ray engine refuses SQLite: its variants run on PostgreSQL only."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("engine") == "ray" and params.get("database_url") == "sqlite":
            dropped.append(item)
            continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, engine: str
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "meet.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_base_url")
    yield url
    truncating = create_engine(url)
    async with truncating.begin() as connection:
        await connection.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    await truncating.dispose()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    livekit = overrides.pop("livekit", None) or LiveKitSettings(
        api_key=LIVEKIT_KEY, api_secret=Secret(LIVEKIT_SECRET), api_url="http://127.0.0.1:7880"
    )
    if ENGINE_UNDER_TEST["name"] == "ray":
        overrides.setdefault("engine", "ray")
        overrides.setdefault("ray_namespace", RAY_TEST_NAMESPACE)
        overrides.setdefault("ray_hosts", RAY_TEST_HOSTS)
    return Settings(
        database_url=database_url,
        secret_key=Secret(TEST_SECRET_KEY),
        livekit=livekit,
        **overrides,
    )


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(database_url)
    yield Factory(create_sessionmaker(engine))
    await engine.dispose()


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    app = create_app(settings)
    result: TestClient[Any, Any] = await aiohttp_client(app)
    return result


@pytest.fixture
def livekit_timeout() -> float:
    """``lk_client``'s LiveKit timeout: generous, so that a loaded CI machine does not turn a
    slow answer of the stand-in into a 503. A test about LiveKit hanging sets its own
    (``@pytest.mark.parametrize("livekit_timeout", [1.0])`` or a module's fixture)."""
    return 5.0


@pytest.fixture
async def lk_client(
    aiohttp_client: Any,
    database_url: str,
    livekit_standin: LiveKitStandin,
    livekit_timeout: float,
) -> TestClient[Any, Any]:
    """The app wired to the LiveKit stand-in, which sends its webhooks to the app."""
    livekit = LiveKitSettings(
        api_key=livekit_standin.api_key,
        api_secret=Secret(livekit_standin.api_secret),
        api_url=livekit_standin.url,
        timeout_seconds=livekit_timeout,
    )
    settings = make_settings(database_url, livekit=livekit)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    livekit_standin.webhook_url = str(client.make_url("/api/v1.0/rooms/webhooks-livekit/"))
    return client


@pytest.fixture
def lk_log_in(lk_client: TestClient[Any, Any]) -> Any:
    def _log_in(user: Any) -> None:
        login(lk_client, lk_client.app[keys.SESSIONS], user)

    return _log_in


@pytest.fixture
def log_in(client: TestClient[Any, Any]) -> Any:
    """``log_in(user)`` gives the test client a session for ``user``."""

    def _log_in(user: Any) -> None:
        login(client, client.app[keys.SESSIONS], user)

    return _log_in
