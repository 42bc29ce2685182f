"""The adjuster's public data: what happened to each delta, each request and the whole run.

Plain values (frozen dataclasses, NamedTuples, enums) with no event loop, so the pure core
(:mod:`wixinv_async.core`) builds them and users can keep, compare and pickle them.
:class:`~wixinv_async.adjuster.Ticket` is not here: it waits on the event loop, so it lives
beside the adjuster (and is exported from :mod:`wixinv_async` like these).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, NamedTuple

from .core.bulk_results import BulkItemResult

__all__ = [
    "CATALOGS",
    "FLUSH_REASONS",
    "NOOP",
    "AdjusterStats",
    "BatchReport",
    "Catalog",
    "DeltaKey",
    "FlushReason",
    "InDoubtEntry",
    "Kind",
    "Outcome",
    "OutcomeStatus",
    "SentBatch",
    "SentEntry",
    "Settled",
    "WitnessMark",
    "WitnessStats",
]

Kind = Literal["increment", "decrement"]
FlushReason = Literal["full", "linger", "flush", "close"]
"""Why a batch was sent: ``full`` (``max_batch`` variants ready), ``linger`` (its oldest delta
waited ``linger`` seconds, or ``max_pending`` keys are pending and producers wait for room),
``flush`` or ``close``."""
FLUSH_REASONS: tuple[FlushReason, ...] = ("full", "linger", "flush", "close")
Catalog = Literal["V1_CATALOG", "V3_CATALOG"]
"""The catalog a batch went to (``CatalogVersion`` values)."""
CATALOGS: tuple[Catalog, ...] = ("V1_CATALOG", "V3_CATALOG")
_NO_COUNTS: Final[Mapping[str, int]] = MappingProxyType({})


class DeltaKey(NamedTuple):
    """Which variant a delta is for, through which id, and whether it is a preorder; on
    Catalog V3 also at which location (``None``: the site's default) or by which SKU (then
    ``product_id``, ``inventory_id`` and ``variant_id`` are ``None``)."""

    product_id: str | None
    inventory_id: str | None
    variant_id: str | None
    preorder: bool
    location_id: str | None = None
    sku: str | None = None


class OutcomeStatus(enum.Enum):
    """What happened to a delta."""

    COMMITTED = "committed"
    """Applied by the server (or netted to zero, which needs no request)."""
    REJECTED = "rejected"
    """Definitely not applied; ``code`` and ``message`` say why."""
    IN_DOUBT = "in_doubt"
    """The request may or may not have been applied: reconcile before retrying."""
    CANCELLED = "cancelled"
    """Never sent: the adjuster was closed with ``abort=True`` or its deadline passed."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The outcome of a delta, shared by every delta merged into the same entry."""

    status: OutcomeStatus
    code: str | None = None
    """Wix's code for REJECTED (``NOT_FOUND``, ``INSUFFICIENT_INVENTORY``, ...) or ours."""
    message: str | None = None
    request_id: str | None = None
    """``x-wix-request-id`` of the request that decided it, when there was one (a COMMITTED
    outcome's too, on V1 and V3: the id Wix support asks for)."""
    retriable: bool = False
    """For REJECTED: the request was refused for no fault of this delta (credentials refused,
    429 or 503 to the last attempt, a closed client, ``on_send`` failed). Nothing was applied,
    and the same delta may succeed once the cause is fixed. ``False``: the server (or the
    client's validation) refused this delta itself (``NOT_FOUND``, ``INSUFFICIENT_INVENTORY``,
    a field violation...)."""
    error: BaseException | None = None
    """The error behind a REJECTED or IN_DOUBT outcome (``None`` for the others, and for those
    the adjuster decided without one). Compared and hashed by identity like any exception."""


NOOP: Final = Outcome(OutcomeStatus.COMMITTED, code="NETTED_TO_ZERO")
"""The outcome of deltas that cancelled out: committed without a request."""


class SentEntry(NamedTuple):
    """One entry of a request: the key, the amount sent (signed) and the tags of its deltas."""

    key: DeltaKey
    amount: int
    tags: tuple[object, ...]


