"""``storage.merge`` and ``meet-coordinator merge-duplicate-users``, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from coordinator.cli import build_parser
from coordinator.merge_command import ProgressBar, format_summary, run
from storage import merge as merge_module
from storage.engine import SessionMaker
from storage.merge import (
    GroupResult,
    MergeSummary,
    count_duplicate_groups,
    find_duplicate_groups,
    merge_duplicate_users,
    unhandled_user_references,
)
from storage.models import ROLES, Base, Recording, RecordingAccess, ResourceAccess, Room, User
from storage.records import ROLE_RANK, UserRecord
from tests.support.factories import Factory

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(days: int) -> datetime:
    return T0 + timedelta(days=days)


async def new_room(sessionmaker: SessionMaker) -> uuid.UUID:
    """A room with no access at all (the factory would add an owner)."""
    room_id = uuid.uuid4()
    async with sessionmaker.begin() as session:
        await session.execute(insert(Room).values(id=room_id, name=f"Room {room_id.hex[:6]}"))
    return room_id


async def new_recording(sessionmaker: SessionMaker, room_id: uuid.UUID) -> uuid.UUID:
    recording_id = uuid.uuid4()
    async with sessionmaker.begin() as session:
        await session.execute(
            insert(Recording).values(id=recording_id, room_id=room_id, status="saved")
        )
    return recording_id


async def grant_room(
    sessionmaker: SessionMaker, room_id: uuid.UUID, user: UserRecord, role: str
) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(
            insert(ResourceAccess).values(resource_id=room_id, user_id=user.id, role=role)
        )


async def grant_recording(
    sessionmaker: SessionMaker,
    recording_id: uuid.UUID,
    role: str,
    *,
    user: UserRecord | None = None,
    team: str = "",
) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(
            insert(RecordingAccess).values(
                recording_id=recording_id,
                user_id=user.id if user else None,
                team=team,
                role=role,
            )
        )


async def users(sessionmaker: SessionMaker) -> dict[uuid.UUID, str | None]:
    async with sessionmaker() as session:
        return {row.id: row.email for row in await session.execute(select(User.id, User.email))}


async def room_roles(sessionmaker: SessionMaker) -> set[tuple[uuid.UUID, uuid.UUID, str]]:
    """(user id, room id, role) of every room access."""
    statement = select(ResourceAccess.user_id, ResourceAccess.resource_id, ResourceAccess.role)
    async with sessionmaker() as session:
        return {(row[0], row[1], row[2]) for row in await session.execute(statement)}


async def recording_roles(
    sessionmaker: SessionMaker,
) -> set[tuple[uuid.UUID | None, str, uuid.UUID, str]]:
    """(user id, team, recording id, role) of every recording access."""
    statement = select(
        RecordingAccess.user_id,
        RecordingAccess.team,
        RecordingAccess.recording_id,
        RecordingAccess.role,
    )
    async with sessionmaker() as session:
        return {(row[0], row[1], row[2], row[3]) for row in await session.execute(statement)}


async def snapshot(sessionmaker: SessionMaker) -> list[Any]:
    """Everything the merge may touch, including timestamps."""
    result: list[Any] = []
    async with sessionmaker() as session:
        for model in (User, ResourceAccess, RecordingAccess):
            rows = await session.execute(select(model.__table__).order_by(model.id))
            result.append([tuple(row) for row in rows])
    return result


async def merge(factory: Factory, **options: Any) -> MergeSummary:
    return await merge_duplicate_users(factory.sessionmaker, **options)


def figures(summary: MergeSummary) -> tuple[int, ...]:
    return (
        summary.groups,
        summary.accounts_merged,
        summary.room_accesses_moved,
        summary.recording_accesses_moved,
        summary.roles_upgraded,
        summary.duplicate_accesses_removed,
        len(summary.failures),
    )


# --- grouping and the keep rule -------------------------------------------------------------


async def test_case_variants_merge_into_the_most_recent_login(factory: Factory) -> None:
    sm = factory.sessionmaker
    old = await factory.user(email="alice@example.com", last_login=at(1))
    recent = await factory.user(email="Alice@Example.COM", last_login=at(5))
    never = await factory.user(email="ALICE@EXAMPLE.COM", last_login=None, created_at=at(9))
    bystander = await factory.user(email="bob@example.com")
    room_a, room_b = await new_room(sm), await new_room(sm)
    await grant_room(sm, room_a, old, "owner")
    await grant_room(sm, room_b, never, "member")

    summary = await merge(factory)

    assert figures(summary) == (1, 2, 2, 0, 0, 0, 0)
    assert await users(sm) == {recent.id: "alice@example.com", bystander.id: "bob@example.com"}
    assert await room_roles(sm) == {(recent.id, room_a, "owner"), (recent.id, room_b, "member")}


@pytest.mark.parametrize(
    ("accounts", "kept"),
    [
        pytest.param([(at(1), at(0)), (at(3), at(-5)), (None, at(9))], 1, id="latest-login"),
        pytest.param([(None, at(0)), (None, at(4)), (None, at(2))], 1, id="never-newest"),
        pytest.param([(at(2), at(0)), (at(2), at(7)), (None, at(9))], 1, id="login-tie-newest"),
        pytest.param([(None, at(9)), (at(0), at(0))], 1, id="nulls-last"),
    ],
)
async def test_keep_rule(
    factory: Factory, accounts: list[tuple[datetime | None, datetime]], kept: int
) -> None:
    variants = ("Carol@Example.com", "carol@example.com", "CAROL@EXAMPLE.COM")
    created = [
        await factory.user(email=variants[i], last_login=login, created_at=created_at)
        for i, (login, created_at) in enumerate(accounts)
    ]
    await merge(factory)
    assert await users(factory.sessionmaker) == {created[kept].id: "carol@example.com"}


async def test_kept_email_is_lowercased_even_without_sub(factory: Factory) -> None:
    """The partial unique index on lower(email) WHERE sub IS NULL does not get in the way."""
    kept = await factory.user(email="Dan@Example.com", sub=None, last_login=at(3))
    await factory.user(email="dan@example.com", last_login=at(1))
    await factory.user(email="DAN@example.com", last_login=None)
    summary = await merge(factory)
    assert summary.accounts_merged == 2
    assert await users(factory.sessionmaker) == {kept.id: "dan@example.com"}


async def test_null_and_blank_emails_are_not_grouped(factory: Factory) -> None:
    blank = ["", "", "   ", "   ", "\t", " \t\n"]
    created = [await factory.user(email=None) for _ in range(3)]
    created += [await factory.user(email=email) for email in blank]
    summary = await merge(factory)
    assert figures(summary) == (0, 0, 0, 0, 0, 0, 0)
    assert set(await users(factory.sessionmaker)) == {user.id for user in created}


async def test_groups_are_paged_in_key_order(factory: Factory) -> None:
    for name in ("erin", "frank", "gina", "hal", "ivy"):
        await factory.user(email=f"{name}@example.com")
        await factory.user(email=f"{name.upper()}@example.com")
    await factory.user(email="single@example.com")
    groups = [
        (group.email, group.accounts)
        async for group in find_duplicate_groups(factory.sessionmaker, page_size=2)
    ]
    assert groups == [(f"{n}@example.com", 2) for n in ("erin", "frank", "gina", "hal", "ivy")]
    async with factory.sessionmaker() as session:
        assert await count_duplicate_groups(session) == 5
        assert await count_duplicate_groups(session, email_filter="R") == 2
    summary = await merge(factory, page_size=2)
    assert (summary.groups, summary.accounts_merged) == (5, 5)


# --- accesses and roles ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kept_role", "other_roles", "expected", "upgraded"),
    [
        pytest.param("member", ["owner"], "owner", 1, id="moved-higher"),
        pytest.param("administrator", ["member"], "administrator", 0, id="kept-higher"),
        pytest.param("member", ["member"], "member", 0, id="equal"),
        pytest.param("member", ["administrator", "owner"], "owner", 1, id="best-of-two"),
        pytest.param(None, ["member", "administrator"], "administrator", 0, id="kept-none"),
        pytest.param(None, ["owner", "owner"], "owner", 0, id="kept-none-tie"),
    ],
)
async def test_the_higher_role_wins_without_duplicates(
    factory: Factory,
    kept_role: str | None,
    other_roles: list[str],
    expected: str,
    upgraded: int,
) -> None:
    sm = factory.sessionmaker
    kept = await factory.user(email="Gus@example.com", last_login=at(10))
    variants = ("gus@example.com", "GUS@EXAMPLE.COM")
    others = [await factory.user(email=variants[i]) for i in range(len(other_roles))]
    room = await new_room(sm)
    recording = await new_recording(sm, room)
    if kept_role:
        await grant_room(sm, room, kept, kept_role)
        await grant_recording(sm, recording, kept_role, user=kept)
    for other, role in zip(others, other_roles, strict=True):
        await grant_room(sm, room, other, role)
        await grant_recording(sm, recording, role, user=other)

    summary = await merge(factory)

    moved = 0 if kept_role else 1
    dropped = len(other_roles) - moved
    assert summary.room_accesses_moved == summary.recording_accesses_moved == moved
    assert summary.roles_upgraded == 2 * upgraded
    assert summary.duplicate_accesses_removed == 2 * dropped
    assert await room_roles(sm) == {(kept.id, room, expected)}
    assert await recording_roles(sm) == {(kept.id, "", recording, expected)}


async def test_recording_accesses_move_and_team_rows_stay(factory: Factory) -> None:
    sm = factory.sessionmaker
    kept = await factory.user(email="hana@example.com", last_login=at(2))
    other = await factory.user(email="HANA@example.com", last_login=at(1))
    room = await new_room(sm)
    first, second = await new_recording(sm, room), await new_recording(sm, room)
    await grant_recording(sm, first, "owner", user=other)
    await grant_recording(sm, second, "member", user=kept)
    await grant_recording(sm, second, "administrator", user=other)
    await grant_recording(sm, first, "member", team="team-a")
    await grant_room(sm, room, other, "administrator")

    summary = await merge(factory)

    assert figures(summary) == (1, 1, 1, 1, 1, 1, 0)
    assert await recording_roles(sm) == {
        (kept.id, "", first, "owner"),
        (kept.id, "", second, "administrator"),
        (None, "team-a", first, "member"),
    }
    assert await room_roles(sm) == {(kept.id, room, "administrator")}
    assert set(await users(sm)) == {kept.id}


async def test_three_way_group_with_many_rooms(factory: Factory) -> None:
    sm = factory.sessionmaker
    a = await factory.user(email="Ian@example.com", last_login=at(1))
    b = await factory.user(email="ian@EXAMPLE.com", last_login=at(7))
    c = await factory.user(email="IAN@example.COM", last_login=at(4))
    rooms = [await new_room(sm) for _ in range(4)]
    await grant_room(sm, rooms[0], a, "owner")
    await grant_room(sm, rooms[0], c, "member")
    await grant_room(sm, rooms[1], b, "member")
    await grant_room(sm, rooms[1], c, "administrator")
    await grant_room(sm, rooms[2], b, "owner")
    await grant_room(sm, rooms[2], a, "member")
    await grant_room(sm, rooms[3], c, "member")

    summary = await merge(factory)

    assert figures(summary) == (1, 2, 2, 0, 1, 3, 0)
    assert await room_roles(sm) == {
        (b.id, rooms[0], "owner"),
        (b.id, rooms[1], "administrator"),
        (b.id, rooms[2], "owner"),
        (b.id, rooms[3], "member"),
    }
    assert await users(sm) == {b.id: "ian@example.com"}


# --- run modes --------------------------------------------------------------------------------


async def make_scenario(factory: Factory) -> None:
    sm = factory.sessionmaker
    room, other_room = await new_room(sm), await new_room(sm)
    recording = await new_recording(sm, room)
    variants = (str.lower, str.upper, str.title)
    for name, count in (("jo", 2), ("kim", 3), ("lee", 1)):
        accounts = [
            await factory.user(
                email=variants[i](f"{name}@example.com"), last_login=None if i == 1 else at(i)
            )
            for i in range(count)
        ]
        for i, account in enumerate(accounts):
            await grant_room(sm, room, account, ("member", "owner", "administrator")[i % 3])
            await grant_recording(sm, recording, ("owner", "member")[i % 2], user=account)
        await grant_room(sm, other_room, accounts[-1], "member")


async def test_dry_run_writes_nothing_and_reports_the_same_figures(factory: Factory) -> None:
    await make_scenario(factory)
    before = await snapshot(factory.sessionmaker)
    dry = await merge(factory, dry_run=True)
    assert await snapshot(factory.sessionmaker) == before
    assert dry.dry_run
    real = await merge(factory)
    assert not real.dry_run
    assert figures(dry) == figures(real)
    assert real.groups == 2 and real.accounts_merged == 3


async def test_second_run_finds_nothing(factory: Factory) -> None:
    await make_scenario(factory)
    assert (await merge(factory)).groups == 2
    after = await snapshot(factory.sessionmaker)
    assert figures(await merge(factory)) == (0, 0, 0, 0, 0, 0, 0)
    assert await snapshot(factory.sessionmaker) == after


async def test_email_filter(factory: Factory) -> None:
    for email in ("Max@acme.org", "max@ACME.org", "nia@corp.io", "NIA@corp.io", "o_p@x.io"):
        await factory.user(email=email)
    await factory.user(email="O_P@x.io")
    await factory.user(email="oxp@x.io")
    await factory.user(email="OXP@x.io")

    assert (await merge(factory, email_filter="ACME")).groups == 1
    remaining = sorted(email or "" for email in (await users(factory.sessionmaker)).values())
    assert remaining == [
        *("NIA@corp.io", "OXP@x.io", "O_P@x.io"),
        *("max@acme.org", "nia@corp.io", "o_p@x.io", "oxp@x.io"),
    ]
    assert (await merge(factory, email_filter="nothing-matches")).groups == 0
    summary = await merge(factory, email_filter="O_")  # "_" is not a wildcard
    assert summary.groups == 1
    remaining = sorted(email or "" for email in (await users(factory.sessionmaker)).values())
    assert remaining == [
        *("NIA@corp.io", "OXP@x.io"),
        *("max@acme.org", "nia@corp.io", "o_p@x.io", "oxp@x.io"),
    ]


async def test_a_failing_group_is_rolled_back_and_the_others_merged(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_scenario(factory)
    sm = factory.sessionmaker
    before_users = await users(sm)
    real_merge_group = merge_module.merge_group

    async def failing(session: Any, email: str) -> GroupResult | None:
        result = await real_merge_group(session, email)  # every statement ran...
        if email == "jo@example.com":
            raise RuntimeError("injected failure")  # ...and is rolled back
        return result

    monkeypatch.setattr(merge_module, "merge_group", failing)
    summary = await merge(factory)

    assert [(f.email, f.error) for f in summary.failures] == [
        ("jo@example.com", "RuntimeError: injected failure")
    ]
    assert summary.groups == 1 and summary.accounts_merged == 2
    after = await users(sm)
    jo = {uid: email for uid, email in before_users.items() if email and "jo@" in email.lower()}
    assert len(jo) == 2 and all(after.get(uid) == email for uid, email in jo.items())
    assert sum(1 for email in after.values() if email and email.lower() == "kim@example.com") == 1
    jo_rooms = {row for row in await room_roles(sm) if row[0] in jo}
    assert len(jo_rooms) == 3

    monkeypatch.setattr(merge_module, "merge_group", real_merge_group)
    assert (await merge(factory)).groups == 1


async def test_refuses_to_run_with_an_unknown_reference_to_users(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import Column, ForeignKey, MetaData, Table, Uuid

    metadata = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    Table("meet_upload", metadata, Column("owner_id", Uuid, ForeignKey("meet_user.id")))
    assert unhandled_user_references() == []
    assert unhandled_user_references(metadata) == ["meet_upload.owner_id"]

    monkeypatch.setattr(merge_module, "unhandled_user_references", lambda: ["meet_upload.owner_id"])
    await factory.user(email="pat@example.com")
    await factory.user(email="PAT@example.com")
    with pytest.raises(RuntimeError, match=r"meet_upload\.owner_id"):
        await merge(factory)
    assert len(await users(factory.sessionmaker)) == 2


async def test_files_of_merged_accounts_move_to_the_kept_one(factory: Factory) -> None:
    """Meet's merge moves Files too; ``creator_id`` restricts deleting a user who has some."""
    import uuid as uuid_module

    from storage import files as file_queries

    kept = await factory.user(email="ann@example.com", last_login=at(2))
    other = await factory.user(email="ANN@example.com", last_login=at(1))
    async with factory.sessionmaker.begin() as session:
        for owner in (kept, other, other):
            await file_queries.create_file(
                session,
                file_id=uuid_module.uuid4(),
                creator_id=owner.id,
                file_type="background_image",
                title="bg",
                filename="bg.png",
                description=None,
                max_count=None,
            )
    summary = await merge(factory)
    assert summary.accounts_merged == 1 and summary.files_moved == 2
    assert not summary.failures
    async with factory.sessionmaker() as session:
        page = await file_queries.list_files(
            session,
            kept.id,
            file_queries.FileFilters(),
            [("created_at", False)],
            offset=0,
            limit=10,
        )
    assert page.count == 3
    assert {record.creator.id for record in page.items if record.creator} == {kept.id}


