"""The deadline of the command being served, shared by the actor shell and the LiveKit adapter.

A room actor sets ``CALL_DEADLINE`` (an event-loop time: when the command was queued plus one
LiveKit timeout) in the task that runs a command's LiveKit calls. A command still waiting (in
the mailbox, or behind another call on the same participant) past its deadline answers 503
without calling LiveKit, and so does one whose turn behind another command's failed call on
the same target comes with less than half a timeout left; one that got to run gives each call
what is left of its deadline, but never less than half a timeout (so database work under load
does not starve a healthy call) and never more than the adapter's own timeout. A request thus
answers within about one LiveKit timeout however long it queued.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

CALL_DEADLINE: ContextVar[float | None] = ContextVar("call_deadline", default=None)


def time_left(timeout: float) -> float:
    """``timeout``, shortened to what is left of the current deadline (at least half of it)."""
    deadline = CALL_DEADLINE.get()
    if deadline is None:
        return timeout
    return min(timeout, max(timeout / 2, deadline - asyncio.get_running_loop().time()))
