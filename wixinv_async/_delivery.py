"""Delivering one planned batch for :class:`~wixinv_async.adjuster.InventoryAdjuster`.

The adjuster's dispatcher plans batches; each runs as one task through :meth:`_Delivery._run`:
it sends the batch through the client, bisects refusals some entries caused, resends what
provably was not applied, and settles every entry with its outcome (see the decision tables of
:func:`~wixinv_async.core.batching.verdict`). Kept apart from the producer and dispatcher side
only to keep each module readable; :class:`_Delivery` is a mixin of the adjuster and works on
its state, declared below.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .core.batching import (
    BatchReport,
    FlushReason,
    InDoubtEntry,
    Kind,
    Planned,
    SentBatch,
    SentEntry,
    decrement_entries,
    hint_index,
    increment_entries,
    is_refusal,
    outcome_for,
    provably_not_applied,
    sent_entry,
    split,
    verdict,
)
from .core.coalesce import DeltaTable, Entry, Outcome, OutcomeStatus
from .errors import RateLimitedError, WixInventoryError
from .models import DecrementData, IncrementData

__all__ = ["InventoryWriter", "takes_validate"]

_UNKNOWN = Outcome(OutcomeStatus.IN_DOUBT, code="UNKNOWN")
_OK = OutcomeStatus.COMMITTED
_COMMITTED = Outcome(_OK)
_CANCELLED = Outcome(OutcomeStatus.CANCELLED, code="CANCELLED")


class InventoryWriter(Protocol):
    """What the adjuster needs of a client (``InventoryClient`` fits)."""

    async def increment_inventory(self, entries: Sequence[IncrementData]) -> None: ...
    async def decrement_inventory(self, entries: Sequence[DecrementData]) -> None: ...


def takes_validate(client: object) -> bool:
    """Whether both write methods of ``client`` accept ``validate=False``."""
    for name in ("increment_inventory", "decrement_inventory"):
        try:
            parameters = inspect.signature(getattr(client, name)).parameters
        except (AttributeError, TypeError, ValueError):
            return False
        parameter = parameters.get("validate")
        if parameter is None or parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            return False
    return True


class _Run:
    """The state of one planned batch while it is being delivered."""

    __slots__ = (
        "ambiguous",
        "batch_id",
        "current",
        "kind",
        "planned",
        "reason",
        "requests",
        "sending",
        "t0",
    )

    def __init__(self, planned: Planned, batch_id: int, t0: float) -> None:
        self.planned = planned
        self.kind: Kind = planned.kind
        self.reason: FlushReason = planned.reason
        self.batch_id = batch_id
        self.requests = 0
        self.current: list[Entry] = []
        self.sending = False
        self.t0 = t0
        self.ambiguous: set[int] = set()
        """Entries an ambiguous attempt may have applied: never REJECTED or CANCELLED after."""


class _Delivery:
    """The adjuster's delivery of planned batches (a mixin: the attributes are the adjuster's)."""

    _client: InventoryWriter
    _trusted: dict[str, Any]
    _retry_ambiguous: bool
    _on_send: Callable[[SentBatch], Awaitable[None]] | None
    _on_batch: Callable[[BatchReport], None] | None
    _table: DeltaTable
    _slots: asyncio.Semaphore
    _wake: asyncio.Event
    _loop: asyncio.AbstractEventLoop | None
    _in_flight: int
    _next_id: int
    _entries_done: int
    _tagged: bool
    _counts: Counter[str]
    _latency: deque[float]
    _doubts: list[InDoubtEntry]
    _rng: random.Random

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _finish_unstarted(self, run: _Run) -> None:
        """A batch whose task was cancelled before its first step: ``_run`` never ran to settle
        it, and nothing of it was sent, so its entries are CANCELLED."""
        try:
            self._settle(run, run.planned.entries, _CANCELLED)
        finally:
            self._close_run(run)

    def _close_run(self, run: _Run) -> None:
        """Report a finished batch, then drop its tags (a tag may refer to its own ticket)."""
        self._report(run)
        if self._tagged:
            for entry in run.planned.entries:
                entry.tags = None

    # --- delivering one planned batch ----------------------------------------------------

    async def _run(self, run: _Run) -> None:
        try:
            async with self._slots:
                self._in_flight += 1
                try:
                    await self._deliver(run, list(run.planned.entries), None)
                finally:
                    self._in_flight -= 1
        except asyncio.CancelledError:
            maybe = Outcome(OutcomeStatus.IN_DOUBT, code="CANCELLED_WHILE_SENDING")
            if run.sending:
                self._settle(run, run.current, maybe)
            self._settle(run, run.planned.entries, _CANCELLED)
            raise
        finally:
            self._close_run(run)

    async def _deliver(
        self, run: _Run, entries: list[Entry], parent: int | None, known_bad: bool = False
    ) -> bool:
        """Settle every entry, bisecting refusals; whether the first request was applied whole.

        ``known_bad``: these entries hold an offending one (their sibling half succeeded), so
        they are split without being sent whole.
        """
        error: BaseException | None = None
        batch_id = parent  # an unsent part's own parts name the request that was refused
        if not known_bad or len(entries) == 1:
            batch_id = run.batch_id if parent is None else self._new_id()
            result = await self._request(run, entries, batch_id, parent)
            if isinstance(result, Outcome):
                return result.status is _OK
            error = result
            if len(entries) == 1:
                self._settle(run, entries, outcome_for(OutcomeStatus.REJECTED, error, "REFUSED"))
                return False
        blamed, parts = split(entries, None if error is None else hint_index(error, len(entries)))
        if blamed is not None and error is not None:
            self._settle(run, [blamed], outcome_for(OutcomeStatus.REJECTED, error, "REFUSED"))
        ok = await self._deliver(run, parts[0], batch_id)
        if len(parts) == 2:
            await self._deliver(run, parts[1], batch_id, known_bad=ok and blamed is None)
        return False

    async def _request(
        self, run: _Run, entries: list[Entry], batch_id: int, parent: int | None
    ) -> Outcome | BaseException:
        """Send entries as one request, resending what was provably not applied. Settles the
        entries and returns their outcome, unless the request was refused for an entry's sake:
        that error is returned."""
        sent: tuple[SentEntry, ...] | None = None
        for attempt in itertools.count(1):
            if self._on_send is not None:
                if sent is None:
                    sent = tuple(sent_entry(e) for e in entries)
                try:
                    await self._on_send(
                        SentBatch(batch_id, run.kind, sent, run.reason, parent, attempt)
                    )
                except Exception as exc:
                    failed = outcome_for(
                        OutcomeStatus.REJECTED, exc, "ON_SEND_FAILED", retriable=True
                    )
                    self._settle(run, entries, failed)
                    return failed
            error = await self._call(run, entries, bisecting=parent is not None)
            if error is None:
                self._settle(run, entries, _COMMITTED)
                return _COMMITTED
            if is_refusal(error):
                return error
            if isinstance(error, RateLimitedError):
                self._counts["rate_limited"] += 1
            if not isinstance(error, WixInventoryError):
                self._report_error("unexpected error from the client: in doubt", error)
            then = verdict(error, attempt, retry_ambiguous=self._retry_ambiguous, rng=self._rng)
            if isinstance(then, Outcome):
                self._settle(run, entries, then)
                return then
            if isinstance(then, float) and not provably_not_applied(error):
                run.ambiguous.update(id(e) for e in entries)
            self._counts["retries"] += 1
            await asyncio.sleep(then)
        raise AssertionError("unreachable: verdict() ends every run of attempts")

    async def _call(self, run: _Run, entries: list[Entry], bisecting: bool) -> BaseException | None:
        run.requests += 1
        if bisecting:
            self._counts["bisect_requests"] += 1
        self._counts["requests"] += 1
        self._counts["entries_sent"] += len(entries)
        run.current, run.sending = entries, True
        try:
            if run.kind == "increment":
                await self._client.increment_inventory(increment_entries(entries), **self._trusted)
            else:
                await self._client.decrement_inventory(decrement_entries(entries), **self._trusted)
        except Exception as exc:
            run.sending = False
            return exc
        # Left set when cancelled mid-request: _run then knows the entries may have been applied.
        run.sending = False
        return None

    # --- outcomes ------------------------------------------------------------------------

    def _settle(self, run: _Run, entries: Sequence[Entry], outcome: Outcome) -> None:
        """Give entries without an outcome yet this one (IN_DOUBT instead of REJECTED or
        CANCELLED for those an ambiguous attempt may have applied) and free their keys."""
        now = self._now()
        todo = [e for e in entries if e.outcome is None]
        if outcome.status is not _OK and run.ambiguous:
            doubt = Outcome(OutcomeStatus.IN_DOUBT, "OUTCOME_UNKNOWN", outcome.message)
            self._resolve_all(run, [e for e in todo if id(e) in run.ambiguous], doubt, now)
            todo = [e for e in todo if id(e) not in run.ambiguous]
        self._resolve_all(run, todo, outcome, now)
        self._wake.set()

    def _resolve_all(self, run: _Run, entries: list[Entry], outcome: Outcome, now: float) -> None:
        deltas = 0
        for entry in entries:
            entry.outcome = outcome
            deltas += entry.count
            if entry.waiter is not None and not entry.waiter.done():
                entry.waiter.set_result(outcome)
        self._latency.extend([now - entry.first for entry in entries])
        self._table.release_all([entry.key for entry in entries])
        self._entries_done += len(entries)
        self._counts[outcome.status.value] += deltas
        if outcome.status is OutcomeStatus.IN_DOUBT:
            for entry in entries:
                key, amount, tags = sent_entry(entry)
                self._doubts.append(
                    InDoubtEntry(key, amount, tags, run.batch_id, outcome.code, outcome.message)
                )

    def _resolve(self, entry: Entry, outcome: Outcome) -> None:
        """Resolve an entry that was never sent (a no-op, or cancelled while pending)."""
        entry.outcome, entry.tags = outcome, None
        self._entries_done += 1
        self._counts[outcome.status.value] += entry.count
        waiter = entry.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def _report(self, run: _Run) -> None:
        if self._on_batch is None:
            return
        entries = run.planned.entries
        report = BatchReport(
            batch_id=run.batch_id,
            kind=run.kind,
            reason=run.reason,
            entries=tuple(sent_entry(e) for e in entries),
            outcomes=tuple(e.outcome or _UNKNOWN for e in entries),
            requests=run.requests,
            seconds=self._now() - run.t0,
        )
        try:
            self._on_batch(report)
        except Exception as exc:
            self._report_error("on_batch callback failed", exc)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _report_error(self, message: str, exc: BaseException | None) -> None:
        if self._loop is not None:
            self._loop.call_exception_handler({"message": message, "exception": exc})
