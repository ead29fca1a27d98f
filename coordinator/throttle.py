"""In-process request throttling with DRF's rate syntax (Meet's rates, e.g. ``150/minute``)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# DRF reads the first letter of the period: s(econd), m(inute), h(our), d(ay).
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` hits per ``seconds``."""

    count: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.count}/{int(self.seconds)}s"


def parse_rate(value: str) -> Rate | None:
    """A DRF rate such as ``2/minute``, ``10/s``, ``100/hour``, ``1000/day``; ``none`` or empty
    → None (not throttled, as DRF does with a ``None`` rate). Raises ``ValueError`` otherwise."""
    text = value.strip().lower()
    if text in ("", "none", "null"):
        return None
    count, sep, period = text.partition("/")
    period = period.strip()
    if not sep or not period or period[0] not in _PERIODS or not count.strip().isdigit():
        raise ValueError(
            f"{value!r} is not a rate: use <number>/<second|minute|hour|day>, e.g. 150/minute"
        )
    return Rate(int(count), _PERIODS[period[0]])


class Throttle:
    """A sliding-log limiter: at most ``rate`` hits per ``per`` seconds for each key."""

    def __init__(
        self,
        rate: int,
        per: float = 60.0,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.per = per
        self._clock = clock
        self._max_keys = max_keys
        self._hits: OrderedDict[str, list[float]] = OrderedDict()

    @classmethod
    def of(
        cls, rate: Rate | None, *, clock: Callable[[], float] = time.monotonic
    ) -> Throttle | None:
        """The limiter for ``rate``; None (nothing throttled) for no rate."""
        if rate is None:
            return None
        return cls(rate.count, rate.seconds, clock=clock)

    def hit(self, key: str, cost: int = 1) -> float | None:
        """Record ``cost`` hits; None when allowed, else the seconds to wait (nothing recorded).

        A cost above the whole rate can never pass: it waits a full period, and is refused
        again (callers cap costs below the rate).
        """
        now = self._clock()
        hits = [t for t in self._hits.get(key, ()) if t > now - self.per]
        if len(hits) + cost > self.rate:
            self._hits[key] = hits
            if cost > self.rate or not hits:
                return self.per
            # The wait until enough old hits leave the window for ``cost`` new ones.
            oldest_needed = hits[len(hits) + cost - self.rate - 1]
            return max(0.0, oldest_needed + self.per - now)
        hits.extend([now] * cost)
        self._hits[key] = hits
        self._hits.move_to_end(key)
        while len(self._hits) > self._max_keys:
            self._hits.popitem(last=False)
        return None


def throttled_message(wait: float) -> str:
    """DRF's ``Throttled`` detail (singular for one second, as DRF's ngettext has it)."""
    seconds = max(1, math.ceil(wait))
    unit = "second" if seconds == 1 else "seconds"
    return f"Request was throttled. Expected available in {seconds} {unit}."
