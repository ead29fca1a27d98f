"""Section 1 of ``bench.recordings``: start/stop-recording latency added by the coordinator.

The app runs in this process on loopback (``web.AppRunner``, no access log, no background
tasks) against a migrated database and the LiveKit stand-in in a process of its own
(``bench.standin_process``: as a LiveKit server, its work is not the coordinator's), which
sends its webhooks to the app. Every LiveKit call the app makes goes through
``LiveKitAdapter._call``; the bench wraps it (and the adapter's public methods, to learn the
room) to time each call as the client sees it (JWT signing, protobuf, HTTP, the stand-in's
handling). A call counts for a request when
it runs while that room's request is in flight. "Added by the coordinator" is the request's
latency minus its egress calls (StartRoomCompositeEgress / StopEgress); "coordinator only" also
removes the other LiveKit calls made meanwhile (the room metadata merges the egress's webhooks
ask for). At 1 client each request starts once the previous one's webhooks are delivered and
the room's actor is idle (``Harness.settle``), so its window holds only what it caused.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, insert, select

import api.auth as api_auth
from api import keys
from api.app import create_app
from api.session import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SessionCodec
from bench.recordings_support import (
    SECRET_KEY,
    GcMonitor,
    base_settings,
    gc_summary,
    profile_report,
)
from bench.standin_process import StandinProcess
from coordinator.actor import LocalDirectory
from coordinator.cache import LookupCache
from coordinator.livekit import LiveKitAdapter
from coordinator.room import StartRecording, StopRecording
from coordinator.rooms import RoomService
from coordinator.settings import LiveKitSettings, Secret
from storage import recordings as recording_store
from storage.engine import create_engine
from storage.models import LoginSession, Recording, ResourceAccess, Room, User, utcnow

EGRESS_CALLS = frozenset({"StartRoomCompositeEgress", "StopEgress"})
IDENTIFY = "identify"  # api.auth._identify: session cookie → user (cache or database)
LOOKUP = "room lookup"  # RoomService.find: room and caller's role (cache or database)
ACTOR = "actor"  # LocalDirectory.call(StartRecording | StopRecording): queue + lifecycle step
WRITES = "recording writes"  # storage.recordings.insert_recording / write_status (the step's)
MODE = "transcript"

_ROOM: ContextVar[str | None] = ContextVar("bench_recordings_room", default=None)

# Adapter methods whose first positional argument (or ``room=``) names the room.
_ROOM_METHODS = (
    "get_room",
    "merge_room_metadata",
    "send_data",
    "list_participants",
    "get_participant",
    "remove_participant",
    "mute_track",
    "update_participant",
    "start_recording_egress",
    "list_egress",
    "stop_egress",
)


@dataclass
class Call:
    what: str
    seconds: float
    livekit: bool = True


@dataclass
class Sample:
    """One timed request: its latency and the LiveKit calls made while it was in flight."""

    status: int
    total: float
    calls: list[Call] = field(default_factory=list)

    @property
    def egress(self) -> float:
        return sum(c.seconds for c in self.calls if c.livekit and c.what in EGRESS_CALLS)

    @property
    def livekit_other(self) -> float:
        return sum(c.seconds for c in self.calls if c.livekit and c.what not in EGRESS_CALLS)

    def span(self, label: str) -> float:
        return sum(c.seconds for c in self.calls if not c.livekit and c.what == label)

    @property
    def added(self) -> float:
        return self.total - self.egress

    @property
    def coordinator_only(self) -> float:
        return self.total - self.egress - self.livekit_other


@dataclass
class Row:
    label: str
    clients: int
    samples: list[Sample]
    expected: int
    seconds: float  # the phase's wall time (start and stop share one phase)

    @property
    def rate(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else float("nan")

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if s.status != self.expected)


class LiveKitTimer:
    """Times the app's LiveKit calls, and three stages of the request, per room while
    ``window(room)`` is open (the wrappers are installed on the classes for the whole run)."""

    def __init__(self) -> None:
        self.open: dict[str, list[Call]] = {}
        self.egress_rooms: dict[str, str] = {}
        self.egress_of: dict[str, str] = {}
        self._saved: list[tuple[Any, str, Any]] = []

    def _record(self, room: str | None, call: Call) -> None:
        calls = self.open.get(room) if room is not None else None
        if calls is not None:
            calls.append(call)

    def _room_of(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        if method == "stop_egress":
            egress_id = args[0] if args else kwargs.get("egress_id")
            return self.egress_rooms.get(str(egress_id))
        if method == "list_egress":
            room = kwargs.get("room")
            if room:
                return str(room)
            return self.egress_rooms.get(str(kwargs.get("egress_id")))
        return str(args[0]) if args else None

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)

    def install(self) -> None:
        original_call = LiveKitAdapter._call
        timer = self

        async def timed_call(adapter: LiveKitAdapter, what: str, call: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original_call(adapter, what, call)
            finally:
                timer._record(_ROOM.get(), Call(what, time.perf_counter() - started))

        self._patch(LiveKitAdapter, "_call", timed_call)
        for name in _ROOM_METHODS:
            self._patch(LiveKitAdapter, name, self._with_room(name, getattr(LiveKitAdapter, name)))
        self._install_spans()

    def _install_spans(self) -> None:
        timer = self
        identify = api_auth._identify
        find_room = RoomService.find
        directory_call = LocalDirectory.call
        insert_recording = recording_store.insert_recording
        write_status = recording_store.write_status
        rooms_of: dict[uuid.UUID, str] = {}  # recording id → room (write_status names no room)

        async def timed_identify(request: web.Request, *, allow_bearer: bool) -> Any:
            started = time.perf_counter()
            try:
                return await identify(request, allow_bearer=allow_bearer)
            finally:
                room = request.match_info.get("lookup")
                timer._record(room, Call(IDENTIFY, time.perf_counter() - started, False))

        async def timed_find(service: RoomService, lookup: str, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await find_room(service, lookup, *args, **kwargs)
            finally:
                timer._record(lookup, Call(LOOKUP, time.perf_counter() - started, False))

        async def timed_actor(directory: LocalDirectory, room: str, command: Any) -> Any:
            if not isinstance(command, StartRecording | StopRecording):
                return await directory_call(directory, room, command)
            started = time.perf_counter()
            try:
                return await directory_call(directory, room, command)
            finally:
                timer._record(room, Call(ACTOR, time.perf_counter() - started, False))

        async def timed_insert(*args: Any, **kwargs: Any) -> Any:
            room = str(kwargs["room_id"])
            rooms_of[kwargs["recording_id"]] = room
            started = time.perf_counter()
            try:
                return await insert_recording(*args, **kwargs)
            finally:
                timer._record(room, Call(WRITES, time.perf_counter() - started, False))

        async def timed_write(sessionmaker: Any, recording_id: uuid.UUID, *a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return await write_status(sessionmaker, recording_id, *a, **k)
            finally:
                room = rooms_of.get(recording_id)
                timer._record(room, Call(WRITES, time.perf_counter() - started, False))

        self._patch(recording_store, "insert_recording", timed_insert)
        self._patch(recording_store, "write_status", timed_write)
        self._patch(api_auth, "_identify", timed_identify)
        self._patch(RoomService, "find", timed_find)
        self._patch(LocalDirectory, "call", timed_actor)

    def _with_room(
        self, name: str, original: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def wrapper(adapter: LiveKitAdapter, *args: Any, **kwargs: Any) -> Any:
            room = self._room_of(name, args, kwargs)
            token = _ROOM.set(room)
            try:
                result = await original(adapter, *args, **kwargs)
            finally:
                _ROOM.reset(token)
            if name == "start_recording_egress" and room is not None:
                self.egress_rooms[result.egress_id] = room
                self.egress_of[room] = result.egress_id
            return result

        return wrapper

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    @contextmanager
    def window(self, room: str) -> Iterator[list[Call]]:
        calls: list[Call] = []
        self.open[room] = calls
        try:
            yield calls
        finally:
            self.open.pop(room, None)


@dataclass(frozen=True)
class BenchRoom:
    id: uuid.UUID
    headers: dict[str, str]


async def seed_rooms(url: str, count: int) -> list[BenchRoom]:
    """``count`` public rooms, each with its own owner; Core bulk inserts."""
    now = utcnow()
    tag = uuid.uuid4().hex[:8]
    codec = SessionCodec(SECRET_KEY, max_age=86400)
    users: list[dict[str, Any]] = []
    rooms: list[dict[str, Any]] = []
    accesses: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    out: list[BenchRoom] = []
    for i in range(count):
        user_id, room_id = uuid.uuid4(), uuid.uuid4()
        users.append(
            {
                "id": user_id,
                "sub": f"bench-{tag}-{i}",
                "email": f"owner-{tag}-{i}@example.com",
                "full_name": f"Owner {i}",
                "short_name": f"Owner{i}",
                "language": "en-us",
                "timezone": "UTC",
                "default_room_configuration": {},
                "is_device": False,
                "is_staff": False,
                "is_superuser": False,
                "is_active": True,
                "created_at": now,
                "updated_at": now,
            }
        )
        rooms.append(
            {
                "id": room_id,
                "name": f"Bench {tag} {i}",
                "slug": f"bench-{tag}-{i}",
                "access_level": "public",
                "configuration": {},
                "created_at": now,
                "updated_at": now,
            }
        )
        accesses.append(
            {
                "id": uuid.uuid4(),
                "resource_id": room_id,
                "user_id": user_id,
                "role": "owner",
                "created_at": now,
                "updated_at": now,
            }
        )
        key = uuid.uuid4().hex  # an open server-side session (a cookie alone proves nothing)
        sessions.append(
            {
                "key_hash": hashlib.sha256(key.encode()).hexdigest(),
                "user_id": user_id,
                "expires_at": now + timedelta(days=1),
            }
        )
        cookie = codec.encode({"sid": key, "uid": str(user_id), "exp": int(time.time()) + 86400})
        headers = {
            "Cookie": f"{SESSION_COOKIE}={cookie}; {CSRF_COOKIE}=bench",
            CSRF_HEADER: "bench",
        }
        out.append(BenchRoom(room_id, headers))
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(insert(User), users)
        await connection.execute(insert(Room), rooms)
        await connection.execute(insert(ResourceAccess), accesses)
        await connection.execute(insert(LoginSession), sessions)
    await engine.dispose()
    return out


@dataclass
class Harness:
    http: aiohttp.ClientSession
    livekit: StandinProcess
    timer: LiveKitTimer
    base: str
    cache: LookupCache
    directory: LocalDirectory
    cold: bool = True

    async def request(
        self, method: str, path: str, headers: dict[str, str], room: str | None, body: Any = None
    ) -> Sample:
        if self.cold:  # the owner's previous request is older than the lookup caches' TTL
            self.cache.users.clear()
            self.cache.rooms.clear()
            self.cache.roles.clear()
            self.cache.accesses.clear()
        with self.timer.window(room) if room is not None else _no_window() as calls:
            started = time.perf_counter()
            async with self.http.request(method, path, json=body, headers=headers) as response:
                await response.read()
                status = response.status
            total = time.perf_counter() - started
        return Sample(status, total, list(calls))

    async def settle(self, room: str) -> None:
        """Every webhook delivered and the room's actor idle (its effects, the metadata
        merges the webhooks asked for included, have run)."""
        await self.livekit.drain(30)
        await self.directory.settle(room)

    async def start_stop(
        self, room: BenchRoom, starts: list[Sample], stops: list[Sample], *, drain: bool
    ) -> None:
        """At 1 client (``drain``) each request starts once the previous one's follow-ups
        (webhooks and what they caused) are over, so a request's window holds only what it
        caused itself; with more clients they overlap, as in production."""
        name = str(room.id)
        path = f"/api/v1.0/rooms/{room.id}"
        starts.append(
            await self.request(
                "POST", f"{path}/start-recording/", room.headers, name, {"mode": MODE}
            )
        )
        if drain:
            await self.settle(name)
        egress_id = self.timer.egress_of.get(name)
        if egress_id is not None:
            await self.livekit.advance_egress(egress_id, "EGRESS_ACTIVE")
        if drain:
            await self.settle(name)
        stops.append(await self.request("POST", f"{path}/stop-recording/", room.headers, name))
        if drain:
            await self.settle(name)


@contextmanager
def _no_window() -> Iterator[list[Call]]:
    yield []


async def _fan_out(
    rooms: list[BenchRoom], clients: int, work: Callable[[BenchRoom], Awaitable[None]]
) -> None:
    queue = iter(rooms)

    async def worker() -> None:
        for room in queue:
            await work(room)

    await asyncio.gather(*(worker() for _ in range(clients)))


@asynccontextmanager
async def harness(url: str, *, cold: bool) -> AsyncIterator[Harness]:
    timer = LiveKitTimer()
    timer.install()
    try:
        async with StandinProcess() as livekit:
            livekit_settings = LiveKitSettings(
                api_key=livekit.api_key,
                api_secret=Secret(livekit.api_secret),
                api_url=livekit.url,
                timeout_seconds=5.0,
            )
            app = create_app(base_settings(url, livekit_settings))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            base = f"http://127.0.0.1:{port}"
            await livekit.set_webhook_url(f"{base}/api/v1.0/rooms/webhooks-livekit/")
            connector = aiohttp.TCPConnector(limit=0)
            try:
                async with aiohttp.ClientSession(
                    base, connector=connector, cookie_jar=aiohttp.DummyCookieJar()
                ) as http:
                    directory = app[keys.DIRECTORY]
                    assert isinstance(directory, LocalDirectory)
                    yield Harness(
                        http, livekit, timer, base, app[keys.ROOMS].cache, directory, cold
                    )
            finally:
                await runner.cleanup()
    finally:
        timer.uninstall()


@dataclass
class LatencyResult:
    rows: list[Row]
    statuses: dict[str, int]
    profile: str | None
    gc_pauses: dict[int, str]


async def _passes(
    h: Harness,
    warm: list[BenchRoom],
    measured: list[BenchRoom],
    concurrency: list[int],
    monitor: GcMonitor,
    gc_pauses: dict[int, str],
) -> list[Row]:
    for i, room in enumerate(warm + measured):  # a participant in every room, webhooks delivered
        await h.livekit.join(str(room.id), f"speaker-{i}")
    await h.livekit.drain(60)
    for _ in range(50):
        await h.request("GET", "/__lbheartbeat__", {}, None)
    scratch: list[Sample] = []
    for room in warm:
        await h.request("GET", f"/api/v1.0/rooms/{room.id}/", room.headers, None)
        await h.start_stop(room, scratch, scratch, drain=True)

    rows: list[Row] = []
    for clients in concurrency:
        drain = clients == 1
        beats: list[Sample] = []
        gets: list[Sample] = []
        starts: list[Sample] = []
        stops: list[Sample] = []

        async def heartbeat(room: BenchRoom, beats: list[Sample] = beats) -> None:
            beats.append(await h.request("GET", "/__lbheartbeat__", {}, None))

        async def retrieve(room: BenchRoom, gets: list[Sample] = gets) -> None:
            path = f"/api/v1.0/rooms/{room.id}/"
            gets.append(await h.request("GET", path, room.headers, str(room.id)))

        async def record(
            room: BenchRoom,
            starts: list[Sample] = starts,
            stops: list[Sample] = stops,
            drain: bool = drain,
        ) -> None:
            await h.start_stop(room, starts, stops, drain=drain)

        gc.collect()  # the setup's garbage is not this pass's, nor its heap:
        gc.freeze()  # the setup's objects would make every full collection slower
        monitor.active = True
        phases = []
        for work in (heartbeat, retrieve, record):
            began = time.perf_counter()
            await _fan_out(measured, clients, work)
            phases.append(time.perf_counter() - began)
        monitor.active = False
        gc_pauses[clients] = gc_summary(monitor.take())
        await h.livekit.drain(60)
        rows += [
            Row("baseline GET /__lbheartbeat__", clients, beats, 200, phases[0]),
            Row("baseline GET /rooms/{id}/ as owner", clients, gets, 200, phases[1]),
            Row("POST start-recording", clients, starts, 201, phases[2]),
            Row("POST stop-recording", clients, stops, 200, phases[2]),
        ]
    return rows


async def _profiled_pass(h: Harness, measured: list[BenchRoom]) -> str:
    profiler = cProfile.Profile()
    sink: list[Sample] = []
    profiler.enable()
    for room in measured:
        await h.start_stop(room, sink, sink, drain=True)
    profiler.disable()
    return profile_report(
        profiler,
        f"{len(measured)} sequential start/stop pairs (the app; the stand-in in its own process)",
    )


async def run_latency(
    url: str, *, rooms: int, concurrency: list[int], profile: bool, cold: bool = True
) -> LatencyResult:
    warmup = 10
    seeded = await seed_rooms(url, rooms + warmup)
    warm, measured = seeded[:warmup], seeded[warmup:]
    profile_text: str | None = None
    gc_pauses: dict[int, str] = {}
    with GcMonitor() as monitor:
        async with harness(url, cold=cold) as h:
            rows = await _passes(h, warm, measured, concurrency, monitor, gc_pauses)
            if profile:
                profile_text = await _profiled_pass(h, measured)
            await h.livekit.drain(60)
    gc.unfreeze()
    engine = create_engine(url)
    async with engine.connect() as connection:
        result = await connection.execute(
            select(Recording.status, func.count()).group_by(Recording.status)
        )
        statuses = {str(status): int(count) for status, count in result}
    await engine.dispose()
    return LatencyResult(rows, statuses, profile_text, gc_pauses)


def expected_recordings(rooms: int, concurrency: list[int], profile: bool) -> int:
    passes = len(concurrency) + (1 if profile else 0)
    return 10 + rooms * passes
