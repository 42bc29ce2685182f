"""Frozen, validated settings values, and the one "an int, not a bool" check they share.

:class:`BatchPolicy` is how the adjuster resends a request itself (after the client's own
retries gave up on something provably not applied, or when ``on_ambiguous="retry"``).
``RetryPolicy`` (the client's retries) and ``RateLimit`` (pacing) stay beside the client and
the transport that use them; they validate with :func:`check_int` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeGuard

from .errors import ConfigurationError

__all__ = ["BatchPolicy", "check_int", "is_int"]


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an int and not a bool (``True`` is an ``int`` to ``isinstance``)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` if it is an int (not a bool) within ``low..high``; else ConfigurationError
    naming the setting and the value."""
    if not is_int(value) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise ConfigurationError(f"{name} must be an int {bound}, got {value!r}")
    return value


def _check_seconds(name: str, value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:  # type: ignore[arg-type,operator]
        raise ConfigurationError(f"{name} must be a finite number of seconds >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How the adjuster resends one request's entries itself.

    ``max_sends``: the most times one request's entries are handed to the client, the first
    send included. Only failures that provably applied nothing are resent this way (429 or 503
    after the client's own retries, a connection that could not be made); past ``max_sends``
    the entries are REJECTED (retriable, ``GAVE_UP_NOT_APPLIED``). ``ambiguous_sends``: with
    ``on_ambiguous="retry"``, the most sends of a request whose outcome was unknown, before its
    entries are IN_DOUBT (at most ``max_sends`` either way). ``base_delay`` / ``max_delay``:
    the capped exponential backoff with full jitter between sends (a ``Retry-After`` from the
    server is used instead when given).

    ``refused_keys``: how many keys the server refused on their own (bisection's rejects) are
    remembered, the oldest forgotten first; an entry of such a key is sent apart from the rest
    of its next batch, so a bad key that keeps coming does not refuse (and re-expose to faults)
    the whole batch each time. A key is forgotten once it commits. ``0``: off.

    **The bound.** One request's entries cost at most ``max_sends`` client calls, so at most
    ``max_sends * RetryPolicy.max_attempts`` HTTP attempts (25 with both defaults); a planned
    batch that is bisected costs that per part.
    """

    max_sends: int = 5
    ambiguous_sends: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    refused_keys: int = 1_024

    def __post_init__(self) -> None:
        check_int("max_sends", self.max_sends, 1)
        check_int("ambiguous_sends", self.ambiguous_sends, 1)
        check_int("refused_keys", self.refused_keys, 0)
        _check_seconds("base_delay", self.base_delay)
        _check_seconds("max_delay", self.max_delay)
        if self.base_delay > self.max_delay:
            raise ConfigurationError(
                f"need base_delay ({self.base_delay}) <= max_delay ({self.max_delay})"
            )
