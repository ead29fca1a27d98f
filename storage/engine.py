"""Engine and session factory; driver quirks (SQLite pragmas) live here and nowhere else.

Also the database's health as the API sees it: :func:`is_outage` tells a database that cannot
be reached or written (answered 503) from a bug (500), and :func:`probe_writes` is the
heartbeat's proof that a write would commit.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any, NoReturn

import aiosqlite
from sqlalchemy import Executable, event, exc, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionMaker = async_sessionmaker[AsyncSession]
# A statement and its parameters (statements are built once and reused: constructing one
# costs more than compiling it, which SQLAlchemy caches).
Statement = tuple[Executable, dict[str, Any]]
CONNECT_TIMEOUT_SECONDS = 10
# What this service's PostgreSQL sessions tell the planner (sent with the connection: no
# round trip). Its default random_page_cost of 4 prices a random page read at four sequential
# ones, as on a spinning disk. Here the rows are small and hot, in the server's cache or on
# SSD, where the two cost about the same. At 4, a page of 20 rooms on a database of a few
# thousand users and rooms hashed the whole user and room tables (1.4 ms at the server per
# page) rather than use their primary keys (0.5 ms).
PG_SERVER_SETTINGS = {"random_page_cost": "1.1"}
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


# Observers of the statements run on the raw drivers (group commits, the asyncpg writes):
# SQLAlchemy's events do not see them. Tests count statements through ``observe_statements``.
_OBSERVERS: list[Callable[[str, str], None]] = []


@contextmanager
def observe_statements(
    record: Callable[[str, str], None] | None = None,
) -> Iterator[list[tuple[str, str]]]:
    """Every statement run on a raw driver meanwhile, as ``(channel, sql)`` (also given to
    ``record``): channel ``group`` (a SQLite group commit), ``postgres`` (a write on the
    asyncpg pool)."""
    seen: list[tuple[str, str]] = []

    def observer(channel: str, sql: str) -> None:
        seen.append((channel, sql))
        if record is not None:
            record(channel, sql)

    _OBSERVERS.append(observer)
    try:
        yield seen
    finally:
        _OBSERVERS.remove(observer)


def _observed(channel: str, sql: str) -> None:
    for observer in _OBSERVERS:
        observer(channel, sql)


# How long the group-commit connection stays open without writes.
GROUP_COMMIT_IDLE_SECONDS = 5.0


class _InlineReadsConnection(aiosqlite.Connection):
    """aiosqlite, except that what cannot wait on a lock runs on the calling thread.

    aiosqlite sends every call (cursor, execute, each fetch, close, rollback) to the
    connection's worker thread and back: two thread switches and a self-pipe wake-up each,
    which cost far more than the sub-millisecond statements of a request. A ``SELECT`` never
    waits on a lock in WAL mode, fetching and closing a cursor or rolling back never do: they
    run inline. Everything else (writes, ``BEGIN``/``COMMIT``, ``PRAGMA``, connecting) still
    goes through the worker thread, where SQLite's busy handler may sleep without stalling
    the event loop.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._running and self._connection is not None and _inline(fn, args):
            return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]


_INLINE_CALLS = frozenset({"fetchone", "fetchmany", "fetchall", "close", "cursor", "rollback"})


