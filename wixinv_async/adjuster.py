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

Bisection cost, measured against a fake server (40 seeds, bad entries at random places):
without a hint, a 300-entry batch with 1 bad entry takes 12.5 extra requests on average (at
most 14), with 2 bad 22.5, with 5 bad 49, with 30 bad 187: about ``1.5 k log2(n / k)``. When a
first half commits, the other half is known to hold the culprit and is split without being sent
whole; a lone suspect is always sent alone, so a REJECTED entry was refused by the server
itself. When the server names the offending entry (the emulator's ``applicationError.data
.index``, or a ``decrementData[i]`` field violation), it is rejected on the server's word and
the rest is resent: exactly one extra request per bad entry.

Keys are busy while an entry of theirs is in flight: their new deltas collect in a fresh entry
that goes in a later request, so one key's requests never overtake each other.

A positive delta with ``preorder=True`` nets with that variant's preorder decrements and, if
the preorder key nets positive, goes out as a plain increment (Wix's increment has no preorder
flag).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Generator
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self

from ._delivery import _CANCELLED, InventoryWriter, _Delivery, _Run, takes_validate
from .core.batching import (
    FLUSH_REASONS,
    AdjusterStats,
    BatchReport,
    FlushReason,
    InDoubtEntry,
    Planned,
    SentBatch,
    SentEntry,
    check_settings,
    percentile,
    select,
)
from .core.coalesce import (
    MAX_AMOUNT,
    NOOP,
    DeltaKey,
    DeltaTable,
    Entry,
    Key,
    Outcome,
    OutcomeStatus,
    check_delta,
    match_guid,
)
from .errors import (
    AdjusterClosed,
    AdjusterFull,
    InvalidInputError,
)
from .models import MAX_BATCH, MAX_ID_LENGTH

__all__ = [
    "AdjusterStats",
    "BatchReport",
    "DeltaKey",
    "InDoubtEntry",
    "InventoryAdjuster",
    "InventoryWriter",
    "Outcome",
    "OutcomeStatus",
    "SentBatch",
    "SentEntry",
    "Ticket",
]

_LATENCY_SAMPLES = 10_000
"""The latency percentiles are over the latest this many entries sent (a cheap stats())."""
_NEVER = float("inf")
_MIN_AMOUNT = -MAX_AMOUNT
"""The most negative delta (a constant: ``-MAX_AMOUNT`` would be computed on every submit)."""


class Ticket(Entry):
    """A submitted delta's claim on its outcome; ``await ticket`` gives the :class:`Outcome`.

    Deltas merged into one entry share one ticket, so a ticket costs nothing to hand out; the
    future behind it is made only when someone awaits it.
    """

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


