"""The operators' live view: small in-process counters fed by the actors' event stream, the
request path and the LiveKit adapter, plus a cached read of the recording pipeline.

``OpsMonitor`` keeps only bounded state: the last ``HISTORY_SECONDS`` of per-second buckets,
``RECENT_EVENTS`` events, ``ROOM_EVENTS`` per room and ``LATENCY_SAMPLES`` per LiveKit method.
The event logs keep each event as a tuple of its values behind one shared tuple of keys per
event shape (~150 bytes instead of a ~450-byte dict: 30 events for each of 1,000 live rooms), turned
back into dicts when read.
Its callbacks are synchronous and cheap (they run on the actors' and handlers' path).
``OpsPipeline.read()`` hits the database at most once per ``PIPELINE_SECONDS`` however many
dashboards are open (single flight).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from coordinator.events import SUMMARY
from storage import ops as ops_store
from storage.engine import SessionMaker

log = logging.getLogger(__name__)
T = TypeVar("T")

HISTORY_SECONDS = 300
RECENT_EVENTS = 200
ROOM_EVENTS = 30
LATENCY_SAMPLES = 256
PIPELINE_SECONDS = 2.0
RATE_WINDOW = 10  # seconds averaged by the "per second" rates


# An event as the logs keep it: ``(keys, *values)``, ``keys`` shared by the events of a shape.
Kept = tuple[Any, ...]
MAX_SHAPES = 64  # distinct key tuples (and repeated strings) shared; beyond, kept unshared
_SHARED_VALUES = ("type", "event", "result")  # string values repeated across events


class _Compactor:
    """Turns events into :data:`Kept` tuples: key tuples and repeated strings shared."""

    def __init__(self) -> None:
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._strings: dict[str, str] = {}

    def _shared(self, table: dict[Any, Any], value: Any) -> Any:
        found = table.get(value)
        if found is not None:
            return found
        if len(table) < MAX_SHAPES:
            table[value] = value
        return value

    def keep(self, event: dict[str, Any]) -> Kept:
        keys: tuple[str, ...] = self._shared(
            self._shapes, tuple(k for k in event if k != "summary")
        )
        values = [event[k] for k in keys]
        for index, key in enumerate(keys):
            if key in _SHARED_VALUES and type(values[index]) is str:
                values[index] = self._shared(self._strings, values[index])
        return (keys, *values)


def as_event(kept: Kept) -> dict[str, Any]:
    return dict(zip(kept[0], kept[1:], strict=True))


def percentile(values: Iterable[float], fraction: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(slots=True)
class _Bucket:
    second: int
    webhooks: int = 0
    requests: int = 0
    errors: int = 0  # 5xx answers
    participants: int = 0


@dataclass(slots=True)
class _Method:
    calls: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))


@dataclass(slots=True)
class _Room:
    summary: dict[str, Any]
    seen_at: float  # monotonic time the summary was received
    first_seen: float
    recording_since: float | None = None
    events: deque[Kept] = field(default_factory=lambda: deque(maxlen=ROOM_EVENTS))


class OpsMonitor:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._buckets: deque[_Bucket] = deque(maxlen=HISTORY_SECONDS)
        self._rooms: dict[str, _Room] = {}
        self._recent: deque[Kept] = deque(maxlen=RECENT_EVENTS)
        self._compactor = _Compactor()
        self._livekit: dict[str, _Method] = {}
        self._lag: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._participants = 0  # the sum over ``_rooms`` (kept, not recounted per event)
        self.webhooks = 0
        self.requests = 0
        self.statuses: dict[str, int] = {}
        self.started_at = clock()

    # -- inputs ------------------------------------------------------------------------

    def _bucket(self) -> _Bucket:
        second = int(self._clock())
        last = self._buckets[-1] if self._buckets else None
        if last is not None and last.second == second:
            return last
        participants = last.participants if last is not None else 0
        bucket = _Bucket(second, participants=participants)
        self._buckets.append(bucket)
        return bucket

    def on_event(self, event: dict[str, Any]) -> None:
        """An actor event (``coordinator.events``)."""
        room = event.get("room")
        if not isinstance(room, str):
            return
        bucket = self._bucket()
        if event["type"] == "webhook":
            self.webhooks += 1
            bucket.webhooks += 1
            if event.get("lag") is not None:
                self._lag.append(float(event["lag"]))
        now = self._monotonic()
        view = self._rooms.get(room)
        summary = event.get("summary")
        if isinstance(summary, dict):
            if view is None:
                view = self._rooms[room] = _Room(summary, now, self._clock())
            else:
                self._participants -= view.summary["participants"]
                view.summary, view.seen_at = summary, now
            self._participants += summary["participants"]
            recording = summary.get("recording")
            if recording is None:
                view.recording_since = None
            elif view.recording_since is None:
                view.recording_since = self._clock()
            bucket.participants = self._participants
        if event["type"] == SUMMARY:
            return
        compact = self._compactor.keep(event)
        if view is not None:
            view.events.append(compact)
        self._recent.append(compact)

    def on_request(self, status: int) -> None:
        self.requests += 1
        family = f"{status // 100}xx"
        self.statuses[family] = self.statuses.get(family, 0) + 1
        bucket = self._bucket()
        bucket.requests += 1
        if status >= 500:
            bucket.errors += 1

    def on_livekit_call(self, method: str, seconds: float, error: str | None) -> None:
        stats = self._livekit.get(method)
        if stats is None:
            stats = self._livekit[method] = _Method()
        stats.calls += 1
        stats.samples.append(seconds)
        if error is not None:
            stats.errors += 1
            stats.last_error, stats.last_error_at = error, self._clock()

    def forget_rooms(self, active: Iterable[str]) -> None:
        """Drop the rooms the engine no longer holds (deactivated when idle)."""
        keep = set(active)
        for room in [r for r in self._rooms if r not in keep]:
            self._participants -= self._rooms.pop(room).summary["participants"]

    # -- views -------------------------------------------------------------------------

    def room_list(self) -> list[dict[str, Any]]:
        now = self._monotonic()
        wall = self._clock()
        rooms = []
        for name, view in self._rooms.items():
            summary = view.summary
            elapsed = now - view.seen_at
            lobby = sum(1 for left in summary.get("lobby_waiting", ()) if left > elapsed)
            recording = summary.get("recording")
            if recording is not None and view.recording_since is not None:
                recording = recording | {"seconds": round(wall - view.recording_since)}
            rooms.append(
                {
                    "room": name,
                    "participants": summary["participants"],
                    "lobby": lobby,
                    "recording": recording,
                    "last_event_at": as_event(view.events[-1])["at"] if view.events else None,
                }
            )
        rooms.sort(key=lambda r: (-r["participants"], -r["lobby"], r["room"]))
        return rooms

    def room_events(self, room: str) -> list[dict[str, Any]]:
        view = self._rooms.get(room)
        return [as_event(kept) for kept in view.events] if view is not None else []

    def recent_events(self, limit: int = 50) -> list[dict[str, Any]]:
        return [as_event(kept) for kept in list(self._recent)[-limit:]]

    def series(self, seconds: int = HISTORY_SECONDS) -> dict[str, Any]:
        """Per-second series ending now, gaps filled (counts 0, participants carried)."""
        end = int(self._clock())
        start = end - seconds + 1
        by_second = {b.second: b for b in self._buckets}
        webhooks, requests, errors, participants = [], [], [], []
        carried = 0
        for bucket in self._buckets:  # the level just before the window
            if bucket.second < start:
                carried = bucket.participants
        for second in range(start, end + 1):
            found = by_second.get(second)
            if found is not None:
                carried = found.participants
            webhooks.append(found.webhooks if found else 0)
            requests.append(found.requests if found else 0)
            errors.append(found.errors if found else 0)
            participants.append(carried)
        return {
            "start": start,
            "webhooks": webhooks,
            "requests": requests,
            "errors": errors,
            "participants": participants,
        }

    def rates(self) -> dict[str, float]:
        """Per-second averages over the last ``RATE_WINDOW`` complete seconds."""
        end = int(self._clock())
        window = [b for b in self._buckets if end - RATE_WINDOW <= b.second < end]
        return {
            "webhooks": round(sum(b.webhooks for b in window) / RATE_WINDOW, 2),
            "requests": round(sum(b.requests for b in window) / RATE_WINDOW, 2),
            "errors": round(sum(b.errors for b in window) / RATE_WINDOW, 2),
        }

    def livekit(self) -> list[dict[str, Any]]:
        rows = []
        for method, stats in sorted(self._livekit.items()):
            p50 = percentile(stats.samples, 0.5)
            p95 = percentile(stats.samples, 0.95)
            rows.append(
                {
                    "method": method,
                    "calls": stats.calls,
                    "errors": stats.errors,
                    "p50_ms": None if p50 is None else round(p50 * 1000, 1),
                    "p95_ms": None if p95 is None else round(p95 * 1000, 1),
                    "max_ms": round(max(stats.samples) * 1000, 1) if stats.samples else None,
                    "last_error": stats.last_error,
                    "last_error_at": stats.last_error_at,
                }
            )
        return rows

    def webhook_lag(self) -> dict[str, float | None]:
        return {
            "p50": percentile(self._lag, 0.5),
            "p95": percentile(self._lag, 0.95),
            "max": max(self._lag) if self._lag else None,
        }

    def totals(self) -> dict[str, Any]:
        return {
            "webhooks": self.webhooks,
            "requests": self.requests,
            "statuses": dict(self.statuses),
            "participants": self._participants,
            "rooms": len(self._rooms),
            "uptime_seconds": round(self._clock() - self.started_at),
        }


class Cached(Generic[T]):
    """``load()``'s last value for ``every`` seconds; concurrent callers share one load."""

    def __init__(self, load: Callable[[], Awaitable[T]], every: float) -> None:
        self._load = load
        self._every = every
        self._value: tuple[T] | None = None
        self._at = float("-inf")
        self._loading: asyncio.Task[T] | None = None

    def invalidate(self) -> None:
        self._at = float("-inf")

    async def get(self) -> T:
        if self._value is not None and time.monotonic() - self._at < self._every:
            return self._value[0]
        if self._loading is None:
            self._loading = asyncio.create_task(self._refresh())
        loading = self._loading
        try:
            return await asyncio.shield(loading)
        finally:
            if loading.done() and self._loading is loading:
                self._loading = None

    async def _refresh(self) -> T:
        value = await self._load()
        self._value, self._at = (value,), time.monotonic()
        return value