async def test_progress_is_reported_per_group(factory: Factory) -> None:
    await make_scenario(factory)
    calls: list[tuple[int, int]] = []
    await merge(factory, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 2), (1, 2), (2, 2)]


# --- the command line -------------------------------------------------------------------------


def test_help_documents_the_keep_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["merge-duplicate-users", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "logged in most recently" in text
    assert "most recently created" in text
    assert "lower-cased" in text
    assert "owner > administrator > member" in text
    assert "--dry-run" in text and "--email-filter TEXT" in text


def test_progress_bar_only_prints_its_final_line_when_not_a_tty() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream)
    for done in range(41):
        bar(done, 40)
    bar.finish()
    assert stream.getvalue() == f"[{'#' * 30}] 40/40 groups\n"


def test_progress_bar_redraws_in_place_on_a_tty() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, width=8, interactive=True, interval=0)
    bar(0, 4)
    bar(1, 4)
    bar(4, 4)
    bar.finish()
    assert stream.getvalue() == (
        "\r[        ] 0/4 groups\r[##      ] 1/4 groups\r[########] 4/4 groups"
        "\r[########] 4/4 groups\n"
    )
    empty = io.StringIO()
    ProgressBar(empty, width=4).finish()
    assert empty.getvalue() == "[####] 0/0 groups\n"


