"""Webhook ingestion over HTTP for ``bench.actors``: one ``meet-coordinator serve`` process.

The server runs as a subprocess with SQLite and the local engine; its ``LIVEKIT_API_URL`` points
at a ``LiveKitStandin`` running in this process (activating a room calls ``ListParticipants``,
which the stand-in answers with an empty room). The rooms are registered in the database so
that, once every webhook has been posted, each room's ``GET /rooms/{id}/live/`` (the actor's
snapshot, read with the owner's session cookie) can be compared with what the events imply.

Load generators: ``wrk`` (a Lua script that sends each pre-signed request exactly once, from
files, then stops) or an aiohttp client in this process; either keeps ``clients`` requests in
flight on keep-alive connections. Both share the machine's cores with the server.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from api.session import SessionCodec
from bench.actors_events import EventSet, SignedEvent
from coordinator.slugs import slugify
from storage import rooms as room_store
from storage.engine import create_engine, create_sessionmaker
from storage.migrate import upgrade
from tests.support.factories import Factory
from tests.support.postgres import free_port

SECRET_KEY = "bench-secret-key-" + "b" * 40
LIVEKIT_KEY = "bench-livekit-key"
LIVEKIT_SECRET = "bench-livekit-secret-" + "l" * 40
WEBHOOK_PATH = "/api/v1.0/rooms/webhooks-livekit/"
CONTENT_TYPE = "application/webhook+json"


@dataclass
class Run:
    """One load-generator pass over a list of requests."""

    scenario: str
    loadgen: str
    requests: int
    expected_status: int
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    server_cpu: float = 0.0  # seconds of server CPU (user + system) during the pass
    socket_errors: str = ""

    @property
    def ok(self) -> int:
        return self.statuses.get(self.expected_status, 0)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


# -- database and server -----------------------------------------------------------------


async def seed(url: str, count: int) -> tuple[str, list[str]]:
    """Migrate, create an owner and ``count`` rooms; returns (session cookie, room ids)."""
    await upgrade(url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    owner = await Factory(sessionmaker).user()
    ids = []
    async with sessionmaker.begin() as session:
        for n in range(count):
            name = f"Bench actors {n}"
            room, _ = await room_store.create_room(
                session,
                owner_id=owner.id,
                name=name,
                slug=slugify(name),
                access_level="public",
                configuration={},
            )
            ids.append(str(room.id))
    await engine.dispose()
    cookie = SessionCodec(SECRET_KEY, max_age=86400).encode(
        {"uid": str(owner.id), "exp": int(time.time()) + 86400}
    )
    return cookie, ids


@dataclass
class Server:
    base: str
    process: asyncio.subprocess.Process

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


@asynccontextmanager
async def server(url: str, livekit_url: str, profile: Path | None) -> AsyncIterator[Server]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY=SECRET_KEY)
    env.update(
        LIVEKIT_API_KEY=LIVEKIT_KEY, LIVEKIT_API_SECRET=LIVEKIT_SECRET, LIVEKIT_API_URL=livekit_url
    )
    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    command += ["-m", "coordinator.cli", "serve", "--port", str(port), "--no-access-log"]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"{base}/__lbheartbeat__") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline or process.returncode is not None:
                    raise SystemExit("the server did not start")
                await asyncio.sleep(0.1)
        yield Server(base, process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)  # aiohttp exits cleanly: cProfile writes
        await asyncio.wait_for(process.wait(), 60)


# -- load generators ---------------------------------------------------------------------


async def post_python(
    server: Server, scenario: str, events: list[SignedEvent], clients: int, expect: int
) -> Run:
    """POST every event once from ``clients`` aiohttp workers (keep-alive)."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    pending = iter(events)
    url = server.base + WEBHOOK_PATH
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for signed in pending:
                headers = {"Content-Type": CONTENT_TYPE, "User-Agent": "LiveKit"}
                if signed.authorization:
                    headers["Authorization"] = signed.authorization
                began = time.perf_counter()
                async with session.post(url, data=signed.body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1
                latencies.append(time.perf_counter() - began)

        cpu = server.cpu_seconds()
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - began
        cpu = server.cpu_seconds() - cpu
    latencies.sort()
    run = Run(scenario, "python", len(events), expect, seconds, statuses, server_cpu=cpu)
    if latencies:
        run.p50_ms = latencies[len(latencies) // 2] * 1000
        run.p99_ms = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
    return run


WRK_SCRIPT = r"""
-- Sends each pre-built request of this thread's file exactly once, then stops the thread.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC, as Python's time.monotonic()
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local created = 0
local threads = {}
function setup(thread)
  created = created + 1
  thread:set("tid", created)
  table.insert(threads, thread)
end

function init(args)
  dir = args[1]
  expected = tonumber(args[2])
  requests = {}
  local file = io.open(dir .. "/requests-" .. tid .. ".txt", "r")
  for line in file:lines() do
    local tab = line:find("\t", 1, true)
    local auth = line:sub(1, tab - 1)
    local headers = {["Content-Type"] = "application/webhook+json", ["User-Agent"] = "LiveKit"}
    if auth ~= "" then headers["Authorization"] = auth end
    requests[#requests + 1] = wrk.format("POST", nil, headers, line:sub(tab + 1))
  end
  file:close()
  reserved, sent, received, ok, other = 0, 0, 0, 0, 0
  started, finished = 0, 0
end

function delay()
  if started == 0 then started = now() end
  if reserved >= #requests then return 3600000 end  -- this connection has nothing left
  reserved = reserved + 1
  return 0
end

function request()
  -- wrk calls request() once before the run to check it: that call must not use one up.
  if sent >= reserved then return requests[1] end
  sent = sent + 1
  return requests[sent]
end

function response(status, headers, body)
  received = received + 1
  if status == expected then ok = ok + 1 else other = other + 1 end
  if received == #requests then
    finished = now()
    local file = io.open(dir .. "/done-" .. tid .. ".txt", "w")
    file:write("done\n")
    file:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("thread %d %d %d %d %.6f %.6f\n", t:get("tid"), t:get("received"),
      t:get("ok"), t:get("other"), t:get("started"), t:get("finished")))
  end
  io.write(string.format("latency %d %d\n", latency:percentile(50.0), latency:percentile(99.0)))
  local e = summary.errors
  io.write(string.format("errors connect %d read %d write %d timeout %d\n",
    e.connect, e.read, e.write, e.timeout))
end
"""


async def post_wrk(
    server: Server,
    scenario: str,
    events: list[SignedEvent],
    clients: int,
    expect: int,
    threads: int,
    limit_seconds: float = 240.0,
) -> Run:
    """The same requests through wrk: each sent once; timed from first send to last answer."""
    threads = max(1, min(threads, clients))
    with tempfile.TemporaryDirectory(prefix="bench-actors-wrk-") as tmp:
        work = Path(tmp)
        (work / "script.lua").write_text(WRK_SCRIPT)
        for t in range(threads):
            lines = [f"{e.authorization}\t{e.body.decode()}\n" for e in events[t::threads]]
            (work / f"requests-{t + 1}.txt").write_text("".join(lines))
        command = [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(clients),
            "-d",
            f"{int(limit_seconds) + 60}s",
        ]
        command += ["--timeout", "30s", "-s", str(work / "script.lua")]
        command += [server.base + WEBHOOK_PATH, "--", str(work), str(expect)]
        cpu = server.cpu_seconds()
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        deadline = time.monotonic() + limit_seconds
        while sum(name.startswith("done-") for name in os.listdir(work)) < threads:
            if process.returncode is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        cpu = server.cpu_seconds() - cpu
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # wrk sleeps for -d: wake it up to report
        out, err = await process.communicate()
    output = out.decode()
    if process.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()}")
    statuses: Counter[int] = Counter()
    first, last = float("inf"), 0.0
    for match in re.finditer(r"^thread \d+ (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)$", output, re.M):
        ok, other = int(match.group(2)), int(match.group(3))
        statuses[expect] += ok
        statuses[0] += other  # any other status (wrk does not say which)
        started, finished = float(match.group(4)), float(match.group(5))
        if started:
            first = min(first, started)
        last = max(last, finished if finished else time.monotonic())
    run = Run(scenario, "wrk", len(events), expect, max(0.0, last - first), statuses)
    run.server_cpu = cpu
    latency = re.search(r"^latency (\d+) (\d+)$", output, re.M)
    if latency:
        run.p50_ms, run.p99_ms = int(latency.group(1)) / 1000, int(latency.group(2)) / 1000
    errors = re.search(r"^errors (.*)$", output, re.M)
    if errors and re.search(r"[1-9]", errors.group(1)):
        run.socket_errors = errors.group(1)
    return run


async def post(
    loadgen: str,
    server: Server,
    scenario: str,
    events: list[SignedEvent],
    clients: int,
    expect: int,
    threads: int,
) -> Run:
    if loadgen == "wrk":
        return await post_wrk(server, scenario, events, clients, expect, threads)
    return await post_python(server, scenario, events, clients, expect)


# -- verification ------------------------------------------------------------------------


@dataclass
class Check:
    rooms: int = 0
    rooms_ok: int = 0
    participants_expected: int = 0
    participants_found: int = 0
    tracks_expected: int = 0
    tracks_found: int = 0
    missing: int = 0  # expected participants (or tracks) absent
    extra: int = 0  # participants (or tracks) present that the events do not imply
    errors: int = 0  # rooms whose snapshot could not be read

    @property
    def lost(self) -> bool:
        return self.rooms_ok != self.rooms


async def verify(server: Server, cookie: str, expected: EventSet, clients: int = 16) -> Check:
    """Read each room's live snapshot and compare it with what the events imply."""
    check = Check()
    names = iter(expected.expected.items())
    async with aiohttp.ClientSession(cookies={"sessionid": cookie}) as session:

        async def worker() -> None:
            for room, want in names:
                check.rooms += 1
                check.participants_expected += len(want)
                check.tracks_expected += sum(len(t) for t in want.values())
                async with session.get(f"{server.base}/api/v1.0/rooms/{room}/live/") as response:
                    if response.status != 200:
                        check.errors += 1
                        continue
                    snapshot: dict[str, Any] = await response.json()
                found = {
                    p["identity"]: frozenset(t["sid"] for t in p["tracks"])
                    for p in snapshot["participants"]
                }
                check.participants_found += len(found)
                check.tracks_found += sum(len(t) for t in found.values())
                for identity, tracks in want.items():
                    have = found.get(identity)
                    check.missing += 1 if have is None else len(tracks - have)
                for identity, tracks in found.items():
                    wanted = want.get(identity)
                    check.extra += 1 if wanted is None else len(tracks - wanted)
                if found == want:
                    check.rooms_ok += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
    return check


# -- the in-process cost of one webhook --------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    events: int
    seconds: float  # wall clock
    cpu: float  # this process's CPU time: robust when other processes share the cores

    @property
    def micros(self) -> float:
        return self.cpu / self.events * 1e6 if self.events else float("nan")


async def inprocess_split(events: list[SignedEvent], clients: int) -> list[Step]:
    """Each stage of the webhook path on its own, in this process, over the same events."""
    from google.protobuf.json_format import Parse
    from livekit import api

    from bench.actors_local import directory
    from coordinator.livekit import LiveKitAdapter
    from coordinator.room import ApplyWebhook, Snapshot
    from coordinator.settings import LiveKitSettings, Secret

    bodies = [(e.body.decode(), e.authorization) for e in events]
    verifier = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET)
    receiver = api.WebhookReceiver(verifier)
    settings = LiveKitSettings(
        api_key=LIVEKIT_KEY, api_secret=Secret(LIVEKIT_SECRET), api_url="http://127.0.0.1:9"
    )
    steps = []

    def measure(name: str, run: Any) -> None:
        began, cpu = time.perf_counter(), time.process_time()
        for body, authorization in bodies:
            run(body, authorization)
        wall = time.perf_counter() - began
        steps.append(Step(name, len(bodies), wall, time.process_time() - cpu))

    measure("JWT check (`TokenVerifier.verify`)", lambda _, a: verifier.verify(a))
    measure(
        "JSON → protobuf (`json_format.Parse`)",
        lambda b, _: Parse(b, api.WebhookEvent(), ignore_unknown_fields=True),
    )
    measure("`WebhookReceiver.receive` (JWT + SHA-256 + parse)", receiver.receive)
    async with aiohttp.ClientSession() as session:
        adapter = LiveKitAdapter(settings, session)
        measure("`LiveKitAdapter.verify_webhook` (receive + plain values)", adapter.verify_webhook)
        verified = [adapter.verify_webhook(b, a) for b, a in bodies]
    local = directory()
    await asyncio.gather(*(local.call(room, Snapshot()) for room in {e.room for e in events}))
    pending = iter(verified)

    async def caller() -> None:
        for event in pending:
            await local.call(event.room_name, ApplyWebhook(event))

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(clients)))
    steps.append(
        Step(
            f"actor apply (`LocalDirectory.call`, {clients} callers, instant ports)",
            len(verified),
            time.perf_counter() - began,
            time.process_time() - cpu,
        )
    )
    await local.close()
    return steps
