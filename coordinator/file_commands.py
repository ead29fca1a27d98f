"""``meet-coordinator clean-pending-files`` and ``purge-deleted-files`` (Meet's commands).

Both delete the objects first, then the row; a file whose objects cannot be deleted (bucket
unreachable) stays hard-deleted for the next run. Exit 0, 2 on a configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TextIO

from coordinator.errors import ConfigurationError, CoordinatorError

CLEAN_DESCRIPTION = """\
Delete the files still pending (never fully uploaded) that were created more than --hours ago:
their objects in the bucket (temporary and final keys), then their rows."""

PURGE_DESCRIPTION = """\
Purge deleted files: the hard-deleted ones (rejected uploads, cleaned pending files) and the
ones soft-deleted more than FILE_PURGE_GRACE_DAYS days ago (default 7). Their objects in the
bucket are deleted, then their rows."""


async def run_files_command(
    command: str, *, hours: int = 24, environ: dict[str, str] | None = None, out: TextIO
) -> int:
    from coordinator.files import FileService
    from coordinator.object_storage import ObjectStorage
    from coordinator.settings import Settings
    from storage.engine import create_engine, create_sessionmaker

    settings = Settings.from_env(os.environ if environ is None else environ)
    engine = create_engine(settings.database_url)
    try:
        async with ObjectStorage(settings.s3) as storage:
            service = FileService(settings.files, create_sessionmaker(engine), storage)
            if command == "clean-pending-files":
                count = await service.clean_pending(hours)
                print(f"Cleaned {count} stale pending file(s).", file=out)
            else:
                count = await service.purge_deleted()
                print(f"Purged {count} deleted file(s).", file=out)
    finally:
        await engine.dispose()
    return 0


def _hours(value: str) -> int:
    try:
        hours = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of hours") from None
    if hours < 0:
        raise argparse.ArgumentTypeError("Hours must be greater than 0")
    return hours


def _run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(
            run_files_command(args.command, hours=getattr(args, "hours", 24), out=sys.stdout)
        )
    except ConfigurationError as exc:
        print(f"meet-coordinator: configuration error: {exc}", file=sys.stderr)
        return 2
    except CoordinatorError as exc:
        print(f"meet-coordinator: {args.command}: {exc.message}", file=sys.stderr)
        return 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    clean = commands.add_parser(
        "clean-pending-files",
        help="delete files whose upload never ended",
        description=CLEAN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    clean.add_argument(
        "--hours", type=_hours, default=24, help="age threshold in hours (default: 24)"
    )
    clean.set_defaults(func=_run)
    purge = commands.add_parser(
        "purge-deleted-files",
        help="purge hard-deleted files and those soft-deleted FILE_PURGE_GRACE_DAYS ago",
        description=PURGE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    purge.set_defaults(func=_run)
