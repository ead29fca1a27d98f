"""``meet-coordinator``: ``serve``, ``migrate`` (and more subcommands as the project grows)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence

from coordinator.errors import ConfigurationError
from coordinator.settings import Settings


def _settings() -> Settings:
    try:
        return Settings.from_env(os.environ)
    except ConfigurationError as exc:
        print(f"meet-coordinator: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _migrate_only_settings() -> str:
    """``migrate`` needs only the database: it must work before SECRET_KEY is chosen."""
    from coordinator.settings import _database_url, _Env

    try:
        return _database_url(_Env(os.environ))
    except ConfigurationError as exc:
        print(f"meet-coordinator: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from coordinator.serve_command import run_serve

    return run_serve(args, serve_here)


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The serving loop's factory: uvloop's (the default), or None for asyncio's own."""
    if name == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


def serve_here(args: argparse.Namespace, worker: int | None) -> int:
    """Serve in this process; ``worker``: the index of a supervised worker (its port is shared
    with the other workers through SO_REUSEPORT, its log lines say which worker wrote them)."""
    from aiohttp import web

    from api.access_log import access_logger_for
    from api.app import create_app
    from api.serving import serve
    from coordinator.logs import configure_logging, is_json_format

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level, worker=worker)
    app = create_app(settings)

    async def freeze_startup_objects(_: web.Application) -> None:
        gc.collect()
        gc.freeze()  # long-lived startup objects leave the GC's scans: shorter pauses

    app.on_startup.append(freeze_startup_objects)
    prefix = "" if worker is None else f"worker {worker}: "
    with asyncio.Runner(loop_factory=event_loop_factory(args.event_loop)) as runner:
        runner.run(
            serve(
                app,
                host=args.host,
                port=args.port,
                access_log=None if args.no_access_log else logging.getLogger("aiohttp.access"),
                access_log_class=access_logger_for(is_json_format(settings.log_format)),
                header_timeout=settings.header_timeout_seconds,
                max_connections=settings.max_connections,
                print_=lambda message: print(prefix + message, flush=True),
                reuse_port=worker is not None,
            )
        )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from storage.migrate import upgrade

    url = _migrate_only_settings()
    asyncio.run(upgrade(url, args.revision))
    print(f"meet-coordinator: database migrated to {args.revision}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meet-coordinator",
        description="La Suite Meet compatible backend. Configuration comes from the environment.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8071)
    serve.add_argument("--no-access-log", action="store_true", help="disable the access log")
    serve.add_argument(
        "--event-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the serving event loop (default: uvloop)",
    )
    from coordinator.serve_command import add_serve_arguments, register_ray_hosts

    add_serve_arguments(serve)
    serve.set_defaults(func=cmd_serve)
    migrate = commands.add_parser("migrate", help="apply the database migrations")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(func=cmd_migrate)
    from coordinator.merge_command import register as register_merge

    register_merge(commands)
    from coordinator.application_command import register as register_create_application

    register_create_application(commands)
    from coordinator.file_commands import register as register_files

    register_files(commands)
    register_ray_hosts(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
