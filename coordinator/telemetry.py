"""Prometheus metrics and the request id that follows a request into the actors and LiveKit.

The request id lives in :data:`REQUEST_ID`, a context variable: ``api/`` sets it per request,
room actors set it per command (a command's effects run in tasks that copy it) and the shared
HTTP session's :func:`request_id_trace` adds it to outgoing requests as ``X-Request-ID``.

:class:`Metrics` owns every metric family (names are a contract: the Grafana dashboard in
``deploy/grafana/`` and the ops page use them). Label values are bounded: route templates,
command and effect class names, known webhook events (others count as ``"other"``), Twirp
method names, outbox kinds. With ``PROMETHEUS_MULTIPROC_DIR`` set, every process writes its
values there and :meth:`Metrics.exposition` aggregates all of them (``MultiProcessCollector``);
gauges declare how processes combine (``livesum``, ``livemax``, ``mostrecent``).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import re
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from coordinator.errors import CoordinatorError, Unavailable
from coordinator.media import WEBHOOK_EVENTS

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9._:-]{1,128}")

UNVERIFIED = "unverified"  # a webhook whose signature or body did not verify
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


def valid_request_id(value: str | None) -> str | None:
    """``value`` when it is a safe request id (1-128 of ``[A-Za-z0-9._:-]``), else None."""
    if value is not None and _REQUEST_ID_SHAPE.fullmatch(value):
        return value
    return None


_ID_COUNTER = itertools.count(1)
_id_prefix: tuple[int, str] | None = None  # (pid, prefix): a forked worker draws its own


def new_request_id() -> str:
    """32 hex digits: a random per-process prefix and a counter (unique, no syscall each;
    ``uuid4`` reads ``os.urandom`` per request, a visible cost on the webhook path)."""
    global _id_prefix
    pid = os.getpid()
    if _id_prefix is None or _id_prefix[0] != pid:
        _id_prefix = (pid, uuid.uuid4().hex[:16])
    return f"{_id_prefix[1]}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


def request_id_trace() -> aiohttp.TraceConfig:
    """Adds ``X-Request-ID`` (the current :data:`REQUEST_ID`) to every outgoing request.

    aiohttp documents ``TraceRequestStartParams.headers`` as mutable; livekit-api builds its
    Twirp headers per call, so this is where its requests get the id.
    """

    async def on_request_start(
        _session: aiohttp.ClientSession,
        _context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        request_id = REQUEST_ID.get()
        if request_id is not None and REQUEST_ID_HEADER not in params.headers:
            params.headers[REQUEST_ID_HEADER] = request_id

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return trace


@dataclass(frozen=True, slots=True)
class EngineStats:
    """What a room directory holds right now (sampled for gauges)."""

    actors: int = 0
    rooms_live: int = 0  # rooms with at least one participant
    participants: int = 0
    queued: int = 0  # commands waiting in mailboxes
    oldest_queued_seconds: float = 0.0


def multiprocess_dir(environ: Any = os.environ) -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when it names a directory (the multi-process mode)."""
    path = environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """For ``serve``'s parent: a worker exited; its ``live*`` gauges stop counting."""
    directory = path or multiprocess_dir()
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric family of the service, and their exposition.

    In single-process mode each instance has its own registry (tests build many apps). In
    multi-process mode the values go to per-process files in the directory; exposition reads
    them all, so any process can answer a scrape.
    """

    def __init__(self, *, multiprocess_directory: str | None = None) -> None:
        self.multiprocess_directory = multiprocess_directory
        if multiprocess_directory and not getattr(values.ValueClass, "_multiprocess", False):
            # prometheus_client chooses its value class at import: a process that imported
            # it before the variable was set (a forking parent) still writes to the files.
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_duration = Histogram(
            "meet_http_request_duration_seconds",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commands = Counter(
            "meet_actor_commands",
            "Room actor commands by type and outcome",
            ["command", "outcome"],
            registry=r,
        )
        self.command_duration = Histogram(
            "meet_actor_command_duration_seconds",
            "Room actor commands, from submission to reply",
            ["command"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.mailbox_depth = Gauge(
            "meet_actor_mailbox_depth",
            "Commands queued in room mailboxes (all rooms)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.oldest_queued = Gauge(
            "meet_actor_oldest_queued_seconds",
            "Age of the oldest queued room command",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.active_rooms = Gauge(
            "meet_active_rooms",
            "Room actors held in memory",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.rooms_live = Gauge(
            "meet_rooms_live",
            "Rooms with at least one participant",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.participants_live = Gauge(
            "meet_participants_live",
            "Participants in live rooms",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.webhooks = Counter(
            "meet_webhooks",
            "LiveKit webhooks by event and outcome",
            ["event", "outcome"],
            registry=r,
        )
        self.webhook_lag = Histogram(
            "meet_webhook_lag_seconds",
            "From a webhook event's created_at to its application",
            ["event"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.livekit_duration = Histogram(
            "meet_livekit_call_duration_seconds",
            "LiveKit API calls by Twirp method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.livekit_errors = Counter(
            "meet_livekit_call_errors",
            "Failed LiveKit calls by method and kind (error, not_found, unreachable, timeout)",
            ["method", "kind"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "meet_outbox_backlog",
            "Outbox rows by kind and status",
            ["kind", "status"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.outbox_messages = Gauge(
            "meet_outbox_messages",
            "Outbox rows by status",
            ["status"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.outbox_attempts = Counter(
            "meet_outbox_attempts",
            "Outbox delivery attempts by kind and outcome (delivered, retry, failed)",
            ["kind", "outcome"],
            registry=r,
        )
        self.outbox_oldest_pending = Gauge(
            "meet_outbox_oldest_pending_seconds",
            "Age of the oldest pending outbox row",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.db_pool_in_use = Gauge(
            "meet_db_pool_in_use",
            "Database connections checked out of the pool",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.db_pool_size = Gauge(
            "meet_db_pool_size",
            "Database pool size (connections kept open)",
            registry=r,
            multiprocess_mode="livesum",
        )
        # The first /metrics names, kept: the dispatcher's counts since this process started.
        self.outbox_delivered = Gauge(
            "meet_outbox_delivered",
            "Notifications delivered (use meet_outbox_attempts_total)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.outbox_failed_attempts = Gauge(
            "meet_outbox_failed_attempts",
            "Failed delivery attempts (use meet_outbox_attempts_total)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.recording_repairs = Gauge(
            "meet_recording_repairs",
            "Reconciliation repairs made by this process",
            registry=r,
            multiprocess_mode="livesum",
        )
        # Label children bound once (``labels()`` validates and locks on every call): the
        # per-command and per-webhook hooks run on the ingestion hot path.
        self._command_children: dict[str, _CommandChildren] = {}
        self._webhook_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._request_children: dict[tuple[str, str, int], Any] = {}

    # -- hooks -------------------------------------------------------------------------

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        child = self._request_children.get((route, method, status))
        if child is None:
            label = method if method in METHODS else "other"
            child = self.http_duration.labels(route, label, str(status))
            if len(self._request_children) < CHILDREN_KEPT * 4:  # routes are templates
                self._request_children[(route, method, status)] = child
        child.observe(seconds)

    def track_command(self, command: object, future: asyncio.Future[Any]) -> None:
        """Count ``command`` and time it from now until ``future`` resolves."""
        name = type(command).__name__
        bound = self._command_children.get(name)
        if bound is None:
            bound = self._command_children[name] = _CommandChildren(self, name)
        future.add_done_callback(functools.partial(bound.done, time.perf_counter()))

    def observe_webhook(self, event: str, outcome: str, created_at: int | None = None) -> None:
        children = self._webhook_children.get((event, outcome))
        if children is None:
            label = event if event in WEBHOOK_EVENTS or event == UNVERIFIED else "other"
            children = (self.webhooks.labels(label, outcome), self.webhook_lag.labels(label))
            if len(self._webhook_children) < CHILDREN_KEPT:  # event names come from LiveKit
                self._webhook_children[(event, outcome)] = children
        children[0].inc()
        if created_at:
            children[1].observe(max(0.0, time.time() - created_at))

    def observe_livekit(self, method: str, seconds: float, error_kind: str | None) -> None:
        self.livekit_duration.labels(method).observe(seconds)
        if error_kind is not None:
            self.livekit_errors.labels(method, error_kind).inc()

    def observe_outbox_attempt(self, kind: str, outcome: str) -> None:
        self.outbox_attempts.labels(kind, outcome).inc()

    def set_engine(self, stats: EngineStats) -> None:
        self.active_rooms.set(stats.actors)
        self.rooms_live.set(stats.rooms_live)
        self.participants_live.set(stats.participants)
        self.mailbox_depth.set(stats.queued)
        self.oldest_queued.set(stats.oldest_queued_seconds)

    def set_pool(self, pool: Any) -> None:
        in_use, size = pool_usage(pool)
        self.db_pool_in_use.set(in_use)
        self.db_pool_size.set(size)

    def set_outbox(
        self,
        backlog: Iterable[tuple[str, str, int]],
        oldest_pending_seconds: float,
    ) -> None:
        by_status: dict[str, int] = {}
        for kind, status, count in backlog:
            self.outbox_backlog.labels(kind, status).set(count)
            by_status[status] = by_status.get(status, 0) + count
        for status, count in by_status.items():
            self.outbox_messages.labels(status).set(count)
        self.outbox_oldest_pending.set(oldest_pending_seconds)

    # -- exposition --------------------------------------------------------------------

    def exposition(self) -> bytes:
        if self.multiprocess_directory:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_directory)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


CHILDREN_KEPT = 256  # bound children cached per family (label values are bounded anyway)


class _CommandChildren:
    """One command type's duration histogram child and its counter child per outcome."""

    __slots__ = ("_metrics", "duration", "name", "outcomes")

    def __init__(self, metrics: Metrics, name: str) -> None:
        self._metrics = metrics
        self.name = name
        self.duration = metrics.command_duration.labels(name)
        self.outcomes: dict[str, Any] = {}

    def done(self, started: float, settled: asyncio.Future[Any]) -> None:
        self.duration.observe(time.perf_counter() - started)
        outcome = command_outcome(settled)
        counter = self.outcomes.get(outcome)
        if counter is None:
            counter = self.outcomes[outcome] = self._metrics.commands.labels(self.name, outcome)
        counter.inc()


def command_outcome(future: asyncio.Future[Any]) -> str:
    """ok, rejected (a 4xx error), unavailable (503), cancelled or error."""
    if future.cancelled():
        return "cancelled"
    exc = future.exception()
    if exc is None:
        return "ok"
    if isinstance(exc, Unavailable):
        return "unavailable"
    if isinstance(exc, CoordinatorError) and exc.status < 500:
        return "rejected"
    return "error"


def pool_usage(pool: Any) -> tuple[int, int]:
    """(checked out, size) of a SQLAlchemy pool.

    QueuePool (PostgreSQL, file SQLite): checked-out connections and the configured size
    (overflow connections in use count in the first figure only). Pools without a size
    (NullPool, StaticPool for in-memory SQLite) report what they hold: 0/1 and 0 or 1.
    """
    checkedout = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    in_use = int(checkedout()) if callable(checkedout) else 0
    total = int(size()) if callable(size) else (1 if in_use else 0)
    return in_use, total
