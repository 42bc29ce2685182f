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

:class:`SlotSchedule` gives out those evenly spaced send times ("slots"), each at least
``interval`` after the one before, to whichever sender is ready first. A sender the event loop
wakes up late may still use a slot up to ``catch_up`` seconds in the past, so lateness is not
lost and does not compound (a capacity-1 leaky bucket spaces each grant from the previous
*actual* grant, so every late wake-up delays all later sends: about 0.94 of a 50 requests/s
limit was measured).

So every send happens in ``[slot, slot + catch_up]``, and the sends in a closed window of
``period`` have slots in a closed interval of ``period + catch_up``, which is shorter than
``requests * interval = period * (1 + safety)`` while ``catch_up < safety * period``: it holds
at most ``requests`` slots. The catch-up is a quarter of that margin; the other three quarters
stay as slack for network jitter between sending and arriving (half was measured to be too
little against the emulator's strict one-second window: now and then a 429).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from ..errors import ConfigurationError

__all__ = [
    "MAX_PERIOD",
    "MAX_REQUESTS",
    "MIN_PERIOD",
    "SlotSchedule",
    "ThrottleState",
    "catch_up_budget",
    "check_rate",
    "max_in_window",
    "pacing_interval",
    "window_capacity",
]


MAX_REQUESTS: Final = 10_000_000
"""More requests per period than any server answers: a budget past it means "no limit", which
is ``rate_limit=None``, not a number that only looks like one."""
MIN_PERIOD: Final = 0.001
MAX_PERIOD: Final = 86_400.0
"""A period outside a millisecond to a day means nothing: ``200/1e-300`` is no pacing at all,
and ``1/1e308`` (or an infinite period) makes the first paced request wait forever."""


def check_rate(requests: int, period: float, *, source: str) -> None:
    """Refuse a budget of ``requests`` per ``period`` seconds that means nothing (not finite,
    or past the bounds above), raising :class:`~wixinv_async.errors.ConfigurationError` that
    starts with ``source`` (what the user wrote it in: ``RateLimit``, ``--rate-limit='1/0'``)."""
    if requests > MAX_REQUESTS:
        raise ConfigurationError(
            f"{source}: requests={requests} is more than {MAX_REQUESTS:,} per period; "
            "for no pacing at all, turn the limit off"
        )
    if not (math.isfinite(period) and MIN_PERIOD <= period <= MAX_PERIOD):
        raise ConfigurationError(
            f"{source}: period={period!r} must be a finite number of seconds from "
            f"{MIN_PERIOD} to {MAX_PERIOD:.0f} (a day)"
        )


def pacing_interval(requests: int, period: float, safety: float) -> float:
    """Seconds between two paced requests: ``period / requests * (1 + safety)``."""
    if requests < 1 or period <= 0 or safety < 0:
        raise ValueError(f"bad rate {requests}/{period}s with safety {safety}")
    return period / requests * (1.0 + safety)


def catch_up_budget(period: float, safety: float) -> float:
    """How late a paced send may leave: a quarter of the safety margin, ``safety * period /
    4`` (5 ms at 50 requests per second with 2 %)."""
    return safety * period / 4.0


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


class SlotSchedule:
    """Evenly spaced send slots for one site, taken by whichever sender is ready first.

    ``take(now)`` answers 0.0 and records the slot the sender uses, or the seconds until the
    next slot is due. The slot is ``max(last + interval, now - catch_up)``: the schedule never
    falls more than ``catch_up`` behind. The first slot, and with ``catch_up=False`` (after a
    429 pause) any slot, is no earlier than ``now``.
    """

    __slots__ = ("_before", "catch_up", "interval", "last")

    def __init__(self, interval: float, catch_up: float) -> None:
        if not interval > 0 or not catch_up >= 0:
            raise ValueError(f"bad slot schedule: interval={interval}, catch_up={catch_up}")
        self.interval = interval
        self.catch_up = catch_up
        self.last = -math.inf
        self._before: float | None = None  # ``last`` before the latest slot, until given back

    def take(self, now: float, *, catch_up: bool = True) -> float:
        """Use the next slot if it is due at ``now`` (0.0), else the seconds until it is."""
        slot = self.last + self.interval
        if slot > now:
            return slot - now
        earliest = now - self.catch_up if catch_up and self.last > -math.inf else now
        self._before = self.last
        self.last = max(slot, earliest)
        return 0.0

    def give_back(self, slot: float) -> None:
        """The slot ``slot`` (``last`` when it was taken) was not used: nothing was sent in
        it. If it is still the latest, the schedule is as if it had never been taken; once a
        later one was taken (or it was given back already) this does nothing."""
        if self._before is not None and self.last == slot:
            self.last, self._before = self._before, None

    def __repr__(self) -> str:
        return (
            f"SlotSchedule(interval={self.interval!r}, catch_up={self.catch_up!r}, "
            f"last={self.last!r})"
        )


class ThrottleState:
    """The 429 pause of one site: until when every sender waits, and how many 429s in a row.

    ``throttled`` extends the pause (never shortens it); ``succeeded`` ends the streak, so the
    next pause without ``Retry-After`` starts small again. A 429 answered during a pause does not
    lengthen the streak: nothing is sent during a pause, so its request left before the pause
    began, and the 429s of concurrent senders are one refusal, not several in a row.
    """

    __slots__ = ("paused_until", "streak")

    def __init__(self) -> None:
        self.paused_until = -math.inf
        self.streak = 0

    def throttled(self, now: float, delay: float) -> float:
        """Record a 429 answered at ``now`` that asks for ``delay`` seconds; the pause end."""
        if now >= self.paused_until:
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
