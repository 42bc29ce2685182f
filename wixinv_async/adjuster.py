"""InventoryAdjuster: many producers' stock deltas -> few, full, concurrent requests.

Producers call :meth:`~InventoryAdjuster.submit_nowait` (or ``await submit``) with small
per-variant deltas. The adjuster nets them per key (:mod:`.core.coalesce`), packs the nets into
increment and decrement requests of up to ``max_batch`` variants (:mod:`.core.batching`), sends
up to ``max_in_flight`` of them at once through the client, and gives every delta an
:class:`Outcome`: COMMITTED, REJECTED (with Wix's code), IN_DOUBT or CANCELLED.

Delivery is at most once unless asked otherwise. A request refused for something some of its
entries caused (400, 404, 428) applied nothing, so it is split and the parts are sent again until
only the offending entries are REJECTED. Failures that provably never reached the server (429,
503, connect errors) are retried. A failure after sending (timeout, reset, 500/502/504) is never
retried by default: its entries become IN_DOUBT and are listed by :meth:`in_doubt`;
``on_ambiguous="retry"`` resends them instead (at least once).

Bisection cost: a batch of ``n`` entries with one bad entry takes about ``log2(n)`` extra
requests without a hint (when a first half succeeds, the other half is known to hold the bad
entry and is split without being sent whole: about 9 to 17 extra for 300 entries). When the
server names the offending entry (the emulator's ``applicationError.data.index``), it is rejected
on the server's word and the rest is resent: one extra request per bad entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Literal, NamedTuple, Protocol, Self

from msgspec import UNSET

from .core.backoff import backoff_delay
from .core.batching import FLUSH_REASONS, FlushReason, Kind, Planned, hint_index, select, split
from .core.coalesce import (
    MAX_AMOUNT,
    NOOP,
    DeltaKey,
    DeltaTable,
    Entry,
    Key,
    Outcome,
    OutcomeStatus,
)
from .core.validation import check_entity_id, check_variant_id, is_guid
from .errors import (
    AdjusterClosed,
    AdjusterFull,
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
from .models import MAX_BATCH, MAX_ID_LENGTH, DecrementData, IncrementData

__all__ = [
    "AdjusterStats",
    "BatchReport",
    "InDoubtEntry",
    "InventoryAdjuster",
    "InventoryWriter",
    "Outcome",
    "OutcomeStatus",
    "SentBatch",
    "SentEntry",
    "Ticket",
]

_NOT_APPLIED_ROUNDS = 4
"""Times the adjuster resends a batch the client gave up on although it was provably not applied
(429s or 503s that outlasted the client's own retries, connect errors), before REJECTING it."""
_AMBIGUOUS_ROUNDS = 3
"""Times ``on_ambiguous="retry"`` resends a batch whose outcome was unknown."""
_REFUSALS = (BadRequestError, NotFoundError, PreconditionFailedError, InvalidInputError)
_LATENCY_SAMPLES = 100_000


class InventoryWriter(Protocol):
    """What the adjuster needs of a client (``InventoryClient`` fits)."""

    async def increment_inventory(self, entries: Sequence[IncrementData]) -> None: ...
    async def decrement_inventory(self, entries: Sequence[DecrementData]) -> None: ...


class Ticket(Entry):
    """A submitted delta's claim on its outcome; ``await ticket`` gives the :class:`Outcome`.

    Deltas merged into one entry share one ticket, so a ticket costs nothing to hand out; the
    future behind it is made only when someone awaits it.
    """

    __slots__ = ()

    def done(self) -> bool:
        """Whether the outcome is known."""
        return self.outcome is not None

    def __await__(self) -> Generator[Any, None, Outcome]:
        outcome = self.outcome
        if outcome is not None:
            return outcome
        if self.waiter is None:
            self.waiter = asyncio.get_running_loop().create_future()
        # Shielded: a cancelled awaiter must not cancel the future other awaiters share.
        result: Outcome = yield from asyncio.shield(self.waiter).__await__()
        return result


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


class AdjusterStats(NamedTuple):
    """Counters since the adjuster started (``InventoryAdjuster.stats()``). Outcome counts are
    in deltas; latencies in seconds, per entry from its oldest delta to its outcome."""

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
    """Requests beyond the first of each planned batch, spent isolating refused entries."""
    in_flight: int
    pending: int
    """Distinct keys waiting to be sent."""
    committed: int
    rejected: int
    in_doubt: int
    cancelled: int
    rate_limited: int
    """429 answers (as counted by the client, when it counts) and 429 errors that surfaced."""
    retries: int
    """Resends by the adjuster itself (the client's own retries are in its stats)."""
    latency_p50: float | None
    latency_p99: float | None


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


class InventoryAdjuster:
    """Coalesces per-variant deltas from many producers into few, full, concurrent requests.

    ``max_batch``: variants per request (1..300). ``linger``: seconds the oldest pending delta may
    wait for company. ``max_in_flight``: concurrent requests. ``max_pending``: distinct keys
    pending before a new key waits (``submit``) or is refused (``submit_nowait``).
    ``net_opposite_signs=False`` keeps increments and decrements apart. ``on_ambiguous``:
    ``"report"`` (IN_DOUBT, at most once) or ``"retry"`` (resend, at least once). ``on_send`` is
    awaited before every request (bisection parts and resends too); if it raises, the request is
    not sent and its entries are REJECTED with code ``ON_SEND_FAILED``. ``on_batch`` is called once
    a planned batch's entries all have outcomes.
    """

    def __init__(
        self,
        client: InventoryWriter,
        *,
        max_batch: int = MAX_BATCH,
        linger: float = 0.05,
        max_in_flight: int = 4,
        max_pending: int = 100_000,
        net_opposite_signs: bool = True,
        on_ambiguous: Literal["report", "retry"] = "report",
        on_send: Callable[[SentBatch], Awaitable[None]] | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> None:
        _check_settings(max_batch, linger, max_in_flight, max_pending, on_ambiguous)
        self._client = client
        self._max_batch = max_batch
        self._linger = float(linger)
        self._max_in_flight = max_in_flight
        self._max_pending = max_pending
        self._net = bool(net_opposite_signs)
        self._retry_ambiguous = on_ambiguous == "retry"
        self._on_send = on_send
        self._on_batch = on_batch
        self._table = DeltaTable(net_opposite_signs=self._net, factory=Ticket)
        self._open: dict[Key, Entry] = self._table.entries  # {} once closed: the fast path misses
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._runs: dict[asyncio.Task[None], _Run] = {}
        self._closing = False
        self._flushes = 0
        self._idle = True
        self._next_id = 0
        self._in_flight = 0
        self._entries_made = 0
        self._counts: Counter[str] = Counter()
        self._by_reason: Counter[str] = Counter()
        self._latency: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self._doubts: list[InDoubtEntry] = []
        self._rng = random.Random()
        self._client_429_base = _client_rate_limited(client)

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return (
            f"<InventoryAdjuster {state} pending={len(self._table)} in_flight={self._in_flight}"
            f" requests={self._counts['requests']}>"
        )

    # --- producers -----------------------------------------------------------------------

    def submit_nowait(
        self,
        product_id: str | None,
        variant_id: str,
        delta: int,
        *,
        inventory_id: str | None = None,
        preorder: bool = False,
        tag: object = None,
    ) -> Ticket:
        """Add a delta and return its ticket at once; raises :class:`AdjusterFull` when the delta
        needs a new key and ``max_pending`` keys are pending, :class:`AdjusterClosed` after close
        and :class:`InvalidInputError` for bad input (changing nothing)."""
        if type(delta) is int and delta:
            if self._net:
                key: Key = (product_id, inventory_id, variant_id, preorder)
            else:
                key = (product_id, inventory_id, variant_id, preorder, delta > 0)
            entry = self._open.get(key)
            if entry is not None:  # a known key: its ids were checked when it was new
                old = entry.net
                new = old + delta
                if old * new > 0 and -MAX_AMOUNT <= new <= MAX_AMOUNT:
                    # The hot path: same sign, still in range, no count to update.
                    entry.net = new
                    entry.count += 1
                    if tag is not None:
                        tags = entry.tags
                        if tags is None:
                            entry.tags = [tag]
                        else:
                            tags.append(tag)
                    return entry  # type: ignore[return-value]
                return self._merge_slow(key, delta, tag)
        return self._submit_slow(product_id, inventory_id, variant_id, preorder, delta, tag)

    async def submit(
        self,
        product_id: str | None,
        variant_id: str,
        delta: int,
        *,
        inventory_id: str | None = None,
        preorder: bool = False,
        tag: object = None,
    ) -> Ticket:
        """Add a delta, waiting only while it needs a new key and ``max_pending`` are pending."""
        while True:
            try:
                return self.submit_nowait(
                    product_id,
                    variant_id,
                    delta,
                    inventory_id=inventory_id,
                    preorder=preorder,
                    tag=tag,
                )
            except AdjusterFull:
                await self._space.wait()

    async def adjust(
        self,
        product_id: str | None,
        variant_id: str,
        delta: int,
        *,
        inventory_id: str | None = None,
        preorder: bool = False,
        tag: object = None,
    ) -> Outcome:
        """Submit a delta and wait for its outcome."""
        ticket = await self.submit(
            product_id, variant_id, delta, inventory_id=inventory_id, preorder=preorder, tag=tag
        )
        return await ticket

    def _merge_slow(self, key: Key, delta: int, tag: object) -> Ticket:
        """A delta for a pending key that changes its entry's sign or range."""
        if not -MAX_AMOUNT <= delta <= MAX_AMOUNT:
            raise InvalidInputError("delta", delta, f"must be nonzero and within ±{MAX_AMOUNT}")
        assert self._loop is not None
        return self._add(key, delta, self._loop.time(), tag)

    def _add(self, key: Key, delta: int, now: float, tag: object) -> Ticket:
        table = self._table
        entry = table.add(key, delta, now, tag)
        ready = table.ready
        if self._idle or ready[1] >= self._max_batch or ready[-1] >= self._max_batch:
            self._wake.set()
        return entry  # type: ignore[return-value]

    def _submit_slow(
        self,
        product_id: str | None,
        inventory_id: str | None,
        variant_id: str,
        preorder: bool,
        delta: int,
        tag: object,
    ) -> Ticket:
        if self._closing:
            raise AdjusterClosed("the adjuster is closed")
        _check_delta(product_id, inventory_id, variant_id, preorder, delta)
        key: Key = (product_id, inventory_id, variant_id, preorder)
        if not self._net:
            key = (*key, delta > 0)
        loop = self._loop
        now = loop.time() if loop is not None else self._start()
        entries = self._table.entries
        if key in entries:
            return self._add(key, delta, now, tag)
        if len(entries) >= self._max_pending:
            self._space.clear()
            raise AdjusterFull(f"{self._max_pending} keys are pending")
        self._entries_made += 1
        entry = self._table.insert(key, delta, now, tag)
        if self._idle or self._table.ready[1 if delta > 0 else -1] >= self._max_batch:
            self._wake.set()
        return entry  # type: ignore[return-value]

    # --- flush, close --------------------------------------------------------------------

    async def flush(self) -> None:
        """Send everything pending now and wait until every delta submitted so far has an
        outcome."""
        if self._loop is None:
            return
        self._flushes += 1
        self._wake.set()
        try:
            waiting = deque(e for run in self._runs.values() for e in run.planned.entries)
            waiting.extend(self._table.pending())
            while waiting:  # entries settle roughly in this order: one await per batch or so
                if waiting[0].outcome is not None:
                    waiting.popleft()
                else:
                    await waiting[0]  # type: ignore[misc]
        finally:
            self._flushes -= 1

    async def close(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the documented contract
        abort: bool = False,
    ) -> None:
        """Refuse new deltas and drain: everything pending is sent and gets its outcome.

        ``timeout``: after that many seconds, requests still running are cancelled (their entries
        become IN_DOUBT if the request may have been sent) and the rest is CANCELLED.
        ``abort=True``: pending deltas are CANCELLED at once; requests in flight still finish.
        """
        self._closing = True
        self._open = {}
        self._space.set()
        if abort:
            self._cancel_pending()
        dispatcher = self._dispatcher
        if dispatcher is None:
            self._cancel_pending()
            return
        self._wake.set()
        try:
            done, _ = await asyncio.wait([dispatcher], timeout=timeout)
        except asyncio.CancelledError:
            await self._kill()
            raise
        if not done:
            await self._kill()
        elif not dispatcher.cancelled() and dispatcher.exception() is not None:
            raise dispatcher.exception()  # type: ignore[misc]

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close(abort=exc_type is not None)

    def _cancel_pending(self) -> None:
        """Resolve every pending delta, and every batch not yet being sent, as CANCELLED."""
        cancelled = Outcome(OutcomeStatus.CANCELLED, code="CANCELLED")
        now = self._now()
        for entry in self._table.pop_all():
            self._resolve(entry, cancelled, now)
        for task, run in self._runs.items():
            if not run.requests and not run.sending:
                task.cancel()
        self._wake.set()

    async def _kill(self) -> None:
        """Cancel every request still running and the dispatcher, and wait until all settle."""
        self._cancel_pending()
        tasks: list[asyncio.Task[None]] = list(self._runs)
        if self._dispatcher is not None:
            tasks.append(self._dispatcher)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._cancel_pending()

    # --- reports -------------------------------------------------------------------------

    def in_doubt(self) -> list[InDoubtEntry]:
        """Entries whose requests may or may not have been applied, for reconciliation."""
        return list(self._doubts)

    def stats(self) -> AdjusterStats:
        """A snapshot of the counters."""
        c = self._counts
        pending = [*self._table.pending()]
        flying = [e for run in self._runs.values() for e in run.planned.entries if not e.outcome]
        done = c["committed"] + c["rejected"] + c["in_doubt"] + c["cancelled"]
        submitted = done + sum(e.count for e in pending) + sum(e.count for e in flying)
        samples = sorted(self._latency)
        requests = c["requests"]
        return AdjusterStats(
            submitted=submitted,
            coalesced=submitted - self._entries_made,
            netted_to_zero=c["noops"],
            requests=requests,
            entries_sent=c["entries_sent"],
            batch_fill=c["entries_sent"] / requests / self._max_batch if requests else 0.0,
            batches_by_reason=MappingProxyType({r: self._by_reason[r] for r in FLUSH_REASONS}),
            bisect_requests=c["bisect_requests"],
            in_flight=self._in_flight,
            pending=len(self._table),
            committed=c["committed"],
            rejected=c["rejected"],
            in_doubt=c["in_doubt"],
            cancelled=c["cancelled"],
            rate_limited=c["rate_limited"]
            + _client_rate_limited(self._client)
            - self._client_429_base,
            retries=c["retries"],
            latency_p50=_percentile(samples, 0.50),
            latency_p99=_percentile(samples, 0.99),
        )

    # --- the dispatcher ------------------------------------------------------------------

    def _start(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._dispatcher = loop.create_task(self._dispatch(), name="adjuster-dispatch")
        return loop.time()

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    async def _dispatch(self) -> None:
        table, loop = self._table, asyncio.get_running_loop()
        while True:
            self._wake.clear()
            drain: FlushReason | None = "close" if self._closing else None
            if drain is None and self._flushes:
                drain = "flush"
            slots = self._max_in_flight - len(self._runs)
            deadline = None
            if slots > 0 or drain is not None:
                chosen = select(
                    table,
                    now=loop.time(),
                    linger=self._linger,
                    max_batch=self._max_batch,
                    slots=max(slots, 0),
                    drain=drain,
                )
                self._launch(chosen.batches, chosen.noops, loop)
                slots -= len(chosen.batches)
                deadline = chosen.deadline if slots > 0 else None
            if self._closing and not table.entries and not self._runs:
                return
            # Idle: a new key must wake the dispatcher (nothing else will).
            self._idle = drain is not None or (slots > 0 and deadline is None)
            timer = loop.call_at(deadline, self._wake.set) if deadline is not None else None
            await self._wake.wait()
            if timer is not None:
                timer.cancel()

    def _launch(
        self, batches: list[Planned], noops: list[Entry], loop: asyncio.AbstractEventLoop
    ) -> None:
        now = loop.time()
        for entry in noops:
            self._counts["noops"] += 1
            self._resolve(entry, NOOP, now)
        for planned in batches:
            self._next_id += 1
            self._by_reason[planned.reason] += 1
            run = _Run(planned, self._next_id, now)
            task = loop.create_task(self._run(run), name=f"adjuster-batch-{run.batch_id}")
            self._runs[task] = run
            task.add_done_callback(self._run_done)
        if (batches or noops) and len(self._table) < self._max_pending:
            self._space.set()

    def _run_done(self, task: asyncio.Task[None]) -> None:
        self._runs.pop(task, None)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            self._report_error("adjuster batch failed", task.exception())

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
            unsent = Outcome(OutcomeStatus.CANCELLED, code="CANCELLED")
            maybe = Outcome(OutcomeStatus.IN_DOUBT, code="CANCELLED_WHILE_SENDING")
            if run.sending:
                self._settle(run, run.current, maybe)
            self._settle(run, run.planned.entries, unsent)
            raise
        finally:
            self._report(run)

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
            error = await self._request(run, entries, batch_id, parent)
            if error is None:
                return all(e.outcome is not None and e.outcome.status is _OK for e in entries)
            if len(entries) == 1:
                self._settle(run, entries, _rejected(error))
                return False
        blamed, parts = split(entries, None if error is None else hint_index(error, len(entries)))
        if blamed is not None and error is not None:
            self._settle(run, [blamed], _rejected(error))
        ok = await self._deliver(run, parts[0], batch_id)
        if len(parts) == 2:
            await self._deliver(run, parts[1], batch_id, known_bad=ok and blamed is None)
        return False

    async def _request(
        self, run: _Run, entries: list[Entry], batch_id: int, parent: int | None
    ) -> BaseException | None:
        """Send entries as one request, resending what was provably not applied. Settles the
        entries unless the request was refused for an entry's sake: that error is returned."""
        sent: tuple[SentEntry, ...] | None = None
        for attempt in itertools.count(1):
            if self._on_send is not None:
                if sent is None:
                    sent = tuple(_sent_entry(e) for e in entries)
                try:
                    await self._on_send(
                        SentBatch(batch_id, run.kind, sent, run.reason, parent, attempt)
                    )
                except Exception as exc:
                    failed = _outcome(OutcomeStatus.REJECTED, exc, "ON_SEND_FAILED")
                    self._settle(run, entries, failed)
                    return None
            error = await self._call(run, entries)
            if error is None:
                self._settle(run, entries, Outcome(OutcomeStatus.COMMITTED))
                return None
            if isinstance(error, _REFUSALS):
                return error
            verdict = self._after_failure(error, attempt)
            if isinstance(verdict, Outcome):
                self._settle(run, entries, verdict)
                return None
            if isinstance(error, OutcomeUnknownError):
                run.ambiguous.update(id(e) for e in entries)
            self._counts["retries"] += 1
            await asyncio.sleep(verdict)
        raise AssertionError("unreachable: _after_failure ends every run of attempts")

    async def _call(self, run: _Run, entries: list[Entry]) -> BaseException | None:
        run.requests += 1
        if run.requests > 1:
            self._counts["bisect_requests"] += 1
        self._counts["requests"] += 1
        self._counts["entries_sent"] += len(entries)
        run.current, run.sending = entries, True
        try:
            if run.kind == "increment":
                await self._client.increment_inventory([_increment(e) for e in entries])
            else:
                await self._client.decrement_inventory([_decrement(e) for e in entries])
        except Exception as exc:
            run.sending = False
            return exc
        # Left set when cancelled mid-request: _run then knows the entries may have been applied.
        run.sending = False
        return None

    def _after_failure(self, error: BaseException, attempt: int) -> Outcome | float:
        """What a failed request means: a final outcome, or the seconds to wait to resend."""
        if isinstance(error, RateLimitedError):
            self._counts["rate_limited"] += 1
        not_applied = isinstance(error, RateLimitedError | ConnectError) or (
            isinstance(error, ServerError) and error.status == 503
        )
        if isinstance(error, RequestTimeoutError) and not error.sent:
            not_applied = True
        if not_applied:
            if attempt > _NOT_APPLIED_ROUNDS:
                return _outcome(OutcomeStatus.REJECTED, error, "GAVE_UP_NOT_APPLIED")
            retry_after = getattr(error, "retry_after", None)
            if isinstance(retry_after, int | float):
                return float(retry_after)
            return backoff_delay(attempt, base=1.0, cap=30.0, rng=self._rng)
        if isinstance(error, OutcomeUnknownError):
            if self._retry_ambiguous and attempt <= _AMBIGUOUS_ROUNDS:
                return 0.0
            return _outcome(OutcomeStatus.IN_DOUBT, error, "OUTCOME_UNKNOWN")
        if isinstance(error, ApiError):  # 401, 403, 409, ...: refused whole, nothing applied
            return _rejected(error)
        self._report_error("unexpected error from the client; entries left in doubt", error)
        return _outcome(OutcomeStatus.IN_DOUBT, error, type(error).__name__)

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
        release, latency = self._table.release, self._latency.append
        deltas = 0
        for entry in entries:
            entry.outcome = outcome
            deltas += entry.count
            latency(now - entry.first)
            release(entry.key)
            waiter = entry.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(outcome)
        self._counts[outcome.status.value] += deltas
        if outcome.status is OutcomeStatus.IN_DOUBT:
            for entry in entries:
                key, amount, tags = _sent_entry(entry)
                self._doubts.append(
                    InDoubtEntry(key, amount, tags, run.batch_id, outcome.code, outcome.message)
                )

    def _resolve(self, entry: Entry, outcome: Outcome, now: float) -> None:
        """Resolve an entry that is not in flight (a no-op, or cancelled while pending)."""
        entry.outcome = outcome
        self._counts[outcome.status.value] += entry.count
        self._latency.append(now - entry.first)
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
            entries=tuple(_sent_entry(e) for e in entries),
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


_UNKNOWN = Outcome(OutcomeStatus.IN_DOUBT, code="UNKNOWN")
_OK = OutcomeStatus.COMMITTED


def _rejected(error: BaseException) -> Outcome:
    return _outcome(OutcomeStatus.REJECTED, error, "INVALID_INPUT")


def _outcome(status: OutcomeStatus, error: BaseException, default_code: str) -> Outcome:
    if isinstance(error, ApiError):
        return Outcome(status, error.code or default_code, error.message, error.request_id)
    return Outcome(status, default_code, str(error))


def _sent_entry(entry: Entry) -> SentEntry:
    return SentEntry(entry.public_key(), entry.net, tuple(entry.tags or ()))


def _increment(entry: Entry) -> IncrementData:
    product_id, inventory_id, variant_id = entry.key[:3]
    return IncrementData(
        product_id=UNSET if product_id is None else product_id,
        inventory_id=UNSET if inventory_id is None else inventory_id,
        variant_id=variant_id,
        increment_by=entry.net,
    )


def _decrement(entry: Entry) -> DecrementData:
    product_id, inventory_id, variant_id, preorder = entry.key[:4]
    return DecrementData(
        product_id=UNSET if product_id is None else product_id,
        inventory_id=UNSET if inventory_id is None else inventory_id,
        variant_id=variant_id,
        decrement_by=-entry.net,
        preorder_request=preorder,
    )


def _check_delta(
    product_id: object, inventory_id: object, variant_id: object, preorder: object, delta: object
) -> None:
    """The checks of a submit; raises InvalidInputError naming the field and value."""
    if (
        type(delta) is int
        and delta
        and -MAX_AMOUNT <= delta <= MAX_AMOUNT
        and type(preorder) is bool
        and is_guid(variant_id)
    ):
        entity = product_id if inventory_id is None else inventory_id
        if (
            (product_id is None) != (inventory_id is None)
            and type(entity) is str
            and 0 < len(entity) <= MAX_ID_LENGTH
        ):
            return  # the common case, checked without building error messages
    _explain_delta(product_id, inventory_id, variant_id, preorder, delta)


def _explain_delta(
    product_id: object, inventory_id: object, variant_id: object, preorder: object, delta: object
) -> None:
    """The full checks, raising with the offending field and value."""
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise InvalidInputError("delta", delta, "must be an int (not a bool or a float)")
    if delta == 0 or not -MAX_AMOUNT <= delta <= MAX_AMOUNT:
        raise InvalidInputError("delta", delta, f"must be nonzero and within ±{MAX_AMOUNT}")
    if (product_id is None) == (inventory_id is None):
        raise InvalidInputError(
            "product_id", product_id, "give exactly one of product_id and inventory_id"
        )
    if product_id is not None:
        check_entity_id("product_id", product_id)
    else:
        check_entity_id("inventory_id", inventory_id)
    check_variant_id(variant_id, field="variant_id")
    if not isinstance(preorder, bool):
        raise InvalidInputError("preorder", preorder, "must be a bool")


def _check_settings(
    max_batch: int, linger: float, max_in_flight: int, max_pending: int, on_ambiguous: str
) -> None:
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


def _client_rate_limited(client: object) -> int:
    stats = getattr(client, "stats", None)
    if stats is None:
        return 0
    with contextlib.suppress(Exception):
        value = getattr(stats(), "rate_limited", 0)
        if isinstance(value, int):
            return value
    return 0


def _percentile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    return samples[min(len(samples) - 1, int(q * len(samples)))]
