"""The hot read paths: prepared SQL run straight on the driver, without the ORM.

A request's reads (session → user, the user, a room with the caller's role, a room's
accesses, a page of the caller's rooms) went through an ``AsyncSession``: a statement built,
its cache key computed, a greenlet hop, a pooled connection checked out (a ping on
PostgreSQL), result processors per value. That cost 1-3 ms per statement where the database
itself spends 0.05-0.5 ms. A :class:`Reader` runs fixed SQL text and converts the raw driver
values itself:

* SQLite (a database file): one ``sqlite3`` connection of the process, in autocommit, used
  inline on the event loop. In WAL mode a ``SELECT`` never waits on a lock, so nothing
  blocks; each statement sees the last committed state.
* PostgreSQL: an ``asyncpg`` pool of its own (prepared statements cached per connection); a
  connection lost under a read is replaced and the read, idempotent, run once more.
* Anything else (an in-memory SQLite database only the engine's pool sees) and reads inside a
  write transaction: the statement goes through the session's own connection
  (:class:`SessionReader`), so it sees what the transaction wrote.

Values cross as the driver has them: SQLite's UUIDs are 32 hex digits, its datetimes naive
UTC text (SQLAlchemy's storage format), its JSON text and booleans integers; asyncpg's are
native. Each reader converts through :class:`SQLiteValues` or :class:`PostgresValues`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.records import AccessRecord, Page, RoomRecord, UserRecord

Row = Sequence[Any]


class Query:
    """One statement in both dialects: ``?`` placeholders (SQLite), ``$n`` for PostgreSQL."""

    __slots__ = ("postgres", "sqlite")

    def __init__(self, sqlite: str, postgres: str | None = None) -> None:
        self.sqlite = " ".join(sqlite.split())
        if postgres is None:
            numbers = iter(range(1, 1000))
            postgres = re.sub(r"\?", lambda _: f"${next(numbers)}", sqlite)
        self.postgres = " ".join(postgres.split())


class SQLiteValues:
    """Driver values of SQLite as SQLAlchemy stores them."""

    sqlite = True

    @staticmethod
    def uuid_in(value: uuid.UUID) -> Any:
        return value.hex

    @staticmethod
    def datetime_in(value: datetime) -> Any:
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}"

    @staticmethod
    def uuids_in(values: Sequence[uuid.UUID]) -> Any:
        return json.dumps([value.hex for value in values])

    @staticmethod
    def uuid_out(value: Any) -> uuid.UUID:
        # SQLAlchemy stores 32 hex digits; from the integer is half the cost of ``hex=``
        try:
            return uuid.UUID(int=int(value, 16))
        except ValueError:
            return uuid.UUID(hex=value)

    @staticmethod
    def datetime_out(value: Any) -> datetime:
        # SQLAlchemy stores UTC without an offset; parsing one is 5x cheaper than replace()
        try:
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)

    @staticmethod
    def json_out(value: Any) -> dict[str, Any]:
        return dict(_json_loads(value) or {}) if value else {}


class PostgresValues:
    """asyncpg's values: native UUIDs and aware datetimes, JSON as text."""

    sqlite = False

    @staticmethod
    def uuid_in(value: uuid.UUID) -> Any:
        return value

    @staticmethod
    def datetime_in(value: datetime) -> Any:
        return value

    @staticmethod
    def uuids_in(values: Sequence[uuid.UUID]) -> Any:
        return list(values)

    @staticmethod
    def uuid_out(value: Any) -> uuid.UUID:
        return value  # type: ignore[no-any-return]  # asyncpg's UUID subclasses uuid.UUID

    @staticmethod
    def datetime_out(value: Any) -> datetime:
        return value if value.tzinfo is UTC else value.astimezone(UTC)  # type: ignore[no-any-return]

    @staticmethod
    def json_out(value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            value = _json_loads(value)
        return dict(value or {})


def _json_loads(text: str) -> Any:
    """orjson's parse (4x json's), json's for what orjson refuses (NaN, integers past 64 bits:
    SQLAlchemy's JSON columns are written by json.dumps, which allows them)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class Reader(ABC):
    """Runs a :class:`Query`; ``values`` converts what goes in and comes out."""

    values: type[SQLiteValues] | type[PostgresValues]

    @abstractmethod
    async def rows(self, query: Query, params: Sequence[Any]) -> list[Row]: ...

    async def close(self) -> None:  # noqa: B027 (most readers hold nothing)
        """Release what the reader holds (the application's shutdown)."""


class SQLiteReader(Reader):
    values = SQLiteValues

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, timeout=30
        )
        connection.execute("PRAGMA query_only=ON")
        from storage.engine import SQLITE_CACHE_KIB

        connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        self._connection = connection
        return connection

    async def rows(self, query: Query, params: Sequence[Any]) -> list[Row]:
        connection = self._connection or self._connect()
        return connection.execute(query.sqlite, params).fetchall()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class PostgresReader(Reader):
    values = PostgresValues
    MAX_CONNECTIONS = 10
    # A read (small, indexed) that has not answered by then will not: a hung server. It
    # gives up with TimeoutError, an outage (503), instead of holding its request and its
    # connection for as long as the server hangs. Writes have no such limit: one given up
    # on could still commit.
    READ_TIMEOUT_SECONDS = 10.0

    def __init__(self, engine: AsyncEngine) -> None:
        from storage.engine import CONNECT_TIMEOUT_SECONDS, PG_SERVER_SETTINGS

        url = engine.url.set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._timeout = CONNECT_TIMEOUT_SECONDS
        self._server_settings = dict(PG_SERVER_SETTINGS)
        self._pool: Any = None
        self._opening: asyncio.Lock | None = None
        # Waiters are served in their order of arrival. asyncpg's pool lets a newcomer take a
        # connection released just before the woken waiter runs, and that waiter queues again
        # at the back: under load some requests waited many turns (a list's p99 five times
        # its median at 64 clients).
        self._turns: asyncio.Semaphore | None = None

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                import asyncpg  # type: ignore[import-untyped]

                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,  # no floor kept up in the background while the server is down
                    max_size=self.MAX_CONNECTIONS,
                    timeout=self._timeout,
                    # A restarted server leaves dead connections: they are dropped on release.
                    max_inactive_connection_lifetime=60,
                    # Nothing here sets session state (LISTEN, SET, advisory locks): no
                    # reset query (a round trip) on each release; an open transaction is
                    # still rolled back by the pool.
                    reset=_keep_session,
                    server_settings=self._server_settings,
                )
        return self._pool

    async def rows(self, query: Query, params: Sequence[Any]) -> list[Row]:
        timeout = self.READ_TIMEOUT_SECONDS

        def fetch(connection: Any) -> Any:
            return connection.fetch(query.postgres, *params, timeout=timeout)

        return list(await self._run(fetch))

    async def execute(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run ``statements`` atomically: one alone in autocommit (one round trip), several
        in one transaction. A write is not run again after a lost connection (it may have
        committed): that error is raised."""

        async def run(connection: Any) -> None:
            if len(statements) == 1:
                await connection.execute(statements[0][0], *statements[0][1])
                return
            async with connection.transaction():
                for sql, args in statements:
                    await connection.execute(sql, *args)

        await self._run(run, again=False)

    async def _run(self, work: Any, *, again: bool = True) -> Any:
        import asyncpg

        lost = (
            asyncpg.AdminShutdownError,  # the server killed the session (a restart)
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,  # connection closed, or left mid-operation
            asyncpg.InternalClientError,  # ... or its protocol state broken by the close
            ConnectionError,
        )
        pool = await self._get_pool()
        if self._turns is None:
            self._turns = asyncio.Semaphore(self.MAX_CONNECTIONS)
        for attempt in (1, 2):
            try:
                async with self._turns, pool.acquire() as connection:  # (no wait_for task)
                    try:
                        return await work(connection)
                    except (*lost, TimeoutError):
                        # Never handed out again (the pool opens another); timed out, it would
                        # wait for the hung server to answer the query's cancellation.
                        connection.terminate()
                        raise
            except lost:  # (also a connection that broke on its way back to the pool)
                if attempt == 2 or not again:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


def _values_of(bind: Any) -> type[SQLiteValues] | type[PostgresValues]:
    return SQLiteValues if bind is not None and bind.dialect.name == "sqlite" else PostgresValues


async def _keep_session(connection: Any) -> None:
    return None


class SessionReader(Reader):
    """Through an open session's connection: it sees what the session's transaction wrote."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.values = _values_of(session.bind)

    async def rows(self, query: Query, params: Sequence[Any]) -> list[Row]:
        connection = await self._session.connection()
        sql = query.sqlite if self.values.sqlite else query.postgres
        result = await connection.exec_driver_sql(sql, tuple(params))
        return list(result.all())


class SessionmakerReader(Reader):
    """A short session per read (a database only the engine's pool sees: in-memory SQLite)."""

    def __init__(self, sessionmaker: Any) -> None:
        self._sessionmaker = sessionmaker
        self.values = _values_of(sessionmaker.kw.get("bind"))

    async def rows(self, query: Query, params: Sequence[Any]) -> list[Row]:
        async with self._sessionmaker() as session:
            return await SessionReader(session).rows(query, params)


_READERS_ATTRIBUTE = "_meet_reader"


def reader(sessionmaker: Any) -> Reader:
    """The process's reader of ``sessionmaker``'s database (made on first use)."""
    found: Reader | None = getattr(sessionmaker, _READERS_ATTRIBUTE, None)
    if found is not None:
        return found
    bind = sessionmaker.kw.get("bind")
    made: Reader
    if isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql":
        made = PostgresReader(bind)
    elif isinstance(bind, AsyncEngine) and bind.dialect.name == "sqlite" and _file(bind):
        made = SQLiteReader(bind.url.database or "")
    else:
        made = SessionmakerReader(sessionmaker)
    setattr(sessionmaker, _READERS_ATTRIBUTE, made)
    return made


def _file(engine: AsyncEngine) -> bool:
    database = engine.url.database
    return bool(database) and database != ":memory:" and not str(database).startswith("file:")


async def close_reader(sessionmaker: Any) -> None:
    found: Reader | None = getattr(sessionmaker, _READERS_ATTRIBUTE, None)
    if found is not None:
        setattr(sessionmaker, _READERS_ATTRIBUTE, None)
        await found.close()


# -- the statements ------------------------------------------------------------------------

_ROOM = (
    "r.id, r.name, r.slug, r.access_level, r.configuration, r.pin_code, r.created_at, r.updated_at"
)
_USER = (
    "u.id, u.sub, u.email, u.full_name, u.short_name, u.language, u.timezone, "
    "u.default_room_access_level, u.default_room_configuration, u.is_active, u.is_staff, "
    "u.created_at, u.last_login"
)
_ROOM_WIDTH = 8

SESSION_USER = Query(
    f"SELECT {_USER} FROM meet_session s JOIN meet_user u ON u.id = s.user_id "
    "WHERE s.key_hash = ? AND s.expires_at > ?"
)
USER = Query(f"SELECT {_USER} FROM meet_user u WHERE u.id = ?")
ROOM_BY_ID = Query(f"SELECT {_ROOM}, NULL FROM meet_room r WHERE r.id = ?")
ROOM_BY_SLUG = Query(f"SELECT {_ROOM}, NULL FROM meet_room r WHERE r.slug = ?")
_WITH_ROLE = (
    f"SELECT {_ROOM}, a.role FROM meet_room r LEFT JOIN meet_resource_access a "
    "ON a.resource_id = r.id AND a.user_id = ?"
)
ROOM_BY_ID_WITH_ROLE = Query(f"{_WITH_ROLE} WHERE r.id = ?")
ROOM_BY_SLUG_WITH_ROLE = Query(f"{_WITH_ROLE} WHERE r.slug = ?")
# The same, the room's row locked for the transaction (PostgreSQL; SQLite's write
# transactions are serialised already).
_LOCK = " FOR UPDATE OF r"
_LOCKING = {
    query: Query(query.sqlite, query.postgres + _LOCK)
    for query in (ROOM_BY_ID, ROOM_BY_SLUG, ROOM_BY_ID_WITH_ROLE, ROOM_BY_SLUG_WITH_ROLE)
}
_ACCESSES = (
    f"SELECT a.id, a.resource_id, a.user_id, a.role, a.created_at, {_USER} "
    "FROM meet_resource_access a JOIN meet_user u ON u.id = a.user_id WHERE a.resource_id "
)
ROOM_ACCESSES = Query(
    _ACCESSES + "IN (SELECT value FROM json_each(?)) ORDER BY a.created_at DESC, a.id",
    _ACCESSES + "= ANY($1::uuid[]) ORDER BY a.created_at DESC, a.id",
)
# With the count of all the user's rooms (the window is computed before LIMIT): one round
# trip for a page and its count.
USER_ROOMS = Query(
    f"SELECT {_ROOM}, a.role, count(*) OVER () FROM meet_resource_access a JOIN meet_room r "
    "ON r.id = a.resource_id WHERE a.user_id = ? ORDER BY r.name, r.id LIMIT ? OFFSET ?"
)
USER_ACCESS_COUNT = Query("SELECT count(*) FROM meet_resource_access WHERE user_id = ?")


def _user(values: type[SQLiteValues] | type[PostgresValues], row: Row) -> UserRecord:
    return UserRecord(
        id=values.uuid_out(row[0]),
        sub=row[1],
        email=row[2],
        full_name=row[3],
        short_name=row[4],
        language=row[5],
        timezone=row[6],
        default_room_access_level=row[7],
        default_room_configuration=values.json_out(row[8]),
        is_active=bool(row[9]),
        is_staff=bool(row[10]),
        created_at=values.datetime_out(row[11]),
        last_login=values.datetime_out(row[12]) if row[12] is not None else None,
    )


def _room(values: type[SQLiteValues] | type[PostgresValues], row: Row) -> RoomRecord:
    return RoomRecord(
        id=values.uuid_out(row[0]),
        name=row[1],
        slug=row[2] or "",
        access_level=row[3],
        configuration=values.json_out(row[4]),
        pin_code=row[5],
        created_at=values.datetime_out(row[6]),
        updated_at=values.datetime_out(row[7]),
    )


async def session_user(source: Reader, key_hash: str, now: datetime) -> UserRecord | None:
    """The user of the unexpired login session ``key_hash`` (one query), or None."""
    values = source.values
    rows = await source.rows(SESSION_USER, (key_hash, values.datetime_in(now)))
    return _user(values, rows[0]) if rows else None


async def user(source: Reader, user_id: uuid.UUID) -> UserRecord | None:
    rows = await source.rows(USER, (source.values.uuid_in(user_id),))
    return _user(source.values, rows[0]) if rows else None


async def room(
    source: Reader,
    *,
    room_id: uuid.UUID | None = None,
    slug: str | None = None,
    user_id: uuid.UUID | None = None,
    for_update: bool = False,
) -> tuple[RoomRecord, str | None] | None:
    """The room found by id (else by slug), with ``user_id``'s role in it (None: unrelated);
    ``for_update``: its row locked for the transaction of a :class:`SessionReader`."""
    values = source.values
    key = values.uuid_in(room_id) if room_id is not None else slug
    if user_id is None:
        query = ROOM_BY_ID if room_id is not None else ROOM_BY_SLUG
        params: tuple[Any, ...] = (key,)
    else:
        query = ROOM_BY_ID_WITH_ROLE if room_id is not None else ROOM_BY_SLUG_WITH_ROLE
        params = (values.uuid_in(user_id), key)
    rows = await source.rows(_LOCKING[query] if for_update else query, params)
    if not rows:
        return None
    return _room(values, rows[0]), rows[0][_ROOM_WIDTH]


async def room_accesses(
    source: Reader, room_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AccessRecord]]:
    """Accesses (with their users) of the given rooms, newest first."""
    result: dict[uuid.UUID, list[AccessRecord]] = {room_id: [] for room_id in room_ids}
    if not room_ids:
        return result
    values = source.values
    # the rooms by their driver value: no conversion (nor UUID comparison) per row
    rooms = {values.uuid_in(room_id): (room_id, result[room_id]) for room_id in room_ids}
    rows = await source.rows(ROOM_ACCESSES, (values.uuids_in(room_ids),))
    users: dict[Any, UserRecord] = {}  # one record per user (the caller is in each)
    for row in rows:
        member = users.get(row[2])
        if member is None:
            member = users[row[2]] = _user(values, row[5:])
        room_id, accesses = rooms[row[1]]
        accesses.append(
            AccessRecord(
                id=values.uuid_out(row[0]),
                resource_id=room_id,
                user_id=member.id,
                role=row[3],
                created_at=values.datetime_out(row[4]),
                user=member,
            )
        )
    return result


async def user_rooms(
    source: Reader, user_id: uuid.UUID, *, offset: int, limit: int
) -> Page[tuple[RoomRecord, str]]:
    """Rooms where the user holds an access, ordered by name, with the user's role, and
    their count (from the page's own query; a count query only for a page past the end)."""
    values = source.values
    key = values.uuid_in(user_id)
    rows = await source.rows(USER_ROOMS, (key, limit, offset))
    items = [(_room(values, row), row[_ROOM_WIDTH]) for row in rows]
    if rows:
        return Page(items, int(rows[0][_ROOM_WIDTH + 1]))
    if offset == 0:
        return Page(items, 0)
    total = await source.rows(USER_ACCESS_COUNT, (key,))  # past the end: how far it is
    return Page(items, int(total[0][0]) if total else 0)
