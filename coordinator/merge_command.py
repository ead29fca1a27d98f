"""``meet-coordinator merge-duplicate-users``: the CLI over :mod:`storage.merge`.

Output contract: a progress bar on stderr (redrawn in place on a terminal; only its final line
otherwise), then the summary table on stdout. Exit status 0, 1 when a group failed (it was
rolled back and named on stderr), 2 on a configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING, TextIO

from coordinator.errors import ConfigurationError

if TYPE_CHECKING:
    from storage.merge import MergeSummary

DESCRIPTION = """\
Merge user accounts whose e-mails are equal ignoring case (null and blank e-mails are ignored).

In each group, the account KEPT is the one that logged in most recently (accounts that never
logged in come last), then the most recently created one (then the smallest id); its e-mail is
stored lower-cased. Every room access, recording access and file of the other accounts moves to it;
when it already has an access to the same room or recording, the higher role wins
(owner > administrator > member) and no duplicate is left. The other accounts are then deleted.

Each group is merged in its own transaction: a failing group is left untouched and reported,
the others are merged. Running the command again finds nothing to do."""


class ProgressBar:
    """``[#####     ] 12/40 groups`` on ``stream``; redrawn only when ``stream`` is a TTY.

    Call it with ``(done, total)`` as often as wanted (redraws are throttled), then
    :meth:`finish` once: it writes the final state as a full line, TTY or not.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        width: int = 30,
        interactive: bool | None = None,
        interval: float = 0.1,
    ) -> None:
        self.stream = stream
        self.width = width
        self.interactive = stream.isatty() if interactive is None else interactive
        self.interval = interval
        self._last_draw = 0.0
        self._state = (0, 0)

    def render(self, done: int, total: int) -> str:
        filled = self.width if total <= 0 else min(self.width, self.width * done // total)
        return f"[{'#' * filled}{' ' * (self.width - filled)}] {done}/{total} groups"

    def __call__(self, done: int, total: int) -> None:
        self._state = (done, total)
        if not self.interactive:
            return
        now = time.monotonic()
        if done < total and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        self.stream.write("\r" + self.render(done, total))
        self.stream.flush()

    def finish(self) -> None:
        prefix = "\r" if self.interactive else ""
        self.stream.write(prefix + self.render(*self._state) + "\n")
        self.stream.flush()


def format_summary(summary: MergeSummary) -> str:
    """The summary table: one row per figure, failed groups last."""
    title = (
        "Duplicate users (DRY RUN: nothing was written)"
        if summary.dry_run
        else "Duplicate users merged"
    )
    rows = [
        ("groups", summary.groups),
        ("accounts merged", summary.accounts_merged),
        ("accesses moved", summary.accesses_moved),
        ("  room accesses", summary.room_accesses_moved),
        ("  recording accesses", summary.recording_accesses_moved),
        ("roles upgraded", summary.roles_upgraded),
        ("duplicate accesses removed", summary.duplicate_accesses_removed),
        ("files moved", summary.files_moved),
        ("failed groups", len(summary.failures)),
    ]
    label_width = max(len(label) for label, _ in rows)
    value_width = max(5, *(len(str(value)) for _, value in rows))
    rule = f"+-{'-' * label_width}-+-{'-' * value_width}-+"
    lines = [title, rule]
    lines += [f"| {label:<{label_width}} | {value:>{value_width}} |" for label, value in rows]
    lines.append(rule)
    return "\n".join(lines)


async def run(
    url: str,
    *,
    dry_run: bool,
    email_filter: str | None,
    stdout: TextIO,
    stderr: TextIO,
    interactive: bool | None = None,
) -> int:
    """Merge the duplicates of the database at ``url``, print as documented, return the status."""
    from storage.engine import create_engine, create_sessionmaker
    from storage.merge import merge_duplicate_users

    engine = create_engine(url)
    bar = ProgressBar(stderr, interactive=interactive)
    try:
        summary = await merge_duplicate_users(
            create_sessionmaker(engine),
            dry_run=dry_run,
            email_filter=email_filter,
            progress=bar,
        )
    except RuntimeError as exc:
        print(f"meet-coordinator: {exc}", file=stderr)
        return 1
    finally:
        await engine.dispose()
    bar.finish()
    for failure in summary.failures:
        print(
            f"meet-coordinator: group {failure.email!r} failed and was left untouched: "
            f"{failure.error}",
            file=stderr,
        )
    print(format_summary(summary), file=stdout)
    return 1 if summary.failures else 0


def cmd_merge_duplicate_users(args: argparse.Namespace) -> int:
    from coordinator.settings import _database_url, _Env

    try:
        url = _database_url(_Env(os.environ))
    except ConfigurationError as exc:
        print(f"meet-coordinator: configuration error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(
        run(
            url,
            dry_run=args.dry_run,
            email_filter=args.email_filter,
            stdout=sys.stdout,
            stderr=sys.stderr,
        )
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``merge-duplicate-users`` to the ``meet-coordinator`` subcommands."""
    parser = subparsers.add_parser(
        "merge-duplicate-users",
        help="merge accounts whose e-mails differ only in case (keeps the most recent login)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="compute and print the same figures without writing anything",
    )
    parser.add_argument(
        "--email-filter",
        metavar="TEXT",
        help="only merge groups whose lower-cased e-mail contains TEXT (case-insensitive)",
    )
    parser.set_defaults(func=cmd_merge_duplicate_users)
