"""Room API, webhook and recording figures against a running ``meet-coordinator serve`` process.

    python -m bench.rooms [--quick] [--database sqlite|postgres|both] [--duration 3]
                          [--clients 1,16,64] [--rooms 10000] [--users 2000]
                          [--sections http,webhooks,recordings] [--serve-args "..."]
                          [--server-root DIR] [--profile DIR]

For each database the script migrates and bulk-seeds a database (SQLite file; PostgreSQL in a
throwaway cluster made by ``tests.support.postgres``), starts the server as a subprocess (one
process, the local engine, no access log; ``--serve-args`` are appended to its ``serve``
command line, the hook for multi-process serving), and drives it with ``wrk`` (or aiohttp when
wrk is missing). Every endpoint runs **hot** (one room, one user: the lookup caches answer) and
**spread** (a room and a user picked at random per request among ``--rooms`` rooms and
``--users`` users: cold caches, the database doing real work), at each concurrency, next to
the ``/__lbheartbeat__`` baseline of the same run: the ratio column says what share of the bare
framework's throughput an endpoint keeps, which holds on a loaded machine where absolute
figures do not. ``cpu ms/req`` is the server process's CPU time (user + system) per request.

Seeded data: one hot owner with 50 rooms (owner + 2 members each: ``GET /rooms/`` returns a full
page of 20 with accesses and tokens); ``--users`` users and ``--rooms`` rooms, room ``i`` owned
by user ``i % users`` with 0-5 random members, so a spread user holds ~17 accesses (pages full
or not). ``--server-root`` serves another checkout of the code (e.g. ``git archive`` of a
previous commit) against the same seeded database, for before/after runs.

Sections: ``http`` (the room endpoints), ``webhooks`` (signed LiveKit webhooks over 1,000 rooms:
joins, leaves, track publications and unpublications, egress updates of the recordings in
flight; every event distinct, posted once; the rooms' live snapshots are checked afterwards
against what the events imply), ``recordings`` (start/stop latency added by the coordinator,
egress excluded: ``bench.recordings_latency``, in process). The server's peak RSS (VmHWM) over
its whole matrix is printed per database. ``--quick``: 1 s cells, fewer events and rooms
(about a minute for both databases).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert, text

from api.session import SessionCodec
from coordinator.cli import event_loop_factory
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.models import LoginSession, ResourceAccess, Room, User
from tests.support.postgres import PostgresCluster, find_bindir, free_port

SECRET_KEY = "bench-secret-key-" + "b" * 40
LIVEKIT_KEY = "bench-livekit-key"
LIVEKIT_SECRET = "bench-livekit-secret-" + "l" * 40
HOT_ROOMS = 50
ROOMS_PATH = "/api/v1.0/rooms/"
MiB = 1024 * 1024


# -- seeding -------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the load generator needs: cookies, slugs, (cookie, owned slug) pairs."""

    hot_cookie: str
    hot_slug: str
    cookies: list[str] = field(default_factory=list)
    slugs: list[str] = field(default_factory=list)
    owned: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def _cookie(codec: SessionCodec, user_id: uuid.UUID, key: str) -> str:
    return codec.encode({"sid": key, "uid": str(user_id), "exp": int(time.time()) + 86400})


def _user(n: int | str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "sub": f"bench-{n}-{uuid.uuid4().hex[:8]}",
        "email": f"bench{n}@example.com",
        "full_name": f"Bench User {n}",
        "short_name": f"Bench{n}",
    }


