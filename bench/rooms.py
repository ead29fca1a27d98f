"""Room API throughput and latency against a running ``meet-coordinator serve`` process.

    python -m bench.rooms [--database sqlite|postgres|both] [--duration 5] [--clients 1,16,64]

For each database the script migrates and seeds a database, starts the server as a subprocess
(one process, the local engine, no access log), and drives it from this process with aiohttp
clients over loopback. Each scenario runs at each concurrency; the baseline is the server's
``/__lbheartbeat__`` (aiohttp with no work) measured in the same run, so the ratio column says
what share of the bare framework's throughput the endpoint keeps. The load generator shares the
machine's cores with the server: figures are a floor, not a ceiling. When ``wrk`` is installed
(Debian package ``wrk``) it generates the load instead of Python (``--loadgen wrk``, the default
when available): it costs the server far less CPU, so its figures are closer to the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from api.session import SessionCodec
from coordinator.cache import LookupCache
from coordinator.sessions import LoginSessions
from storage.engine import create_engine, create_sessionmaker
from storage.migrate import upgrade
from tests.support.factories import Factory
from tests.support.postgres import PostgresCluster, find_bindir, free_port

SECRET_KEY = "bench-secret-key-" + "b" * 40
LIVEKIT_SECRET = "bench-livekit-secret-" + "l" * 40
DJANGO_REFERENCE = "Django reference (same kind of machine): 102 req/s, p99 0.8 s"


@dataclass(frozen=True)
class Result:
    scenario: str
    clients: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    path: str
    as_owner: bool
    body: Callable[[int], dict[str, str]] | None = None


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
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


async def seed(url: str) -> tuple[str, str]:
    """Migrate, create an owner and a public room; returns (session cookie, room slug)."""
    await upgrade(url)
    engine = create_engine(url)
    factory = Factory(create_sessionmaker(engine))
    owner = await factory.user()
    room = await factory.room(owner=owner, name="Benchmark Room")
    key = await LoginSessions(factory.sessionmaker, LookupCache(0)).open(owner.id, max_age=86400)
    await engine.dispose()
    cookie = SessionCodec(SECRET_KEY, max_age=86400).encode(
        {"sid": key, "uid": str(owner.id), "exp": int(time.time()) + 86400}
    )
    return cookie, room.slug


@contextmanager
def server(url: str) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY=SECRET_KEY)
    env["LIVEKIT_API_SECRET"] = LIVEKIT_SECRET
    process = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "serve", "--port", str(port), "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/__lbheartbeat__").close()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("server did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


NAMES = itertools.count()


async def run(base: str, scenario: Scenario, clients: int, duration: float, cookie: str) -> Result:
    counter = NAMES
    latencies: list[float] = []
    errors = 0
    headers = {"X-CSRFToken": "bench"}
    cookies = {"sessionid": cookie, "csrftoken": "bench"} if scenario.as_owner else {}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
        base, connector=connector, cookies=cookies, headers=headers if scenario.as_owner else {}
    ) as session:
        stop_at = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                body = scenario.body(next(counter)) if scenario.body else None
                started = time.perf_counter()
                async with session.request(scenario.method, scenario.path, json=body) as resp:
                    await resp.read()
                    if resp.status >= 400:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return Result(scenario.name, clients, len(latencies), errors, elapsed, latencies)


WRK_SCRIPT = """
wrk.method = "%s"
local counter = 0
local prefix = "%s"
function setup(thread)
  thread:set("tid", tostring(math.random(1, 1000000000)))
end
function request()
  if wrk.method ~= "POST" then return wrk.format() end
  counter = counter + 1
  local body = '{"name": "' .. prefix .. ' ' .. tid .. ' ' .. counter .. '"}'
  return wrk.format("POST", wrk.path, wrk.headers, body)
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def run_wrk(
    base: str, scenario: Scenario, clients: int, duration: float, cookie: str, workdir: Path
) -> Result:
    """One cell measured by wrk; latencies come from its percentile report."""
    script = workdir / "bench.lua"
    script.write_text(WRK_SCRIPT % (scenario.method, f"bench-{time.time_ns()}"))
    command = ["wrk", "--latency", "-t", str(min(clients, 2)), "-c", str(clients)]
    command += ["-d", f"{max(1, round(duration))}s", "-s", str(script)]
    if scenario.method == "POST":
        command += ["-H", "Content-Type: application/json"]
    if scenario.as_owner:
        command += [
            "-H",
            f"Cookie: sessionid={cookie}; csrftoken=bench",
            "-H",
            "X-CSRFToken: bench",
        ]
    command.append(base + scenario.path)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    seconds = _ms(re.search(r"requests in ([\d.]+\w+),", output).group(1)) / 1000  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)) / 1000  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)) / 1000  # type: ignore[union-attr]
    # Two synthetic points reproduce wrk's p50/p99 through Result.percentile.
    latencies = [p50] * 98 + [p99] * 2
    errors = int(non_2xx.group(1)) if non_2xx else 0
    return Result(scenario.name, clients, total, errors, seconds, latencies)


def scenarios(slug: str, run_id: str) -> list[Scenario]:
    return [
        Scenario("baseline GET /__lbheartbeat__", "GET", "/__lbheartbeat__", False),
        Scenario("GET /rooms/{slug}/ anonymous", "GET", f"/api/v1.0/rooms/{slug}/", False),
        Scenario("GET /rooms/{slug}/ as owner", "GET", f"/api/v1.0/rooms/{slug}/", True),
        Scenario(
            "POST /rooms/ as owner",
            "POST",
            "/api/v1.0/rooms/",
            True,
            body=lambda n: {"name": f"bench {run_id} {n}"},
        ),
    ]


def print_table(kind: str, results: list[Result]) -> None:
    baseline = {r.clients: r.rate for r in results if r.scenario.startswith("baseline")}
    print(f"\n## {kind}\n")
    print("| scenario | clients | req/s | p50 ms | p99 ms | errors | ratio to baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ratio = r.rate / baseline[r.clients] if baseline.get(r.clients) else float("nan")
        print(
            f"| {r.scenario} | {r.clients} | {r.rate:,.0f} | {r.percentile(0.5):.1f} | "
            f"{r.percentile(0.99):.1f} | {r.errors} | {ratio:.2f} |"
        )


async def bench_database(
    kind: str, duration: float, concurrency: list[int], loadgen: str
) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="meet-bench-") as tmp, database(kind, Path(tmp)) as url:
        cookie, slug = await seed(url)
        results = []
        with server(url) as base:
            for scenario in scenarios(slug, str(int(time.time()))):
                for clients in concurrency:
                    await run(base, scenario, clients, min(1.0, duration / 4), cookie)  # warm up
                    if loadgen == "wrk":
                        results.append(
                            run_wrk(base, scenario, clients, duration, cookie, Path(tmp))
                        )
                    else:
                        results.append(await run(base, scenario, clients, duration, cookie))
        return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated concurrencies")
    parser.add_argument(
        "--loadgen", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python"
    )
    args = parser.parse_args(argv)
    concurrency = [int(c) for c in args.clients.split(",")]
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    print(
        f"# bench.rooms: {args.duration:.0f} s per cell, {os.cpu_count()} cores, "
        f"load generator: {args.loadgen}"
    )
    print(DJANGO_REFERENCE)
    for kind in kinds:
        results = asyncio.run(bench_database(kind, args.duration, concurrency, args.loadgen))
        print_table(kind, results)


if __name__ == "__main__":
    main()
