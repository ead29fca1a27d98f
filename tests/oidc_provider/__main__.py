"""Run the OIDC provider stand-in for local demos (loopback only, until SIGINT/SIGTERM).

    python -m tests.oidc_provider --port 8083 --client-id meet-coordinator \\
        --client-secret S --redirect-uri http://127.0.0.1:8071/api/v1.0/callback/ \\
        --user alice:alice@example.com:Alice:Liddell
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from .models import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI_PATTERNS,
    Client,
    UserClaims,
)
from .pages import LOGIN_FIELDS
from .server import OIDCProvider

READY_PREFIX = "OIDC test provider ready:"


def parse_user(value: str) -> UserClaims:
    """``sub[:email[:given_name[:usual_name]]]`` -> claims."""
    parts = value.split(":")
    if len(parts) > len(LOGIN_FIELDS) or not parts[0]:
        raise argparse.ArgumentTypeError("expected sub:email:given_name:usual_name")
    return {name: part for name, part in zip(LOGIN_FIELDS, parts, strict=False) if part}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.oidc_provider",
        description="OpenID Connect provider stand-in on loopback (tests and local demos).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8083, help="0 picks a free port (8083)")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        metavar="URI",
        help="allowed redirect URI, '*' matches e.g. any port; repeatable "
        f"(default: {' '.join(DEFAULT_REDIRECT_URI_PATTERNS)})",
    )
    parser.add_argument(
        "--user",
        type=parse_user,
        metavar="SUB:EMAIL:GIVEN:USUAL",
        help="user logged in at the provider (without it, the browser gets a login form)",
    )
    parser.add_argument("--no-pkce", action="store_true", help="do not require PKCE")
    parser.add_argument("--access-token-audience", help="'aud' of access tokens (client id)")
    parser.add_argument("--access-token-ttl", type=int, default=300, metavar="SECONDS")
    return parser


async def serve(args: argparse.Namespace) -> None:
    client = Client(
        args.client_id,
        args.client_secret,
        list(args.redirect_uris or DEFAULT_REDIRECT_URI_PATTERNS),
        require_pkce=not args.no_pkce,
    )
    provider = OIDCProvider(
        clients={client.client_id: client},
        host=args.host,
        port=args.port,
        logged_in_user=args.user,
        access_token_audience=args.access_token_audience,
        access_token_ttl=args.access_token_ttl,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with provider:
        print(f"{READY_PREFIX} {provider.issuer}", flush=True)
        print(f"  discovery:     {provider.discovery_url}", flush=True)
        print(f"  client id:     {client.client_id}", flush=True)
        print(f"  client secret: {client.client_secret}", flush=True)
        print(f"  redirect URIs: {' '.join(client.redirect_uris)}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve(args))
    except ValueError as exc:
        parser.error(str(exc))
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