def test_summary_table() -> None:
    summary = MergeSummary(
        dry_run=True,
        groups=12,
        accounts_merged=15,
        room_accesses_moved=30,
        recording_accesses_moved=4,
        roles_upgraded=3,
        duplicate_accesses_removed=2,
        failures=(),
        files_moved=5,
    )
    assert format_summary(summary).splitlines() == [
        "Duplicate users (DRY RUN: nothing was written)",
        "+----------------------------+-------+",
        "| groups                     |    12 |",
        "| accounts merged            |    15 |",
        "| accesses moved             |    34 |",
        "|   room accesses            |    30 |",
        "|   recording accesses       |     4 |",
        "| roles upgraded             |     3 |",
        "| duplicate accesses removed |     2 |",
        "| files moved                |     5 |",
        "| failed groups              |     0 |",
        "+----------------------------+-------+",
    ]


async def test_run_reports_failures_with_status_1(
    factory: Factory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_scenario(factory)

    async def failing(session: Any, email: str) -> GroupResult | None:
        raise ValueError("boom")

    monkeypatch.setattr(merge_module, "merge_group", failing)
    stdout, stderr = io.StringIO(), io.StringIO()
    status = await run(
        database_url, dry_run=False, email_filter="kim", stdout=stdout, stderr=stderr
    )
    assert status == 1
    assert "group 'kim@example.com' failed and was left untouched: ValueError: boom" in (
        stderr.getvalue()
    )
    assert "| failed groups              |     1 |" in stdout.getvalue()


async def run_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    import asyncio

    executable = Path(sys.executable).with_name("meet-coordinator")
    command = (
        [str(executable)] if executable.exists() else [sys.executable, "-m", "coordinator.cli"]
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("DB_")}
    env["DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        *command,
        "merge-duplicate-users",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_end_to_end(factory: Factory, database_url: str) -> None:
    await make_scenario(factory)
    before = await snapshot(factory.sessionmaker)

    status, out, err = await run_cli(database_url, "--dry-run")
    assert (status, err) == (0, f"[{'#' * 30}] 2/2 groups\n")
    assert out.splitlines()[0] == "Duplicate users (DRY RUN: nothing was written)"
    assert "| groups                     |     2 |" in out
    assert "| accounts merged            |     3 |" in out
    assert await snapshot(factory.sessionmaker) == before

    status, real_out, _ = await run_cli(database_url, "--email-filter", "KIM")
    assert status == 0
    assert real_out.splitlines()[0] == "Duplicate users merged"
    assert "| groups                     |     1 |" in real_out
    status, real_out, _ = await run_cli(database_url)
    assert "| groups                     |     1 |" in real_out
    status, again, err = await run_cli(database_url)
    assert status == 0 and err == f"[{'#' * 30}] 0/0 groups\n"
    assert "| groups                     |     0 |" in again


# --- invariant on generated data ------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    email: str
    last_login: datetime | None
    created_at: datetime

    @property
    def person(self) -> str:
        return self.email.lower()

    def keep_key(self) -> tuple[bool, float, float, str]:
        """The documented keep rule, as a sort key (smallest first)."""
        login = -self.last_login.timestamp() if self.last_login else 0.0
        return (self.last_login is None, login, -self.created_at.timestamp(), self.id.hex)


@dataclass(frozen=True)
class Dataset:
    accounts: list[Account]
    rooms: int
    recordings: int
    room_accesses: dict[tuple[int, int], str]  # (account index, room index) -> role
    recording_accesses: dict[tuple[int, int], str]


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    people = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))  # accounts per person
    ids = draw(st.lists(st.uuids(), min_size=sum(people), max_size=sum(people), unique=True))
    accounts: list[Account] = []
    for person, count in enumerate(people):
        for _ in range(count):
            mask = draw(st.integers(0, 31))
            email = "".join(
                c.upper() if mask >> i & 1 else c for i, c in enumerate(f"pp{person}@x.io")
            )
            login = draw(st.none() | st.integers(0, 2).map(at))  # small ranges: ties happen
            created = at(draw(st.integers(0, 2)))
            accounts.append(Account(ids[len(accounts)], email, login, created))
    rooms, recordings = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    roles = st.sampled_from(ROLES)
    account_index = st.integers(0, len(accounts) - 1)
    return Dataset(
        accounts=accounts,
        rooms=rooms,
        recordings=recordings,
        room_accesses=draw(
            st.dictionaries(st.tuples(account_index, st.integers(0, rooms - 1)), roles, max_size=16)
        ),
        recording_accesses=draw(
            st.dictionaries(
                st.tuples(account_index, st.integers(0, recordings - 1)), roles, max_size=8
            )
        ),
    )


