"""Token buckets per caller (API key, or client IP on the public endpoints).

In-process: each server process limits on its own, so N processes behind a balancer
allow N times the rate (stated in docs/security.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from flowmonkey.api.problems import Problem

__all__ = ["RateLimiter"]

_MAX_BUCKETS = 100_000
"""Buckets kept before the idle ones are dropped (bounds memory under many IPs)."""


class RateLimiter:
    """``rate`` requests per second per caller with bursts of up to ``burst``."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, who: str) -> None:
        """Take one token for ``who`` or raise 429 with ``Retry-After`` (whole seconds)."""
        now = self._clock()
        tokens, last = self._buckets.get(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[who] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / self.rate)
            raise Problem(
                429,
                f"Too many requests; retry in {wait} s.",
                code="RATE_LIMITED",
                headers={"Retry-After": str(max(wait, 1))},
            )
        if len(self._buckets) >= _MAX_BUCKETS and who not in self._buckets:
            self._prune(now)
        self._buckets[who] = (tokens - 1.0, now)

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {
            who: (tokens, last)
            for who, (tokens, last) in self._buckets.items()
            if now - last < full_after
        }