async def seed(url: str, rooms: int, users: int, rng: random.Random) -> Seeded:
    """Migrate, then bulk-insert the users, rooms, accesses and open sessions (Core inserts)."""
    began = time.perf_counter()
    await upgrade(url)
    codec = SessionCodec(SECRET_KEY, max_age=86400)
    expires = datetime.now(UTC) + timedelta(days=1)
    hot = _user("hot")
    spread = [_user(n) for n in range(users)]
    room_rows: list[dict[str, Any]] = []
    access_rows: list[dict[str, Any]] = []
    session_rows: list[dict[str, Any]] = []
    seeded = Seeded("", "")
    for n in range(HOT_ROOMS):
        room_id = uuid.uuid4()
        room_rows.append({"id": room_id, "name": f"Hot room {n:02d}", "slug": f"hot-room-{n:02d}"})
        access_rows.append({"id": uuid.uuid4(), "resource_id": room_id, "user_id": hot["id"]})
        access_rows[-1]["role"] = "owner"
        for member in rng.sample(spread, 2):
            access_rows.append(
                {"id": uuid.uuid4(), "resource_id": room_id, "user_id": member["id"]}
            )
            access_rows[-1]["role"] = "member"
    seeded.hot_slug = "hot-room-00"
    for user in [hot, *spread]:
        key = uuid.uuid4().hex
        session_rows.append(
            {
                "key_hash": hashlib.sha256(key.encode()).hexdigest(),
                "user_id": user["id"],
                "expires_at": expires,
            }
        )
        cookie = _cookie(codec, user["id"], key)
        if user is hot:
            seeded.hot_cookie = cookie
        else:
            seeded.cookies.append(cookie)
    for n in range(rooms):
        room_id = uuid.uuid4()
        slug = f"spread-room-{n}"
        room_rows.append({"id": room_id, "name": f"Spread room {n}", "slug": slug})
        owner = n % users
        access_rows.append(
            {"id": uuid.uuid4(), "resource_id": room_id, "user_id": spread[owner]["id"]}
        )
        access_rows[-1]["role"] = "owner"
        for index in rng.sample(range(users), rng.randint(0, 5)):
            if index != owner:
                access_rows.append(
                    {"id": uuid.uuid4(), "resource_id": room_id, "user_id": spread[index]["id"]}
                )
                access_rows[-1]["role"] = "member"
        seeded.slugs.append(slug)
        seeded.owned.append((seeded.cookies[owner], slug))
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for table, rows in (
                (User, [hot, *spread]),
                (Room, room_rows),
                (ResourceAccess, access_rows),
                (LoginSession, session_rows),
            ):
                for start in range(0, len(rows), 5000):
                    await connection.execute(insert(table), rows[start : start + 5000])
        if engine.dialect.name == "postgresql":
            # The statistics autovacuum would have gathered by then, before the first cell,
            # rather than in the middle of the run (a plan changing between cells).
            async with engine.begin() as connection:
                await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    seeded.seconds = time.perf_counter() - began
    return seeded


# -- the server ----------------------------------------------------------------------------


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]

    def pids(self) -> list[int]:
        """The serving process and its descendants (``--workers N``: the supervisor, its
        front ends; ``--engine ray`` without an address: the local Ray and its room hosts)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(parent, []).append(int(entry.name))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, ()))
        return found

    def cpu_seconds(self) -> float:
        """CPU time of the whole tree (a process that exited meanwhile no longer counts)."""
        ticks = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def memory(self, field_name: str, pid: int | None = None) -> int:
        try:
            status = Path(f"/proc/{pid or self.process.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def memory_line(self) -> str:
        pids = self.pids()
        if len(pids) == 1:
            return (
                f"serving process: peak RSS {self.memory('VmHWM') / MiB:.0f} MiB over the "
                f"matrix above (now {self.memory('VmRSS') / MiB:.0f} MiB)"
            )
        peaks = sorted((self.memory("VmHWM", pid) for pid in pids), reverse=True)
        now = sum(self.memory("VmRSS", pid) for pid in pids)
        return (
            f"serving processes: {len(pids)} (supervisor, front ends, Ray and its hosts); "
            f"peak RSS of the largest {peaks[0] / MiB:.0f} MiB, the others "
            f"{', '.join(f'{peak / MiB:.0f}' for peak in peaks[1:])} MiB; "
            f"all together now {now / MiB:.0f} MiB"
        )


@contextmanager
def server(
    url: str, *, livekit_url: str, serve_args: Sequence[str], root: Path | None
) -> Iterator[Server]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY=SECRET_KEY)
    env.update(
        LIVEKIT_API_KEY=LIVEKIT_KEY, LIVEKIT_API_SECRET=LIVEKIT_SECRET, LIVEKIT_API_URL=livekit_url
    )
    if root is not None:
        env["PYTHONPATH"] = str(root)
    command = [sys.executable, "-m", "coordinator.cli", "serve", "--port", str(port)]
    command += ["--no-access-log", *serve_args]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/__lbheartbeat__").close()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("server did not start") from None
                time.sleep(0.1)
        yield Server(base, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- load generation -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    # Requests are drawn at random from these (path, session cookie or "") pairs.
    targets: tuple[tuple[str, str], ...]

    @property
    def spread(self) -> bool:
        return len(self.targets) > 1


@dataclass
class Result:
    scenario: str
    clients: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.requests if self.requests else float("nan")


WRK_SCRIPT = r"""
local targets = {}
local counter = 0
local prefix = ""
local method = "GET"
local next_seed = 0

