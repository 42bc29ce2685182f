"""The ledger: where every entry gets its outcome, and what the adjuster counts and reports.

:class:`Ledger` owns the counters, the latency sample, the in-doubt list and the user's hooks;
settling an entry (its outcome, its ticket's future, its key released in the table, the hooks)
happens only here. :class:`BatchRun` is one planned batch's account in it, and is the
:class:`~wixinv_async.adjuster._delivery.Delivery` a writer reports to.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

from ..core.bulk_results import BulkItemResult
from ..core.planner import Planned, sent_entry
from ..core.table import DeltaTable, Entry
from ..outcomes import (
    BatchReport,
    Catalog,
    FlushReason,
    InDoubtEntry,
    Kind,
    Outcome,
    OutcomeStatus,
    SentBatch,
    Settled,
    WitnessMark,
)

__all__ = ["CANCELLED", "BatchRun", "Ledger", "percentile"]

logger = logging.getLogger("wixinv_async.adjuster")

CANCELLED: Final = Outcome(OutcomeStatus.CANCELLED, code="CANCELLED")
_UNKNOWN: Final = Outcome(OutcomeStatus.IN_DOUBT, code="UNKNOWN")
_COMMITTED = OutcomeStatus.COMMITTED
_IN_DOUBT = OutcomeStatus.IN_DOUBT
_LATENCY_SAMPLES: Final = 10_000
_LATENCY_STRIDE: Final = 8
"""One entry in this many of a settled group is sampled for the latency percentiles."""

_T = TypeVar("_T")
OnSend = Callable[[SentBatch], Awaitable[None]]
OnSettle = Callable[[Settled], None]
OnBatch = Callable[[BatchReport], None]
ReportError = Callable[[str, BaseException], None]


class Ledger:
    """Outcomes, counters and hooks of one adjuster."""

    def __init__(
        self,
        table: DeltaTable,
        *,
        on_send: OnSend | None,
        on_settle: OnSettle | None,
        on_batch: OnBatch | None,
        report_error: ReportError,
        wake: Callable[[], None],
    ) -> None:
        self._table = table
        self._wake = wake
        self.on_send = on_send
        self._on_settle = on_settle
        self._on_batch = on_batch
        self.report_error = report_error
        self.counts: Counter[str] = Counter()
        self.latency: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self.doubts: list[InDoubtEntry] = []
        self.entries_done = 0
        self._next_id = 0

    def now(self) -> float:
        clock = self._table.clock
        return clock.time() if clock is not None else 0.0

    def new_id(self) -> int:
        """The next request id (a planned batch's, or a bisection part's)."""
        self._next_id += 1
        return self._next_id

    def open(self, planned: Planned) -> BatchRun:
        """The account of a planned batch about to be delivered."""
        return BatchRun(self, planned, self.new_id(), self.now())

    def resolve_unsent(self, entry: Entry, outcome: Outcome) -> None:
        """An entry that was never in a request (it netted to zero, or was cancelled pending)."""
        entry.outcome, entry.tags = outcome, None
        self.entries_done += 1
        self.counts[outcome.status.value] += entry.count
        waiter = entry.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def settle(
        self, run: BatchRun, request_id: int, entries: Sequence[Entry], outcome: Outcome
    ) -> None:
        """Give entries without an outcome yet this one and free their keys (waking the
        dispatcher if pending entries of theirs may go now). Entries an ambiguous send may have
        applied are IN_DOUBT instead of REJECTED or CANCELLED, and COMMITTED with code
        ``COMMITTED_AFTER_RESEND``."""
        todo = [e for e in entries if e.outcome is None] if run.settled else entries
        if run.ambiguous and outcome.status is not OutcomeStatus.IN_DOUBT:
            maybe = [e for e in todo if id(e) in run.ambiguous]
            if maybe:
                todo = [e for e in todo if id(e) not in run.ambiguous]
                self._resolve(run, request_id, maybe, _after_resend(outcome))
        self._resolve(run, request_id, todo, outcome)

    def _resolve(
        self, run: BatchRun, request_id: int, entries: Sequence[Entry], outcome: Outcome
    ) -> None:
        if not entries:
            return
        run.settled += len(entries)
        deltas = 0
        for entry in entries:
            entry.outcome = outcome
            deltas += entry.count
            if entry.waiter is not None and not entry.waiter.done():
                entry.waiter.set_result(outcome)
        now = self.now()
        self.latency.extend([now - entry.first for entry in entries[::_LATENCY_STRIDE]])
        if self._table.release_all([entry.key for entry in entries]):
            self._wake()
        self.entries_done += len(entries)
        status = outcome.status
        self.counts[status.value] += deltas
        if status is _COMMITTED:
            self.counts["committed_" + run.catalog] += deltas
        if outcome.code == "COMMITTED_AFTER_RESEND":
            self.counts["committed_after_resend"] += deltas
        if status is _IN_DOUBT:
            self._doubt(run, request_id, entries, outcome)
        if self._on_settle is not None:
            settled = tuple(sent_entry(e) for e in entries)
            self._call(self._on_settle, Settled(request_id, run.kind, settled, outcome))

    def _doubt(
        self, run: BatchRun, request_id: int, entries: Sequence[Entry], outcome: Outcome
    ) -> None:
        logger.warning("batch %d: %d entries in doubt (%s)", request_id, len(entries), outcome.code)
        for entry in entries:
            key, amount, tags = sent_entry(entry)
            self.doubts.append(
                InDoubtEntry(key, amount, tags, run.batch_id, outcome.code, outcome.message)
            )

    def finish(self, run: BatchRun) -> None:
        """Report a finished batch, then drop its tags (a tag may refer to its own ticket)."""
        run.finished = True
        entries = run.planned.entries
        self.counts["batches_" + run.catalog] += 1
        if self._on_batch is not None:
            found = run.results
            results = tuple(found.get(id(e)) for e in entries) if found else ()
            report = BatchReport(
                batch_id=run.batch_id,
                kind=run.kind,
                reason=run.reason,
                entries=tuple(sent_entry(e) for e in entries),
                outcomes=tuple(e.outcome or _UNKNOWN for e in entries),
                requests=run.requests,
                seconds=self.now() - run.t0,
                catalog=run.catalog,
                results=results,
            )
            self._call(self._on_batch, report)
        if self._table.tagged:
            for entry in entries:
                entry.tags = None

    def _call(self, hook: Callable[[_T], None], value: _T) -> None:
        try:
            hook(value)
        except Exception as exc:
            name = "on_batch" if isinstance(value, BatchReport) else "on_settle"
            self.report_error(f"{name} callback failed", exc)


def _after_resend(outcome: Outcome) -> Outcome:
    """The outcome of an entry an earlier, ambiguous send may have applied."""
    if outcome.status is _COMMITTED:
        return Outcome(
            _COMMITTED,
            "COMMITTED_AFTER_RESEND",
            "applied by a resend after an ambiguous failure: maybe applied twice",
            outcome.request_id,
        )
    return Outcome(
        _IN_DOUBT, "OUTCOME_UNKNOWN", outcome.message, outcome.request_id, error=outcome.error
    )


class BatchRun:
    """One planned batch's account: what its writer reports (the Delivery of the seam)."""

    __slots__ = (
        "_ledger",
        "ambiguous",
        "batch_id",
        "catalog",
        "finished",
        "kind",
        "planned",
        "reason",
        "requests",
        "results",
        "settled",
        "t0",
        "wire",
    )

    def __init__(self, ledger: Ledger, planned: Planned, batch_id: int, t0: float) -> None:
        self._ledger = ledger
        self.planned = planned
        self.kind: Kind = planned.kind
        self.reason: FlushReason = planned.reason
        self.batch_id = batch_id
        self.t0 = t0
        self.requests = 0
        self.wire: Sequence[Entry] = ()
        """Entries of the request on the wire (may be applied if cancelled now)."""
        self.ambiguous: set[int] = set()
        """Entries an ambiguous send may have applied: never REJECTED or CANCELLED after."""
        self.finished = False
        self.catalog: Catalog = "V1_CATALOG"
        """The catalog its entries go to (the catalog router sets it before writing)."""
        self.results: dict[int, BulkItemResult] = {}
        """V3 per-entry results by entry identity."""
        self.settled = 0
        """Entries it settled: while none is, settling needs no look for entries settled
        before (an entry of a batch gets its outcome only through the batch's run: a writer
        settles only its batch's entries)."""

    @property
    def entries(self) -> list[Entry]:
        """The planned batch's entries."""
        return self.planned.entries

    def new_request_id(self) -> int:
        return self._ledger.new_id()

    async def on_wire(
        self,
        entries: Sequence[Entry],
        request_id: int,
        parent_id: int | None,
        attempt: int,
        witness: WitnessMark | None = None,
    ) -> None:
        ledger = self._ledger
        if ledger.on_send is not None:
            sent = tuple(sent_entry(e) for e in entries)
            maybe = bool(self.ambiguous) and any(id(e) in self.ambiguous for e in entries)
            await ledger.on_send(
                SentBatch(
                    request_id,
                    self.kind,
                    sent,
                    self.reason,
                    parent_id,
                    attempt,
                    self.catalog,
                    witness,
                    maybe,
                )
            )
        self.requests += 1
        counts = ledger.counts
        counts["requests"] += 1
        counts["requests_" + self.catalog] += 1
        counts["entries_sent"] += len(entries)
        if parent_id is not None:
            counts["bisect_requests"] += 1
        if attempt > 1:
            counts["retries"] += 1
        self.wire = entries

    def answered(self) -> None:
        self.wire = ()

    def use_catalog(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def item_results(self, entries: Sequence[Entry], results: Sequence[BulkItemResult]) -> None:
        """Each entry's V3 result, in one pass over the batch (entry ``i``, result ``i``)."""
        self.results.update(zip(map(id, entries), results, strict=True))

    def searched(self) -> None:
        self._ledger.counts["sku_searches"] += 1

    def maybe_applied(self, entries: Sequence[Entry]) -> None:
        self.ambiguous.update(id(e) for e in entries)

    def settle(self, request_id: int, entries: Sequence[Entry], outcome: Outcome) -> None:
        self._ledger.settle(self, request_id, entries, outcome)

    def abandon(self) -> None:
        """The batch's task was cancelled: what was on the wire is in doubt, the rest was never
        sent (CANCELLED, unless an ambiguous send may have applied it)."""
        ledger = self._ledger
        if self.wire:
            maybe = Outcome(_IN_DOUBT, code="CANCELLED_WHILE_SENDING")
            ledger.settle(self, self.batch_id, self.wire, maybe)
        ledger.settle(self, self.batch_id, self.entries, CANCELLED)

    def fail_unsettled(self) -> None:
        """The writer returned with entries unsettled (a writer bug): they are in doubt."""
        left = [e for e in self.entries if e.outcome is None]
        if left:
            self._ledger.settle(self, self.batch_id, left, _UNKNOWN)

    def fail(self, error: BaseException) -> None:
        """The writer raised (a bug): every entry left is in doubt (it may have been sent)."""
        outcome = Outcome(_IN_DOUBT, code=type(error).__name__, message=str(error), error=error)
        self._ledger.settle(self, self.batch_id, self.entries, outcome)


def percentile(samples: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted samples (nearest rank), ``None`` without samples."""
    if not samples:
        return None
    return samples[max(0, math.ceil(q * len(samples)) - 1)]