def _inline(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    name = getattr(fn, "__name__", "")
    if name == "execute":
        return bool(args) and isinstance(args[0], str) and args[0].lstrip()[:6].upper() == "SELECT"
    if name == "close":
        # Cursor.close inline; Connection.close (it ends the worker thread) queued.
        return isinstance(getattr(fn, "__self__", None), sqlite3.Cursor)
    return name in _INLINE_CALLS


def _inline_reads_connect(database: Any, *args: Any, **kwargs: Any) -> aiosqlite.Connection:
    """``aiosqlite.connect`` returning :class:`_InlineReadsConnection` (SQLAlchemy's
    ``async_creator_fn`` hook, given the dialect's connect arguments)."""
    kwargs["check_same_thread"] = False  # inline calls come from the event loop's thread
    iter_chunk_size = kwargs.pop("iter_chunk_size", 64)
    connection = _InlineReadsConnection(
        partial(sqlite3.connect, str(database), *args, **kwargs), iter_chunk_size
    )
    connection._thread.daemon = True
    return connection


class GroupCommit:
    """SQLite writes of this process coalesced into shared transactions (group commit).

    :meth:`write` queues a unit (Core statements that must apply atomically); one flusher at a
    time takes every unit queued so far and runs them in one ``BEGIN IMMEDIATE … COMMIT`` on a
    dedicated connection, off the event loop, each unit in its own savepoint: a unit that
    fails (a unique index deciding a race) is rolled back alone and its caller gets the error,
    the others commit. Units queued while a batch runs form the next batch, so under load one
    commit (and one thread hop) serves many writers. The flusher takes the sessionmaker's
    write lock for the batch only, so ORM write transactions and batches take turns.

    A batch first runs inline on the event loop, on a connection that never waits for the
    lock (``busy_timeout=0``): in WAL mode with ``synchronous=NORMAL`` a commit writes to the
    WAL without an fsync, so an uncontended batch costs microseconds and no thread hop. When
    another process holds the write lock, the batch goes to the executor thread, whose
    connection waits for it. The inline connection does not checkpoint on commit (a
    checkpoint writes and syncs the database file): a passive checkpoint runs in the
    executor every ``CHECKPOINT_EVERY`` inline batches while writes go on, and every
    ``RESTART_EVERY`` one runs between two batches, the lock held, so that the WAL, wholly
    copied back, is started over by the next write (under steady writes it would grow
    otherwise). The background ones leave that one little to copy: a short pause, rarely
    (a checkpoint of 200 batches under the lock cost a 50 ms pause every 200 creations).
    """

    CHECKPOINT_EVERY = 50
    RESTART_EVERY = 1000

    def __init__(self, url: Any, lock: Callable[[], asyncio.Lock]) -> None:
        from sqlalchemy.dialects.sqlite import pysqlite

        self._path = url.database
        self._dialect = pysqlite.dialect()
        self._lock = lock
        self._pending: list[tuple[Sequence[Statement], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._connection: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._inline_batches = 0
        self._checkpointing: asyncio.Future[None] | None = None
        self._guard = threading.Lock()  # the connection: the idle close vs a batch
        self._idle: asyncio.TimerHandle | None = None

    async def write(self, statements: Sequence[Statement]) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((statements, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self._lock():
                    try:
                        errors = self._run_inline(batch)
                    except _Busy:  # another process writes: wait for it off the loop
                        errors = await loop.run_in_executor(None, self._run, batch)
                    else:
                        if self._inline_batches % self.RESTART_EVERY == 0:
                            if self._checkpointing is not None:
                                await asyncio.shield(self._checkpointing)
                            await loop.run_in_executor(None, self._checkpoint)
                        elif self._inline_batches % self.CHECKPOINT_EVERY == 0 and (
                            self._checkpointing is None or self._checkpointing.done()
                        ):
                            self._checkpointing = loop.run_in_executor(None, self._checkpoint)
            except BaseException as error:  # the batch as a whole failed (BEGIN, COMMIT)
                errors = [error] * len(batch)
                if not isinstance(error, Exception):
                    for _, future in batch:
                        if not future.done():
                            future.cancel()
                    raise
            for (_, future), failure in zip(batch, errors, strict=True):
                if future.done():
                    continue
                if failure is None:
                    future.set_result(None)
                else:
                    future.set_exception(failure)
        if self._idle is not None:
            self._idle.cancel()
        self._idle = loop.call_later(GROUP_COMMIT_IDLE_SECONDS, self._close_when_idle, loop)

    def _run_inline(
        self, batch: list[tuple[Sequence[Statement], Any]]
    ) -> list[BaseException | None]:
        connection = self._inline
        if connection is None:
            connection = self._inline = _raw_connection(self._path, busy_timeout=0)
            connection.execute("PRAGMA wal_autocheckpoint=0")
        self._begin(connection, inline=True)
        errors = self._units(connection, batch)
        self._inline_batches += 1
        return errors

    def _checkpoint(self) -> None:
        with self._guard:
            self._open().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = _raw_connection(self._path, busy_timeout=30)
        return self._connection

    def _run(self, batch: list[tuple[Sequence[Statement], Any]]) -> list[BaseException | None]:
        """The batch on the executor's connection, which waits for the write lock."""
        with self._guard:
            connection = self._open()
            self._begin(connection, inline=False)
            return self._units(connection, batch)

    def _begin(self, connection: sqlite3.Connection, *, inline: bool) -> None:
        """``BEGIN IMMEDIATE``; inline, a lock held elsewhere is :class:`_Busy` at once."""
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if inline and ("locked" in str(error) or "busy" in str(error)):
                raise _Busy from error
            self._drop(connection, error)
        except BaseException as error:
            self._drop(connection, error)

    def _drop(self, connection: sqlite3.Connection, error: BaseException) -> NoReturn:
        """Whatever state it was left in, the connection is never reused; ``error`` is
        raised again (a driver error as SQLAlchemy's)."""
        if connection is self._inline:
            self._inline = None
        if connection is self._connection:
            self._connection = None
        connection.close()
        if isinstance(error, sqlite3.Error):
            raise _wrapped(error) from error
        raise error

    def _units(
        self, connection: sqlite3.Connection, batch: list[tuple[Sequence[Statement], Any]]
    ) -> list[BaseException | None]:
        """The batch's units in the transaction just begun, each in a savepoint, and the
        commit; raw ``sqlite3`` (statements compiled once: no SQLAlchemy execution per
        statement); driver errors come back as SQLAlchemy's (``IntegrityError``, …)."""
        errors: list[BaseException | None] = []
        alone = len(batch) == 1  # the transaction is the unit's savepoint (two calls fewer)
        try:
            for statements, _ in batch:
                if not alone:
                    connection.execute("SAVEPOINT unit")
                try:
                    for statement, parameters in statements:
                        prepared = _driver_statement(self._dialect, statement, parameters)
                        if prepared is None:
                            raise TypeError(f"not a prepared write: {statement}")
                        if _OBSERVERS:
                            _observed("group", prepared[0])
                        connection.execute(*prepared)
                except sqlite3.Error as error:  # this unit alone
                    connection.execute("ROLLBACK" if alone else "ROLLBACK TO unit")
                    errors.append(_wrapped(error))
                    if alone:
                        return errors
                else:
                    errors.append(None)
                if not alone:
                    connection.execute("RELEASE unit")
            connection.execute("COMMIT")
        except BaseException as error:
            self._drop(connection, error)
        return errors

    def _close_when_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._idle = None
        if self._pending or (self._flusher is not None and not self._flusher.done()):
            return
        self._close_inline()
        if self._inline_batches and not loop.is_closed():
            self._inline_batches = 0
            loop.run_in_executor(None, self._checkpoint_and_close)
        elif self._connection is not None and not loop.is_closed():
            loop.run_in_executor(None, self.close)

    def _close_inline(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    def _checkpoint_and_close(self) -> None:
        self._checkpoint()
        self.close()

    async def aclose(self) -> None:
        """Let queued writes commit, then close the connection (the app's shutdown)."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._close_inline()
        await asyncio.get_running_loop().run_in_executor(None, self._checkpoint_and_close)

    def close(self) -> None:
        with self._guard:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class _Busy(Exception):
    """The write lock is held by another connection (the inline attempt does not wait)."""


class SQLiteSessionMaker(async_sessionmaker[AsyncSession]):
    """Write transactions (``begin()``) of one process take turns on an asyncio lock.

    SQLite has one writer at a time; without the lock concurrent writers wait in SQLite's
    busy handler, which sleeps and retries unfairly (seconds of tail latency under load).
    Reads (plain sessions) are not serialised: WAL lets them run beside the writer. Hot
    write paths use :func:`write` instead: group commits, the lock held per batch only.
    """

    _write_lock: asyncio.Lock | None = None
    _group_commit: GroupCommit | None = None

    def begin(self) -> Any:
        return self._serialised_begin()

    def write_lock(self) -> asyncio.Lock:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    @asynccontextmanager
    async def _serialised_begin(self) -> AsyncIterator[AsyncSession]:
        async with self.write_lock(), super().begin() as session:
            yield session

    def group_commit(self) -> GroupCommit | None:
        """The group committer, or None for a database only this engine sees (in memory)."""
        if self._group_commit is None:
            bind = self.kw.get("bind")
            database = bind.url.database if isinstance(bind, AsyncEngine) else None
            if not database or database == ":memory:" or database.startswith("file:"):
                return None
            self._group_commit = GroupCommit(bind.url, self.write_lock)  # type: ignore[union-attr]
        return self._group_commit


async def close_writes(sessionmaker: SessionMaker) -> None:
    """Before the engine is disposed: finish and close the group commits, if any, and the
    reader of the hot read paths (:mod:`storage.reads`)."""
    from storage.reads import close_reader

    await close_reader(sessionmaker)
    if isinstance(sessionmaker, SQLiteSessionMaker) and sessionmaker._group_commit is not None:
        await sessionmaker._group_commit.aclose()


async def write(sessionmaker: SessionMaker, statements: Sequence[Statement]) -> None:
    """Apply ``statements`` atomically, with as few round trips as the database allows.

    SQLite: a unit of a group commit (:class:`GroupCommit`). PostgreSQL: one statement runs
    alone in autocommit (one round trip); several share one transaction. Errors are
    SQLAlchemy's (``IntegrityError`` when a unique index refuses a row).
    """
    if isinstance(sessionmaker, SQLiteSessionMaker):
        group = sessionmaker.group_commit()
        if group is not None:
            await group.write(statements)
            return
    bind = sessionmaker.kw.get("bind")
    if isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql":
        prepared = [_driver_statement(bind.dialect, *unit) for unit in statements]
        if all(p is not None for p in prepared):
            await _write_postgres(sessionmaker, prepared)  # type: ignore[arg-type]
            return
    async with sessionmaker.begin() as session:
        for statement, parameters in statements:
            await session.execute(statement, parameters)


# Statements compiled for asyncpg, by identity (hot statements are built once, at import).
_COMPILED: dict[tuple[int, str, tuple[str, ...]], tuple[Executable, Any]] = {}


def _driver_statement(
    dialect: Any, statement: Executable, parameters: dict[str, Any]
) -> tuple[str, list[Any]] | None:
    """``statement`` as the driver's SQL (asyncpg, sqlite3) and positional arguments (bind
    processors applied: UUIDs, JSON, datetimes in UTC as the dialect stores them; ``IN``
    lists expanded); None when it cannot be (a statement that is not positional)."""
    # An INSERT without values() renders the columns given (like execute() does), so the
    # keys given are part of what is compiled.
    key = (id(statement), dialect.name, tuple(parameters))
    found = _COMPILED.get(key)
    if found is None or found[0] is not statement:
        compiled = statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=list(parameters)
        )
        if compiled.positiontup is None:
            compiled = None
        found = _COMPILED[key] = (statement, compiled)
    compiled = found[1]
    if compiled is None:
        return None
    if compiled.post_compile_params:  # expanding IN lists: the SQL depends on the values
        state = compiled.construct_expanded_state(parameters)
        sql, names, values = state.statement, state.positiontup, state.parameters
        processors = dict(compiled._bind_processors)
        for original, expanded in state.parameter_expansion.items():
            for name in expanded:  # "only_from_1", … take the processor of "only_from"
                if original in compiled._bind_processors:
                    processors[name] = compiled._bind_processors[original]
    else:
        sql, names = compiled.string, compiled.positiontup
        values, processors = compiled.construct_params(parameters), compiled._bind_processors
    args = []
    for name in names:
        processor = processors.get(name)
        value = values[name]
        args.append(processor(value) if processor is not None else value)
    return sql, args


async def _write_postgres(
    sessionmaker: SessionMaker, prepared: list[tuple[str, list[Any]]]
) -> None:
    """On the asyncpg pool of :mod:`storage.reads` (no SQLAlchemy pool checkout, whose ping
    costs three round trips on asyncpg); a constraint violation comes back as SQLAlchemy's
    ``IntegrityError``, like every other write path's."""
    import asyncpg  # type: ignore[import-untyped]

    from storage.reads import PostgresReader, reader

    source = reader(sessionmaker)
    assert isinstance(source, PostgresReader)
    for sql, _ in prepared if _OBSERVERS else ():
        _observed("postgres", sql)
    try:
        await source.execute(prepared)
    except asyncpg.IntegrityConstraintViolationError as error:
        raise exc.IntegrityError(prepared[0][0], None, error) from error


# Page cache per connection: SQLite's default, 2,000 KiB, stated. 512 KiB saved ~1.5 MiB of
# RSS but cost POST /rooms/ and the spread lookups 6-13 % (13 of 15 interleaved pairs).
SQLITE_CACHE_KIB = 2000


def _raw_connection(path: str, *, busy_timeout: float) -> sqlite3.Connection:
    """A ``sqlite3`` connection in autocommit with the project's pragmas; ``busy_timeout``
    seconds of waiting for a lock held elsewhere."""
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
    )
    _sqlite_pragmas(connection, None)
    connection.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return connection


def _wrapped(error: sqlite3.Error) -> exc.StatementError:
    """A raw ``sqlite3`` error as SQLAlchemy's (what callers and :func:`is_outage` know)."""
    return exc.DBAPIError.instance(None, None, error, sqlite3.Error, hide_parameters=True)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``sqlite+aiosqlite`` or ``postgresql+asyncpg`` URLs."""
    kwargs.setdefault("hide_parameters", True)  # no e-mail or sub in logged SQL errors
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        kwargs["connect_args"].setdefault("async_creator_fn", _inline_reads_connect)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # An unreachable server fails a request in seconds (asyncpg waits 60 s by default).
    kwargs.setdefault(
        "connect_args",
        {"timeout": CONNECT_TIMEOUT_SECONDS, "server_settings": dict(PG_SERVER_SETTINGS)},
    )
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
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
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
