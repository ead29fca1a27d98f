"""``meet-coordinator create-application``: register an external-API application.

Prints ``{"client_id": …, "client_secret": …}`` as one JSON line on stdout; the secret is shown
this once (the database keeps only its PBKDF2 hash). Exit status 0, 2 on a bad argument or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from coordinator.errors import ConfigurationError
from storage.models import APPLICATION_SCOPES

DESCRIPTION = f"""\
Create an application of the external API (/external-api/v1.0/, EXTERNAL_API_ENABLED and
APPLICATION_ENABLED). It obtains tokens with the client-credentials grant at
POST /external-api/v1.0/application/token/, acting for the user whose e-mail it sends as scope.

--domain (repeatable) restricts the users it may act for to these e-mail domains (none: any).
--scope (repeatable) grants an action: {", ".join(APPLICATION_SCOPES)}.
--inactive creates it disabled (its credentials are refused until it is activated).

Prints one JSON line, {{"client_id": "...", "client_secret": "..."}}: the secret is shown this
once and stored hashed. The database is the configured one (DATABASE_URL or DB_*); the lengths
follow APPLICATION_CLIENT_ID_LENGTH and APPLICATION_CLIENT_SECRET_LENGTH."""


async def run(
    url: str,
    *,
    name: str,
    domains: Sequence[str],
    scopes: Sequence[str],
    active: bool,
    environ: dict[str, str],
    stdout: TextIO,
) -> None:
    from coordinator.applications import ApplicationService
    from coordinator.settings import OIDCSettings, _Env, _external_api
    from storage.engine import create_engine, create_sessionmaker

    env = dict(environ)
    env.pop("APPLICATION_ENABLED", None)  # the JWT key is not needed to create one
    settings = _external_api(_Env(env), OIDCSettings())
    engine = create_engine(url)
    try:
        service = ApplicationService(settings, OIDCSettings(), create_sessionmaker(engine))
        created = await service.create(name=name, domains=domains, scopes=scopes, is_active=active)
    finally:
        await engine.dispose()
    line = {"client_id": created.application.client_id, "client_secret": created.client_secret}
    print(json.dumps(line), file=stdout, flush=True)


def cmd_create_application(args: argparse.Namespace) -> int:
    from coordinator.settings import _database_url, _Env

    try:
        url = _database_url(_Env(os.environ))
        asyncio.run(
            run(
                url,
                name=args.name,
                domains=args.domain,
                scopes=args.scope,
                active=not args.inactive,
                environ=dict(os.environ),
                stdout=sys.stdout,
            )
        )
    except ConfigurationError as exc:
        print(f"meet-coordinator: configuration error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"meet-coordinator: create-application: {exc}", file=sys.stderr)
        return 2
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "create-application",
        help="create an external-API application; prints its client id and secret (once)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, help="the application's name (≤ 255 chars)")
    parser.add_argument(
        "--domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="an e-mail domain it may act for (repeatable; none: any domain)",
    )
    parser.add_argument(
        "--scope",
        action="append",
        default=[],
        choices=APPLICATION_SCOPES,
        metavar="SCOPE",
        help=f"a scope it is granted (repeatable): {', '.join(APPLICATION_SCOPES)}",
    )
    parser.add_argument("--inactive", action="store_true", help="create it disabled")
    parser.set_defaults(func=cmd_create_application)
