"""The planner: pending entries -> increment and decrement requests, with no event loop.

Two jobs, both pure:

- :func:`plan` packs the entries of one kind into the fewest requests of at most ``max_batch``
  entries, never one variant twice in a request. A variant can have two keys of one kind (with and
  without ``preorder``), so the minimum is ``max(ceil(n / max_batch), 2 if such a pair exists
  else 1)``, and :func:`plan` always reaches it.
- :func:`select` decides, from the table and the time, what to send *now*: a full batch as soon
  as ``max_batch`` entries of a kind are ready; the oldest entries once the oldest has waited
  ``linger``; everything on ``flush()`` and on close. It also hands back the entries that netted
  to zero, which are committed without a request, and the time of the next linger deadline.

The bisection of refused batches is pure too: :func:`split` cuts a refused batch into the parts
to try next, using the server's hint about the offending entry when it gives one.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

from ..errors import (
    ApiError,
    BadRequestError,
    ConfigurationError,
    ConnectError,
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    PreconditionFailedError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
)
from ..models import MAX_BATCH, DecrementData, IncrementData
from .backoff import Uniform, backoff_delay
from .coalesce import DeltaKey, DeltaTable, Entry, Key, Outcome, OutcomeStatus, wire_identity

__all__ = [
    "AMBIGUOUS_ROUNDS",
    "FLUSH_REASONS",
    "NOT_APPLIED_ROUNDS",
    "AdjusterStats",
    "BatchReport",
    "FlushReason",
    "InDoubtEntry",
    "Kind",
    "Planned",
    "Selection",
    "SentBatch",
    "SentEntry",
    "check_settings",
    "decrement_entries",
    "hint_index",
    "increment_entries",
    "is_refusal",
    "kind_of",
    "minimum_requests",
    "outcome_for",
    "percentile",
    "plan",
    "plan_keys",
    "provably_not_applied",
    "select",
    "sent_entry",
    "split",
    "verdict",
]

Kind = Literal["increment", "decrement"]
FlushReason = Literal["full", "linger", "flush", "close"]
"""Why a batch was sent: ``full`` (``max_batch`` variants ready), ``linger`` (its oldest delta
waited ``linger`` seconds, or ``max_pending`` keys are pending and producers wait for room),
``flush`` or ``close``."""
FLUSH_REASONS: tuple[FlushReason, ...] = ("full", "linger", "flush", "close")

T = TypeVar("T")


class Planned(NamedTuple):
    """One request to send: its kind, why it goes now, and its entries."""

    kind: Kind
    reason: FlushReason
    entries: list[Entry]


class Selection(NamedTuple):
    """What :func:`select` decided."""

    batches: list[Planned]
    noops: list[Entry]
    """Entries that netted to zero: committed without a request."""
    deadline: float | None
    """When the oldest entry left pending reaches ``linger`` (``None``: nothing pending)."""


def kind_of(net: int) -> Kind:
    """An entry with a positive net is an increment, a negative one a decrement."""
    return "increment" if net > 0 else "decrement"


def plan(
    items: Sequence[T], max_batch: int, identity: Callable[[T], Hashable] = lambda x: x
) -> list[list[T]]:
    """Pack items of one kind into the fewest chunks of at most ``max_batch``, never two items of
    one identity in a chunk, full chunks first. At most two items may share an identity.

    With ``P`` pairs and ``S`` single items, the sequence ``firsts + singles + seconds`` (the
    seconds in the order of their firsts) puts the two members of a pair ``P + S`` apart;
    chunks of ``max_batch`` then never hold both when ``P + S >= max_batch``, and otherwise
    (``n < 2 * max_batch``) two chunks of ``ceil(n / 2)`` never do.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    firsts: list[T] = []
    seconds: list[T] = []
    seen: dict[Hashable, T] = {}
    for item in items:
        ident = identity(item)
        if ident in seen:
            seconds.append(item)
        else:
            seen[ident] = item
            firsts.append(item)
    paired = {identity(item): item for item in seconds}
    if len(paired) != len(seconds):
        raise ValueError("at most two items may share an identity")
    head = [item for item in firsts if identity(item) in paired]
    seconds = [paired[identity(item)] for item in head]
    singles = [item for item in firsts if identity(item) not in paired]
    sequence = head + singles + seconds
    n = len(sequence)
    if not seconds or len(head) + len(singles) >= max_batch:
        size = max_batch
    else:
        size = math.ceil(n / max(2, math.ceil(n / max_batch)))
    return [sequence[i : i + size] for i in range(0, n, size)]


