"""Benchmark ``merge-duplicate-users`` on generated data, on SQLite and/or PostgreSQL.

``python -m bench.merge [--users 100000 --groups 10000 --accesses 500000]
[--recording-accesses 100000] [--database sqlite|postgres|both] [--seed 1]``

For each database: a fresh, migrated database (a temporary SQLite file, or a throwaway
PostgreSQL cluster stopped at the end), the data set bulk-inserted with Core ``insert()``
executemany in chunks, then the merge run in a **child process** so that its peak RSS
(``resource.getrusage``) measures the merge alone: a dry run, the real run, and a second run
(which must find nothing). The table printed at the end gives times and peak RSS.

Data shape: ``--groups`` people own 2 to 5 accounts each (e-mail case variants, so the
groups hold about 2.75 accounts on average), the other users are single; 1 % of the single
users have a null or blank e-mail. There are ``users / 2`` rooms and ``rooms / 5`` recordings;
accounts of one group draw their rooms from a small shared pool, so merges meet conflicting
accesses and role upgrades.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, func, select

from storage.engine import create_engine, create_sessionmaker
from storage.migrate import upgrade
from storage.models import ROLES, Base

CHUNK = 5000
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Shape:
    users: int
    groups: int
    accesses: int
    recording_accesses: int
    seed: int


@dataclass(frozen=True, slots=True)
class Row:
    database: str
    generate_s: float
    dry_run_s: float
    merge_s: float
    second_run_s: float
    groups: int
    accounts_merged: int
    accesses_moved: int
    roles_upgraded: int
    rss_baseline_mib: float
    rss_peak_mib: float


def peak_rss_mib() -> float:
    """Peak resident set size of this process image so far, in MiB.

    ``resource.getrusage().ru_maxrss`` survives ``execve`` on Linux: a child started by a
    parent that grew while generating the data would report the parent's peak. So Linux'
    ``VmHWM`` (the high-water mark of this image) is preferred, ``ru_maxrss`` (KiB) elsewhere.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def case_variant(email: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.3 else c for c in email)


