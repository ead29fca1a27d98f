"""Scripted replies: what the stand-in answers to the next authorised calls.

Replies queue up in call order; each applies to ``times`` calls, then the next one takes
over; with the queue empty the stand-in answers its default (v1: 200 ``{"id", "message":
"Task created"}``; v2: 200 ``{"job_id", "type": "transcript", "status": "pending"}``).

Kinds:

* ``job``: 2xx with ``{"job_id": ...}`` (a fresh id unless one is given);
* ``body``: 2xx with a fixed JSON body (e.g. without ``job_id``);
* ``error``: an HTTP error status with a JSON body;
* ``stall``: hold the request ``seconds`` (cut short, and the connection dropped, when the
  stand-in goes down or stops), then answer the default;
* ``drop``: close the connection without answering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ReplyKind = Literal["job", "body", "error", "stall", "drop"]


@dataclass
class Reply:
    """One scripted answer; build with the class-method constructors."""

    kind: ReplyKind
    status: int = 200
    body: Any = None
    job_id: str | None = None
    seconds: float = 0.0
    times: int = 1

    @classmethod
    def job(cls, job_id: str | None = None, *, status: int = 200, times: int = 1) -> Reply:
        """2xx ``{"job_id": job_id}`` (``None``: a fresh UUID per call)."""
        return cls(kind="job", status=status, job_id=job_id, times=times)

    @classmethod
    def json(cls, body: Any, *, status: int = 200, times: int = 1) -> Reply:
        """A fixed JSON body, e.g. ``{"message": "Task created"}`` (2xx without job_id)."""
        return cls(kind="body", status=status, body=body, times=times)

    @classmethod
    def error(cls, status: int = 500, body: Any = None, *, times: int = 1) -> Reply:
        """An error status; ``body`` defaults to ``{"detail": "Internal Server Error"}``."""
        detail = body if body is not None else {"detail": "Internal Server Error"}
        return cls(kind="error", status=status, body=detail, times=times)

    @classmethod
    def stall(cls, seconds: float, *, times: int = 1) -> Reply:
        """Hold the request, then answer the default."""
        return cls(kind="stall", seconds=seconds, times=times)

    @classmethod
    def drop(cls, *, times: int = 1) -> Reply:
        """Close the connection without an answer."""
        return cls(kind="drop", times=times)


@dataclass
class ReplyScript:
    """The queue of scripted replies."""

    queue: list[Reply] = field(default_factory=list)

    def add(self, reply: Reply) -> None:
        if reply.times < 1:
            raise ValueError("times must be >= 1")
        self.queue.append(reply)

    def take(self) -> Reply | None:
        """The reply for one call (consuming one use), or ``None`` for the default."""
        if not self.queue:
            return None
        reply = self.queue[0]
        reply.times -= 1
        if reply.times == 0:
            self.queue.pop(0)
        return reply

    def clear(self) -> None:
        self.queue.clear()
