"""Rate-limit arithmetic, pure: even pacing under a rolling-window limit, and 429 pauses.

Wix documents "200 requests per minute" but not the algorithm behind it. A client that never
sends more than ``N`` requests in *any* rolling window of the period is safe against a fixed
window, a sliding window and a token bucket alike. A leaky bucket with a burst of ``N`` is not:
it sends ``N`` at once and then ``N`` more over the period, up to ``2N`` in the first window.

So the client paces evenly: one request per ``interval``, where::

    interval = period / requests * (1 + safety)

Requests spaced by at least ``interval`` put at most ``floor(period / interval) + 1`` into any
window of length ``period``; with ``safety > 0`` that is at most ``requests``, and it leaves
``safety * period`` seconds of slack for requests that leave late and arrive early. The steady
rate is ``1 / (1 + safety)`` of the limit (0.98 with the default 2 %).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["ThrottleState", "max_in_window", "pacing_interval", "window_capacity"]


def pacing_interval(requests: int, period: float, safety: float) -> float:
    """Seconds between two paced requests: ``period / requests * (1 + safety)``."""
    if requests < 1 or period <= 0 or safety < 0:
        raise ValueError(f"bad rate {requests}/{period}s with safety {safety}")
    return period / requests * (1.0 + safety)


def window_capacity(interval: float, period: float) -> int:
    """Most requests spaced ``interval`` apart that fit in a closed window of ``period``."""
    return math.floor(period / interval + 1e-9) + 1


def max_in_window(times: Sequence[float], period: float) -> int:
    """The most of ``times`` (sorted or not) that fall within any window ``[t, t + period]``."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] > period:
            start += 1
        best = max(best, end - start + 1)
    return best


class ThrottleState:
    """The 429 pause of one site: until when every sender waits, and how many 429s in a row.

    ``throttled`` extends the pause (never shortens it); ``succeeded`` ends the streak, so the
    next pause without ``Retry-After`` starts small again.
    """

    __slots__ = ("paused_until", "streak")

    def __init__(self) -> None:
        self.paused_until = -math.inf
        self.streak = 0

    def throttled(self, now: float, delay: float) -> float:
        """Record a 429 answered at ``now`` that asks for ``delay`` seconds; the pause end."""
        self.streak += 1
        self.paused_until = max(self.paused_until, now + delay)
        return self.paused_until

    def succeeded(self) -> None:
        """Record a request that was not throttled."""
        self.streak = 0

    def remaining(self, now: float) -> float:
        """Seconds a sender must still wait at ``now`` (0 when not paused)."""
        return max(self.paused_until - now, 0.0)

    def __repr__(self) -> str:
        return f"ThrottleState(paused_until={self.paused_until!r}, streak={self.streak})"
