"""Run the stand-in as a process for local demos (loopback only).

    python -m tests.livekit_standin --port 7880 --keys key:secret \\
        --webhook-url http://127.0.0.1:8071/api/v1.0/rooms/webhooks-livekit/ \\
        [--egress-mode auto]

Runs until SIGINT or SIGTERM. Prints ``listening on http://127.0.0.1:<port>``
once ready (use ``--port 0`` for an ephemeral port). The test-control API is
served under ``/_fake/*`` (see :mod:`tests.livekit_standin.control_http`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .auth import DEFAULT_API_KEY, DEFAULT_API_SECRET
from .egress import EgressTiming
from .server import LiveKitStandin


def _key_pair(value: str) -> tuple[str, str]:
    key, sep, secret = value.partition(":")
    if not sep or not key or not secret:
        raise argparse.ArgumentTypeError("expected KEY:SECRET")
    return key, secret


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.livekit_standin", description="LiveKit server stand-in"
    )
    parser.add_argument("--port", type=int, default=7880, help="port on 127.0.0.1 (0: any)")
    parser.add_argument(
        "--keys",
        type=_key_pair,
        action="append",
        metavar="KEY:SECRET",
        help=f"API key pair, repeatable; secrets >= 32 bytes (default {DEFAULT_API_KEY}:…)",
    )
    parser.add_argument("--webhook-url", help="where to POST webhooks")
    parser.add_argument("--webhook-key", help="API key signing webhooks (default: first key)")
    parser.add_argument("--egress-mode", choices=("manual", "auto"), default="manual")
    parser.add_argument("--start-delay", type=float, default=1.0, help="auto: STARTING→ACTIVE")
    parser.add_argument("--finalize-delay", type=float, default=1.0, help="auto: ENDING→COMPLETE")
    parser.add_argument("--max-duration", type=float, help="auto: ACTIVE→LIMIT_REACHED after")
    parser.add_argument("--enable-remote-unmute", action="store_true")
    parser.add_argument("--output-dir", type=Path, help="write local egress files here")
    return parser


async def serve(args: argparse.Namespace) -> None:
    """Start the stand-in and wait for SIGINT/SIGTERM."""
    keys = dict(args.keys) if args.keys else {DEFAULT_API_KEY: DEFAULT_API_SECRET}
    fake = LiveKitStandin(
        keys=keys,
        port=args.port,
        webhook_url=args.webhook_url,
        webhook_api_key=args.webhook_key,
        egress_mode=args.egress_mode,
        egress_timing=EgressTiming(
            start_delay=args.start_delay,
            finalize_delay=args.finalize_delay,
            max_duration=args.max_duration,
        ),
        enable_remote_unmute=args.enable_remote_unmute,
        output_dir=args.output_dir,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fake:
        print(f"listening on {fake.url} (keys: {', '.join(keys)})", flush=True)
        await stop.wait()
    print("stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
