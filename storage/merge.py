"""Merge duplicate user accounts (same e-mail ignoring case) without anyone losing access.

Contract (``meet-coordinator merge-duplicate-users``, reference §1.5 "Duplicate users"):

* **Groups**: accounts whose ``lower(email)`` are equal; null, empty and whitespace-only e-mails
  are never grouped. Groups are found by a ``GROUP BY lower(email)`` query paged by keyset
  (``lower(email) > last key``), so neither the user table nor the list of groups is ever held in
  memory.
* **Kept account**: the one that logged in most recently (``last_login``, never-logged-in
  accounts last), then the newest (``created_at``), then the smallest id. Its e-mail is stored
  lower-cased.
* **Accesses**: every room access (``meet_resource_access``) and user recording access
  (``meet_recording_access`` with a ``user_id``; team rows are untouched) of the other accounts
  moves to the kept one. When several accounts of the group hold an access to the same room or
  recording, one row remains, with the highest role (owner > administrator > member).
* **Files**: the files the other accounts created (``meet_file.creator_id``, which restricts
  the deletion of a user) are re-pointed to the kept account.
* **Deletion**: the emptied accounts are deleted, then the kept e-mail is lower-cased (in that
  order, so the partial unique index on ``lower(email) WHERE sub IS NULL`` cannot fire).
* **Transactions**: one per group. A failing group is rolled back (left untouched), reported in
  :attr:`MergeSummary.failures`, and the next groups are still merged.
* **Dry run**: the same statements run and the transaction is rolled back, so the figures are
  exactly those a real run would report.

Every step is set-based SQL (``UPDATE`` / ``DELETE`` with correlated sub-queries) portable to
SQLite and PostgreSQL; no ORM object leaves this module.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    MetaData,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.engine import SessionMaker
from storage.models import Base, utcnow
from storage.records import ROLE_RANK

USERS: Table = Base.metadata.tables["meet_user"]
ROOM_ACCESSES: Table = Base.metadata.tables["meet_resource_access"]
RECORDING_ACCESSES: Table = Base.metadata.tables["meet_recording_access"]
FILES: Table = Base.metadata.tables["meet_file"]

#: Foreign keys to ``meet_user.id`` this module moves; any other one would be lost by the
#: ``ON DELETE CASCADE`` of the account deletion, so :func:`merge_duplicate_users` refuses to run.
#: Login sessions (``meet_session``) are not moved: a merged-away account's sessions end with it.
HANDLED_USER_REFERENCES = frozenset(
    {
        ("meet_resource_access", "user_id"),
        ("meet_recording_access", "user_id"),
        ("meet_session", "user_id"),
        ("meet_file", "creator_id"),
    }
)

#: Characters a blank e-mail may consist of.
BLANKS = " \t\r\n\f\v"

DEFAULT_PAGE_SIZE = 500

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``: called once before the first group and after every group."""


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Accounts sharing an e-mail: ``email`` is the lower-cased key."""

    email: str
    accounts: int


@dataclass(frozen=True, slots=True)
class GroupResult:
    """What merging one group did (or would do, in a dry run)."""

    email: str
    kept_id: uuid.UUID
    accounts_merged: int
    room_accesses_moved: int
    recording_accesses_moved: int
    roles_upgraded: int
    duplicate_accesses_removed: int
    email_lowercased: bool
    files_moved: int = 0

    @property
    def accesses_moved(self) -> int:
        return self.room_accesses_moved + self.recording_accesses_moved


@dataclass(frozen=True, slots=True)
class GroupFailure:
    """A group whose transaction failed and was rolled back: nothing of it changed."""

    email: str
    error: str


@dataclass(frozen=True, slots=True)
class MergeSummary:
    """Totals over the merged groups; failed groups count only in ``failures``."""

    dry_run: bool
    groups: int
    accounts_merged: int
    room_accesses_moved: int
    recording_accesses_moved: int
    roles_upgraded: int
    duplicate_accesses_removed: int
    failures: tuple[GroupFailure, ...]
    files_moved: int = 0

    @property
    def accesses_moved(self) -> int:
        return self.room_accesses_moved + self.recording_accesses_moved


class _Totals:
    """Running totals, so that a run keeps no per-group list in memory."""

    def __init__(self) -> None:
        self.groups = 0
        self.accounts_merged = 0
        self.room_accesses_moved = 0
        self.recording_accesses_moved = 0
        self.roles_upgraded = 0
        self.duplicate_accesses_removed = 0
        self.files_moved = 0
        self.failures: list[GroupFailure] = []

    def add(self, result: GroupResult) -> None:
        self.groups += 1
        self.accounts_merged += result.accounts_merged
        self.room_accesses_moved += result.room_accesses_moved
        self.recording_accesses_moved += result.recording_accesses_moved
        self.roles_upgraded += result.roles_upgraded
        self.duplicate_accesses_removed += result.duplicate_accesses_removed
        self.files_moved += result.files_moved

    def summary(self, *, dry_run: bool) -> MergeSummary:
        return MergeSummary(
            dry_run=dry_run,
            groups=self.groups,
            accounts_merged=self.accounts_merged,
            room_accesses_moved=self.room_accesses_moved,
            recording_accesses_moved=self.recording_accesses_moved,
            roles_upgraded=self.roles_upgraded,
            duplicate_accesses_removed=self.duplicate_accesses_removed,
            failures=tuple(self.failures),
            files_moved=self.files_moved,
        )


def unhandled_user_references(metadata: MetaData = Base.metadata) -> list[str]:
    """``table.column`` of every foreign key to ``meet_user`` this module does not move."""
    found: list[str] = []
    for table in metadata.sorted_tables:
        for foreign_key in table.foreign_keys:
            if foreign_key.column.table.name != "meet_user":
                continue
            if (table.name, foreign_key.parent.name) not in HANDLED_USER_REFERENCES:
                found.append(f"{table.name}.{foreign_key.parent.name}")
    return found


def _email_key() -> ColumnElement[str]:
    return func.lower(USERS.c.email)


def _groupable() -> ColumnElement[bool]:
    """E-mails taking part in grouping: not null and not blank."""
    return and_(USERS.c.email.is_not(None), func.trim(USERS.c.email, BLANKS) != "")


def _filter_clause(email_filter: str | None) -> ColumnElement[bool] | None:
    """``lower(email)`` contains ``email_filter`` (case-insensitive, LIKE wildcards escaped)."""
    if not email_filter:
        return None
    escaped = email_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = func.lower(literal(f"%{escaped}%"))
    return _email_key().like(pattern, escape="\\")


def _rank(role: ColumnElement[Any]) -> ColumnElement[int]:
    return case(*((role == name, rank) for name, rank in ROLE_RANK.items()), else_=0)


async def count_duplicate_groups(session: AsyncSession, *, email_filter: str | None = None) -> int:
    """How many groups :func:`find_duplicate_groups` would yield right now."""
    key = _email_key()
    statement = select(key).where(_groupable())
    clause = _filter_clause(email_filter)
    if clause is not None:
        statement = statement.where(clause)
    groups = statement.group_by(key).having(func.count() > 1).subquery()
    return int(await session.scalar(select(func.count()).select_from(groups)) or 0)


async def find_duplicate_groups(
    sessionmaker: SessionMaker,
    *,
    email_filter: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> AsyncIterator[DuplicateGroup]:
    """Yield the duplicate groups in ``lower(email)`` order, ``page_size`` at a time.

    Each page is read in its own short transaction that is closed before its groups are
    yielded, so the caller may write between two groups; groups after the current key are
    unaffected by merging the current one (merging keeps the key).
    """
    key = _email_key()
    clause = _filter_clause(email_filter)
    after: str | None = None
    while True:
        statement = select(key.label("email"), func.count().label("accounts")).where(_groupable())
        if clause is not None:
            statement = statement.where(clause)
        if after is not None:
            statement = statement.where(key > after)
        statement = statement.group_by(key).having(func.count() > 1).order_by(key)
        async with sessionmaker() as session:
            rows = (await session.execute(statement.limit(page_size))).all()
        for email, accounts in rows:
            yield DuplicateGroup(email=email, accounts=int(accounts))
        if len(rows) < page_size:
            return
        after = rows[-1][0]


@dataclass(frozen=True, slots=True)
class _AccessStatements:
    """The statements moving one access table, built once; bound to ``kept``, ``others``, ``now``.

    Order matters: (1) ``upgrade``: the kept rows take the best role of the others on the same
    target; (2) ``drop``: an other's row goes when the kept account has the same target, or when
    another other's row on it is better (higher role, then smaller id): the best row of an
    uncovered target is never dropped and witnesses every other drop there, so even a
    row-by-row evaluation gives the same result; (3) ``move``: the survivors, at most one per
    target and none on the kept account's targets, are re-pointed to the kept account.
    """

    upgrade: Update
    drop: Delete
    move: Update


_KEPT = bindparam("kept", type_=USERS.c.id.type)
_OTHERS = bindparam("others", expanding=True, type_=USERS.c.id.type)
_NOW = bindparam("now", type_=USERS.c.updated_at.type)


def _access_statements(access: Table, target_column: str) -> _AccessStatements:
    other = access.alias("other_access")
    target = access.c[target_column]
    other_target = other.c[target_column]
    same_target = and_(other_target == target, other.c.user_id.in_(_OTHERS))
    best_other_role = (
        select(other.c.role)
        .where(same_target)
        .order_by(_rank(other.c.role).desc())
        .limit(1)
        .scalar_subquery()
    )
    kept_targets = select(other_target).where(other.c.user_id == _KEPT)
    better = (_rank(other.c.role) > _rank(access.c.role)) | and_(
        _rank(other.c.role) == _rank(access.c.role), other.c.id < access.c.id
    )
    return _AccessStatements(
        upgrade=update(access)
        .where(
            access.c.user_id == _KEPT,
            exists().where(same_target, _rank(other.c.role) > _rank(access.c.role)),
        )
        .values(role=best_other_role, updated_at=_NOW),
        drop=delete(access).where(
            access.c.user_id.in_(_OTHERS),
            target.in_(kept_targets)
            | exists().where(same_target, other.c.id != access.c.id, better),
        ),
        move=update(access)
        .where(access.c.user_id.in_(_OTHERS))
        .values(user_id=_KEPT, updated_at=_NOW),
    )


_ROOM_STATEMENTS = _access_statements(ROOM_ACCESSES, "resource_id")
_RECORDING_STATEMENTS = _access_statements(RECORDING_ACCESSES, "recording_id")
_LOCK_GROUP = (
    select(USERS.c.id)
    .where(_email_key() == bindparam("email", type_=USERS.c.email.type))
    .order_by(
        case((USERS.c.last_login.is_(None), 1), else_=0),
        USERS.c.last_login.desc(),
        USERS.c.created_at.desc(),
        USERS.c.id,
    )
    .with_for_update()
)
_MOVE_FILES = (
    update(FILES).where(FILES.c.creator_id.in_(_OTHERS)).values(creator_id=_KEPT, updated_at=_NOW)
)
_DELETE_OTHERS = delete(USERS).where(USERS.c.id.in_(_OTHERS))
_LOWERCASE_KEPT = (
    update(USERS)
    .where(USERS.c.id == _KEPT, USERS.c.email != func.lower(USERS.c.email))
    .values(email=func.lower(USERS.c.email), updated_at=_NOW)
)


async def _merge_accesses(
    connection: AsyncConnection, statements: _AccessStatements, params: dict[str, Any]
) -> tuple[int, int, int]:
    """Run ``statements`` in order: (moved, upgraded, dropped)."""
    upgraded = (await connection.execute(statements.upgrade, params)).rowcount
    dropped = (await connection.execute(statements.drop, params)).rowcount
    moved = (await connection.execute(statements.move, params)).rowcount
    return moved, upgraded, dropped


async def merge_group(session: AsyncSession, email: str) -> GroupResult | None:
    """Merge the accounts whose ``lower(email)`` is ``email``, inside the caller's transaction.

    The caller commits (or rolls back, for a dry run or on error). Returns None when fewer
    than two accounts match any more (the group vanished since it was found). On PostgreSQL
    the group's rows are locked first (``FOR UPDATE``), so an access created concurrently for
    one of the merged accounts fails instead of being silently lost with it. The statements
    are built once at import, so a group costs 9 round trips and no SQL compilation.
    """
    connection = await session.connection()
    ids = (await connection.execute(_LOCK_GROUP, {"email": email})).scalars().all()
    if len(ids) < 2:
        return None
    kept_id: uuid.UUID = ids[0]
    params: dict[str, Any] = {"kept": kept_id, "others": list(ids[1:]), "now": utcnow()}
    room_moved, room_upgraded, room_dropped = await _merge_accesses(
        connection, _ROOM_STATEMENTS, params
    )
    rec_moved, rec_upgraded, rec_dropped = await _merge_accesses(
        connection, _RECORDING_STATEMENTS, params
    )
    files_moved = (await connection.execute(_MOVE_FILES, params)).rowcount
    deleted = (await connection.execute(_DELETE_OTHERS, params)).rowcount
    lowercased = (await connection.execute(_LOWERCASE_KEPT, params)).rowcount
    return GroupResult(
        email=email,
        kept_id=kept_id,
        accounts_merged=deleted,
        room_accesses_moved=room_moved,
        recording_accesses_moved=rec_moved,
        roles_upgraded=room_upgraded + rec_upgraded,
        duplicate_accesses_removed=room_dropped + rec_dropped,
        email_lowercased=lowercased > 0,
        files_moved=files_moved,
    )


async def merge_one(
    sessionmaker: SessionMaker, email: str, *, dry_run: bool = False
) -> GroupResult | None:
    """:func:`merge_group` in its own transaction: committed, or rolled back when ``dry_run``."""
    async with sessionmaker() as session:
        transaction = await session.begin()
        try:
            result = await merge_group(session, email)
        except BaseException:
            await transaction.rollback()
            raise
        if dry_run:
            await transaction.rollback()
        else:
            await transaction.commit()
        return result


async def merge_duplicate_users(
    sessionmaker: SessionMaker,
    *,
    dry_run: bool = False,
    email_filter: str | None = None,
    progress: ProgressCallback | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> MergeSummary:
    """Merge every duplicate group (see the module docstring); never raises for one group.

    Raises ``RuntimeError`` before touching anything when a table references ``meet_user``
    that this module does not know how to move (its rows would vanish with the accounts).
    """
    unhandled = unhandled_user_references()
    if unhandled:
        raise RuntimeError(
            "refusing to merge: these columns reference meet_user and would lose rows: "
            + ", ".join(unhandled)
        )
    async with sessionmaker() as session:
        total = await count_duplicate_groups(session, email_filter=email_filter)
    totals = _Totals()
    done = 0
    if progress is not None:
        progress(done, total)
    async for group in find_duplicate_groups(
        sessionmaker, email_filter=email_filter, page_size=page_size
    ):
        try:
            result = await merge_one(sessionmaker, group.email, dry_run=dry_run)
        except Exception as exc:
            totals.failures.append(GroupFailure(group.email, f"{type(exc).__name__}: {exc}"))
        else:
            if result is not None:
                totals.add(result)
        done += 1
        if progress is not None:
            progress(done, max(total, done))
    return totals.summary(dry_run=dry_run)