class OpsPipeline:
    """The recording pipeline as the database holds it, read at most every few seconds."""

    def __init__(self, sessionmaker: SessionMaker, *, every: float = PIPELINE_SECONDS) -> None:
        self._sessionmaker = sessionmaker
        self._cache: Cached[dict[str, Any]] = Cached(self._read_rooms, every)
        self._rooms: list[str] = []
        self.labels: dict[str, str] = {}  # room id → slug, for the rooms seen so far

    def invalidate(self) -> None:
        self._cache.invalidate()

    async def read(self, rooms: Iterable[str] = ()) -> dict[str, Any]:
        """The pipeline; also looks up the labels of ``rooms`` not seen before."""
        self._rooms = list(rooms)
        return await self._cache.get()

    async def _read_rooms(self) -> dict[str, Any]:
        return await self._read(self._rooms)

    async def _read(self, rooms: list[str]) -> dict[str, Any]:
        unknown = []
        for room in rooms:
            if room not in self.labels:
                try:
                    unknown.append(uuid.UUID(room))
                except ValueError:
                    self.labels[room] = room  # an unregistered room: LiveKit's name is the slug
        try:
            async with self._sessionmaker() as session:
                in_flight = await ops_store.in_flight_recordings(session)
                backlog = await ops_store.outbox_backlog(session)
                oldest = await ops_store.oldest_pending(session)
                failed = await ops_store.failed_messages(session)
                if unknown:
                    self.labels.update(await ops_store.room_labels(session, unknown[:500]))
        except Exception as exc:
            log.warning("ops: pipeline not read: %s", type(exc).__name__)
            pipeline: dict[str, Any] = {"error": "The database could not be read."}
        else:
            now = time.time()
            pipeline = {
                "in_flight": [
                    {
                        "id": str(r.id),
                        "room": str(r.room_id),
                        "slug": r.room_slug,
                        "status": r.status,
                        "mode": r.mode,
                        "egress_id": r.egress_id,
                        "seconds": round(now - r.created_at.timestamp()),
                    }
                    for r in in_flight
                ],
                "outbox": backlog,
                "oldest_pending_seconds": None
                if oldest is None
                else round(now - oldest.timestamp()),
                "failed": [
                    {
                        "id": str(m.id),
                        "kind": m.kind,
                        "recording": str(m.recording_id) if m.recording_id else None,
                        "attempts": m.attempts,
                        "last_error": m.last_error,
                        "created_at": m.created_at.isoformat(),
                    }
                    for m in failed
                ],
            }
        for room in rooms:
            self.labels.setdefault(room, room)  # looked up once, even when not in the database
        if len(self.labels) > 10_000:
            self.labels.clear()
        return pipeline

    async def retry_now(self, message_id: uuid.UUID) -> bool:
        async with self._sessionmaker.begin() as session:
            done = await ops_store.retry_now(session, message_id)
        self.invalidate()
        return done