def minimum_requests(keys_and_nets: Iterable[tuple[Key, int]], max_batch: int) -> int:
    """The fewest requests that can carry these (distinct) keys' nonzero nets."""
    items = list(keys_and_nets)
    total = 0
    for sign in (1, -1):
        keys = [key for key, net in items if net * sign > 0]
        if not keys:
            continue
        idents = [wire_identity(key) for key in keys]
        pairs = len(idents) != len(set(idents))
        total += max(math.ceil(len(keys) / max_batch), 2 if pairs else 1)
    return total


def plan_keys(
    keys_and_nets: Iterable[tuple[Key, int]], max_batch: int
) -> list[tuple[Kind, list[tuple[Key, int]]]]:
    """Plan a whole table's (key, net) pairs: increments, then decrements; zero nets dropped."""
    items = list(keys_and_nets)
    out: list[tuple[Kind, list[tuple[Key, int]]]] = []
    for kind, sign in (("increment", 1), ("decrement", -1)):
        mine = [(key, net) for key, net in items if net * sign > 0]
        for chunk in plan(mine, max_batch, lambda item: wire_identity(item[0])):
            out.append((kind, chunk))  # type: ignore[arg-type]
    return out


def select(
    table: DeltaTable,
    *,
    now: float,
    linger: float,
    max_batch: int,
    slots: int,
    drain: FlushReason | None = None,
) -> Selection:
    """What to send now, taking the chosen entries out of the table.

    ``slots`` bounds the batches returned for the full and linger triggers (the free request
    slots); a drain (``"flush"`` or ``"close"``) plans every ready entry at once.
    """
    noops: list[Entry] = []
    if drain is not None:
        batches = _select_all(table, max_batch, drain, noops)
    else:
        batches = _select_due(table, now, linger, max_batch, slots, noops)
    return Selection(batches, noops, _deadline(table, linger))


def _identity(entry: Entry) -> Hashable:
    return wire_identity(entry.key)


def _select_all(
    table: DeltaTable, max_batch: int, reason: FlushReason, noops: list[Entry]
) -> list[Planned]:
    ups: list[Entry] = []
    downs: list[Entry] = []
    ready = table.ready
    if not ready[0] and ready[1] + ready[-1] == len(table.entries):
        # Every pending entry is ready and nonzero (no key busy): no per-entry busy test.
        everything = list(table.entries.values())
        if not ready[1] or not ready[-1]:
            (ups if ready[1] else downs).extend(everything)
        else:
            for entry in everything:
                (ups if entry.net > 0 else downs).append(entry)
    else:
        for entry in list(table.ready_entries()):
            if entry.net == 0:
                table.take_resolved(entry)
                noops.append(entry)
            else:
                (ups if entry.net > 0 else downs).append(entry)
    by_kind: dict[Kind, list[Entry]] = {"increment": ups, "decrement": downs}
    batches: list[Planned] = []
    clashes = table.preorders > 0  # else no two keys share a variant: plain chunks will do
    for kind, entries in by_kind.items():
        if clashes:
            chunks = plan(entries, max_batch, _identity)
        else:
            chunks = [entries[i : i + max_batch] for i in range(0, len(entries), max_batch)]
        for chunk in chunks:
            table.take_all(chunk, 1 if kind == "increment" else -1)
            batches.append(Planned(kind, reason, chunk))
    return batches


_KINDS: tuple[tuple[Kind, int], ...] = (("increment", 1), ("decrement", -1))


