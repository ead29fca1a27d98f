"""Recording start/stop latency added by the coordinator, and the outbox delivery rate.

    python -m bench.recordings [--quick] [--database sqlite|postgres|both]
                               [--sections latency,outbox] [--rooms 200] [--clients 1,16]
                               [--messages 1000] [--batch 50,200] [--warm-cache] [--profile]

Aims (issue): p99 of the start/stop latency added by the coordinator (egress excluded) under
10 ms; the outbox delivers ≥ 500 notifications/s to a local stand-in. The issue's sizes are
``--rooms 300 --messages 5000`` (about 5 minutes today); the defaults keep the run near 2.

1. **Latency** (:mod:`bench.recordings_latency`). The app runs in this process on loopback
   with a migrated database (SQLite file; PostgreSQL in a throwaway cluster) and an in-process
   LiveKit stand-in that sends its webhooks to the app. ``--rooms`` rooms, each with its own
   logged-in owner and one participant joined in the stand-in (webhooks delivered: the rooms'
   actors are live). Each room: ``POST start-recording`` (timed), the egress goes
   ``EGRESS_ACTIVE`` in the stand-in, ``POST stop-recording`` (timed). At 1 client the
   webhooks are drained between requests; at more clients rooms run in parallel and webhooks
   flow meanwhile. The app's lookup caches (TTL 2 s) are cleared before each timed request:
   an owner's previous request is usually older than that (``--warm-cache`` keeps them).
   Every LiveKit call is timed as the client sees it; "egress" = StartRoomCompositeEgress /
   StopEgress, "added" = total - egress, "coordinator only" = total - every LiveKit call the
   reply waited for. Baselines, same run, same client: ``GET /__lbheartbeat__`` (the framework
   floor) and ``GET /rooms/{id}/`` as the owner (session, user, room and role lookups). A second
   table splits each request into stages timed by wrappers (identify, room lookup, actor call,
   and within it the recording's writes).
2. **Outbox** (:mod:`bench.recordings_outbox`): ``--messages`` pending summary messages drained
   by ``OutboxDispatcher.run_once()`` in a loop, per batch size (plus a serial batch-1 run whose
   stages add up), against an in-process summary-service stand-in (v2); the baseline re-POSTs
   the same bodies with the same session and concurrency without any database.

Everything (client, app, stand-ins) shares one event loop, one core: figures are a floor. The
setup's heap is frozen (``gc.freeze``) before each latency pass; GC pauses are reported.
``--profile`` adds one cProfile'd pass of each section (not counted in the tables).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from bench.recordings_latency import (
    ACTOR,
    IDENTIFY,
    LOOKUP,
    WRITES,
    LatencyResult,
    Row,
    expected_recordings,
    run_latency,
)
from bench.recordings_outbox import OutboxRun, run_outbox_section
from bench.recordings_support import database, percentile, postgres_available
from coordinator.cli import event_loop_factory

# Issue 12, point 4: the added p99 of a start or a stop at one client, by database.
ADDED_AIM_MS = {"sqlite": 10.0, "postgres": 15.0}
RATE_AIM = 500.0


def _ms(value: float) -> str:
    return f"{value:.2f}"


def print_latency(kind: str, result: LatencyResult, rooms: int, *, database: str) -> None:
    aim = ADDED_AIM_MS[database]
    print(f"\n## Start/stop latency — {kind} ({rooms} rooms, mode transcript)\n")
    print(
        "| request | clients | n | errors | req/s | total p50 | p95 | p99 | egress p50 | p99 | "
        "other LiveKit p50 | p99 | **added p50** | **p95** | **p99** | coordinator-only p99 | "
        f"added p50 ÷ heartbeat p50 | aim p99 ≤ {aim:g} ms |"
    )
    print(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    floors = {
        r.clients: percentile([s.total for s in r.samples], 0.5)
        for r in result.rows
        if "lbheartbeat" in r.label
    }
    for row in result.rows:
        samples = row.samples
        total = [s.total for s in samples]
        egress = [s.egress for s in samples]
        other = [s.livekit_other for s in samples]
        added = [s.added for s in samples]
        only = [s.coordinator_only for s in samples]
        p99_added = percentile(added, 0.99)
        verdict = ""
        if row.label.startswith("POST"):
            verdict = "met" if p99_added <= aim else "**missed**"
        floor = floors.get(row.clients, float("nan"))
        print(
            f"| {row.label} | {row.clients} | {len(samples)} | {row.errors} | {row.rate:,.0f} | "
            f"{_ms(percentile(total, 0.5))} | {_ms(percentile(total, 0.95))} | "
            f"{_ms(percentile(total, 0.99))} | {_ms(percentile(egress, 0.5))} | "
            f"{_ms(percentile(egress, 0.99))} | {_ms(percentile(other, 0.5))} | "
            f"{_ms(percentile(other, 0.99))} | **{_ms(percentile(added, 0.5))}** | "
            f"**{_ms(percentile(added, 0.95))}** | **{_ms(p99_added)}** | "
            f"{_ms(percentile(only, 0.99))} | {percentile(added, 0.5) / floor:.1f} | {verdict} |"
        )
    print(
        "\nAll times in ms. req/s: the phase's throughput (start and stop run in one phase, so "
        "theirs is start/stop pairs per second, with the webhooks). Recording statuses "
        "afterwards: " + _statuses(result.statuses)
    )
    calls = _call_mix(result.rows)
    if calls:
        print(f"LiveKit calls per request (mean): {calls}")
    for clients, pauses in result.gc_pauses.items():
        print(f"GC during the {clients}-client pass: {pauses}")
    print_breakdown(result.rows)


def print_breakdown(rows: list[Row]) -> None:
    """Where a request's time goes: stages timed by wrappers in this process (p50 / p99)."""
    print(
        "\nWhere the time goes (ms, p50 / p99 of each stage; the stages are timed separately, "
        "so p99s do not add up):\n"
    )
    print(
        "| request | clients | total | identify (cookie → user) | room + role lookup | "
        "actor call | ↳ egress | ↳ other LiveKit | ↳ recording writes | "
        "↳ rest of the actor (queue, hops, webhooks meanwhile) | rest (HTTP, framework, handler) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        if "lbheartbeat" in row.label:
            continue
        samples = row.samples
        identify = [s.span(IDENTIFY) for s in samples]
        lookup = [s.span(LOOKUP) for s in samples]
        actor = [s.span(ACTOR) for s in samples]
        writes = [s.span(WRITES) for s in samples]
        actor_rest = [s.span(ACTOR) - s.egress - s.livekit_other - s.span(WRITES) for s in samples]
        rest = [s.total - s.span(IDENTIFY) - s.span(LOOKUP) - s.span(ACTOR) for s in samples]
        cells = [
            [s.total for s in samples],
            identify,
            lookup,
            actor,
            [s.egress for s in samples],
            [s.livekit_other for s in samples],
            writes,
            actor_rest,
            rest,
        ]
        text = " | ".join(f"{percentile(c, 0.5):.2f} / {percentile(c, 0.99):.2f}" for c in cells)
        print(f"| {row.label} | {row.clients} | {text} |")


def _statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))