def best_roles(pairs: list[tuple[str, int, str]]) -> dict[tuple[str, int], str]:
    """(person, target) -> the highest role among ``(person, target, role)``."""
    best: dict[tuple[str, int], str] = {}
    for person, target, role in pairs:
        current = best.get((person, target))
        if current is None or ROLE_RANK[role] > ROLE_RANK[current]:
            best[(person, target)] = role
    return best


async def load(
    sessionmaker: SessionMaker, data: Dataset
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    rooms = [uuid.uuid4() for _ in range(data.rooms)]
    recordings = [uuid.uuid4() for _ in range(data.recordings)]
    async with sessionmaker.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(delete(table))
        await session.execute(
            insert(User),
            [
                {
                    "id": a.id,
                    "sub": a.id.hex,
                    "email": a.email,
                    "last_login": a.last_login,
                    "created_at": a.created_at,
                }
                for a in data.accounts
            ],
        )
        await session.execute(insert(Room), [{"id": r, "name": "room"} for r in rooms])
        await session.execute(
            insert(Recording),
            [{"id": r, "room_id": rooms[0], "status": "saved"} for r in recordings],
        )
        if data.room_accesses:
            await session.execute(
                insert(ResourceAccess),
                [
                    {"user_id": data.accounts[a].id, "resource_id": rooms[r], "role": role}
                    for (a, r), role in data.room_accesses.items()
                ],
            )
        if data.recording_accesses:
            await session.execute(
                insert(RecordingAccess),
                [
                    {"user_id": data.accounts[a].id, "recording_id": recordings[r], "role": role}
                    for (a, r), role in data.recording_accesses.items()
                ],
            )
    return rooms, recordings


@settings(  # no shrinking: each example hits a database, shrinking would outlast the timeout
    max_examples=40,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=datasets())
async def test_invariant_highest_role_kept_and_no_access_lost(
    factory: Factory, data: Dataset
) -> None:
    sm = factory.sessionmaker
    rooms, recordings = await load(sm, data)
    room_index = {room: i for i, room in enumerate(rooms)}
    recording_index = {recording: i for i, recording in enumerate(recordings)}
    person_of = {a.id: a.person for a in data.accounts}
    before_rooms = best_roles(
        [(data.accounts[a].person, r, role) for (a, r), role in data.room_accesses.items()]
    )
    before_recordings = best_roles(
        [(data.accounts[a].person, r, role) for (a, r), role in data.recording_accesses.items()]
    )

    await merge(factory)

    kept = {
        person: min((a for a in data.accounts if a.person == person), key=Account.keep_key)
        for person in person_of.values()
    }
    grouped = {p for p in kept if sum(1 for a in data.accounts if a.person == p) > 1}
    assert await users(sm) == {
        account.id: person if person in grouped else account.email
        for person, account in kept.items()
    }
    after_rooms = {
        (person_of[user_id], room_index[room]): role for user_id, room, role in await room_roles(sm)
    }
    after_recordings = {
        (person_of[user_id], recording_index[recording]): role
        for user_id, _, recording, role in await recording_roles(sm)
        if user_id is not None
    }
    assert after_rooms == before_rooms
    assert after_recordings == before_recordings
    assert len(await room_roles(sm)) == len(before_rooms)  # one row per (person, room)
    for person in kept:
        count = sum(1 for key in before_rooms if key[0] == person)
        assert sum(1 for key in after_rooms if key[0] == person) == count
