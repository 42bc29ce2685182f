"""A strict rolling-window rate limit: the least forgiving server a client can meet.

A request is accepted only when fewer than ``limit`` accepted requests fall in the last
``period`` seconds; refused requests do not count. Pure: ``now`` comes in as an argument.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["RollingWindow", "parse_rate", "retry_after_header"]


def parse_rate(text: str) -> tuple[int, float]:
    """``"200/60"`` -> ``(200, 60.0)``: requests per period in seconds."""
    count, sep, period = text.partition("/")
    try:
        limit, seconds = int(count), float(period)
    except ValueError:
        raise ValueError(f"rate_limit={text!r}: expected REQUESTS/SECONDS, e.g. '200/60'") from None
    if not sep or limit < 1 or not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"rate_limit={text!r}: expected REQUESTS/SECONDS, both positive")
    return limit, seconds


class RollingWindow:
    """At most ``limit`` accepted requests in any ``period`` seconds."""

    __slots__ = ("_accepted", "limit", "peak", "period")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.peak = 0
        """The most accepted requests ever in one window (never above ``limit``)."""
        self._accepted: deque[float] = deque()

    def __repr__(self) -> str:
        used = len(self._accepted)
        return f"RollingWindow(limit={self.limit}, period={self.period}, in_window={used})"

    def try_acquire(self, now: float) -> float | None:
        """Accept (``None``) or refuse with the seconds until a slot frees up."""
        accepted = self._accepted
        horizon = now - self.period
        while accepted and accepted[0] <= horizon:
            accepted.popleft()
        if len(accepted) < self.limit:
            accepted.append(now)
            self.peak = max(self.peak, len(accepted))
            return None
        return accepted[0] - horizon

    def clear(self) -> None:
        self._accepted.clear()
        self.peak = 0


def retry_after_header(wait: float) -> str:
    """Whole seconds, rounded up (at least 1), as HTTP's ``Retry-After`` wants."""
    return str(max(1, math.ceil(wait)))