def _call_mix(rows: list[Row]) -> str:
    parts = []
    for row in rows:
        if not row.label.startswith("POST") or not row.samples:
            continue
        counts: dict[str, int] = {}
        for sample in row.samples:
            for call in sample.calls:
                if call.livekit:
                    counts[call.what] = counts.get(call.what, 0) + 1
        mix = " + ".join(f"{v / len(row.samples):.2g} {k}" for k, v in sorted(counts.items()))
        parts.append(f"{row.label.removeprefix('POST ')} ({row.clients} cl.): {mix or 'none'}")
    return "; ".join(parts)


def print_outbox(results: list[tuple[str, OutboxRun]]) -> None:
    print("\n## Outbox delivery rate (summary v2 → in-process stand-in)\n")
    print(
        "| database | batch | messages | passes | seconds | **notifications/s** | "
        "baseline POST/s (no DB) | ratio to baseline | outside deliveries (claims) | verified | "
        "aim ≥ 500/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for kind, run in results:
        ratio = run.rate / run.baseline_rate if run.baseline_rate else float("nan")
        verified = "yes" if not run.problems else "**NO**: " + "; ".join(run.problems)
        verdict = "met" if run.rate >= RATE_AIM else "**missed**"
        print(
            f"| {kind} | {run.batch_size} | {run.messages} | {run.passes} | {run.seconds:.2f} | "
            f"**{run.rate:,.0f}** | {run.baseline_rate:,.0f} | {ratio:.2f} | "
            f"{run.claim_share:.0%} | {verified} | {verdict} |"
        )
    print(
        "\nverified: the stand-in accepted each idempotency key exactly once, every message "
        "succeeded at its first attempt, every recording is notification_succeeded with a job id."
    )
    for kind, run in results:
        if run.batch_size == 1:
            print_outbox_stages(kind, run)


def print_outbox_stages(kind: str, run: OutboxRun) -> None:
    """Per message, one at a time (batch 1): the stages are sequential, so they add up."""
    stages = run.stages
    n = run.messages
    rows = [
        (
            "claim transaction (SELECT ids, UPDATE lease, SELECT rows, COMMIT)",
            run.seconds - stages.delivering,
        ),
        ("context read session (recording + room, owner)", stages.context),
        ("payload (presigned URL) + POST + answer", stages.deliver - stages.context),
        (
            "result transaction (mark succeeded, job id, count, promote, COMMIT)",
            stages.attempt - stages.deliver,
        ),
    ]
    print(
        f"\nWhere an outbox message's time goes — {kind}, batch 1 ({n} messages, ms per message):\n"
    )
    print("| stage | ms | share |")
    print("|---|---:|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds / n * 1000:.2f} | {seconds / run.seconds:.0%} |")
    print(f"| total | {run.seconds / n * 1000:.2f} | 100% |")
    print(
        f"| baseline: the same POST alone, no database | {run.baseline_seconds / n * 1000:.2f} | |"
    )


async def bench(args: argparse.Namespace, kinds: list[str]) -> bool:
    """Runs and prints every section; False when a check failed (errors, lost messages)."""
    ok = True
    sections = set(args.sections.split(","))
    concurrency = [int(c) for c in args.clients.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    outbox: list[tuple[str, OutboxRun]] = []
    profiles: list[str] = []
    for index, kind in enumerate(kinds):
        profile = args.profile and index == 0
        async with database(kind) as url:
            began = time.perf_counter()
            if "latency" in sections:
                result = await run_latency(
                    url,
                    rooms=args.rooms,
                    concurrency=concurrency,
                    profile=profile,
                    cold=not args.warm_cache,
                )
                print_latency(kind, result, args.rooms, database=kind)
                expected = expected_recordings(args.rooms, concurrency, profile)
                if result.statuses.get("stopped") != expected:
                    print(f"\n**Unexpected recording statuses** (wanted {expected} stopped)")
                    ok = False
                ok = ok and not any(row.errors for row in result.rows)
                if result.profile:
                    profiles.append(f"{result.profile}\n(database: {kind})")
                print(f"\n(latency section: {time.perf_counter() - began:.0f} s)")
                began = time.perf_counter()
            if "outbox" in sections:
                runs, text = await run_outbox_section(
                    url, messages=args.messages, batch_sizes=batches, profile=profile
                )
                outbox += [(kind, run) for run in runs]
                ok = ok and not any(run.problems for run in runs)
                print(f"\n({kind} outbox section: {time.perf_counter() - began:.0f} s)")
                if text:
                    profiles.append(f"{text}\n(database: {kind})")
    if outbox:
        print_outbox(outbox)
    if profiles:
        print("\n## Profiles (extra passes, not in the tables)")
        for text in profiles:
            print(text)
    return ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="SQLite only, 60 rooms, 400 messages (about 30 s)"
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres", "both"],
        default=None,
        help="default: both when PostgreSQL's binaries are installed (sqlite with --quick)",
    )
    parser.add_argument("--sections", default="latency,outbox")
    parser.add_argument("--rooms", type=int, default=None, help="rooms timed (default 200)")
    parser.add_argument("--clients", default="1,16", help="comma-separated concurrencies")
    parser.add_argument("--messages", type=int, default=None, help="outbox size (default 1000)")
    parser.add_argument("--batch", default="50,200", help="comma-separated outbox batch sizes")
    parser.add_argument("--profile", action="store_true", help="cProfile one extra pass")
    parser.add_argument(
        "--warm-cache",
        action="store_true",
        help="keep the app's lookup caches (default: cleared before each timed request)",
    )
    args = parser.parse_args(argv)
    if args.rooms is None:
        args.rooms = 60 if args.quick else 200
    if args.messages is None:
        args.messages = 400 if args.quick else 1000
    if args.database is None:
        args.database = "both" if postgres_available() and not args.quick else "sqlite"
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"# bench.recordings: {os.cpu_count()} cores (load average {load} at start), "
        f"databases {', '.join(kinds)}, "
        f"{args.rooms} rooms, clients {args.clients}, {args.messages} outbox messages, "
        f"batches {args.batch}{', quick' if args.quick else ''}"
    )
    caches = "kept" if args.warm_cache else "cleared before each timed request (cold)"
    print(
        "Aims: added p99 ≤ 10 ms on SQLite, ≤ 15 ms on PostgreSQL (start and stop, egress "
        "excluded); outbox ≥ 500 "
        "notifications/s. Client and app share one event loop in this process (uvloop, as "
        "`serve`); the LiveKit stand-in of the latency section runs in a process of its own, "
        "the outbox section's stand-ins in this one. "
        f"App lookup caches (user, room, role; TTL 2 s): {caches}."
    )
    started = time.perf_counter()
    with asyncio.Runner(loop_factory=event_loop_factory("uvloop")) as runner:
        ok = runner.run(bench(args, kinds))
    print(f"\n(total run time {time.perf_counter() - started:.0f} s)")
    if not ok:
        raise SystemExit("a check failed: request errors, unexpected statuses or outbox problems")


if __name__ == "__main__":
    main()
