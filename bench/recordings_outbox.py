"""Section 2 of ``bench.recordings``: outbox delivery rate to a local summary-service stand-in.

``messages`` saved transcript recordings (one owner and one room each) and their pending
``summary`` outbox rows are inserted with Core bulk inserts; an ``OutboxDispatcher`` built
directly (no app, no LiveKit: ``egress_times`` is None) drains them with ``run_once()`` in a loop
until a pass claims nothing. Checks: every idempotency key reached the stand-in exactly once,
every message succeeded at its first attempt, every recording is ``notification_succeeded``.

Baseline, same run, same ``aiohttp.ClientSession``: the very bodies and headers the stand-in
received, POSTed again in batches of the same size (``gather`` per batch, like ``run_once``),
reading the JSON answer: what the HTTP round trips alone cost, without the database.
"""

from __future__ import annotations

import asyncio
import cProfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import func, insert, select

from bench.recordings_support import base_settings, profile_report
from coordinator.notifications import summary_idempotency_key
from coordinator.outbox import OutboxDispatcher
from coordinator.settings import OutboxSettings, Secret, SummarySettings
from storage.engine import create_engine, create_sessionmaker
from storage.models import OutboxMessage, Recording, RecordingAccess, Room, User, utcnow
from tests.summary_standin import SummaryStandin
from tests.summary_standin.server import DEFAULT_TOKEN

FORWARDED = ("Content-Type", "Authorization", "Idempotency-Key")


@dataclass
class OutboxRun:
    batch_size: int
    messages: int
    seconds: float
    passes: int
    stages: StageTimer
    baseline_seconds: float
    problems: list[str]

    @property
    def claim_share(self) -> float:
        """Share of the drain outside the deliveries: claim transactions, the empty last pass."""
        return 1 - self.stages.delivering / self.seconds if self.seconds else float("nan")

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def baseline_rate(self) -> float:
        return self.messages / self.baseline_seconds if self.baseline_seconds else 0.0


async def seed_outbox(url: str, count: int) -> list[uuid.UUID]:
    """``count`` saved recordings with an owner access and a pending summary message each."""
    now = utcnow()
    tag = uuid.uuid4().hex[:8]
    users: list[dict[str, Any]] = []
    rooms: list[dict[str, Any]] = []
    recordings: list[dict[str, Any]] = []
    accesses: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    ids: list[uuid.UUID] = []
    for i in range(count):
        user_id, room_id, recording_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        ids.append(recording_id)
        stamps = {"created_at": now, "updated_at": now}
        users.append(
            {
                "id": user_id,
                "sub": f"outbox-{tag}-{i}",
                "email": f"outbox-{tag}-{i}@example.com",
                "full_name": f"Owner {i}",
                "short_name": f"Owner{i}",
                "language": "fr-fr" if i % 2 else "en-us",
                "timezone": "Europe/Paris" if i % 2 else "UTC",
                "default_room_configuration": {},
                "is_device": False,
                "is_staff": False,
                "is_superuser": False,
                "is_active": True,
                **stamps,
            }
        )
        rooms.append(
            {
                "id": room_id,
                "name": f"Outbox {tag} {i}",
                "slug": f"outbox-{tag}-{i}",
                "access_level": "public",
                "configuration": {},
                **stamps,
            }
        )
        recordings.append(
            {
                "id": recording_id,
                "room_id": room_id,
                "status": "saved",
                "mode": "transcript",
                "options": {"language": "fr"} if i % 3 == 0 else {},
                "worker_id": f"EG_{tag}_{i}",
                **stamps,
            }
        )
        accesses.append(
            {
                "id": uuid.uuid4(),
                "recording_id": recording_id,
                "user_id": user_id,
                "team": "",
                "role": "owner",
                **stamps,
            }
        )
        messages.append(
            {
                "id": uuid.uuid4(),
                "kind": "summary",
                "recording_id": recording_id,
                "idempotency_key": summary_idempotency_key(recording_id),
                "payload": {},
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                **stamps,
            }
        )
    engine = create_engine(url)
    async with engine.begin() as connection:
        for model, rows in (
            (User, users),
            (Room, rooms),
            (Recording, recordings),
            (RecordingAccess, accesses),
            (OutboxMessage, messages),
        ):
            for start in range(0, len(rows), 1000):
                await connection.execute(insert(model), rows[start : start + 1000])
    await engine.dispose()
    return ids


