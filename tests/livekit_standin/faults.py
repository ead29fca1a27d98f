"""Per-method fault injection.

A fault is registered for a method key: ``"RoomService/CreateRoom"`` (exact),
``"CreateRoom"`` (any service) or ``"*"`` (every Twirp method). Lookup prefers the
exact key, then the bare method name, then ``"*"``. Faults apply to requests that
passed routing, authentication and decoding (they are still recorded as calls).

Kinds:

* ``error``: answer a Twirp error (``code``, ``message``, optional ``status``).
* ``stall``: wait ``seconds`` (cut short when the stand-in stops), then answer normally.
* ``drop``: close the connection without answering (the client sees an
  ``aiohttp.ClientError`` such as ``ServerDisconnectedError``).
* ``http``: answer a plain-text HTTP error (default 500), as a proxy would.

``times`` is the number of requests the fault affects (``None`` = until cleared).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["error", "stall", "drop", "http"]


@dataclass
class Fault:
    """One scripted misbehaviour; build with the class-method constructors."""

    kind: FaultKind
    code: str = "internal"
    message: str = ""
    status: int | None = None
    seconds: float = 0.0
    http_status: int = 500
    body: str = "Internal Server Error"
    times: int | None = 1

    @classmethod
    def error(
        cls, code: str, message: str, *, status: int | None = None, times: int | None = 1
    ) -> Fault:
        """Answer a Twirp error; ``status`` defaults to the Go twirp status for ``code``."""
        return cls(kind="error", code=code, message=message, status=status, times=times)

    @classmethod
    def stall(cls, seconds: float, *, times: int | None = 1) -> Fault:
        """Hold the request ``seconds`` before answering normally."""
        return cls(kind="stall", seconds=seconds, times=times)

    @classmethod
    def drop(cls, *, times: int | None = 1) -> Fault:
        """Close the connection without an answer."""
        return cls(kind="drop", times=times)

    @classmethod
    def http(
        cls, status: int = 500, body: str = "Internal Server Error", *, times: int | None = 1
    ) -> Fault:
        """Answer a plain-text (non-Twirp) HTTP error."""
        return cls(kind="http", http_status=status, body=body, times=times)


class FaultTable:
    """Registered faults, consumed in registration order per key."""

    def __init__(self) -> None:
        self._faults: defaultdict[str, list[Fault]] = defaultdict(list)

    def add(self, method: str, fault: Fault) -> None:
        """Register ``fault`` for ``method`` (see the module docstring for keys)."""
        if fault.times is not None and fault.times < 1:
            raise ValueError("times must be >= 1 or None")
        self._faults[method].append(fault)

    def take(self, service: str, method: str) -> Fault | None:
        """The fault to apply to one request, consuming one use of it."""
        for key in (f"{service}/{method}", method, "*"):
            queue = self._faults.get(key)
            if not queue:
                continue
            fault = queue[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    queue.pop(0)
            return fault
        return None

    def clear(self) -> None:
        """Forget every fault."""
        self._faults.clear()
