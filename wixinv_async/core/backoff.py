"""Retry arithmetic, pure: backoff delays, ``Retry-After`` parsing and the retry decision.

Nothing here sleeps, reads a clock or draws randomness on its own: ``now`` and ``rng`` come in
as arguments, and each function returns what must happen next. The client performs it.

The decision table (``decide``) is the heart of "retrying a write is a decision, not a reflex":

===============================  ==============  ==========================================
failure                          read            write (increment, decrement, update)
===============================  ==============  ==========================================
429 rate limited                 retry           retry (refused before processing)
503 unavailable                  retry           retry (not processed)
connect refused / timeout        retry           retry (provably never sent)
401 unauthorized                 refresh, once   refresh, once (refused before processing)
500, 502, 504, other 5xx         retry           outcome unknown
read timeout after sending       retry           outcome unknown
connection lost after sending    retry           outcome unknown
other 4xx                        raise           raise (refused: nothing applied)
===============================  ==============  ==========================================

A retry becomes "raise" once ``max_attempts`` attempts have been made.
"""

from __future__ import annotations

import enum
import math
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

__all__ = [
    "Decision",
    "Failure",
    "RequestKind",
    "Uniform",
    "backoff_delay",
    "decide",
    "failure_for_status",
    "parse_retry_after",
]


class Uniform(Protocol):
    """What the backoff needs of a random generator (``random.Random`` fits)."""

    def uniform(self, a: float, b: float, /) -> float: ...


class RequestKind(enum.Enum):
    """Whether repeating a request is harmless."""

    READ = "read"
    """Queries and token fetches: repeating them changes nothing."""
    WRITE = "write"
    """Increments, decrements and updates: repeating one may apply it twice."""


class Failure(enum.Enum):
    """Why an attempt failed, as far as the retry decision cares."""

    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    NOT_SENT = "not_sent"
    UNAUTHORIZED = "unauthorized"
    SERVER_ERROR = "server_error"
    SENT_TIMEOUT = "sent_timeout"
    CONNECTION_LOST = "connection_lost"
    REFUSED = "refused"


class Decision(enum.Enum):
    """What the client does after a failed attempt."""

    RETRY = "retry"
    REFRESH_AUTH = "refresh_auth"
    RAISE = "raise"
    OUTCOME_UNKNOWN = "outcome_unknown"


_ALWAYS_RETRYABLE = frozenset({Failure.RATE_LIMITED, Failure.UNAVAILABLE, Failure.NOT_SENT})
_AMBIGUOUS = frozenset({Failure.SERVER_ERROR, Failure.SENT_TIMEOUT, Failure.CONNECTION_LOST})


def failure_for_status(status: int) -> Failure:
    """Classify an error status: 429, 503 and 401 are refused before processing; other 5xx
    may have been processed; other statuses are plain refusals."""
    if status == 429:
        return Failure.RATE_LIMITED
    if status == 503:
        return Failure.UNAVAILABLE
    if status == 401:
        return Failure.UNAUTHORIZED
    if status >= 500:
        return Failure.SERVER_ERROR
    return Failure.REFUSED


def decide(
    kind: RequestKind,
    failure: Failure,
    *,
    attempt: int,
    max_attempts: int,
    can_refresh: bool = False,
) -> Decision:
    """The next step after attempt number ``attempt`` (1-based) failed with ``failure``.

    ``can_refresh`` is true when the credentials can be refreshed and have not been refreshed
    for this call yet (one forced refresh per call).
    """
    if failure is Failure.UNAUTHORIZED:
        return Decision.REFRESH_AUTH if can_refresh else Decision.RAISE
    if failure is Failure.REFUSED:
        return Decision.RAISE
    if failure in _AMBIGUOUS and kind is RequestKind.WRITE:
        return Decision.OUTCOME_UNKNOWN
    if failure in _ALWAYS_RETRYABLE or failure in _AMBIGUOUS:
        return Decision.RETRY if attempt < max_attempts else Decision.RAISE
    raise AssertionError(f"unhandled failure {failure}")  # pragma: no cover


def backoff_delay(attempt: int, *, base: float, cap: float, rng: Uniform) -> float:
    """Capped exponential backoff with full jitter, after failed attempt ``attempt`` (1-based)::

        delay = uniform(0, min(cap, base * 2 ** (attempt - 1)))

    Full jitter spreads the retries of many senders that failed together, so they do not come
    back as one burst (see the AWS architecture blog, "Exponential Backoff And Jitter").
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    exponent = min(attempt - 1, 62)
    ceiling = min(cap, base * 2.0**exponent)
    return rng.uniform(0.0, max(ceiling, 0.0))


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or ``None`` when absent or unreadable.

    Accepts delta-seconds (``"3"``, also ``"1.5"``) or an HTTP date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), measured from ``now`` (Unix seconds).
    A moment in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_date(text, now)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _seconds_until_date(text: str, now: float) -> float | None:
    """Seconds from ``now`` until an HTTP date, or ``None`` if ``text`` is not one."""
    try:
        when: datetime = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - now, 0.0)
