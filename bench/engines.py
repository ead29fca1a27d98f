"""The engines side by side: local vs Ray (1, 2, 4 hosts; 1 and 2 front ends), in one run.

    python -m bench.engines [--duration 3] [--clients 16] [--kills 10]

Set-up: a throwaway PostgreSQL, the LiveKit stand-in (the hosts' recovery asks it), a Ray
cluster of two raylets on 127.0.0.2 and 127.0.0.3 (``tests.support.ray_stack``), and each
configuration served by ``meet-coordinator serve`` (``--workers 2`` for two front ends). Load
comes from ``wrk`` over loopback, on the same cores as everything else.

- Actor commands: ``GET /rooms/{id}/live/`` as the owner, cycling over restricted rooms (each
  a ``Snapshot`` command through the room's actor: in-process, or a Ray call to its host).
  The ratio column is each row's req/s over the local engine's, measured in the same run.
- Anonymous ``GET /rooms/{slug}/`` (no actor): 1 front end vs ``--workers 2`` (Ray, 2 hosts).
- Failover: a host on the second raylet is killed (SIGKILL) ``--kills`` times; the time until a
  room it held answers 200 again; p50/p99/max.
- Memory: the hosts' USS (``/proc/PID/smaps_rollup``) before and after 1,000 more rooms are
  activated on them; per 1,000 rooms.

The machine is shared with other work: read ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.rooms import _ms
from storage.migrate import upgrade
from tests.livekit_standin import LiveKitStandin
from tests.support.postgres import PostgresCluster, find_bindir
from tests.support.ray_stack import (
    SECOND_IP,
    LoopThread,
    Served,
    TwoNodeCluster,
    front_end_env,
    seed,
)

SECRET_KEY = "bench-secret-key-" + "b" * 40
ROOMS = 64
MEMORY_ROOMS = 1000
NOT_BACK = 60.0
WRK_SCRIPT = """
local paths = {%s}
local counter = 0
function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1], wrk.headers)
end
"""


def uss(pid: int) -> int:
    """Private memory of ``pid`` in bytes."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1]) * 1024
    return total


def wrk(
    url: str, paths: list[str], headers: dict[str, str], clients: int, seconds: float, workdir: Path
) -> tuple[float, float, int]:
    """(req/s, p99 ms, non-2xx) of ``wrk`` cycling over ``paths``."""
    script = workdir / f"cycle-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(WRK_SCRIPT % ", ".join(f'"{p}"' for p in paths))
    command = ["wrk", "--latency", "-t", "2", "-c", str(clients), "-d", f"{round(seconds)}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += ["-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rate, p99, int(bad.group(1)) if bad else 0


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, url: str, livekit: Any) -> None:
        self.args = args
        self.workdir = workdir
        self.database_url = url
        self.livekit = livekit
        self.rows: list[tuple[str, float, float, int]] = []

    def env(self, address: str, hosts: int) -> dict[str, str]:
        base = {
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": SECRET_KEY,
            "LIVEKIT_API_KEY": self.livekit.api_key,
            "LIVEKIT_API_SECRET": self.livekit.api_secret,
            "LIVEKIT_API_URL": self.livekit.url,
            "RAY_HOSTS": str(hosts),
        }
        return front_end_env(base, address=address, namespace=f"bench-{hosts}-{os.getpid()}")

    def measure(
        self, label: str, served: Served, paths: list[str], headers: dict[str, str]
    ) -> None:
        # Warm up: every room active first (an activation recovers the room from the database
        # and LiveKit: it is not the command measured here).
        asyncio.run(activate(served.url, paths, headers))
        wrk(served.url, paths, headers, self.args.clients, 1, self.workdir)
        rate, p99, bad = wrk(
            served.url, paths, headers, self.args.clients, self.args.duration, self.workdir
        )
        self.rows.append((label, rate, p99, bad))
        print(f"  {label}: {rate:,.0f} req/s, p99 {p99:.1f} ms, non-2xx {bad}", flush=True)


async def activate(url: str, paths: list[str], headers: dict[str, str]) -> int:
    """GET each path once (32 at a time); how many answered 200."""
    ok = 0
    semaphore = asyncio.Semaphore(32)
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(path: str) -> None:
            nonlocal ok
            async with semaphore, session.get(url + path) as response:
                await response.read()
                ok += response.status == 200

        await asyncio.gather(*(one(p) for p in paths))
    return ok