class Generator:
    """Deterministic rows for ``shape``; only the ids are kept in memory."""

    def __init__(self, shape: Shape) -> None:
        if shape.users < 2 * shape.groups:
            raise SystemExit("--users must be at least twice --groups")
        self.shape = shape
        self.rng = random.Random(shape.seed)
        self.user_ids = [uuid.uuid4() for _ in range(shape.users)]
        self.room_ids = [uuid.uuid4() for _ in range(max(1, shape.users // 2))]
        self.recording_ids = [uuid.uuid4() for _ in range(max(1, len(self.room_ids) // 5))]
        sizes = [2] * shape.groups
        spare = shape.users - 2 * shape.groups
        for index in range(shape.groups):  # 2 to 5 accounts, while users remain
            extra = min(spare, self.rng.choice((0, 0, 1, 2, 3)))
            sizes[index] += extra
            spare -= extra
        # group of each user (-1: single)
        self.group_of = [-1] * shape.users
        position = 0
        for group, size in enumerate(sizes):
            for _ in range(size):
                self.group_of[position] = group
                position += 1
        self.rng.shuffle(self.group_of)

    def users(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for index, user_id in enumerate(self.user_ids):
            group = self.group_of[index]
            email: str | None
            if group >= 0:
                email = case_variant(f"person{group}@example.com", rng)
            elif rng.random() < 0.01:
                email = rng.choice((None, "", "   "))
            else:
                email = f"single{index}@example.org"
            yield {
                "id": user_id,
                "sub": f"sub-{index}",
                "email": email,
                "full_name": f"User {index}",
                "last_login": None
                if rng.random() < 0.2
                else EPOCH + timedelta(minutes=rng.randrange(500_000)),
                "created_at": EPOCH - timedelta(minutes=rng.randrange(500_000)),
            }

    def rooms(self) -> Iterator[dict[str, Any]]:
        for index, room_id in enumerate(self.room_ids):
            yield {"id": room_id, "name": f"Room {index}", "slug": f"room-{index}"}

    def recordings(self) -> Iterator[dict[str, Any]]:
        for index, recording_id in enumerate(self.recording_ids):
            yield {
                "id": recording_id,
                "room_id": self.room_ids[index % len(self.room_ids)],
                "status": "saved",
            }

    def _targets(self, total: int, targets: list[uuid.UUID]) -> Iterator[tuple[int, int]]:
        """``total`` distinct (user index, target index) pairs; group members share a pool."""
        users = len(self.user_ids)
        per_user, remainder = divmod(total, users)
        rng = self.rng
        for index in range(users):
            count = min(len(targets), per_user + (1 if index < remainder else 0))
            group = self.group_of[index]
            if group >= 0:  # a pool of 2 * count targets shared by the group
                base = (group * 7919) % len(targets)
                pool = [(base + k) % len(targets) for k in range(min(len(targets), 2 * count))]
                chosen = rng.sample(pool, min(count, len(pool)))
            else:
                chosen = rng.sample(range(len(targets)), count)
            for target in chosen:
                yield index, target

    def room_accesses(self) -> Iterator[dict[str, Any]]:
        for user, room in self._targets(self.shape.accesses, self.room_ids):
            yield {
                "id": uuid.uuid4(),
                "user_id": self.user_ids[user],
                "resource_id": self.room_ids[room],
                "role": self.rng.choice(ROLES),
            }

    def recording_accesses(self) -> Iterator[dict[str, Any]]:
        total = self.shape.recording_accesses
        for user, recording in self._targets(total, self.recording_ids):
            yield {
                "id": uuid.uuid4(),
                "user_id": self.user_ids[user],
                "recording_id": self.recording_ids[recording],
                "team": "",
                "role": self.rng.choice(ROLES),
            }


def _sqlite_bulk_load_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA cache_size=-262144")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


async def generate(url: str, shape: Shape) -> float:
    """Migrate and fill the database at ``url``; return the seconds spent inserting."""
    await upgrade(url)
    generator = Generator(shape)
    tables = Base.metadata.tables
    plan: Sequence[tuple[Table, Iterator[dict[str, Any]]]] = (
        (tables["meet_user"], generator.users()),
        (tables["meet_room"], generator.rooms()),
        (tables["meet_recording"], generator.recordings()),
        (tables["meet_resource_access"], generator.room_accesses()),
        (tables["meet_recording_access"], generator.recording_accesses()),
    )
    engine = create_engine(url)
    if url.startswith("sqlite"):  # loading only: a 256 MiB page cache keeps the indexes hot
        event.listen(engine.sync_engine, "connect", _sqlite_bulk_load_pragmas)
    started = time.perf_counter()
    try:
        for table, rows in plan:
            for chunk in chunks(rows):
                now = datetime.now(UTC)  # explicit timestamps: no per-row default callables
                for row in chunk:
                    row.setdefault("created_at", now)
                    row["updated_at"] = now
                async with engine.begin() as connection:
                    await connection.execute(table.insert(), chunk)
        if url.startswith("postgresql"):
            async with engine.begin() as connection:
                await connection.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def _count_users(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            users = Base.metadata.tables["meet_user"]
            return int(await connection.scalar(select(func.count()).select_from(users)) or 0)
    finally:
        await engine.dispose()


async def _merge_child(url: str) -> dict[str, Any]:
    """Run in the child process: dry run, real run, second run; figures and peak RSS."""
    from storage.merge import merge_duplicate_users

    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    async with engine.connect():  # warm the pool so the baseline includes the driver
        pass
    baseline = peak_rss_mib()
    try:
        started = time.perf_counter()
        dry = await merge_duplicate_users(sessionmaker, dry_run=True)
        dry_s = time.perf_counter() - started
        started = time.perf_counter()
        real = await merge_duplicate_users(sessionmaker)
        merge_s = time.perf_counter() - started
        started = time.perf_counter()
        again = await merge_duplicate_users(sessionmaker)
        again_s = time.perf_counter() - started
    finally:
        await engine.dispose()
    if (
        again.groups
        or real.failures
        or (dry.groups, dry.accounts_merged)
        != (
            real.groups,
            real.accounts_merged,
        )
    ):
        raise SystemExit(f"unexpected figures: dry={dry} real={real} again={again}")
    return {
        "dry_run_s": dry_s,
        "merge_s": merge_s,
        "second_run_s": again_s,
        "groups": real.groups,
        "accounts_merged": real.accounts_merged,
        "accesses_moved": real.accesses_moved,
        "roles_upgraded": real.roles_upgraded,
        "rss_baseline_mib": baseline,
        "rss_peak_mib": peak_rss_mib(),
    }


def bench_one(database: str, url: str, shape: Shape) -> Row:
    print(f"[{database}] generating {shape} ...", file=sys.stderr, flush=True)
    generate_s = asyncio.run(generate(url, shape))
    users_before = asyncio.run(_count_users(url))
    print(f"[{database}] generated in {generate_s:.1f} s, merging ...", file=sys.stderr, flush=True)
    child = subprocess.run(
        [sys.executable, "-m", "bench.merge", "--child", url],
        check=True,
        capture_output=True,
        text=True,
    )
    figures = json.loads(child.stdout)
    users_after = asyncio.run(_count_users(url))
    if users_before - users_after != figures["accounts_merged"]:
        raise SystemExit(f"[{database}] {users_before} - {users_after} users: inconsistent")
    return Row(database=database, generate_s=generate_s, **figures)


def run_sqlite(shape: Shape) -> Row:
    directory = Path(tempfile.mkdtemp(prefix="meet-bench-"))
    try:
        return bench_one("sqlite", f"sqlite+aiosqlite:///{directory / 'bench.db'}", shape)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_postgres(shape: Shape) -> Row:
    from tests.support.postgres import PostgresCluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL initdb/pg_ctl not found")
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        return bench_one("postgres", cluster.url(), shape)
    finally:
        cluster.stop()


def format_table(shape: Shape, rows: Sequence[Row]) -> str:
    header = (
        "database",
        "generate",
        "dry run",
        "merge",
        "2nd run",
        "groups",
        "merged",
        "moved",
        "upgraded",
        "RSS base",
        "RSS peak",
    )
    cells = [
        (
            row.database,
            f"{row.generate_s:.1f} s",
            f"{row.dry_run_s:.1f} s",
            f"{row.merge_s:.1f} s",
            f"{row.second_run_s:.2f} s",
            str(row.groups),
            str(row.accounts_merged),
            str(row.accesses_moved),
            str(row.roles_upgraded),
            f"{row.rss_baseline_mib:.0f} MiB",
            f"{row.rss_peak_mib:.0f} MiB",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    lines = [
        f"users={shape.users} groups={shape.groups} room accesses={shape.accesses} "
        f"recording accesses={shape.recording_accesses} (RSS: the merge process)",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
    ]
    lines += ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.merge", description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--accesses", type=int, default=500_000, help="room accesses")
    parser.add_argument("--recording-accesses", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_merge_child(args.child))))
        return 0
    shape = Shape(args.users, args.groups, args.accesses, args.recording_accesses, args.seed)
    rows: list[Row] = []
    if args.database in ("sqlite", "both"):
        rows.append(run_sqlite(shape))
    if args.database in ("postgres", "both"):
        rows.append(run_postgres(shape))
    print(format_table(shape, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
