"""Room actors: webhook ingestion over HTTP, actor command throughput, memory of live rooms.

    python -m bench.actors [--quick] [--loadgen wrk|python|both] [--sections webhooks,actors,memory]
                           [--events 20000] [--rooms 500] [--clients 64] [--profile server.prof]

1. **Webhook ingestion** (DESIGN §6: ≥ 3,000 verified events/s on 2 cores, none lost). One
   ``meet-coordinator serve`` subprocess (SQLite, local engine) whose LiveKit is a stand-in in
   this process. ``--events`` pre-signed ``participant_joined``/``track_published``/
   ``participant_left`` events over ``--rooms`` registered rooms, shuffled, are POSTed once each
   with ``--clients`` in flight, in two passes with fresh sessions (the first activates the
   rooms, the second finds them active); then every room's ``/live/`` snapshot is compared with
   what the events imply. ``wrk`` is the default load generator (it drives more load than the
   aiohttp client; ``--loadgen both`` measures the two). Baselines in the same run, same
   server, same load generator: the same bodies without ``Authorization`` (401 before the body
   is read: aiohttp and routing only) and signed events for ``connection-test-*`` rooms
   (verified, then filtered before any actor). The in-process split times each stage alone.
2. **Actor throughput** in process: ``LocalDirectory`` with ports that answer at once; the
   baseline is ``decide()`` in a loop over the same commands.
3. **Memory** of 10,000 live rooms holding 50,000 participants, in a fresh child process: RSS
   before, after activating the rooms, after the participants joined (through webhooks);
   tracemalloc at a tenth of the scale shows where the bytes go.

The load generator shares the machine's cores with the server (and, for ``python``, with the
LiveKit stand-in): the figures are a floor for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.actors_events import EventSet, SignedEvent, sessions_per_room, signed_events
from bench.actors_http import (
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    Check,
    Run,
    Step,
    inprocess_split,
    post,
    seed,
    server,
    verify,
)
from bench.actors_local import Rate, throughput
from tests.livekit_standin import LiveKitStandin

MiB = 1024 * 1024
COLD = "verified + applied by the room actors (activates each room)"


@dataclass
class Options:
    sections: list[str]
    loadgens: list[str]
    events: int
    rooms: int
    baseline_events: int
    clients: int
    wrk_threads: int
    split_events: int
    commands: int
    many_rooms: int
    per_room: int
    in_flight: int
    memory_rooms: int
    memory_participants: int
    tracemalloc_scale: int  # 0: skip
    profile: Path | None


@dataclass
class WebhookReport:
    runs: list[Run] = field(default_factory=list)
    checks: dict[str, Check] = field(default_factory=dict)
    signing: float = 0.0
    server_rss: int = 0
    split: list[Step] = field(default_factory=list)


def timed_sign(rooms: list[str], per_room: int, seed_value: int) -> tuple[EventSet, float]:
    began = time.perf_counter()
    events = signed_events(rooms, per_room, LIVEKIT_KEY, LIVEKIT_SECRET, seed=seed_value)
    return events, time.perf_counter() - began


async def webhooks(options: Options) -> WebhookReport:
    report = WebhookReport()
    per_room = max(1, options.events // options.rooms)
    baseline_rooms = [f"connection-test-bench-{n}" for n in range(options.rooms)]
    with tempfile.TemporaryDirectory(prefix="bench-actors-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        cookie, ids = await seed(url, options.rooms * len(options.loadgens))
        async with LiveKitStandin(api_key=LIVEKIT_KEY, api_secret=LIVEKIT_SECRET) as standin:
            async with server(url, standin.url, options.profile) as srv:
                baseline, _ = timed_sign(
                    baseline_rooms, max(1, options.baseline_events // options.rooms), 1
                )
                filtered = baseline.events
                unsigned = [SignedEvent(e.room, e.body, "") for e in filtered]
                warmup = filtered[: min(len(filtered), 1000)]
                await post("python", srv, "warm-up", warmup, options.clients, 200, 1)
                for index, loadgen in enumerate(options.loadgens):
                    rooms = ids[index * options.rooms : (index + 1) * options.rooms]
                    for scenario, events, expect in (
                        ("baseline: no `Authorization` → 401 (framework only)", unsigned, 401),
                        ("baseline: verified, filtered (`connection-test-*`)", filtered, 200),
                    ):
                        report.runs.append(
                            await post(
                                loadgen,
                                srv,
                                scenario,
                                events,
                                options.clients,
                                expect,
                                options.wrk_threads,
                            )
                        )
                    implied = EventSet()
                    for scenario, seed_value in (
                        (COLD, 100 + index),
                        ("verified + applied, rooms already active (2nd pass)", 200 + index),
                    ):
                        full, seconds = timed_sign(rooms, per_room, seed_value)
                        report.signing += seconds
                        report.runs.append(
                            await post(
                                loadgen,
                                srv,
                                scenario,
                                full.events,
                                options.clients,
                                200,
                                options.wrk_threads,
                            )
                        )
                        for room, kept in full.expected.items():
                            implied.expected[room] = {**implied.expected.get(room, {}), **kept}
                    report.checks[loadgen] = await verify(srv, cookie, implied)
                report.server_rss = srv.rss_bytes()
        split_rooms = [f"split-{n}" for n in range(options.rooms)]
        split, _ = timed_sign(split_rooms, max(1, options.split_events // options.rooms), 9)
        report.split = await inprocess_split(split.events, options.clients)
    return report


def memory(options: Options, rooms: int, participants: int, trace: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.actors_local", "memory"]
    command += ["--rooms", str(rooms), "--participants", str(participants)]
    if trace:
        command.append("--tracemalloc")
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures: dict[str, Any] = json.loads(output)
    return figures


# -- printing ----------------------------------------------------------------------------


def print_webhooks(options: Options, report: WebhookReport) -> None:
    per_room = max(1, options.events // options.rooms)
    sessions = sessions_per_room(per_room)
    print("\n## 1. Webhook ingestion over HTTP (one server process, SQLite, local engine)\n")
    print(
        f"{options.rooms} rooms per load generator, {sessions} participant sessions per room "
        f"and pass ({2 * sessions + sessions // 2} events per room and pass: join + publish "
        "each, leave every other), shuffled; two passes with fresh sessions over the same rooms "
        f"(the first activates them); {options.clients} requests in flight on keep-alive "
        "connections. "
        f"Signing took {report.signing:.1f} s (not measured). Server RSS after the runs: "
        f"{report.server_rss / MiB:.0f} MiB.\n"
    )
    print(
        "| scenario | load generator | requests | answered as expected | other | seconds "
        "| req/s | p50 ms | p99 ms | server CPU µs/req | ratio to no-auth baseline |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    baselines = {r.loadgen: r.rate for r in report.runs if r.expected_status == 401}
    for r in report.runs:
        base = baselines.get(r.loadgen)
        ratio = r.rate / base if base else float("nan")
        other = r.requests - r.ok
        cpu = r.server_cpu / r.requests * 1e6 if r.requests else float("nan")
        note = f" (socket errors: {r.socket_errors})" if r.socket_errors else ""
        print(
            f"| {r.scenario}{note} | {r.loadgen} | {r.requests:,} | {r.ok:,} | {other:,} | "
            f"{r.seconds:.2f} | {r.rate:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {cpu:,.0f} | "
            f"{ratio:.2f} |"
        )
    print(
        "\n*server CPU µs/req*: the server process's user + system CPU during the pass divided "
        "by the requests; 1,000,000 / it is what one server core could ingest if the load "
        "generator did not share the machine.\n"
    )
    print("### None lost? Each room's `GET /rooms/{id}/live/` against what its events imply\n")
    print(
        "| load generator | rooms | rooms exact | participants expected / found "
        "| tracks expected / found | missing | extra | unreadable | verdict |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for loadgen, c in report.checks.items():
        verdict = "none lost" if not c.lost else "**MISMATCH**"
        print(
            f"| {loadgen} | {c.rooms} | {c.rooms_ok} | {c.participants_expected:,} / "
            f"{c.participants_found:,} | {c.tracks_expected:,} / {c.tracks_found:,} | "
            f"{c.missing} | {c.extra} | {c.errors} | {verdict} |"
        )
    full = [r for r in report.runs if r.scenario.startswith("verified + applied")]
    print("\n### In-process split: each stage alone, same kind of events, one core\n")
    print("CPU time of this process (not wall clock), so other load on the machine matters less.\n")
    print("| stage | events | CPU µs/event | events per CPU-second |")
    print("|---|---:|---:|---:|")
    for s in report.split:
        print(f"| {s.name} | {s.events:,} | {s.micros:.1f} | {1e6 / s.micros:,.0f} |")
    verify_us = next((s.micros for s in report.split if "verify_webhook" in s.name), 0.0)
    apply_us = report.split[-1].micros if report.split else 0.0
    total = verify_us + apply_us
    ceiling = "verify_webhook + actor apply (in-process ceiling)"
    print(f"| {ceiling} | | {total:.1f} | {1e6 / total:,.0f} |")
    for r in full:
        server_us = r.server_cpu / r.requests * 1e6
        which = "cold rooms" if r.scenario == COLD else "active rooms"
        print(
            f"| full HTTP path, server CPU ({r.loadgen}, {which}) | {r.requests:,} | "
            f"{server_us:.1f} | {1e6 / server_us:,.0f} |"
        )
    print()
    for r in full:
        which = "cold rooms" if r.scenario == COLD else "active rooms"
        server_us = r.server_cpu / r.requests * 1e6
        print(
            f"- {r.loadgen}, {which}: {r.rate:,.0f} verified events/s over HTTP (wall) = "
            f"{r.rate * total / 1e6:.2f} of the in-process ceiling; per server CPU-second "
            f"{total / server_us:.2f} of it (the rest is aiohttp, the route, room activation)."
        )


def print_actors(rates: list[Rate]) -> None:
    print("\n## 2. Actor command throughput in process (`LocalDirectory`, instant fake ports)\n")
    print(
        "Commands are `ApplyWebhook` of join / publish / leave (each room holds ~8 "
        "participants); rooms are activated before timing.\n"
    )
    print(
        "| scenario | commands | wall s | commands/s (wall) | CPU µs/command "
        "| commands per CPU-second | ratio to pure `decide` (CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = rates[0].per_cpu_second if rates else float("nan")
    for r in rates:
        print(
            f"| {r.scenario} | {r.commands:,} | {r.seconds:.3f} | {r.per_second:,.0f} | "
            f"{r.cpu / r.commands * 1e6:.1f} | {r.per_cpu_second:,.0f} | "
            f"{r.per_cpu_second / base:.2f} |"
        )


def print_memory(figures: dict[str, Any], traced: dict[str, Any] | None) -> None:
    rooms, participants = figures["rooms"], figures["participants"]
    before, with_rooms, after = figures["rss_before"], figures["rss_rooms"], figures["rss_after"]
    print(
        f"\n## 3. Memory of {rooms:,} live rooms with {participants:,} participants "
        "(one fresh process, RSS after `gc.collect()`)\n"
    )
    print(
        f"{figures['webhooks']:,} webhooks applied (a join per participant, then 1-2 "
        f"`track_published` each: {figures['held_tracks']:,} tracks held of "
        f"{figures['expected_tracks']:,} published; {figures['held_participants']:,} "
        f"participants held) in {figures['apply_seconds']:.1f} s.\n"
    )
    print("| stage | RSS MiB | delta MiB | bytes per room | bytes per participant |")
    print("|---|---:|---:|---:|---:|")
    print(f"| baseline: the process before building | {before / MiB:.1f} | | | |")
    print(
        f"| {rooms:,} rooms activated, empty | {with_rooms / MiB:.1f} | "
        f"{(with_rooms - before) / MiB:.1f} | {(with_rooms - before) / rooms:,.0f} | |"
    )
    print(
        f"| + {participants:,} participants joined | {after / MiB:.1f} | "
        f"{(after - before) / MiB:.1f} | {(after - before) / rooms:,.0f} | "
        f"{(after - with_rooms) / participants:,.0f} (participants only) |"
    )
    verdict = "under" if after - before < 1024 * MiB else "OVER"
    print(f"\nTotal delta {(after - before) / MiB:.0f} MiB: {verdict} the 1 GB aim.")
    if traced:
        t_rooms, t_parts = traced["rooms"], traced["participants"]
        print(
            f"\ntracemalloc at {t_rooms:,} rooms / {t_parts:,} participants (Python allocations "
            f"only): {traced['traced_rooms'] / t_rooms:,.0f} B per empty room, "
            f"{(traced['traced_after'] - traced['traced_rooms']) / t_parts:,.0f} B per "
            "participant (its tracks and the room's event-id memory included).\n"
        )
        print(
            "Sites in `bench/` are the values the benchmark generated and the rooms now hold "
            "(LiveKit ids, identities, `Track`s, event ids kept for deduplication).\n"
        )
        print("| allocation site (live at the end) | MiB | blocks |")
        print("|---|---:|---:|")
        for site, size, count in traced["top"]:
            print(f"| `{site}` | {size / MiB:.2f} | {count:,} |")


def print_profile(path: Path) -> None:
    print(f"\n## Server profile (cProfile over the whole server life, `{path}`)\n")
    print(
        "cProfile's clock is wall time and it counts every resumption of a coroutine as a call, "
        "so *tottime* is the reliable column; cumulative figures of coroutines are indicative.\n"
    )
    print("```")
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(r"/(api|coordinator|storage)/", 20)
    print("```")


# -- main --------------------------------------------------------------------------------


def options_from(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller everything (~40 s)")
    parser.add_argument("--sections", default="webhooks,actors,memory")
    has_wrk = shutil.which("wrk") is not None
    parser.add_argument(
        "--loadgen",
        choices=["wrk", "python", "both"],
        default="wrk" if has_wrk else "python",
        help="wrk (default when installed: it drives more load) or the aiohttp client",
    )
    parser.add_argument("--events", type=int, help="webhooks per load generator (20,000)")
    parser.add_argument("--rooms", type=int, help="rooms the webhooks spread over (500)")
    parser.add_argument("--clients", type=int, default=64, help="requests in flight")
    parser.add_argument("--wrk-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the server under cProfile, write the stats there and print the top entries",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    return Options(
        sections=[s.strip() for s in args.sections.split(",") if s.strip()],
        loadgens=["wrk", "python"] if args.loadgen == "both" else [args.loadgen],
        events=args.events or (4_000 if quick else 20_000),
        rooms=args.rooms or (100 if quick else 500),
        baseline_events=2_000 if quick else 5_000,
        clients=args.clients,
        wrk_threads=args.wrk_threads,
        split_events=1_000 if quick else 5_000,
        commands=5_000 if quick else 30_000,
        many_rooms=1_000,
        per_room=5 if quick else 20,
        in_flight=1_000,
        memory_rooms=2_000 if quick else 10_000,
        memory_participants=10_000 if quick else 50_000,
        tracemalloc_scale=0 if quick else 10,
        profile=args.profile.resolve() if args.profile else None,
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> None:
    options = options_from(argv)
    began = time.perf_counter()
    load_before = load_average()
    loadgens = " and ".join(options.loadgens)
    print(
        f"# bench.actors: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load generator: {loadgens}"
        + (f" ({options.wrk_threads} wrk threads)" if "wrk" in options.loadgens else "")
    )
    print(
        "\nThe load generator runs on the same machine as the server and takes part of its "
        "cores; `wrk` costs the server far less CPU than the Python client (which also hosts "
        "the LiveKit stand-in)."
    )
    if "webhooks" in options.sections:
        report = asyncio.run(webhooks(options))
        print_webhooks(options, report)
        if options.profile is not None:
            print_profile(options.profile)
    if "actors" in options.sections:
        rates = asyncio.run(
            throughput(options.commands, options.many_rooms, options.per_room, options.in_flight)
        )
        print_actors(rates)
    if "memory" in options.sections:
        figures = memory(options, options.memory_rooms, options.memory_participants, False)
        traced = None
        if options.tracemalloc_scale:
            scale = options.tracemalloc_scale
            traced = memory(
                options,
                max(1, options.memory_rooms // scale),
                max(1, options.memory_participants // scale),
                True,
            )
        print_memory(figures, traced)
    load_after = load_average()
    busiest = max(float(x) for x in (*load_before.split(), *load_after.split()))
    note = (
        " — above the core count: other processes were competing, so wall-clock rates are "
        "pessimistic (the CPU-time columns are less affected)."
        if busiest > (os.cpu_count() or 1)
        else "."
    )
    print(
        f"\nTotal run time: {time.perf_counter() - began:.0f} s. Load average (1/5/15 min) "
        f"before: {load_before}, after: {load_after} on {os.cpu_count()} cores{note}"
    )


if __name__ == "__main__":
    main()