def status_of(url: str, headers: dict[str, str]) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def failover(
    cluster: TwoNodeCluster, served: Served, path: str, headers: dict[str, str], kills: int
) -> list[float]:
    """Seconds until ``path`` (a room on the second raylet's host) answers 200, per kill."""
    times = []
    for _ in range(kills):
        [victim] = cluster.host_pids(SECOND_IP)
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        while status_of(served.url + path, headers) != 200:
            if time.monotonic() - started > NOT_BACK:
                break
            time.sleep(0.05)
        times.append(time.monotonic() - started)
        print(f"  kill {len(times)}: back after {times[-1]:.2f} s", flush=True)
        if times[-1] > NOT_BACK:
            print(f"  (not back within {NOT_BACK:g} s: the logs are kept)", flush=True)
            break
        while cluster.host_pids(SECOND_IP) in ([], [victim]):
            time.sleep(0.05)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> None:
    from coordinator.engines.ray import host_names, place

    workdir = Path(tempfile.mkdtemp(prefix="mb-", dir="/tmp"))
    loop = LoopThread()
    cluster = TwoNodeCluster(workdir)
    try:
        cluster.start()
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("PostgreSQL binaries not found (initdb/pg_ctl)")
        postgres = PostgresCluster(bindir)
        postgres.start()
        try:
            url = postgres.url()
            asyncio.run(upgrade(url))
            livekit = loop.run(LiveKitStandin().start())
            cookie, rooms = asyncio.run(seed(url, ROOMS, SECRET_KEY))
            bench = Bench(args, workdir, url, livekit)
            owner = {"Cookie": f"sessionid={cookie}"}
            live_paths = [f"/api/v1.0/rooms/{r.id}/live/" for r in rooms]
            anonymous = [f"/api/v1.0/rooms/{r.slug}/" for r in rooms]
            cluster.wait_ready()  # Ray's start-up would otherwise load the local engine's cell
            print("local engine", flush=True)
            local = Served(bench.env(cluster.address, 1), 1, workdir, engine="local")
            try:
                local.wait_ready()
                bench.measure("local engine, 1 front end", local, live_paths, owner)
            finally:
                local.stop()
            anonymous_rows: dict[int, float] = {}
            for hosts in (1, 2, 4):
                for front_ends in (1, 2):
                    print(f"ray, {hosts} host(s), {front_ends} front end(s)", flush=True)
                    served = Served(bench.env(cluster.address, hosts), front_ends, workdir)
                    try:
                        served.wait_ready(300)
                        label = f"ray, {hosts} host(s), {front_ends} front end(s)"
                        bench.measure(label, served, live_paths, owner)
                        if hosts == 2:
                            bench.measure(f"anonymous GET, {label}", served, anonymous, {})
                            anonymous_rows[front_ends] = bench.rows[-1][1]
                        if hosts == 2 and front_ends == 1:
                            victim_rooms = [
                                r for r in rooms if place(str(r.id), host_names(2)) == "room-host-1"
                            ]
                            times = failover(
                                cluster,
                                served,
                                f"/api/v1.0/rooms/{victim_rooms[0].id}/live/",
                                owner,
                                args.kills,
                            )
                            more = asyncio.run(seed(url, MEMORY_ROOMS, SECRET_KEY, truncate=False))
                            pids = cluster.host_pids("127.0.0.2") + cluster.host_pids(SECOND_IP)
                            before = sum(uss(p) for p in pids)
                            paths = [f"/api/v1.0/rooms/{r.id}/live/" for r in more[1]]
                            owner_more = {"Cookie": f"sessionid={more[0]}"}
                            ok = asyncio.run(activate(served.url, paths, owner_more))
                            after = sum(uss(p) for p in pids)
                    finally:
                        served.stop()
            loop.run(livekit.stop())
        finally:
            postgres.stop()
        baseline = bench.rows[0][1]
        print(
            f"\n# bench.engines: {args.duration:.0f} s per cell, {args.clients} connections, "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end\n"
        )
        print("| configuration | req/s | p99 ms | non-2xx | ratio to local |")
        print("|---|---:|---:|---:|---:|")
        for label, rate, p99, bad in bench.rows:
            print(f"| {label} | {rate:,.0f} | {p99:.1f} | {bad} | {rate / baseline:.2f} |")
        if 1 in anonymous_rows and 2 in anonymous_rows:
            print(
                f"\nanonymous GET, --workers 2 vs 1: {anonymous_rows[2] / anonymous_rows[1]:.2f}x"
            )
        print(
            f"failover of a killed host ({len(times)} kills): p50 {percentile(times, 0.5):.2f} s, "
            f"p99 {percentile(times, 0.99):.2f} s, max {max(times):.2f} s"
        )
        print(
            f"memory on the hosts: {(after - before) / 1024 / 1024 / (ok / 1000):.1f} MiB "
            f"per 1,000 rooms ({ok} rooms activated, {len(pids)} hosts)"
        )
    except BaseException:
        print(f"failed: the logs are kept in {workdir}", flush=True)
        cluster.stop()
        loop.stop()
        raise
    cluster.stop()
    loop.stop()
    if max(times) <= NOT_BACK:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--clients", type=int, default=16, help="wrk connections")
    parser.add_argument("--kills", type=int, default=10, help="host kills for the failover")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (Debian package wrk)")
    run(args)


if __name__ == "__main__":
    main()