def _select_due(
    table: DeltaTable, now: float, linger: float, max_batch: int, slots: int, noops: list[Entry]
) -> list[Planned]:
    batches: list[Planned] = []
    for kind, sign in _KINDS:
        while len(batches) < slots and table.ready[sign] >= max_batch:
            # Short only if variant clashes left fewer than max_batch sendable together.
            batches.append(_oldest(table, kind, max_batch, "full"))
    horizon = now - linger
    while len(batches) < slots:
        oldest = _first_due(table, horizon, noops)
        if oldest is None:
            break
        batches.append(_oldest(table, kind_of(oldest.net), max_batch, "linger"))
    return batches


def _oldest(table: DeltaTable, kind: Kind, max_batch: int, reason: FlushReason) -> Planned:
    """Take the oldest ready entries of a kind, at most ``max_batch``, no variant twice."""
    sign = 1 if kind == "increment" else -1
    if table.ready[sign] == len(table.entries) and not table.preorders:
        # Every pending entry is ready and of this kind, no two share a variant: the oldest
        # max_batch, at C speed (the steady state of a one-kind stream).
        picked = list(itertools.islice(table.entries.values(), max_batch))
        table.take_all(picked, sign)
        return Planned(kind, reason, picked)
    picked = []
    clashes = table.preorders > 0
    idents: set[Hashable] = set()
    for entry in table.ready_entries():
        if entry.net * sign <= 0:
            continue
        if clashes:
            ident = wire_identity(entry.key)
            if ident in idents:
                continue
            idents.add(ident)
        picked.append(entry)
        if len(picked) == max_batch:
            break
    table.take_all(picked, sign)
    return Planned(kind, reason, picked)


def _first_due(table: DeltaTable, horizon: float, noops: list[Entry]) -> Entry | None:
    """The oldest ready entry that has lingered long enough; zero nets on the way are noops."""
    zeros: list[Entry] = []
    found: Entry | None = None
    for entry in table.ready_entries():
        if entry.first > horizon:
            break
        if entry.net == 0:
            zeros.append(entry)
            continue
        found = entry
        break
    for entry in zeros:
        table.take_resolved(entry)
        noops.append(entry)
    return found


def _deadline(table: DeltaTable, linger: float) -> float | None:
    for entry in table.ready_entries():
        return entry.first + linger
    return None


# --- bisection --------------------------------------------------------------------------

_INDEXED_FIELD = re.compile(r"(?:increment|decrement)Data\[(\d+)\]")


def hint_index(error: BaseException, size: int) -> int | None:
    """The index of the entry the server (or the client's validation) blamed, if it said.

    Read from ``InvalidInputError.index``, ``applicationError.data["index"]`` or a field
    violation such as ``decrementData[17].variantId``. Only a hint: the bisection stays correct
    without it.
    """
    index: Any = None
    if isinstance(error, InvalidInputError):
        index = error.index
    elif isinstance(error, ApiError):
        if isinstance(error.data, dict):
            index = error.data.get("index")
        if index is None:
            for violation in error.field_violations:
                match = _INDEXED_FIELD.search(violation.field or "")
                if match:
                    index = int(match.group(1))
                    break
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < size:
        return index
    return None


def split(entries: Sequence[T], hint: int | None) -> tuple[T | None, list[list[T]]]:
    """How to go on after ``entries`` (more than one) were refused as a batch.

    With a hint: the blamed entry is rejected with the server's error and the rest is sent again
    as one batch. Without: two halves.
    """
    if len(entries) < 2:
        raise ValueError("only a batch of two or more entries can be split")
    if hint is not None:
        rest = [e for i, e in enumerate(entries) if i != hint]
        return entries[hint], [rest]
    middle = len(entries) // 2
    return None, [list(entries[:middle]), list(entries[middle:])]


# --- requests and what their failures mean ----------------------------------------------