class WitnessMark(NamedTuple):
    """The witness entry a request carries (``SentBatch.witness``): on ``variant_id`` of
    ``product_id`` (its slot), moving it by ``step``, from ``expected`` (the quantity before it
    if none of the slot's ``suspects`` lands; ``None``: unknown), ``suspects`` being the steps
    of the slot's requests resolved NOT_APPLIED that may still land. Journalled, it lets a
    rerun after a crash resolve the request by reading the witness (``wixinv_async.bulk``)."""

    product_id: str
    variant_id: str
    step: int
    expected: int | None
    suspects: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SentBatch:
    """A request about to go on the wire (given to ``on_send``). A bisection part has its own
    ``batch_id`` and names the batch it came from in ``parent_id``; a resend repeats the
    ``batch_id`` with the next ``attempt``."""

    batch_id: int
    kind: Kind
    entries: tuple[SentEntry, ...]
    reason: FlushReason
    parent_id: int | None = None
    attempt: int = 1
    catalog: Catalog = "V1_CATALOG"
    """The catalog's calls it goes out as."""
    witness: WitnessMark | None = None
    """Its witness entry, when the adjuster has a witness (V1)."""
    maybe_applied: bool = False
    """Whether an earlier, ambiguous send of one of its entries may have been applied."""


@dataclass(frozen=True, slots=True)
class Settled:
    """Entries of one request that just got their outcome (given to ``on_settle``): a whole
    request, the part of a bisection that committed, or one entry the server refused."""

    batch_id: int
    """The request that decided it (a bisection part's own id)."""
    kind: Kind
    entries: tuple[SentEntry, ...]
    outcome: Outcome


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
    catalog: Catalog = "V1_CATALOG"
    """The catalog its entries went to last (a V1 batch refused because the site moved to V3
    is re-planned and sent through V3: ``V3_CATALOG``)."""
    results: tuple[BulkItemResult | None, ...] = ()
    """On V3, aligned with ``entries``: the server's per-entry result (``None`` for an entry
    that got no answer of its own: refused before sending, a whole-request failure); empty
    for a V1 batch."""


@dataclass(frozen=True, slots=True)
class InDoubtEntry:
    """An entry whose request may or may not have been applied: reconcile it."""

    key: DeltaKey
    amount: int
    tags: tuple[object, ...]
    batch_id: int
    code: str | None
    message: str | None


class AdjusterStats(NamedTuple):
    """Counters since the adjuster started (``InventoryAdjuster.stats()``). Outcome counts are
    in deltas. Latencies are in seconds, from an entry's oldest delta to its outcome, over a
    sample of the latest entries sent (``None`` before the first)."""

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
    """429 answers: as counted by the client when it is an ``InventoryClient`` (the ones it
    retried included), else the 429 errors that surfaced."""
    retries: int
    """Resends by the adjuster itself (the client's own retries are in its stats)."""
    latency_p50: float | None
    latency_p99: float | None
    committed_after_resend: int = 0
    """Deltas COMMITTED by a request resent after an ambiguous failure (``on_ambiguous=
    "retry"``): they may have been applied more than once (code ``COMMITTED_AFTER_RESEND``)."""
    requests_by_catalog: Mapping[str, int] = _NO_COUNTS
    """Requests per catalog (``"V1_CATALOG"``, ``"V3_CATALOG"``), SKU searches excluded."""
    batches_by_catalog: Mapping[str, int] = _NO_COUNTS
    """Planned batches per catalog they went to last."""
    committed_by_catalog: Mapping[str, int] = _NO_COUNTS
    """COMMITTED deltas per catalog."""
    sku_searches: int = 0
    """V3 searches made to resolve SKUs and V1 default variants."""
    witness: WitnessStats | None = None
    """The witness's counters, when the adjuster has one."""


class WitnessStats(NamedTuple):
    """What the witness did (``InventoryAdjuster(witness=...)``), in requests, not deltas.

    ``committed`` / ``not_applied`` / ``unresolved``: ambiguous failures it resolved as
    COMMITTED_BY_WITNESS, as NOT_APPLIED, or left IN_DOUBT. ``late_applies``: requests
    resolved NOT_APPLIED that later proved applied; ``late_quantity``: the witness quantity
    late applies explained (not zero even when which request landed is not known).
    ``anomalies``: reads no request explains (the witness edited by someone else).
    ``reads`` and ``updates``: the extra calls the witness cost; ``recentred``: requests that
    carried a re-centring step (no extra call); ``forgotten``: requests resolved NOT_APPLIED
    taken never to land once ``Witness.forget_after`` had passed."""

    committed: int = 0
    not_applied: int = 0
    unresolved: int = 0
    late_applies: int = 0
    late_quantity: int = 0
    anomalies: int = 0
    reads: int = 0
    updates: int = 0
    recentred: int = 0
    forgotten: int = 0
