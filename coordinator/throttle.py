"""In-process request throttling (Meet's rates, e.g. request-entry 150/min per caller)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


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

    def hit(self, key: str) -> float | None:
        """Record a hit; None when allowed, else the seconds to wait."""
        now = self._clock()
        hits = [t for t in self._hits.get(key, ()) if t > now - self.per]
        if len(hits) >= self.rate:
            self._hits[key] = hits
            return max(0.0, hits[0] + self.per - now)
        hits.append(now)
        self._hits[key] = hits
        self._hits.move_to_end(key)
        while len(self._hits) > self._max_keys:
            self._hits.popitem(last=False)
        return None


def throttled_message(wait: float) -> str:
    return f"Request was throttled. Expected available in {math.ceil(wait)} seconds."
