"""Engine and session factory; driver quirks (SQLite pragmas) live here and nowhere else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionMaker = async_sessionmaker[AsyncSession]


class SQLiteSessionMaker(async_sessionmaker[AsyncSession]):
    """Write transactions (``begin()``) of one process take turns on an asyncio lock.

    SQLite has one writer at a time; without the lock concurrent writers wait in SQLite's
    busy handler, which sleeps and retries unfairly (seconds of tail latency under load).
    Reads (plain sessions) are not serialised: WAL lets them run beside the writer.
    """

    _write_lock: asyncio.Lock | None = None

    def begin(self) -> Any:
        return self._serialised_begin()

    @asynccontextmanager
    async def _serialised_begin(self) -> AsyncIterator[AsyncSession]:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock, super().begin() as session:
            yield session


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``sqlite+aiosqlite`` or ``postgresql+asyncpg`` URLs."""
    kwargs.setdefault("hide_parameters", True)  # no e-mail or sub in logged SQL errors
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    if engine.dialect.name == "sqlite":
        return SQLiteSessionMaker(engine, expire_on_commit=False)
    return async_sessionmaker(engine, expire_on_commit=False)
