"""InventoryAdjuster: many producers' stock deltas -> few, full, concurrent requests.

Producers call :meth:`~InventoryAdjuster.submit_nowait` (or ``await submit``) with small
per-variant deltas. The adjuster nets them per key (:mod:`~wixinv_async.core.table`), packs the
nets into increment and decrement requests of up to ``max_batch`` variants
(:mod:`~wixinv_async.core.planner`), sends up to ``max_in_flight`` of them at once through a
writer (``_delivery.py``: the V1 :class:`AtomicWriter` over the client, behind the declared
:class:`BatchWriter` seam), and gives every delta an :class:`Outcome` (``_ledger.py``):
COMMITTED, REJECTED (with Wix's code), IN_DOUBT or CANCELLED.

The parts, composed (no mixin): :class:`InventoryAdjuster` (this module, the facade: producers,
flush, close, reports) over a :class:`~wixinv_async.core.table.DeltaTable` (the only owner of
the pending entries), a ``Dispatcher`` (``_dispatch.py``: what goes out when), a ``Ledger``
(``_ledger.py``: outcomes, counters, hooks) and a :class:`BatchWriter`.

Delivery is at most once unless asked otherwise. A request refused for something some of its
entries caused (400, 404, 428) applied nothing, so it is split and the parts are sent again until
only the offending entries are REJECTED. Failures that provably never reached the server (429,
503, connect errors) are resent, within a :class:`~wixinv_async.settings.BatchPolicy`
(``max_sends``: the most client calls one request's entries can cost). A failure after
sending (timeout, reset, 500/502/504) is never retried by default: its entries become IN_DOUBT
and are listed by :meth:`in_doubt`; ``on_ambiguous="retry"`` resends them instead (at least
once; what then commits has code ``COMMITTED_AFTER_RESEND``: it may have been applied twice).
The decision tables are in :mod:`wixinv_async.core.failures`, the bisection in
:mod:`wixinv_async.core.bisect`.

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
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Literal, Protocol, Self, TypedDict, Unpack

from ..catalog import CatalogVersion
from ..client import InventoryClient
from ..core.table import DeltaTable, Entry
from ..errors import AdjusterFull, ConfigurationError, InvalidInputError
from ..inventory_v3 import REASONS
from ..models import MAX_BATCH
from ..models_v3 import Reason
from ..outcomes import (
    CATALOGS,
    FLUSH_REASONS,
    AdjusterStats,
    BatchReport,
    DeltaKey,
    InDoubtEntry,
    Outcome,
    OutcomeStatus,
    SentBatch,
    SentEntry,
    Settled,
)
from ..settings import BatchPolicy, check_int
from ._catalog import CatalogRouter
from ._delivery import AtomicWriter, BatchWriter, Delivery, InventoryWriter
from ._dispatch import Dispatcher, Limits
from ._ledger import Ledger, OnBatch, OnSend, OnSettle, percentile
from ._ticket import Ticket
from ._v3writer import BulkWriter
from ._witness import LateApply, Witness, WitnessDriver, check_slots

__all__ = [
    "AdjusterStats",
    "AtomicWriter",
    "BatchPolicy",
    "BatchReport",
    "BatchWriter",
    "BulkWriter",
    "CatalogRouter",
    "Delivery",
    "DeltaKey",
    "InDoubtEntry",
    "InventoryAdjuster",
    "InventoryWriter",
    "LateApply",
    "Outcome",
    "OutcomeStatus",
    "SentBatch",
    "SentEntry",
    "Settled",
    "Ticket",
    "Witness",
]

_DEFAULT_POLICY = BatchPolicy()


class _Options(TypedDict, total=False):
    """The keyword options of :meth:`InventoryAdjuster.submit_nowait`, which ``submit`` and
    ``adjust`` pass on as they are."""

    inventory_id: str | None
    location_id: str | None
    sku: str | None
    preorder: bool
    tag: object


_CATALOGS = (CatalogVersion.V1_CATALOG, CatalogVersion.V3_CATALOG)

PositionalSubmit = Callable[[str | None, str | None, str | None, bool, int, object], Ticket]
"""``(product_id, inventory_id, variant_id, preorder, delta, tag) -> Ticket``: see
:meth:`InventoryAdjuster.positional_submit`."""


class PositionalSink(Protocol):
    """What :meth:`InventoryAdjuster.positional_sink` gives: its ``submit`` is
    :meth:`InventoryAdjuster.positional_submit`."""

    def submit(
        self,
        product_id: str | None,
        inventory_id: str | None,
        variant_id: str | None,
        preorder: bool,
        delta: int,
        tag: object,
        /,
    ) -> Ticket: ...


class InventoryAdjuster:
    """Coalesces per-variant deltas from many producers into few, full, concurrent requests.

    ``client``: an :class:`InventoryWriter` (an ``InventoryClient``), delivered by the V1
    :class:`AtomicWriter`; or ``writer=`` any :class:`BatchWriter` instead (exactly one).
    ``max_batch``: variants per request (1..300). ``linger``: seconds the oldest pending delta may
    wait for company. ``max_in_flight``: concurrent requests. ``max_pending``: distinct keys
    pending before a new key waits (``submit``) or is refused (``submit_nowait``).
    ``net_opposite_signs=False`` keeps increments and decrements apart. ``on_ambiguous``:
    ``"report"`` (IN_DOUBT, at most once) or ``"retry"`` (resend, at least once).
    ``batch_policy``: the adjuster's own resends (:class:`BatchPolicy`). ``on_send`` is awaited
    right before every request goes on the wire (for an ``InventoryClient``, once its pacing
    slot is granted; bisection parts and resends too); if it raises, the request is not sent and
    its entries are REJECTED with code ``ON_SEND_FAILED``. ``on_settle`` is called as each
    request's entries (a bisection part's, a refused entry) get their outcome; ``on_batch`` once
    a planned batch's entries all have outcomes. ``pace``: the event-loop time before which
    no request can leave (e.g. :meth:`~wixinv_async.transport.SiteLimiter.next_slot`); until
    then a batch short of ``max_batch`` is held and keeps filling instead of being cut on
    ``linger`` and queueing behind the limiter (``None``: cut on ``linger`` alone).

    With an ``InventoryClient``, batches go to the writer of the site's catalog (the catalog
    router, ``_catalog.py``): the V1 :class:`AtomicWriter` or the V3 :class:`BulkWriter`. The
    catalog is detected before the first batch (``catalog=``: assume this one instead, until a
    wrong-catalog refusal says otherwise) and again after a wrong-catalog 428, whose refused
    entries are re-planned for the other writer. ``restrict_inventory`` (V3 decrements: no
    stock below zero, Wix's default) and ``reason`` (``"ORDER"``, ``"MANUAL"``,
    ``"REVERT_INVENTORY_CHANGE"``) are sent with every V3 bulk call.

    ``witness``: resolve ambiguous failures by a witness entry in every request (a
    :class:`Witness`, with a ``client`` that is an ``InventoryClient``; ``max_in_flight`` at
    most its variants; ``max_batch`` at most 299, the witness taking the 300th place; see
    ``_witness.py`` and the README's "Witness" section).
    """

    def __init__(
        self,
        client: InventoryWriter | None = None,
        *,
        writer: BatchWriter | None = None,
        max_batch: int = MAX_BATCH,
        linger: float = 0.05,
        max_in_flight: int = 4,
        max_pending: int = 100_000,
        net_opposite_signs: bool = True,
        on_ambiguous: Literal["report", "retry"] = "report",
        batch_policy: BatchPolicy = _DEFAULT_POLICY,
        on_send: OnSend | None = None,
        on_settle: OnSettle | None = None,
        on_batch: OnBatch | None = None,
        restrict_inventory: bool = True,
        reason: Reason | None = None,
        catalog: CatalogVersion | None = None,
        pace: Callable[[], float] | None = None,
        witness: Witness | None = None,
    ) -> None:
        limits = _check_settings(max_batch, linger, max_in_flight, max_pending, on_ambiguous)
        limits = limits._replace(pace=pace)
        if not isinstance(restrict_inventory, bool):
            raise ConfigurationError(
                f"restrict_inventory must be a bool, got {restrict_inventory!r}"
            )
        if catalog is not None and catalog not in _CATALOGS:
            raise ConfigurationError(
                f"catalog must be V1_CATALOG, V3_CATALOG or None, got {catalog!r}"
            )
        if reason is not None and reason not in REASONS:
            raise ConfigurationError(f"reason must be one of {sorted(REASONS)}, got {reason!r}")
        self._on_batch = on_batch
        self._witness = self._witness_driver(witness, client, writer, max_in_flight)
        if witness is not None:
            max_batch = min(max_batch, MAX_BATCH - 1)
            limits = limits._replace(max_batch=max_batch)
        if (client is None) == (writer is None):
            raise ConfigurationError("give a client or a writer (exactly one)")
        if not isinstance(batch_policy, BatchPolicy):
            raise ConfigurationError(f"batch_policy must be a BatchPolicy, got {batch_policy!r}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._table = DeltaTable(
            net_opposite_signs=bool(net_opposite_signs),
            max_pending=max_pending,
            factory=Ticket,
            start=self._start,
        )
        self._ledger = Ledger(
            self._table,
            on_send=on_send,
            on_settle=on_settle,
            on_batch=on_batch,
            report_error=self._report_error,
            wake=self._wake,
        )
        self._router: CatalogRouter | None = None
        if writer is None:
            assert client is not None
            writer = AtomicWriter(
                client,
                policy=batch_policy,
                retry_ambiguous=on_ambiguous == "retry",
                report_error=self._report_error,
                witness=self._witness,
            )
            if isinstance(client, InventoryClient):  # both catalogs' calls: route per catalog
                v3 = BulkWriter(
                    client,
                    policy=batch_policy,
                    restrict_inventory=restrict_inventory,
                    reason=reason,
                    report_error=self._report_error,
                )
                table = self._table
                writer = self._router = CatalogRouter(
                    client,
                    writer,
                    v3,
                    report_error=self._report_error,
                    catalog=catalog,
                    v3_targets=lambda: table.v3_targets,
                )
        self._writer = writer
        self._dispatcher = Dispatcher(self._table, self._ledger, writer, limits)
        self._table.wake = self._dispatcher.wake.set
        self._max_batch = max_batch

    def __repr__(self) -> str:
        state = "closing" if self._dispatcher.closing else "open"
        return (
            f"<InventoryAdjuster {state} pending={len(self._table)}"
            f" in_flight={self._dispatcher.in_flight} requests={self._ledger.counts['requests']}>"
        )

    # --- producers -----------------------------------------------------------------------

    def submit_nowait(
        self,
        product_id: str | None,
        variant_id: str | None,
        delta: int,
        *,
        inventory_id: str | None = None,
        location_id: str | None = None,
        sku: str | None = None,
        preorder: bool = False,
        tag: object = None,
    ) -> Ticket:
        """Add a delta and return its ticket at once; raises :class:`AdjusterFull` when the delta
        needs a new key and ``max_pending`` keys are pending, :class:`AdjusterClosed` after close
        and :class:`InvalidInputError` for bad input (changing nothing).

        ``inventory_id``: on V1 an inventory id, on V3 an inventory item id. ``location_id``
        (V3): the location's stock (``None``: the site's default location). ``sku`` (V3):
        instead of ``product_id`` and ``variant_id`` (give ``None`` for both). On a site known to
        run Catalog V1, a ``location_id`` or a ``sku`` raises InvalidInputError, and so does a
        delta on the witness product (``witness=``)."""
        if self._witness is not None:
            self._witness.refuse_target(product_id, inventory_id)
        if location_id is None and sku is None:
            # The one submit path is the table's; its factory is Ticket.
            return self._table.submit(  # type: ignore[return-value]
                product_id, inventory_id, variant_id, preorder, delta, tag
            )
        self._check_v3_only(location_id, sku)
        return self._table.submit(  # type: ignore[return-value]
            product_id, inventory_id, variant_id, preorder, delta, tag, location_id, sku
        )

    def positional_submit(self) -> PositionalSubmit:
        """:meth:`submit_nowait` for deltas without a ``location_id`` or a ``sku``, every field
        by position: ``(product_id, inventory_id, variant_id, preorder, delta, tag)``, with the
        same checks, errors and tickets. For a caller that forwards many deltas (the hub's
        ``submit_nowait``): without a witness it is the delta table's own submit, so a delta
        costs one Python call less."""
        return self.positional_sink().submit

    def positional_sink(self) -> PositionalSink:
        """The object whose ``submit`` is :meth:`positional_submit`, for a caller that keeps it:
        ``sink.submit(...)`` is a method call, which CPython makes cheaper than a call of a
        bound method kept aside. Without a witness it is the delta table."""
        if self._witness is None:
            return self._table  # type: ignore[return-value]  # its factory is Ticket
        return _CheckedSink(self)

    def _check_v3_only(self, location_id: str | None, sku: str | None) -> None:
        router = self._router
        if router is None or router.known is not CatalogVersion.V1_CATALOG:
            return
        if location_id is not None:
            raise InvalidInputError(
                "location_id", location_id, "the site runs Catalog V1, which has one location"
            )
        raise InvalidInputError(
            "sku", sku, "the site runs Catalog V1: submit by product_id and variant_id"
        )

    async def submit(
        self,
        product_id: str | None,
        variant_id: str | None,
        delta: int,
        **options: Unpack[_Options],
    ) -> Ticket:
        """Add a delta (options as for :meth:`submit_nowait`), waiting only while it needs a new
        key and ``max_pending`` are pending."""
        space = self._dispatcher.space
        while True:
            try:
                return self.submit_nowait(product_id, variant_id, delta, **options)
            except AdjusterFull:
                space.clear()
                await space.wait()

    async def adjust(
        self,
        product_id: str | None,
        variant_id: str | None,
        delta: int,
        **options: Unpack[_Options],
    ) -> Outcome:
        """Submit a delta (options as for :meth:`submit_nowait`) and wait for its outcome."""
        return await (await self.submit(product_id, variant_id, delta, **options))

    # --- flush, close --------------------------------------------------------------------

    async def flush(self) -> None:
        """Send everything pending now and wait until every delta submitted so far has an
        outcome."""
        if self._loop is None:
            return
        dispatcher = self._dispatcher
        dispatcher.flushes += 1
        dispatcher.wake.set()
        try:
            waiting: deque[Entry] = deque(
                e for run in dispatcher.runs.values() for e in run.entries
            )
            waiting.extend(self._table.pending())
            while waiting:  # entries settle roughly in this order: one await per batch or so
                if waiting[0].outcome is not None:
                    waiting.popleft()
                else:
                    await waiting[0]  # type: ignore[misc]  # a Ticket
        finally:
            dispatcher.flushes -= 1

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
        dispatcher = self._dispatcher
        dispatcher.closing, self._table.open = True, False
        dispatcher.space.set()
        if abort:
            dispatcher.cancel_pending()
        task = dispatcher.task
        if task is None:
            dispatcher.cancel_pending()
            return
        dispatcher.wake.set()
        try:
            done, _ = await asyncio.wait([task], timeout=timeout)
        except asyncio.CancelledError:
            await dispatcher.kill()
            raise
        if not done:
            await dispatcher.kill()
        elif not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    def start(self) -> None:
        """Bind to the running loop and start the dispatcher now, rather than on the first
        delta (``async with`` does this too). Its task copies the context this runs in: an
        :class:`~wixinv_async.hub.InventoryHub` starts each site's adjuster in a context
        naming the site."""
        self._start()

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

    # --- reports -------------------------------------------------------------------------

    def in_doubt(self) -> list[InDoubtEntry]:
        """Entries whose requests may or may not have been applied, for reconciliation: every
        one since the adjuster started, less those handed over by :meth:`take_in_doubt`."""
        return list(self._ledger.doubts)

    def take_in_doubt(self) -> list[InDoubtEntry]:
        """Hand over the in-doubt entries listed so far and forget them: a long-running service
        passes them to its reconciliation now and then, and the list stays bounded.
        ``stats().in_doubt`` still counts every one."""
        ledger = self._ledger
        taken, ledger.doubts = ledger.doubts, []
        return taken

    def stats(self) -> AdjusterStats:
        """A snapshot of the counters."""
        ledger, dispatcher = self._ledger, self._dispatcher
        c = ledger.counts
        pending = [*self._table.pending()]
        flying = [e for run in dispatcher.runs.values() for e in run.entries if not e.outcome]
        done = c["committed"] + c["rejected"] + c["in_doubt"] + c["cancelled"]
        submitted = done + sum(e.count for e in pending) + sum(e.count for e in flying)
        samples = sorted(ledger.latency)
        requests = c["requests"]
        return AdjusterStats(
            submitted=submitted,
            coalesced=submitted - ledger.entries_done - len(pending) - len(flying),
            netted_to_zero=c["noops"],
            requests=requests,
            entries_sent=c["entries_sent"],
            batch_fill=c["entries_sent"] / requests / self._max_batch if requests else 0.0,
            batches_by_reason=MappingProxyType({r: c[r] for r in FLUSH_REASONS}),
            bisect_requests=c["bisect_requests"],
            in_flight=dispatcher.in_flight,
            pending=len(self._table),
            committed=c["committed"],
            rejected=c["rejected"],
            in_doubt=c["in_doubt"],
            cancelled=c["cancelled"],
            rate_limited=self._writer.rate_limited(),
            retries=c["retries"],
            latency_p50=percentile(samples, 0.50),
            latency_p99=percentile(samples, 0.99),
            committed_after_resend=c["committed_after_resend"],
            requests_by_catalog=_by_catalog(c, "requests_"),
            batches_by_catalog=_by_catalog(c, "batches_"),
            committed_by_catalog=_by_catalog(c, "committed_"),
            sku_searches=c["sku_searches"],
            witness=None if self._witness is None else self._witness.stats(),
        )

    async def verify_witness(self) -> list[LateApply]:
        """Read every witness slot not in use and check it: late applies of requests resolved
        NOT_APPLIED (and edits by someone else) are reported (stats, an ERROR log record,
        ``on_batch``) and returned. Call it after a run, or now and then in a service."""
        if self._witness is None:
            raise ConfigurationError("this adjuster has no witness")
        return await self._witness.verify()

    # --- the witness ---------------------------------------------------------------------

    def _witness_driver(
        self,
        witness: Witness | None,
        client: InventoryWriter | None,
        writer: BatchWriter | None,
        max_in_flight: int,
    ) -> WitnessDriver | None:
        if witness is None:
            return None
        if not isinstance(witness, Witness):
            raise ConfigurationError(f"witness must be a Witness, got {witness!r}")
        if writer is not None or not isinstance(client, InventoryClient):
            raise ConfigurationError("a witness needs client= an InventoryClient (V1 writes)")
        check_slots(witness, max_in_flight)
        return WitnessDriver(witness, client, self._late_applied)

    def _late_applied(self, late: LateApply) -> None:
        """A late apply proven by a witness read: the requests it names, resolved NOT_APPLIED
        before, are reported again through ``on_batch``, COMMITTED with code APPLIED_LATE."""
        if self._on_batch is None:
            return
        for suspect in late.requests:
            entries = tuple(e for e in suspect.entries if isinstance(e, SentEntry))
            outcome = Outcome(
                OutcomeStatus.COMMITTED,
                "APPLIED_LATE",
                "resolved NOT_APPLIED by witness, then applied late",
            )
            report = BatchReport(
                batch_id=suspect.request_id,
                kind="increment" if suspect.step > 0 else "decrement",
                reason="flush",
                entries=entries,
                outcomes=(outcome,) * len(entries),
                requests=0,
                seconds=0.0,
            )
            try:
                self._on_batch(report)
            except Exception as exc:
                self._report_error("on_batch callback failed", exc)

    # --- plumbing ------------------------------------------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop and start the dispatcher (on the first key or on enter)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._table.clock = loop
            if not self._dispatcher.closing:
                self._dispatcher.start(loop)
        return loop

    def _wake(self) -> None:
        self._dispatcher.wake.set()

    def _report_error(self, message: str, exc: BaseException) -> None:
        if self._loop is not None:
            self._loop.call_exception_handler({"message": message, "exception": exc})


class _CheckedSink:
    """The positional sink of an adjuster with a witness: through ``submit_nowait``, which
    refuses deltas on the witness product."""

    __slots__ = ("_adjuster",)

    def __init__(self, adjuster: InventoryAdjuster) -> None:
        self._adjuster = adjuster

    def submit(
        self,
        product_id: str | None,
        inventory_id: str | None,
        variant_id: str | None,
        preorder: bool,
        delta: int,
        tag: object,
    ) -> Ticket:
        return self._adjuster.submit_nowait(
            product_id, variant_id, delta, inventory_id=inventory_id, preorder=preorder, tag=tag
        )


def _check_settings(
    max_batch: int, linger: float, max_in_flight: int, max_pending: int, on_ambiguous: str
) -> Limits:
    """The adjuster's settings; raises ConfigurationError naming the bad one."""
    check_int("max_batch", max_batch, 1, MAX_BATCH)
    check_int("max_in_flight", max_in_flight, 1)
    check_int("max_pending", max_pending, 1)
    if isinstance(linger, bool) or not isinstance(linger, int | float) or not linger >= 0:
        raise ConfigurationError(f"linger must be a number of seconds >= 0, got {linger!r}")
    if on_ambiguous not in ("report", "retry"):
        raise ConfigurationError(f'on_ambiguous must be "report" or "retry", got {on_ambiguous!r}')
    return Limits(max_batch, float(linger), max_in_flight, max_pending)


def _by_catalog(counts: Mapping[str, int], prefix: str) -> Mapping[str, int]:
    return MappingProxyType({catalog: counts[prefix + catalog] for catalog in CATALOGS})