NOT_APPLIED_ROUNDS = 4
"""Times a batch is resent after the client gave up on it although it was provably not applied
(429s or 503s that outlasted the client's own retries, connect errors), before it is REJECTED."""
AMBIGUOUS_ROUNDS = 3
"""Times ``on_ambiguous="retry"`` resends a batch whose outcome was unknown."""
_REFUSALS = (BadRequestError, NotFoundError, PreconditionFailedError, InvalidInputError)


class SentEntry(NamedTuple):
    """One entry of a request: the key, the amount sent (signed) and the tags of its deltas."""

    key: DeltaKey
    amount: int
    tags: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class SentBatch:
    """A request about to be sent (given to ``on_send``). A bisection part has its own
    ``batch_id`` and names the batch it came from in ``parent_id``; a resend repeats the
    ``batch_id`` with the next ``attempt``."""

    batch_id: int
    kind: Kind
    entries: tuple[SentEntry, ...]
    reason: FlushReason
    parent_id: int | None = None
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class BatchReport:
    """A planned batch whose every entry has its outcome (given to ``on_batch``)."""

    batch_id: int
    kind: Kind
    reason: FlushReason
    entries: tuple[SentEntry, ...]
    outcomes: tuple[Outcome, ...]
    """Aligned with ``entries``."""
    requests: int
    """Requests it took, bisection and resends included."""
    seconds: float


@dataclass(frozen=True, slots=True)
class InDoubtEntry:
    """An entry whose request may or may not have been applied: reconcile it."""

    key: DeltaKey
    amount: int
    tags: tuple[object, ...]
    batch_id: int
    code: str | None
    message: str | None


def sent_entry(entry: Entry) -> SentEntry:
    """The public view of an entry as sent."""
    return SentEntry(entry.public_key(), entry.net, tuple(entry.tags or ()))


def increment_entries(entries: Sequence[Entry]) -> list[IncrementData]:
    """The wire entries of an increment batch (an absent id left to its ``UNSET`` default)."""
    return [
        IncrementData(product_id=key[0], variant_id=key[2], increment_by=e.net)
        if key[1] is None
        else IncrementData(inventory_id=key[1], variant_id=key[2], increment_by=e.net)
        for e in entries
        for key in (e.key,)
    ]


def decrement_entries(entries: Sequence[Entry]) -> list[DecrementData]:
    """The wire entries of a decrement batch (``preorderRequest`` from the key)."""
    return [
        DecrementData(
            product_id=key[0], variant_id=key[2], decrement_by=-e.net, preorder_request=key[3]
        )
        if key[1] is None
        else DecrementData(
            inventory_id=key[1], variant_id=key[2], decrement_by=-e.net, preorder_request=key[3]
        )
        for e in entries
        for key in (e.key,)
    ]


def is_refusal(error: BaseException) -> bool:
    """A refusal some entries may have caused (400, 404, 428, or refused client-side): nothing
    was applied, and bisecting finds the entries at fault."""
    return isinstance(error, _REFUSALS)


def outcome_for(
    status: OutcomeStatus, error: BaseException, default_code: str, *, retriable: bool = False
) -> Outcome:
    """An outcome carrying the error's Wix code, message and request id."""
    if isinstance(error, ApiError):
        code = error.code or default_code
        return Outcome(status, code, error.message, error.request_id, retriable)
    return Outcome(status, default_code, str(error), retriable=retriable)


def provably_not_applied(error: BaseException) -> bool:
    """429, 503, a connect error or a connect timeout: the server did not apply the request."""
    if isinstance(error, RateLimitedError | ConnectError):
        return True
    if isinstance(error, ServerError):
        return error.status == 503
    return isinstance(error, RequestTimeoutError) and not error.sent