class InventoryAdjuster(_Delivery):
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
        check_settings(max_batch, linger, max_in_flight, max_pending, on_ambiguous)
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
        self._busy = self._table.busy
        self._ready = self._table.ready
        self._accepting = False
        """Whether a new key may take the inline path: the loop is known and we are open."""
        self._wake_at: float = 1
        """A kind's ready count at which a new key wakes the dispatcher: 1 while it is idle,
        ``max_batch`` while it waits for a timer or a slot, never once it has been woken."""
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
        self._entries_done = 0
        self._tagged = False
        """Whether any delta came with a tag: entries' tags are then dropped once reported."""
        self._counts: Counter[str] = Counter()
        self._by_reason: Counter[str] = Counter()
        self._latency: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self._doubts: list[InDoubtEntry] = []
        self._rng = random.Random()
        self._client_429_base = _client_rate_limited(client)
        # Entries are built from deltas check_delta accepted, with nets kept within
        # ±MAX_AMOUNT: a client that can skip re-checking them (InventoryClient) is told so.
        self._trusted: dict[str, Any] = {"validate": False} if takes_validate(client) else {}
        if not self._net:  # keep the netting hot path free of the mode test
            self.submit_nowait = self._submit_nowait_apart  # type: ignore[method-assign]

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
            key = (product_id, inventory_id, variant_id, preorder)
            entries = self._open
            entry = entries.get(key)
            if entry is not None:  # a known key: its ids were checked when it was new
                old = entry.net
                new = old + delta
                if _MIN_AMOUNT <= new <= MAX_AMOUNT:
                    if old * new > 0:
                        # The hot path: same sign, still in range, no count to update.
                        entry.net = new
                        entry.count += 1
                        if tag is not None:
                            self._tagged = True
                            tags = entry.tags
                            if tags is None:
                                entry.tags = [tag]
                            else:
                                tags.append(tag)
                        return entry  # type: ignore[return-value]
                    if tag is None and _MIN_AMOUNT <= delta <= MAX_AMOUNT:
                        # The net changes sign (or leaves or reaches zero): common in a mixed
                        # stream, so done here as _merge_slow would, without its calls.
                        entry.net = new
                        entry.count += 1
                        ready = self._ready
                        if key not in self._busy:  # move it between the ready counts
                            ready[(old > 0) - (old < 0)] -= 1
                            ready[(new > 0) - (new < 0)] += 1
                        batch = self._max_batch
                        if self._idle or ready[1] >= batch or ready[-1] >= batch:
                            self._wake.set()
                        return entry  # type: ignore[return-value]
                return self._merge_slow(entry, delta, tag)
            if (
                inventory_id is None
                and preorder is False
                and tag is None
                and _MIN_AMOUNT <= delta <= MAX_AMOUNT
                and type(product_id) is str
                and 0 < len(product_id) <= MAX_ID_LENGTH
                and product_id.isascii()  # other text is checked on the slow path
                and type(variant_id) is str
                and match_guid(variant_id) is not None
                and len(entries) < self._max_pending
                and self._accepting
            ):
                # A new key of the common shape (by product id, not a preorder, untagged),
                # checked inline as check_delta would, inserted as DeltaTable.insert would.
                # loop.time() looked up each time: tests and users may patch it while we run.
                entry = Ticket(key, self._loop.time(), delta, 1)  # type: ignore[union-attr]
                entries[key] = entry
                if key not in self._busy:
                    ready = self._ready
                    sign = 1 if delta > 0 else -1
                    ready[sign] = count = ready[sign] + 1
                    if count >= self._wake_at:
                        self._wake_at = _NEVER
                        self._wake.set()
                return entry
        return self._submit_slow(product_id, inventory_id, variant_id, preorder, delta, tag)

    def _submit_nowait_apart(
        self,
        product_id: str | None,
        variant_id: str,
        delta: int,
        *,
        inventory_id: str | None = None,
        preorder: bool = False,
        tag: object = None,
    ) -> Ticket:
        """``submit_nowait`` with ``net_opposite_signs=False``: the sign is part of the key."""
        if type(delta) is int and delta:
            key = (product_id, inventory_id, variant_id, preorder, delta > 0)
            entry = self._open.get(key)
            if entry is not None and -MAX_AMOUNT <= entry.net + delta <= MAX_AMOUNT:
                self._tagged |= tag is not None
                entry.merge(delta, tag)  # same sign by construction: no count to update
                return entry  # type: ignore[return-value]
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

    def _merge_slow(self, head: Entry, delta: int, tag: object) -> Ticket:
        """A delta for a pending key that changes the sign of its head entry (``DeltaTable.add``
        done inline, as that is common in a mixed stream) or would take it out of range."""
        if not -MAX_AMOUNT <= delta <= MAX_AMOUNT:
            raise InvalidInputError("delta", delta, f"must be nonzero and within ±{MAX_AMOUNT}")
        self._tagged |= tag is not None
        old = head.net
        new = old + delta
        if not -MAX_AMOUNT <= new <= MAX_AMOUNT:  # a follow-up entry takes it
            assert self._loop is not None
            return self._add(head.key, delta, self._loop.time(), tag)
        head.merge(delta, tag)
        ready = self._ready
        if head.key not in self._busy:  # move it between the ready counts
            ready[(old > 0) - (old < 0)] -= 1
            ready[(new > 0) - (new < 0)] += 1
        if self._idle or ready[1] >= self._max_batch or ready[-1] >= self._max_batch:
            self._wake.set()
        return head  # type: ignore[return-value]

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
        check_delta(product_id, inventory_id, variant_id, preorder, delta)
        self._tagged |= tag is not None
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
            self._wake.set()  # a full table sends what is ready at once (see _dispatch_loop)
            raise AdjusterFull(f"{self._max_pending} keys are pending")
        entry = self._table.insert(key, delta, now, tag)
        if self._idle or self._ready[1 if delta > 0 else -1] >= self._max_batch:
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
        self._closing, self._accepting = True, False
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
        for entry in self._table.pop_all():
            self._resolve(entry, _CANCELLED)
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
        """Entries whose requests may or may not have been applied, for reconciliation: every
        one since the adjuster started, less those handed over by :meth:`take_in_doubt`."""
        return list(self._doubts)

    def take_in_doubt(self) -> list[InDoubtEntry]:
        """Hand over the in-doubt entries listed so far and forget them: a long-running service
        passes them to its reconciliation now and then, and the list stays bounded.
        ``stats().in_doubt`` still counts every one."""
        taken, self._doubts = self._doubts, []
        return taken

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
            coalesced=submitted - self._entries_done - len(pending) - len(flying),
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
            if self._client_429_base is None
            else (_client_rate_limited(self._client) or 0) - self._client_429_base,
            retries=c["retries"],
            latency_p50=percentile(samples, 0.50),
            latency_p99=percentile(samples, 0.99),
        )

    # --- the dispatcher ------------------------------------------------------------------

    def _start(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._accepting = not self._closing
            self._dispatcher = loop.create_task(self._dispatch(), name="adjuster-dispatch")
        return loop.time()

    async def _dispatch(self) -> None:
        try:
            await self._dispatch_loop()
        except Exception as exc:
            # A bug must not leave tickets pending forever: refuse new deltas, cancel the
            # pending ones, let requests in flight settle (close() waits for that, within its
            # deadline), and let close() raise it.
            self._report_error("the adjuster's dispatcher failed", exc)
            self._closing, self._accepting = True, False
            self._open = {}
            self._space.set()
            self._cancel_pending()
            if self._runs:
                await asyncio.wait(list(self._runs))
            raise

    async def _dispatch_loop(self) -> None:
        table, loop = self._table, asyncio.get_running_loop()
        while True:
            self._wake.clear()
            drain: FlushReason | None = "close" if self._closing else None
            if drain is None and self._flushes:
                drain = "flush"
            slots = self._max_in_flight - len(self._runs)
            deadline = None
            if slots > 0 or drain is not None:
                # A full table sends what is ready without waiting for the linger: producers
                # wait for space, and a full batch may never form (max_pending below max_batch,
                # or the pending keys split between increments and decrements).
                crowded = len(table.entries) >= self._max_pending
                chosen = select(
                    table,
                    now=loop.time(),
                    linger=0.0 if crowded else self._linger,
                    max_batch=self._max_batch,
                    slots=max(slots, 0),
                    drain=drain,
                )
                self._launch(chosen.batches, chosen.noops, loop)
                if drain is not None and chosen.noops and any(table.ready):
                    self._wake.set()  # a zero net's follow-up became ready: drain it too
                slots -= len(chosen.batches)
                deadline = chosen.deadline if slots > 0 else None
            if self._closing and not table.entries and not self._runs:
                return
            # Idle: a new key must wake the dispatcher (nothing else will).
            self._idle = drain is not None or (slots > 0 and deadline is None)
            self._wake_at = 1 if self._idle else self._max_batch
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
            self._resolve(entry, NOOP)
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
        run = self._runs.pop(task, None)
        self._wake.set()
        if task.cancelled():
            if run is not None and any(e.outcome is None for e in run.planned.entries):
                self._finish_unstarted(run)
        elif task.exception() is not None:
            self._report_error("adjuster batch failed", task.exception())


def _client_rate_limited(client: object) -> int | None:
    """The 429 answers the client counted, every one it raised included (``None``: it does
    not count them, and the adjuster counts those that surface)."""
    stats = getattr(client, "stats", None)
    if stats is None:
        return None
    with contextlib.suppress(Exception):
        value = getattr(stats(), "rate_limited", None)
        if isinstance(value, int):
            return value
    return None
