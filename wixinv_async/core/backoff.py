"""Retry arithmetic, pure: backoff delays and ``Retry-After`` parsing.

Nothing here sleeps, reads a clock or draws randomness on its own: ``now`` and ``rng`` come in
as arguments. What a failure means (retry, raise, outcome unknown) is decided in
:mod:`wixinv_async.core.failures`.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

__all__ = ["Uniform", "backoff_delay", "parse_retry_after", "site_seed"]


class Uniform(Protocol):
    """What the backoff needs of a random generator (``random.Random`` fits)."""

    def uniform(self, a: float, b: float, /) -> float: ...


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


def site_seed(seed: int, site: str) -> int:
    """The jitter seed of one site: a 64-bit BLAKE2b digest of ``seed`` and ``site``.

    Sites that fail together (a shared outage, one 503 burst) must not back off by the same
    delays, or their retries come back as one burst; so each site draws from its own
    generator. A digest rather than ``hash()``: it is the same in every process (string
    hashing is salted per process), so a seed reproduces a run.
    """
    digest = hashlib.blake2b(f"{seed}\x00{site}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


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
