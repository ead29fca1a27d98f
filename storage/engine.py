"""Engine and session factory; driver quirks (SQLite pragmas) live here and nowhere else.

Also the database's health as the API sees it: :func:`is_outage` tells a database that cannot
be reached or written (answered 503) from a bug (500), and :func:`probe_writes` is the
heartbeat's proof that a write would commit.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionMaker = async_sessionmaker[AsyncSession]
CONNECT_TIMEOUT_SECONDS = 10
# SQLite's messages for a file that cannot be opened or written (sqlite3 has no error codes).
_SQLITE_OUTAGES = (
    "unable to open",
    "readonly database",
    "disk i/o error",
    "database or disk is full",
    "database is locked",
)
# A committed write that changes nothing: a read-only database (SQLite file or PostgreSQL
# standby), a full disk or an unwritable file fail it, while a rolled-back one would not
# (SQLite in WAL mode writes nothing before the commit). alembic_version always exists.
_WRITE_PROBE = text("UPDATE alembic_version SET version_num = version_num")


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
    # An unreachable server fails a request in seconds (asyncpg waits 60 s by default).
    kwargs.setdefault("connect_args", {"timeout": CONNECT_TIMEOUT_SECONDS})
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


async def probe_writes(sessionmaker: SessionMaker) -> None:
    """Commit a write that changes nothing; raises what a real write would raise."""
    async with sessionmaker.begin() as session:
        await session.execute(_WRITE_PROBE)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, the driver error it wraps (``orig``) and their causes and contexts."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        for linked in (orig, current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                pending.append(linked)


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached or written (not a bug of ours)."""
    import asyncpg  # type: ignore[import-untyped]

    for link in _chain(error):
        if isinstance(link, exc.DBAPIError) and link.connection_invalidated:
            return True
        if isinstance(link, exc.TimeoutError):  # no pooled connection came free in time
            return True
        if isinstance(
            link,
            asyncpg.PostgresConnectionError
            | asyncpg.CannotConnectNowError
            | asyncpg.ReadOnlySQLTransactionError
            | asyncpg.AdminShutdownError
            | asyncpg.InsufficientResourcesError,
        ):
            return True
        if isinstance(link, ConnectionError | socket.gaierror | TimeoutError):
            return True
        if isinstance(link, asyncpg.InterfaceError) and "connection" in str(link).lower():
            return True  # "connection is closed", "connection was closed in the middle..."
        if isinstance(link, exc.OperationalError):
            message = str(link.orig if link.orig is not None else link).lower()
            if any(part in message for part in _SQLITE_OUTAGES):
                return True
    return False


def outage_summary(error: BaseException) -> str:
    """One log line about an outage: the driver's error, without the statement or parameters."""
    origin: BaseException = error
    if isinstance(error, exc.DBAPIError) and isinstance(error.orig, BaseException):
        origin = error.orig
    first_line = (str(origin).splitlines() or [""])[0][:200]
    return f"{type(origin).__name__}: {first_line}"
