"""The fleet's pure arithmetic: shards, key names, shard assignment, GCRA pacing, verdicts.

No asyncio, no Redis, no clock: times come in as arguments. The Lua scripts in
:mod:`~wixinv_async.fleet.scripts` mirror :func:`gcra_decide`; a test runs both on the same
inputs and checks that they agree.

Shards: ``shard = crc32(site) % shards``. Every key of a shard carries the hash tag
``{prefix:shard}``, so one shard's keys live in one Redis Cluster slot and each script touches
one slot only.

Assignment: rendezvous (highest-random-weight) hashing. Every worker computes, from the same
set of live workers, the same owner for each shard: the worker with the highest
``blake2b(f"{shard}/{worker}")``. Each worker gets about ``shards / workers`` shards, and when a
worker joins or leaves only the shards it gains or loses move (a greedy "claim S / live"
moves others' shards too and needs workers to agree on an order). Leases, not agreement,
keep one owner per shard while workers briefly disagree about who is live.
"""

from __future__ import annotations

import enum
import hashlib
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..core.failures import Failure, applied, classify
from ..errors import (
    ApiError,
    Applied,
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
)

__all__ = [
    "MAX_BATCH",
    "BatchState",
    "EventStatus",
    "GcraDecision",
    "KeySpace",
    "SendDelay",
    "Verdict",
    "assign_shards",
    "bisect_cap",
    "gcra_decide",
    "gcra_interval_us",
    "gcra_lateness_us",
    "gcra_stretch_us",
    "ingest_fields",
    "shard_of",
    "sum_by_key",
    "verdict_for",
]

MAX_BATCH = 300
"""Wix takes 1 to 300 entries per increment or decrement call."""


def ingest_fields(
    site: str,
    product_id: str,
    variant_id: str,
    delta: int,
    event_id: str,
    location_id: str | None = None,
    *,
    packed: bool,
) -> dict[str, str]:
    """One ingest stream entry's fields. ``packed``: the one field ``m``,
    ``delta RS event RS site LF product LF variant[ LF location]`` (RS ``\\x1e``, which an event
    id may not hold; site and product hold no newline), which the fold parses with one string
    match; else the fields ``e site p v d [l]`` every worker version reads."""
    if packed:
        key = f"{site}\n{product_id}\n{variant_id}"
        if location_id is not None:
            key += f"\n{location_id}"
        return {"m": f"{delta}\x1e{event_id}\x1e{key}"}
    fields = {"e": event_id, "site": site, "p": product_id, "v": variant_id, "d": str(delta)}
    if location_id is not None:
        fields["l"] = location_id
    return fields


