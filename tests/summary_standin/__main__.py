"""Run the summary-service stand-in as a process for local demos (loopback only).

    python -m tests.summary_standin --port 8000 --token TOKEN

Prints ``listening on http://127.0.0.1:<port>`` once ready (``--port 0``: any free port),
then serves the default replies until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from .server import DEFAULT_TOKEN, SummaryStandin


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.summary_standin", description="summary service stand-in"
    )
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="expected bearer token")
    return parser


async def serve(args: argparse.Namespace) -> None:
    """Start the stand-in and wait for SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SummaryStandin(token=args.token, port=args.port) as standin:
        print(f"listening on {standin.url}", flush=True)
        print(f"v1: {standin.v1_url}\nv2: {standin.v2_url}", flush=True)
        await stop.wait()
        print(f"stopped after {len(standin.calls)} call(s)", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