function setup(thread)
  next_seed = next_seed + 1
  thread:set("seed", next_seed)
end

function init(args)
  method = args[2]
  prefix = args[3] .. "-" .. tostring(seed)
  math.randomseed(seed * 7919 + os.time())
  for line in io.lines(args[1]) do
    local path, cookie = line:match("^([^\t]*)\t(.*)$")
    targets[#targets + 1] = {path, cookie}
  end
end

function request()
  local target = targets[math.random(1, #targets)]
  local headers = {}
  if target[2] ~= "" then
    headers["Cookie"] = "sessionid=" .. target[2] .. "; csrftoken=bench"
    headers["X-CSRFToken"] = "bench"
  end
  if method == "POST" then
    counter = counter + 1
    headers["Content-Type"] = "application/json"
    local body = '{"name": "bench ' .. prefix .. ' ' .. counter .. '"}'
    return wrk.format("POST", target[1], headers, body)
  end
  return wrk.format(method, target[1], headers)
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if found is None:
        return float("nan")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _write_targets(scenario: Scenario, workdir: Path) -> Path:
    path = workdir / f"targets-{abs(hash(scenario.name))}.txt"
    if not path.exists():
        path.write_text("".join(f"{p}\t{c}\n" for p, c in scenario.targets))
    return path


def settle(srv: Server, limit: float = 10.0) -> None:
    """Wait until the server is idle (it may still be answering the previous cell's load)."""
    deadline = time.monotonic() + limit
    before = srv.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = srv.cpu_seconds()
        if now - before < 0.02:
            return
        before = now


def run_wrk(
    srv: Server, scenario: Scenario, clients: int, duration: float, workdir: Path
) -> Result:
    """One cell measured by wrk; latencies from its percentile report, CPU from /proc."""
    settle(srv)
    script = workdir / "bench.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT)
    targets = _write_targets(scenario, workdir)
    command = ["wrk", "--latency", "-t", str(min(clients, 2)), "-c", str(clients)]
    command += ["-d", f"{max(1, round(duration))}s", "--timeout", "10s", "-s", str(script)]
    command += [srv.base + "/", str(targets), scenario.method, f"b{time.time_ns()}"]
    cpu = srv.cpu_seconds()
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = srv.cpu_seconds() - cpu
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    seconds = _ms(re.search(r"requests in ([\d.]+\w+),", output).group(1)) / 1000  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    p50 = re.search(r"50%\s+([\d.]+\w+)", output)
    p99 = re.search(r"99%\s+([\d.]+\w+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return Result(
        scenario.name,
        clients,
        total,
        errors,
        seconds,
        _ms(p50.group(1)) if p50 else float("nan"),
        _ms(p99.group(1)) if p99 else float("nan"),
        cpu,
    )


async def run_python(srv: Server, scenario: Scenario, clients: int, duration: float) -> Result:
    """The same cell from aiohttp clients in this process (when wrk is not installed)."""
    latencies: list[float] = []
    errors = 0
    counter = 0
    rng = random.Random(clients)
    prefix = f"b{time.time_ns()}"
    async with aiohttp.ClientSession(
        srv.base, connector=aiohttp.TCPConnector(limit=clients)
    ) as session:
        stop_at = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors, counter
            while time.perf_counter() < stop_at:
                path, cookie = rng.choice(scenario.targets)
                headers = {}
                if cookie:
                    headers["Cookie"] = f"sessionid={cookie}; csrftoken=bench"
                    headers["X-CSRFToken"] = "bench"
                counter += 1
                body = {"name": f"bench {prefix} {counter}"} if scenario.method == "POST" else None
                started = time.perf_counter()
                async with session.request(
                    scenario.method, path, json=body, headers=headers
                ) as resp:
                    await resp.read()
                    errors += resp.status >= 400
                latencies.append(time.perf_counter() - started)

        cpu = srv.cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        cpu = srv.cpu_seconds() - cpu
    ordered = sorted(latencies) or [float("nan")]
    return Result(
        scenario.name,
        clients,
        len(latencies),
        errors,
        elapsed,
        ordered[len(ordered) // 2] * 1000,
        ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
        cpu,
    )


def scenarios(seeded: Seeded) -> list[Scenario]:
    hot = seeded.hot_cookie
    slug = seeded.hot_slug
    rooms = tuple((f"{ROOMS_PATH}{s}/", "") for s in seeded.slugs)
    owned = tuple((f"{ROOMS_PATH}{s}/", c) for c, s in seeded.owned)
    users = tuple((ROOMS_PATH, c) for c in seeded.cookies)
    return [
        Scenario("baseline GET /__lbheartbeat__", "GET", (("/__lbheartbeat__", ""),)),
        Scenario("GET /rooms/{slug}/ anonymous, hot", "GET", ((f"{ROOMS_PATH}{slug}/", ""),)),
        Scenario("GET /rooms/{slug}/ anonymous, spread", "GET", rooms),
        Scenario("GET /rooms/{slug}/ as owner, hot", "GET", ((f"{ROOMS_PATH}{slug}/", hot),)),
        Scenario("GET /rooms/{slug}/ as owner, spread", "GET", owned),
        # The lists run before the creations: the hot user owns 50 rooms when listed, not
        # the thousands "POST /rooms/, hot" gives them.
        Scenario("GET /rooms/ (page of 20), hot", "GET", ((ROOMS_PATH, hot),)),
        Scenario("GET /rooms/, spread", "GET", users),
        Scenario("POST /rooms/, hot", "POST", ((ROOMS_PATH, hot),)),
        Scenario("POST /rooms/, spread", "POST", users),
    ]


async def bench_http(
    srv: Server,
    seeded: Seeded,
    concurrency: list[int],
    duration: float,
    loadgen: str,
    workdir: Path,
    profile: Path | None,
    kind: str,
    only: str | None = None,
) -> list[Result]:
    results = []
    for scenario in scenarios(seeded):
        if only is not None and not re.search(only, scenario.name):
            continue
        for clients in concurrency:
            if loadgen == "wrk":
                run_wrk(srv, scenario, clients, min(1.0, duration / 4), workdir)  # warm up
                if profile is not None and clients == 16:
                    name = re.sub(r"\W+", "-", f"{kind} {scenario.name} c{clients}").strip("-")
                    with py_spy(srv, profile / f"{name}.txt", duration):
                        results.append(run_wrk(srv, scenario, clients, duration, workdir))
                else:
                    results.append(run_wrk(srv, scenario, clients, duration, workdir))
            else:
                await run_python(srv, scenario, clients, min(1.0, duration / 4))
                results.append(await run_python(srv, scenario, clients, duration))
    return results


@contextmanager
def py_spy(srv: Server, output: Path, duration: float) -> Iterator[None]:
    """``py-spy record`` of the server during one cell (collapsed stacks, idle excluded)."""
    command = [
        shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--nonblocking",
        "-r",
        "200",
        "-f",
        "raw",
        "-o",
        str(output),
    ]
    command += ["-d", str(max(1, round(duration))), "-p", str(srv.process.pid)]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.wait(timeout=duration + 30)


# -- webhooks ------------------------------------------------------------------------------


@dataclass
class WebhookFigures:
    runs: list[Any]
    check: Any
    events: int
    lost: bool


async def bench_webhooks(
    url: str,
    srv: Server,
    seeded: Seeded,
    rooms: int,
    per_room: int,
    clients: list[int],
    profile: Path | None = None,
    kind: str = "",
) -> WebhookFigures:
    """Signed events over ``rooms`` registered rooms, each posted once, then the snapshots;
    ``profile``: py-spy the server for 5 s of each verified cell."""
    from bench.actors_events import EventSet, SignedEvent
    from bench.actors_http import post_wrk, verify
    from bench.rooms_webhooks import realistic_events

    names = await _room_ids(url, rooms)
    baseline = [f"connection-test-bench-{n}" for n in range(rooms)]
    filtered = realistic_events(baseline, per_room, LIVEKIT_KEY, LIVEKIT_SECRET, seed=1).events
    unsigned = [SignedEvent(e.room, e.body, "") for e in filtered]
    runs = []
    implied = EventSet()
    sent = 0
    shim: Any = srv  # post_wrk and verify read .base and .cpu_seconds() only
    # Activate every room first (its actor lists the stand-in's participants: none), so
    # the events, signed afterwards with later join times, all apply.
    await verify(shim, seeded.hot_cookie, EventSet(expected={name: {} for name in names}))
    await asyncio.sleep(1.5)
    for n, count in enumerate(clients):
        # Each concurrency gets its own slice of the rooms: no event is ever repeated.
        part = names[n :: len(clients)]
        events = realistic_events(part, per_room, LIVEKIT_KEY, LIVEKIT_SECRET, seed=100 + n)
        for scenario, batch, expect in (
            ("baseline: no `Authorization` → 401 (framework only)", unsigned, 401),
            ("verified + applied by the room actors", events.events, 200),
        ):
            spied: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
            if profile is not None and expect == 200:
                spied = py_spy(srv, profile / f"{kind}-webhooks-c{count}.txt", 5)
            with spied:
                run = await post_wrk(shim, scenario, batch, count, expect, min(2, count))
            run.scenario = f"{scenario}, c={count}"
            runs.append(run)
        sent += len(events.events)
        implied.expected.update(events.expected)
    cookie = seeded.hot_cookie
    check = await verify(shim, cookie, implied)
    return WebhookFigures(runs, check, sent, check.lost)


async def _room_ids(url: str, count: int) -> list[str]:
    """``count`` spread rooms (their ids: the LiveKit room names), owned by the hot user."""
    from sqlalchemy import select

    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            hot = (
                await connection.execute(select(User.id).where(User.sub.like("bench-hot-%")))
            ).scalar_one()
            ids = list(
                (
                    await connection.execute(
                        select(Room.id).where(Room.slug.like("spread-room-%")).limit(count)
                    )
                ).scalars()
            )
            await connection.execute(
                insert(ResourceAccess),
                [
                    {"id": uuid.uuid4(), "resource_id": i, "user_id": hot, "role": "administrator"}
                    for i in ids
                ],
            )
    finally:
        await engine.dispose()
    return [str(i) for i in ids]


# -- printing ------------------------------------------------------------------------------


def print_http(results: list[Result]) -> None:
    baseline = {r.clients: r.rate for r in results if r.scenario.startswith("baseline")}
    print(
        "| scenario | clients | req/s | ratio to baseline | p50 ms | p99 ms | cpu ms/req | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ratio = r.rate / baseline[r.clients] if baseline.get(r.clients) else float("nan")
        print(
            f"| {r.scenario} | {r.clients} | {r.rate:,.0f} | {ratio:.2f} | {r.p50_ms:.1f} | "
            f"{r.p99_ms:.1f} | {r.cpu_ms:.2f} | {r.errors} |"
        )


def print_webhooks(figures: WebhookFigures) -> None:
    print(
        "\n| webhooks | events | events/s | ratio to 401 baseline | p50 ms | p99 ms | "
        "cpu ms/event | ok |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = 0.0
    for run in figures.runs:
        if run.expected_status == 401:
            base = run.rate
        ratio = run.rate / base if base else float("nan")
        cpu = 1000 * run.server_cpu / run.requests if run.requests else float("nan")
        print(
            f"| {run.scenario} | {run.requests:,} | {run.rate:,.0f} | {ratio:.2f} | "
            f"{run.p50_ms:.1f} | {run.p99_ms:.1f} | {cpu:.3f} | {run.ok:,} |"
        )
    c = figures.check
    verdict = "none lost" if not figures.lost else "LOST OR WRONG"
    print(
        f"\nlive snapshots: {c.rooms_ok}/{c.rooms} rooms as implied, participants "
        f"{c.participants_found}/{c.participants_expected}, tracks {c.tracks_found}/"
        f"{c.tracks_expected}, missing {c.missing}, extra {c.extra}, unreadable {c.errors}: "
        f"{verdict}"
    )


# -- main ----------------------------------------------------------------------------------


@asynccontextmanager
async def database(kind: str, workdir: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        return
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found (initdb/pg_ctl)")
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        yield cluster.url()
    finally:
        cluster.stop()


async def bench_database(kind: str, args: argparse.Namespace) -> bool:
    from tests.livekit_standin import LiveKitStandin

    concurrency = [int(c) for c in args.clients.split(",")]
    ok = True
    with tempfile.TemporaryDirectory(prefix="meet-bench-") as tmp:
        workdir = Path(tmp)
        async with database(kind, workdir) as url:
            seeded = await seed(url, args.rooms, args.users, random.Random(1))
            print(
                f"\n## {kind}\n\nseeded {args.rooms:,} + {HOT_ROOMS} rooms, {args.users:,} + 1 "
                f"users in {seeded.seconds:.1f} s"
            )
            sections = args.sections.split(",")
            async with LiveKitStandin(api_key=LIVEKIT_KEY, api_secret=LIVEKIT_SECRET) as standin:
                with server(
                    url,
                    livekit_url=standin.url,
                    serve_args=shlex.split(args.serve_args),
                    root=args.server_root,
                ) as srv:
                    if "http" in sections:
                        results = await bench_http(
                            srv,
                            seeded,
                            concurrency,
                            args.duration,
                            args.loadgen,
                            workdir,
                            args.profile,
                            kind,
                            args.only,
                        )
                        print()
                        print_http(results)
                        ok = ok and not any(r.errors for r in results)
                    if "webhooks" in sections and args.loadgen == "wrk":
                        figures = await bench_webhooks(
                            url,
                            srv,
                            seeded,
                            args.webhook_rooms,
                            args.events_per_room,
                            [c for c in concurrency if c > 1] or concurrency,
                            args.profile,
                            kind,
                        )
                        print_webhooks(figures)
                        ok = ok and not figures.lost
                    print("\n" + srv.memory_line())
            if "recordings" in sections and args.server_root is None:
                ok = await bench_recordings(url, args) and ok
    return ok


async def bench_recordings(url: str, args: argparse.Namespace) -> bool:
    """Start/stop latency added by the coordinator (``bench.recordings_latency``, in process)."""
    from bench.recordings import print_latency
    from bench.recordings_latency import run_latency

    clients = [1, 16] if not args.quick else [1]
    result = await run_latency(
        url, rooms=args.recording_rooms, concurrency=clients, profile=False, cold=True
    )
    print()
    database = "postgres" if url.startswith("postgresql") else "sqlite"
    print_latency("recordings", result, args.recording_rooms, database=database)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated concurrencies")
    parser.add_argument("--rooms", type=int, default=10_000, help="spread rooms")
    parser.add_argument("--users", type=int, default=2_000, help="spread users")
    parser.add_argument("--sections", default="http,webhooks,recordings")
    parser.add_argument("--webhook-rooms", type=int, default=1_000)
    parser.add_argument("--events-per-room", type=int, default=24)
    parser.add_argument("--recording-rooms", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="1 s cells, smaller sets (~1 min)")
    parser.add_argument(
        "--serve-args", default="", help="extra arguments of `serve` (e.g. `--workers 2`)"
    )
    parser.add_argument(
        "--server-root", type=Path, help="serve the code of another checkout (before/after)"
    )
    parser.add_argument(
        "--only", help="run only the HTTP scenarios whose name matches this regular expression"
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the server during the top-concurrency cells"
    )
    parser.add_argument(
        "--loadgen", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 1.0
        args.webhook_rooms = min(args.webhook_rooms, 300)
        args.events_per_room = min(args.events_per_room, 12)
        args.recording_rooms = min(args.recording_rooms, 20)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    load = os.getloadavg()
    print(
        f"# bench.rooms: {args.duration:.0f} s per cell, {os.cpu_count()} cores, load average "
        f"{load[0]:.1f}, load generator: {args.loadgen}"
        + (f", serve args `{args.serve_args}`" if args.serve_args else "")
        + (f", server code from {args.server_root}" if args.server_root else "")
    )
    ok = True
    for kind in kinds:
        # uvloop, as `serve`: the recording latencies' app runs in this process
        with asyncio.Runner(loop_factory=event_loop_factory("uvloop")) as runner:
            ok = runner.run(bench_database(kind, args)) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
