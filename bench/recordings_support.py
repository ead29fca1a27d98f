"""Shared pieces of ``bench.recordings``: databases, percentiles, settings, profiles."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import math
import pstats
import re
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from coordinator.settings import LiveKitSettings, S3Settings, Secret, Settings
from storage.migrate import upgrade
from tests.support.postgres import PostgresCluster, find_bindir

SECRET_KEY = "bench-secret-key-" + "r" * 40
BUCKET = "meet-media-storage"
S3 = S3Settings(
    endpoint_url="http://127.0.0.1:9000",
    bucket=BUCKET,
    access_key="minio-access",
    secret_key=Secret("minio-secret-key-" + "m" * 20),
)


def postgres_available() -> bool:
    return find_bindir() is not None


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    """A migrated database: a temp SQLite file, or a throwaway PostgreSQL cluster."""
    with tempfile.TemporaryDirectory(prefix="meet-bench-rec-") as tmp:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            await upgrade(url)
            yield url
            return
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("PostgreSQL binaries not found (initdb/pg_ctl)")
        cluster = PostgresCluster(bindir)
        await asyncio.to_thread(cluster.start)
        try:
            url = cluster.url()
            await upgrade(url)
            yield url
        finally:
            await asyncio.to_thread(cluster.stop)


def base_settings(url: str, livekit: LiveKitSettings | None = None, **overrides: Any) -> Settings:
    """Recording on, S3 configured, no background tasks (the bench drives everything)."""
    settings = Settings(
        database_url=url,
        secret_key=Secret(SECRET_KEY),
        livekit=livekit or LiveKitSettings(),
        recording_enable=True,
        s3=S3,
        background_tasks=False,
        recording_download_base_url="https://meet.example.com/recording",
    )
    return replace(settings, **overrides)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (seconds) in milliseconds; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1] * 1000


def _stats_text(profiler: cProfile.Profile, sort: str, *restrictions: Any) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(*restrictions)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    root = str(Path(__file__).resolve().parent.parent) + "/"
    body = [line for line in lines[start:] if line.strip()]
    text = "\n".join(body).replace(root, "")
    return re.sub(r"\S*/(site-packages|python3\.\d+)/", "", text)


def profile_report(profiler: cProfile.Profile, title: str, top: int = 25) -> str:
    """The project's functions by cumulative time, then every function by own time."""
    total = sum(entry[2] for entry in pstats.Stats(profiler).stats.values())  # type: ignore[attr-defined]
    project = _stats_text(profiler, "cumulative", r"/(api|coordinator|storage)/", top)
    own = _stats_text(profiler, "tottime", 15)
    return (
        f"\n### Profile: {title}\n\n"
        f"cProfile, {total:.2f} s of own time in all. Its clock is wall time and it counts every "
        "resumption of a coroutine as a call, so a coroutine's cumulative time includes its "
        f"waits. The project's functions, top {top} by cumulative time:\n\n```\n{project}\n```\n\n"
        f"Every function, top 15 by own time:\n\n```\n{own}\n```"
    )


class GcMonitor:
    """Counts the garbage collector's pauses while ``active`` (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.active = False
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.active:
            self.pauses.append((int(info["generation"]), time.perf_counter() - self._started))

    def __enter__(self) -> GcMonitor:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def take(self) -> list[tuple[int, float]]:
        pauses, self.pauses = self.pauses, []
        return pauses


def gc_summary(pauses: list[tuple[int, float]]) -> str:
    if not pauses:
        return "no collection"
    full = [s for g, s in pauses if g == 2]
    longest = max(s for _, s in pauses)
    return (
        f"{len(pauses)} collections ({len(full)} full), "
        f"{sum(s for _, s in pauses) * 1000:.0f} ms in total, longest {longest * 1000:.1f} ms"
    )