class StageTimer:
    """Wraps one dispatcher's ``_attempt``/``_deliver``/``_context`` (instance attributes)."""

    def __init__(self, dispatcher: OutboxDispatcher) -> None:
        self.attempt = self.deliver = self.context = 0.0
        self.delivering = 0.0  # per pass: first attempt's start to last attempt's end
        self._first: float | None = None
        self._last = 0.0
        self._wrap(dispatcher, "_attempt", "attempt")
        self._wrap(dispatcher, "_deliver", "deliver")
        self._wrap(dispatcher, "_context", "context")

    def _wrap(self, dispatcher: OutboxDispatcher, method: str, total: str) -> None:
        original = getattr(dispatcher, method)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            if method == "_attempt" and self._first is None:
                self._first = started
            try:
                return await original(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                setattr(self, total, getattr(self, total) + ended - started)
                self._last = max(self._last, ended)

        setattr(dispatcher, method, timed)

    def end_pass(self) -> None:
        if self._first is not None:
            self.delivering += self._last - self._first
        self._first = None


async def _post_batches(
    http: aiohttp.ClientSession, url: str, requests: list[tuple[bytes, dict[str, str]]], batch: int
) -> None:
    async def post(body: bytes, headers: dict[str, str]) -> None:
        async with http.post(url, data=body, headers=headers) as response:
            await response.json()
            if response.status != 200:
                raise RuntimeError(f"baseline POST answered {response.status}")

    for start in range(0, len(requests), batch):
        await asyncio.gather(*(post(b, h) for b, h in requests[start : start + batch]))


async def _verify(
    url: str, ids: list[uuid.UUID], summary: SummaryStandin, dispatcher: OutboxDispatcher
) -> list[str]:
    problems: list[str] = []
    expected = {summary_idempotency_key(i) for i in ids}
    accepted = summary.accepted()
    keys = [c.idempotency_key for c in accepted]
    if len(accepted) != len(ids):
        problems.append(f"stand-in accepted {len(accepted)} calls for {len(ids)} messages")
    if len(set(keys)) != len(keys):
        problems.append(f"{len(keys) - len(set(keys))} idempotency keys sent more than once")
    if set(keys) != expected:
        problems.append(f"{len(expected - set(keys))} messages never reached the stand-in")
    if any(c.status != 200 for c in accepted):
        problems.append("some stand-in answers were not 200")
    if dispatcher.delivered != len(ids) or dispatcher.failed_attempts or dispatcher.given_up:
        problems.append(
            f"dispatcher: delivered {dispatcher.delivered}, failed attempts "
            f"{dispatcher.failed_attempts}, given up {dispatcher.given_up}"
        )
    engine = create_engine(url)
    async with engine.connect() as connection:
        promoted = await connection.scalar(
            select(func.count())
            .select_from(Recording)
            .where(Recording.id.in_(ids), Recording.status == "notification_succeeded")
        )
        succeeded = await connection.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.recording_id.in_(ids),
                OutboxMessage.status == "succeeded",
                OutboxMessage.attempts == 1,
            )
        )
        with_job = await connection.scalar(
            select(func.count())
            .select_from(Recording)
            .where(Recording.id.in_(ids), Recording.external_process_id.is_not(None))
        )
    await engine.dispose()
    if promoted != len(ids):
        problems.append(f"{promoted} of {len(ids)} recordings are notification_succeeded")
    if succeeded != len(ids):
        problems.append(f"{succeeded} of {len(ids)} messages succeeded at the first attempt")
    if with_job != len(ids):
        problems.append(f"{with_job} of {len(ids)} recordings got their job id")
    return problems


async def run_outbox(
    url: str,
    summary: SummaryStandin,
    http: aiohttp.ClientSession,
    *,
    messages: int,
    batch_size: int,
    profiler: cProfile.Profile | None = None,
) -> OutboxRun:
    ids = await seed_outbox(url, messages)
    settings = base_settings(
        url,
        summary=SummarySettings(
            version=2, endpoint=summary.v2_url, api_token=Secret(DEFAULT_TOKEN)
        ),
        outbox=OutboxSettings(batch_size=batch_size),
    )
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    dispatcher = OutboxDispatcher(settings, sessionmaker, http)
    # Warm the connection pool of both the database and the HTTP session.
    async with sessionmaker() as session:
        await session.execute(select(func.count()).select_from(OutboxMessage))
    warm = [(b'{"warm": true}', {"Authorization": f"Bearer {DEFAULT_TOKEN}"})] * batch_size
    await _post_batches(http, summary.v2_url, warm, batch_size)
    summary.clear()

    passes = 0
    stages = StageTimer(dispatcher)
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    while await dispatcher.run_once():
        stages.end_pass()
        passes += 1
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    await engine.dispose()
    problems = await _verify(url, ids, summary, dispatcher)

    requests = [
        (call.body, {k: call.headers[k] for k in FORWARDED if k in call.headers})
        for call in summary.accepted()
    ]
    summary.clear()
    started = time.perf_counter()
    await _post_batches(http, summary.v2_url, requests, batch_size)
    baseline = time.perf_counter() - started
    if len(summary.accepted()) != len(requests):
        problems.append("baseline: the stand-in did not accept every POST")
    summary.clear()
    return OutboxRun(batch_size, messages, seconds, passes, stages, baseline, problems)


async def run_outbox_section(
    url: str, *, messages: int, batch_sizes: list[int], profile: bool
) -> tuple[list[OutboxRun], str | None]:
    runs: list[OutboxRun] = []
    profile_text: str | None = None
    async with SummaryStandin() as summary, aiohttp.ClientSession() as http:
        await run_outbox(url, summary, http, messages=min(100, messages), batch_size=50)  # warm-up
        serial = min(200, messages)  # one message at a time: the stages add up
        runs.append(await run_outbox(url, summary, http, messages=serial, batch_size=1))
        for batch_size in batch_sizes:
            runs.append(
                await run_outbox(url, summary, http, messages=messages, batch_size=batch_size)
            )
        if profile:
            profiler = cProfile.Profile()
            size = batch_sizes[0]
            await run_outbox(
                url, summary, http, messages=messages, batch_size=size, profiler=profiler
            )
            profile_text = profile_report(
                profiler,
                f"draining {messages} summary messages, batch {size} (stand-in in process)",
            )
    return runs, profile_text