def verdict(
    error: BaseException, attempt: int, *, retry_ambiguous: bool, rng: Uniform
) -> Outcome | float:
    """What a failed request (not a refusal) means after ``attempt`` attempts: the entries'
    final outcome, or the seconds to wait before resending them.

    ==============================================  ===============================
    failure                                         verdict
    ==============================================  ===============================
    429, 503, connect error, connect timeout        resend after ``Retry-After`` or
                                                    backoff; REJECTED (retriable)
                                                    after ``NOT_APPLIED_ROUNDS``
    outcome unknown (timeout, reset, other 5xx)     IN_DOUBT, or resend at once with
                                                    ``retry_ambiguous`` (at most
                                                    ``AMBIGUOUS_ROUNDS`` times)
    other API error (401, 403, 409, ...)            REJECTED (retriable): refused whole
    the client refused to send (closed client)      REJECTED (retriable): ``NOT_SENT``
    anything else (a bug, an unknown error)         IN_DOUBT: it may have been sent
    ==============================================  ===============================
    """
    if provably_not_applied(error):
        if attempt > NOT_APPLIED_ROUNDS:
            return outcome_for(OutcomeStatus.REJECTED, error, "GAVE_UP_NOT_APPLIED", retriable=True)
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float):
            return float(retry_after)
        return backoff_delay(attempt, base=1.0, cap=30.0, rng=rng)
    if isinstance(error, OutcomeUnknownError | ServerError):  # a 5xx but 503 may have applied
        if retry_ambiguous and attempt <= AMBIGUOUS_ROUNDS:
            return 0.0
        return outcome_for(OutcomeStatus.IN_DOUBT, error, "OUTCOME_UNKNOWN")
    if isinstance(error, ApiError):
        return outcome_for(OutcomeStatus.REJECTED, error, "REFUSED", retriable=True)
    if isinstance(error, ConfigurationError):  # raised before sending: a closed client
        return outcome_for(OutcomeStatus.REJECTED, error, "NOT_SENT", retriable=True)
    return outcome_for(OutcomeStatus.IN_DOUBT, error, type(error).__name__)


# --- settings and statistics ---------------------------------------------------------


class AdjusterStats(NamedTuple):
    """Counters since the adjuster started (``InventoryAdjuster.stats()``). Outcome counts are
    in deltas. Latencies are in seconds, from an entry's oldest delta to its outcome, over the
    latest 10,000 entries sent (``None`` before the first)."""

    submitted: int
    coalesced: int
    """Deltas that merged into an entry already pending (no entry of their own)."""
    netted_to_zero: int
    """Entries committed without a request because their deltas cancelled out."""
    requests: int
    entries_sent: int
    batch_fill: float
    """Mean entries per request over ``max_batch``."""
    batches_by_reason: Mapping[str, int]
    bisect_requests: int
    """Requests for the parts of refused batches (bisection), resends of parts included."""
    in_flight: int
    pending: int
    """Distinct keys waiting to be sent."""
    committed: int
    rejected: int
    in_doubt: int
    cancelled: int
    rate_limited: int
    """429 answers: as counted by the client when it counts them (``InventoryClient`` does, the
    ones it raised included), else the 429 errors that surfaced."""
    retries: int
    """Resends by the adjuster itself (the client's own retries are in its stats)."""
    latency_p50: float | None
    latency_p99: float | None


def check_settings(
    max_batch: int, linger: float, max_in_flight: int, max_pending: int, on_ambiguous: str
) -> None:
    """The adjuster's settings; raises ConfigurationError naming the bad one."""

    def whole(name: str, value: object, low: int, high: int | None = None) -> None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        if not ok or (high is not None and value > high):  # type: ignore[operator]
            bound = f"from {low} to {high}" if high is not None else f">= {low}"
            raise ConfigurationError(f"{name} must be an int {bound}, got {value!r}")

    whole("max_batch", max_batch, 1, MAX_BATCH)
    whole("max_in_flight", max_in_flight, 1)
    whole("max_pending", max_pending, 1)
    if isinstance(linger, bool) or not isinstance(linger, int | float) or not linger >= 0:
        raise ConfigurationError(f"linger must be a number of seconds >= 0, got {linger!r}")
    if on_ambiguous not in ("report", "retry"):
        raise ConfigurationError(f'on_ambiguous must be "report" or "retry", got {on_ambiguous!r}')


def percentile(samples: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted samples (nearest rank), ``None`` without samples."""
    if not samples:
        return None
    return samples[max(0, math.ceil(q * len(samples)) - 1)]
