"""Summarise ``py-spy record -f raw`` files: where the server's samples went.

    python -m bench.spy_summary FILE [--top 30] [--requests N]

Idle samples (the event loop's ``select``, an aiosqlite worker or an executor thread blocked
on its queue) are dropped. Functions are counted inclusively (a sample counts once per
function on its stack); with ``--requests`` (the requests served during the recording), a
column gives the sampled milliseconds per request at the recording's rate (``--rate``, 200 Hz
by default).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = (
    "_connection_worker_thread (aiosqlite/core.py:59)",
    "_worker (concurrent/futures/thread.py:81)",
    "select (selectors.py",
    "EpollSelector.select",
)
_FRAME = re.compile(r"^(.*) \(([^:]*):\d+\)$")


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any(frames[-1].startswith(idle) for idle in IDLE):
            continue
        n = int(count)
        total += n
        if "_connection_worker_thread" in stack:
            threads["aiosqlite worker"] += n
        elif frames[0].startswith("Thread._bootstrap") and "_worker (concurrent/futures" in stack:
            threads["executor thread (group commit)"] += n
        else:
            threads["event loop"] += n
        seen = set()
        for frame in frames:
            match = _FRAME.match(frame)
            name = f"{match.group(2)}:{match.group(1)}" if match else frame
            if name not in seen:
                seen.add(name)
                inclusive[name] += n
    return total, inclusive, threads


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--match", default="", help="only functions whose name has this")
    args = parser.parse_args()
    total, inclusive, threads = summarise(args.file)
    per = 1000 / args.rate / args.requests if args.requests else 0.0
    print(f"{total} busy samples; " + ", ".join(f"{k} {v}" for k, v in threads.items()))
    shown = 0
    for name, n in inclusive.most_common():
        if args.match and args.match not in name:
            continue
        extra = f"  {n * per:.3f} ms/req" if per else ""
        print(f"{100 * n / total:5.1f}%  {name}{extra}")
        shown += 1
        if shown >= args.top:
            break


if __name__ == "__main__":
    main()
