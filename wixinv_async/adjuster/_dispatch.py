"""The dispatcher: one task that turns the table's ready entries into batches in flight.

It waits (for a wake-up from the table, a linger deadline or a free slot), asks the planner
what to send now (:func:`~wixinv_async.core.planner.select`), and runs each batch as a task
through the :class:`~wixinv_async.adjuster._delivery.BatchWriter`, at most ``max_in_flight``
at once. Outcomes are the ledger's business; what to send is the planner's.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import NamedTuple

from ..core.planner import Planned, select
from ..core.table import DeltaTable, Entry
from ..outcomes import NOOP, FlushReason
from ._delivery import BatchWriter
from ._ledger import CANCELLED, BatchRun, Ledger

__all__ = ["Dispatcher", "Limits"]

_HOLD_SLACK = 0.002
"""A slot this close is due: the loop's timers may fire up to its clock resolution early."""


class Limits(NamedTuple):
    """The dispatcher's settings (validated by the adjuster)."""

    max_batch: int
    linger: float
    max_in_flight: int
    max_pending: int
    pace: Callable[[], float] | None = None
    """The loop time before which no request of this adjuster can leave (its site's next
    pacing slot), or ``None``: a short batch is not cut before then, so it keeps filling."""


class Dispatcher:
    """Plans batches from the table and delivers each through the writer."""

    def __init__(
        self, table: DeltaTable, ledger: Ledger, writer: BatchWriter, limits: Limits
    ) -> None:
        self._table = table
        self._ledger = ledger
        self._writer = writer
        self._limits = limits
        self.wake = asyncio.Event()
        self.space = asyncio.Event()
        """Set while a new key has room (``submit`` waits for it)."""
        self._slots = asyncio.Semaphore(limits.max_in_flight)
        self.runs: dict[asyncio.Task[None], BatchRun] = {}
        self.task: asyncio.Task[None] | None = None
        self.closing = False
        self.flushes = 0
        self.in_flight = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.task = loop.create_task(self._main(), name="adjuster-dispatch")

    async def _main(self) -> None:
        try:
            await self._loop()
        except Exception as exc:
            # A bug must not leave tickets pending forever: refuse new deltas, cancel the
            # pending ones, let requests in flight settle (close() waits for that, within its
            # deadline), and let close() raise it.
            self._ledger.report_error("the adjuster's dispatcher failed", exc)
            self.closing, self._table.open = True, False
            self.space.set()
            self.cancel_pending()
            if self.runs:
                await asyncio.wait(list(self.runs))
            raise

    async def _loop(self) -> None:
        table, loop, limits = self._table, asyncio.get_running_loop(), self._limits
        while True:
            self.wake.clear()
            drain: FlushReason | None = "close" if self.closing else None
            if drain is None and self.flushes:
                drain = "flush"
            slots = limits.max_in_flight - len(self.runs)
            deadline = None
            if slots > 0 or drain is not None:
                # A full table sends what is ready without waiting for the linger: producers
                # wait for space, and a full batch may never form (max_pending below max_batch,
                # or the pending keys split between increments and decrements).
                now = loop.time()
                crowded = len(table.entries) >= limits.max_pending
                linger = 0.0 if crowded else limits.linger
                # Until the site's next slot a short batch would only queue behind the
                # limiter: hold it (only full batches go) and let it keep filling.
                hold = limits.pace() - _HOLD_SLACK if limits.pace and drain is None else now
                chosen = select(
                    table,
                    now=now,
                    linger=math.inf if hold > now and not crowded else linger,
                    max_batch=limits.max_batch,
                    slots=max(slots, 0),
                    drain=drain,
                )
                self._launch(chosen.batches, chosen.noops, loop)
                if drain is not None and chosen.noops and any(table.ready):
                    self.wake.set()  # a zero net's follow-up became ready: drain it too
                slots -= len(chosen.batches)
                deadline = chosen.deadline if slots > 0 else None
                if deadline is not None and hold > now and not crowded:
                    deadline = hold  # then the linger rule applies again
            if self.closing and not table.entries and not self.runs:
                return
            # Idle (a free slot, no timer): a new key must wake us, nothing else will.
            idle = drain is not None or (slots > 0 and deadline is None)
            table.wake_at = 1 if idle else limits.max_batch
            timer = loop.call_at(deadline, self.wake.set) if deadline is not None else None
            await self.wake.wait()
            if timer is not None:
                timer.cancel()

    def _launch(
        self, batches: list[Planned], noops: list[Entry], loop: asyncio.AbstractEventLoop
    ) -> None:
        ledger = self._ledger
        for entry in noops:
            ledger.counts["noops"] += 1
            ledger.resolve_unsent(entry, NOOP)
        for planned in batches:
            ledger.counts[planned.reason] += 1
            run = ledger.open(planned)
            task = loop.create_task(self._run(run), name=f"adjuster-batch-{run.batch_id}")
            self.runs[task] = run
            task.add_done_callback(self._done)
        if (batches or noops) and len(self._table) < self._limits.max_pending:
            self.space.set()

    async def _run(self, run: BatchRun) -> None:
        try:
            async with self._slots:
                self.in_flight += 1
                try:
                    await self._writer.write(run.entries, run)
                finally:
                    self.in_flight -= 1
        except asyncio.CancelledError:
            run.abandon()
            raise
        except Exception as exc:
            self._ledger.report_error("adjuster batch failed", exc)
            run.fail(exc)
        finally:
            run.fail_unsettled()
            self._ledger.finish(run)

    def _done(self, task: asyncio.Task[None]) -> None:
        run = self.runs.pop(task, None)
        if task.cancelled() and run is not None and not run.finished:
            # Cancelled before its first step: _run never ran, and nothing of it was sent.
            run.abandon()
            self._ledger.finish(run)
        table = self._table
        if table.entries or self.closing or self.flushes:
            self.wake.set()
        else:
            table.wake_at = 1  # a slot is free and nothing waits: the next new key wakes us

    def cancel_pending(self) -> None:
        """Resolve every pending delta, and every batch not yet being sent, as CANCELLED."""
        for entry in self._table.pop_all():
            self._ledger.resolve_unsent(entry, CANCELLED)
        for task, run in self.runs.items():
            if not run.requests and not run.wire:
                task.cancel()
        self.wake.set()

    async def kill(self) -> None:
        """Cancel every request still running and the dispatcher, and wait until all settle."""
        self.cancel_pending()
        tasks: list[asyncio.Task[None]] = list(self.runs)
        if self.task is not None:
            tasks.append(self.task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self.cancel_pending()