def shard_of(site: str, shards: int) -> int:
    """The shard of ``site``: ``crc32(site) % shards`` (stable across processes and versions)."""
    return zlib.crc32(site.encode()) % shards


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Key names under ``prefix`` for ``shards`` shards. Per-shard keys start with the hash
    tag ``{prefix:N}``; ``config`` and ``workers`` are fleet-wide."""

    prefix: str = "wixfleet"
    shards: int = 1024

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= 16384:
            raise ConfigurationError(f"shards={self.shards!r}: must be 1 to 16384")
        if not self.prefix or any(c in self.prefix for c in "{}: \n"):
            raise ConfigurationError(f"prefix={self.prefix!r}: needs no braces, colons or spaces")

    @property
    def config(self) -> str:
        return f"{self.prefix}:config"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def tag(self, shard: int) -> str:
        """What every key of ``shard`` starts with (the scripts build batch keys from it)."""
        return f"{{{self.prefix}:{shard}}}"

    def key(self, shard: int, name: str) -> str:
        return f"{self.tag(shard)}:{name}"

    def site_key(self, shard: int, name: str, site: str) -> str:
        return f"{self.tag(shard)}:{name}:{site}"

    def batch(self, shard: int, batch_id: str) -> str:
        return f"{self.tag(shard)}:batch:{batch_id}"


def _weight(shard: int, worker: str) -> int:
    # Not crc32: it is linear, so the weights of "3/a" and "3/b" move together and three
    # workers split 1024 shards 247/265/512. blake2b mixes.
    digest = hashlib.blake2b(f"{shard}/{worker}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign_shards(shards: int, workers: Iterable[str]) -> dict[str, set[int]]:
    """Rendezvous hashing: each shard to the live worker of highest weight (ties: larger id)."""
    live = sorted(set(workers))
    owned: dict[str, set[int]] = {worker: set() for worker in live}
    if not live:
        return owned
    for shard in range(shards):
        owner = max(live, key=lambda worker: (_weight(shard, worker), worker))
        owned[owner].add(shard)
    return owned


def gcra_interval_us(requests: int, period: float, safety: float) -> int:
    """Microseconds between two requests of one site, rounded up:
    ``period / requests * (1 + safety)``, the library's own pacing interval (see
    :mod:`wixinv_async.core.ratelimit` for why evenly spaced requests, with a safety margin,
    keep any rolling window of ``period`` at ``requests`` or fewer)."""
    if requests < 1 or not period > 0 or not 0 <= safety < 1:
        raise ConfigurationError(f"bad rate {requests}/{period}s safety {safety}")
    return math.ceil(period * 1e6 / requests * (1.0 + safety))


def gcra_lateness_us(requests: int, period: float, safety: float) -> int:
    """The most microseconds a request may reach the server after its GCRA slot was granted,
    every request of the site alike, with no rolling window of ``period`` seconds holding more
    than ``requests``: ``requests * interval - period`` (:func:`gcra_interval_us`; about
    ``period * safety``).

    Why: grants are at least ``interval`` apart, so among any ``requests + 1`` requests the
    first and the last granted are at least ``requests * interval`` apart. The last granted
    arrives no earlier than its grant and the first granted no later than its grant plus
    the lateness, so the earliest and the latest arrival of the group are at least
    ``requests * interval - lateness`` apart: ``period`` or more when the lateness is at most
    this, and a window ``(t - period, t]`` (the strictest server's) never holds the whole
    group. One microsecond more and a group sent on time but for its first request can fit.
    The bound is for all of the lateness: a stalled sender's, a retry's and the network's
    variation between sending and arriving."""
    return math.floor(requests * gcra_interval_us(requests, period, safety) - period * 1e6)


def gcra_stretch_us(delay_us: float, lateness_us: int, share: float) -> int:
    """How many microseconds to add to one request's GCRA interval so that ``share`` of its
    lateness covers ``delay_us`` (the time from asking for its slot to its leaving): 0 when
    ``share * lateness_us`` already does.

    Why it is safe: a grant that adds ``extra`` to the interval puts the next grant at least
    ``interval + extra`` later. Of any ``requests + 1`` requests, the first granted then has
    ``extra`` more before the last granted may arrive, so it may itself arrive up to
    ``lateness + extra`` after its grant (:func:`gcra_lateness_us`'s argument, with the
    first gap longer). Each request's bound depends only on the gaps after its own grant, so
    requests stretched by different amounts (other workers, other moments) mix safely.
    """
    if not 0 < share <= 1:
        raise ConfigurationError(f"share={share!r}: must be above 0 and at most 1")
    return max(0, math.ceil(delay_us / share) - lateness_us)


class SendDelay:
    """An estimate, from what was seen, of the most time a request takes from asking for its
    slot to leaving (the round trips to Redis before it, and waiting for a core):
    ``mean + 4 * deviation``, smoothed as TCP smooths round-trip times (Jacobson/Karels,
    RFC 6298: gains 1/8 and 1/4), so a steady slowdown is covered after a few requests and
    forgotten as fast once it ends.

    A sample counts for at most twice the estimate so far, or :attr:`CAP` seconds when that
    is more: one stall (a stopped process) is not the next request's delay, and the late-send
    check refuses that request anyway; a delay that stays long is reached in a few requests,
    the estimate at most doubling with each."""

    CAP = 1.0
    __slots__ = ("_deviation", "_mean")

    def __init__(self) -> None:
        self._mean: float | None = None
        self._deviation = 0.0

    def observe(self, delay: float) -> None:
        """One request's seconds from asking for its slot to leaving (or to finding it late)."""
        delay = min(max(delay, 0.0), max(self.CAP, 2 * self.expected()))
        if self._mean is None:
            self._mean, self._deviation = delay, delay / 2
            return
        self._deviation += (abs(delay - self._mean) - self._deviation) / 4
        self._mean += (delay - self._mean) / 8

    def expected(self) -> float:
        """Seconds the next request may take; 0 before any was seen."""
        return 0.0 if self._mean is None else self._mean + 4 * self._deviation


@dataclass(frozen=True, slots=True)
class GcraDecision:
    """``allowed``: send now, and store ``tat`` as the site's new theoretical arrival time;
    otherwise wait ``wait_us`` (``tat`` unchanged)."""

    allowed: bool
    tat: int
    wait_us: int


def gcra_decide(tat: int, now: int, interval: int) -> GcraDecision:
    """GCRA with no burst, in integer microseconds on one clock (Redis's ``TIME``).

    Allowed when ``now >= tat``; the new ``tat`` is ``max(tat, now) + interval``, so two
    allowed sends are always at least ``interval`` apart, whichever worker asks.
    """
    if now >= tat:
        return GcraDecision(True, max(tat, now) + interval, 0)
    return GcraDecision(False, tat, tat - now)


class BatchState(enum.Enum):
    """A batch-intent record's state in Redis.

    RESERVED: begun (deltas moved out of the accumulator), request not yet allowed to leave.
    SENDING: the owner, still holding the lease, marked it just before the request left.
    Then one of APPLIED, REJECTED (refused, one entry), RETURNED (provably not applied: the
    deltas went back to the accumulator), IN_DOUBT (may have been applied; never sent again).
    """

    RESERVED = "RESERVED"
    SENDING = "SENDING"
    APPLIED = "APPLIED"
    REJECTED = "REJECTED"
    RETURNED = "RETURNED"
    IN_DOUBT = "IN_DOUBT"


class EventStatus(enum.Enum):
    """What became of one submitted event (its outcome record)."""

    APPLIED = "APPLIED"
    REJECTED = "REJECTED"
    IN_DOUBT = "IN_DOUBT"
    NETTED = "NETTED"  # cancelled out by other deltas of its key: nothing needed sending


class Verdict(enum.Enum):
    """How a worker finishes a batch after its request (see :func:`verdict_for`)."""

    APPLIED = "APPLIED"
    REFUSED = "REFUSED"  # nothing applied; one entry -> REJECTED, more -> RETURNED and bisected
    RETURNED = "RETURNED"
    IN_DOUBT = "IN_DOUBT"


_REFUSED_NOT_BATCH = (AuthenticationError, PermissionDeniedError)
_RESENT_API = frozenset({Failure.RATE_LIMITED, Failure.UNAVAILABLE})


def verdict_for(error: BaseException | None) -> Verdict:
    """The verdict table for one V1 increment/decrement call (V1 batches are atomic):

    ======================================================  ===========
    no error                                                APPLIED
    AuthenticationError, PermissionDeniedError              RETURNED (the batch is not at
                                                            fault; it waits for credentials)
    what may have been applied (:func:`core.failures.       IN_DOUBT
    applied`: timeouts after sending, resets, 5xx but 503,
    OutcomeUnknownError, anything unknown)
    RateLimitedError (429), ServerError 503                 RETURNED (provably not applied)
    any other ApiError (400, 404, 409, 428)                 REFUSED
    anything else provably not applied (ConnectError, a     RETURNED
    connect timeout, LateSendError, ConfigurationError
    (closed client), InvalidInputError)
    ======================================================  ===========

    Whether a request may have been applied is the client's one taxonomy
    (:mod:`wixinv_async.core.failures`), not a list of its own here.
    """
    if error is None:
        return Verdict.APPLIED
    if isinstance(error, _REFUSED_NOT_BATCH):
        return Verdict.RETURNED
    if applied(error) is Applied.MAYBE:
        return Verdict.IN_DOUBT
    if isinstance(error, ApiError) and classify(error) not in _RESENT_API:
        return Verdict.REFUSED
    return Verdict.RETURNED


def bisect_cap(cap: int, entries: int, refused: bool) -> int:
    """The most entries the site's next batch may take: halved (at least 1) after a refused
    batch of ``entries``, so a bad entry is isolated in about log2(300) requests; doubled
    back towards :data:`MAX_BATCH` after an applied one. Mirrored in the finish script."""
    if refused:
        return max(1, math.ceil(entries / 2))
    return min(MAX_BATCH, cap * 2)


def sum_by_key(pairs: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Net delta per key of ``(key, delta)`` pairs, zeros dropped (what the accumulator holds)."""
    net: dict[str, int] = {}
    for key, delta in pairs:
        net[key] = net.get(key, 0) + delta
    return {key: value for key, value in net.items() if value != 0}
