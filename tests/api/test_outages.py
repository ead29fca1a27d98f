"""Database outages: 503 ``Unavailable`` while the database is down, a heartbeat that tells the
truth, and recovery without a restart when the database comes back.

PostgreSQL: a throwaway cluster of the test's own (the suite's shared one is left alone) is
stopped under the running server (``pg_ctl -m fast``: its connections are cut), then started.

SQLite: the database file and its WAL are made immutable (``chattr +i``) under the running
server. Tests run as root, for whom permission bits do not stop writes; the immutable flag does
(also through descriptors opened earlier), as a read-only or failing disk would. The ``-shm``
index stays writable: SQLite maps it in memory and an immutable one kills the process (SIGBUS).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from api import keys
from api.app import create_app
from coordinator.errors import Unavailable
from storage.engine import (
    create_engine,
    create_sessionmaker,
    is_outage,
    outage_summary,
    probe_writes,
)
from storage.migrate import upgrade
from tests.conftest import make_settings, run_in_thread
from tests.support.factories import Factory, login
from tests.support.postgres import PostgresCluster, find_bindir

UNAVAILABLE = Unavailable().body
Client = TestClient[Any, Any]


async def _logged_in_client(aiohttp_client: Any, url: str) -> Client:
    # Background passes run often, so the outage reaches them too (one log line each).
    settings = make_settings(url, recording_reconcile_seconds=0.5)
    client: Client = await aiohttp_client(create_app(settings))
    engine = create_engine(url)
    user = await Factory(create_sessionmaker(engine)).user()
    await engine.dispose()
    login(client, client.app[keys.SESSIONS], user)
    return client


async def _assert_healthy(client: Client, name: str) -> None:
    heartbeat = await client.get("/__heartbeat__")
    assert heartbeat.status == 200, await heartbeat.text()
    assert await heartbeat.json() == {"database": "ok"}
    created = await client.post("/api/v1.0/rooms/", json={"name": name})
    assert created.status == 201, await created.text()
    listed = await client.get("/api/v1.0/rooms/")
    assert listed.status == 200, await listed.text()


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logged = [record for record in caplog.records if record.exc_info]
    assert logged == [], [record.getMessage() for record in logged]


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL initdb/pg_ctl not found: the PostgreSQL outage test is SKIPPED")
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        run_in_thread(upgrade(cluster.url()))
        yield cluster
    finally:
        cluster.stop()


async def test_postgres_stopped_is_503_then_recovers(
    aiohttp_client: Any, own_cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    client = await _logged_in_client(aiohttp_client, own_cluster.url())
    await _assert_healthy(client, "before")

    await asyncio.to_thread(own_cluster.stop_server)
    caplog.clear()
    caplog.set_level(logging.WARNING)
    for _ in range(2):  # pooled connections first (invalidated), then new ones (refused)
        listed = await client.get("/api/v1.0/rooms/")
        assert listed.status == 503, await listed.text()
        assert await listed.json() == UNAVAILABLE
        created = await client.post("/api/v1.0/rooms/", json={"name": "down"})
        assert created.status == 503, await created.text()
        assert await created.json() == UNAVAILABLE
        heartbeat = await client.get("/__heartbeat__")
        assert heartbeat.status == 503
        assert await heartbeat.json() == {"database": "error"}
    assert (await client.get("/__lbheartbeat__")).status == 200
    assert (await client.get("/api/v1.0/config/")).status == 200
    await asyncio.sleep(1.5)  # an outbox pass (every second) and a reconciliation pass
    _no_tracebacks(caplog)
    assert any("Database unavailable" in record.getMessage() for record in caplog.records)

    await asyncio.to_thread(own_cluster.start_server)
    await _assert_healthy(client, "after")


def _set_immutable(paths: list[Path], on: bool) -> None:
    flag = "+i" if on else "-i"
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def sqlite_file(tmp_path: Path, sqlite_template: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("making a file unwritable for this test needs root and chattr: SKIPPED")
    path = tmp_path / "meet.db"
    shutil.copy(sqlite_template, path)
    probe = tmp_path / "probe"
    probe.touch()
    try:
        _set_immutable([probe], True)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"chattr +i refused here ({exc.stderr!r}): SKIPPED")
    _set_immutable([probe], False)
    yield path
    frozen = [p for p in tmp_path.iterdir() if p.name.startswith("meet.db")]
    _set_immutable(frozen, False)


async def test_sqlite_unwritable_file_is_503_and_fails_the_heartbeat(
    aiohttp_client: Any, sqlite_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = await _logged_in_client(aiohttp_client, f"sqlite+aiosqlite:///{sqlite_file}")
    await _assert_healthy(client, "before")
    files = [sqlite_file, sqlite_file.with_name(sqlite_file.name + "-wal")]
    assert all(path.exists() for path in files)

    _set_immutable(files, True)
    try:
        caplog.clear()
        caplog.set_level(logging.WARNING)
        heartbeat = await client.get("/__heartbeat__")
        assert heartbeat.status == 503
        assert await heartbeat.json() == {"database": "error"}
        created = await client.post("/api/v1.0/rooms/", json={"name": "frozen"})
        assert created.status == 503, await created.text()
        assert await created.json() == UNAVAILABLE
        listed = await client.get("/api/v1.0/rooms/")  # reads still work
        assert listed.status == 200
        assert [room["name"] for room in (await listed.json())["results"]] == ["before"]
        _no_tracebacks(caplog)
    finally:
        _set_immutable(files, False)
    await _assert_healthy(client, "after")


async def test_outages_are_told_from_bugs(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "meet.db"
    shutil.copy(sqlite_template, path)
    read_only = create_engine(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    try:
        with pytest.raises(Exception) as refused:
            await probe_writes(create_sessionmaker(read_only))
        assert is_outage(refused.value)
        assert "readonly" in outage_summary(refused.value)
        async with create_sessionmaker(read_only)() as session:
            with pytest.raises(Exception) as bug:
                await session.execute(
                    text("SELECT * FROM no_such_table WHERE x = :secret"), {"secret": "s3cr3t"}
                )
        assert not is_outage(bug.value)
    finally:
        await read_only.dispose()
    assert is_outage(ConnectionRefusedError(111, "refused"))
    assert not is_outage(ValueError("a bug"))


async def test_a_read_only_sqlite_database_is_503_on_writes(
    aiohttp_client: Any, tmp_path: Path, sqlite_template: Path
) -> None:
    path = tmp_path / "meet.db"
    shutil.copy(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    user = await Factory(create_sessionmaker(engine)).user()
    await engine.dispose()
    # The session is opened while the database is writable (a login writes its row).
    writable: Client = await aiohttp_client(
        create_app(make_settings(f"sqlite+aiosqlite:///{path}"))
    )
    login(writable, writable.app[keys.SESSIONS], user)
    assert (await writable.get("/api/v1.0/users/me/")).status == 200
    read_only: Client = await aiohttp_client(
        create_app(make_settings(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"))
    )
    read_only.session.cookie_jar.update_cookies(
        {c.key: c.value for c in writable.session.cookie_jar}
    )
    read_only.session.headers.update(writable.session.headers)
    heartbeat = await read_only.get("/__heartbeat__")
    assert heartbeat.status == 503
    created = await read_only.post("/api/v1.0/rooms/", json={"name": "nope"})
    assert created.status == 503, await created.text()
    assert await created.json() == UNAVAILABLE
    assert (await read_only.get("/api/v1.0/rooms/")).status == 200
