"""The V3 stress proof, shared by ``test_v3_stress.py`` (scaled) and
``benchmarks/stress_catalogs.py`` (the issue's full size: 64 producers x 10,000 deltas).

Producers submit random deltas (hot targets, any target, unknown variants, an unknown SKU,
decrements past zero on low-stock items, some by SKU, some at a second location) through one
:class:`InventoryAdjuster` to an emulator with faults on: 429, 5xx before applying, resets and
stalls after applying. Then :func:`check` proves, from the emulator's own journal: every ticket
has an outcome; every COMMITTED entry is in the journal once; every journaled change was
COMMITTED or IN_DOUBT (nothing applied twice or unasked), so the in-doubt entries are exactly
those the journal may or may not show; each item's stock is its initial stock plus exactly
what the journal applied. A failed check raises :class:`StressFailure` (an ``AssertionError``
that survives ``python -O``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from wixinv_async.adjuster import (
    AdjusterStats,
    BatchReport,
    InventoryAdjuster,
    OutcomeStatus,
    Ticket,
)
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule
from wixinv_async.outcomes import DeltaKey

C, R, D, X = (
    OutcomeStatus.COMMITTED,
    OutcomeStatus.REJECTED,
    OutcomeStatus.IN_DOUBT,
    OutcomeStatus.CANCELLED,
)
FAULTS = FaultRule(
    rate_limited=0.05,
    error_503=0.04,
    error_500=0.02,
    reset_after=0.03,
    error_504=0.02,
    stall_after=0.02,
)


def fault_plan(seed: int) -> FaultPlan:
    """:data:`FAULTS` on every endpoint. A 429 says ``Retry-After: 0``: with the emulator's
    default of 1 s the run's wall time is those sleeps (34 s instead of 1.3 s for 19,200
    deltas), while the client's handling of the 429 and the accounting are the same. A stall
    lasts 5 s, past the client's 0.3 s timeout."""
    return FaultPlan(endpoints={"*": FAULTS}, seed=seed, stall_seconds=5, retry_after=0)


Target = tuple[Any, ...]
"""The positional and keyword arguments of one submit: (product, variant, kwargs)."""
ItemOf = Callable[[DeltaKey], str | None]
"""The inventory item id a delta key names (``None``: no such item)."""
V1Item = Callable[[str, str], str]
"""The inventory item id a V1 journal entry's (product id, variant id) became."""


class StressFailure(AssertionError):
    """A stress check failed: its message says which and with what figures."""


@dataclass(frozen=True, slots=True)
class Size:
    """How big a stress run is."""

    producers: int = 64
    each: int = 300
    """Deltas per producer."""
    max_batch: int = 10
    """Small batches, so that faults hit many requests."""
    products: int = 300
    """Products of 3 variants (at 2 locations on the V3 site)."""
    max_in_flight: int = 4
    seed: int = 77


class StressResult(NamedTuple):
    """What a checked run did (every figure from the emulator's journal or the adjuster)."""

    deltas: int
    seconds: float
    statuses: Counter[str]
    """Tickets by outcome status."""
    codes: Counter[str]
    """REJECTED tickets by code."""
    committed_entries: int
    in_doubt_entries: int
    in_doubt_applied: int
    """In-doubt entries the journal shows applied (the rest were not)."""
    journal_changes: int
    stats: AdjusterStats

    def figures(self) -> dict[str, Any]:
        """The result as flat JSON-ready fields."""
        stats = self.stats
        return {
            "deltas": self.deltas,
            "seconds": round(self.seconds, 1),
            "deltas_per_s": round(self.deltas / self.seconds),
            "tickets": dict(sorted(self.statuses.items())),
            "rejected_codes": dict(sorted(self.codes.items())),
            "committed_entries": self.committed_entries,
            "in_doubt_entries": self.in_doubt_entries,
            "in_doubt_applied": self.in_doubt_applied,
            "journal_changes": self.journal_changes,
            "requests": stats.requests,
            "requests_by_catalog": dict(stats.requests_by_catalog),
            "bisect_requests": stats.bisect_requests,
            "sku_searches": stats.sku_searches,
            "rate_limited_429s": stats.rate_limited,
        }


def require(condition: bool, message: str) -> None:
    """Raise :class:`StressFailure` with ``message`` unless ``condition``."""
    if not condition:
        raise StressFailure(message)


def client_for(emu: Emulator, seed: int) -> InventoryClient:
    retry = RetryPolicy(max_attempts=10, base_delay=0.001, max_delay=0.01, seed=seed)
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    return InventoryClient(auth, base_url=emu.url, rate_limit=None, timeout=0.3, retry=retry)


async def produce(
    adj: InventoryAdjuster,
    targets: list[Target],
    low: list[Target],
    size: Size,
    halfway: asyncio.Event,
) -> list[Ticket]:
    """``size.producers`` producers: hot targets, any target, decrements on low-stock ones."""
    tickets: list[Ticket] = []
    half = size.producers * size.each // 2

    async def one(seed: int) -> None:
        rng = random.Random(seed)
        hot = targets[: max(1, len(targets) // 20)]
        for n in range(size.each):
            roll = rng.random()
            if roll < 0.05:
                args, delta = rng.choice(low), -5
            else:
                args = rng.choice(hot) if roll < 0.5 else rng.choice(targets)
                delta = rng.choice((-3, -2, -1, 1, 2, 5))
            product, variant, kwargs = args
            ticket = await adj.submit(product, variant, delta, **kwargs)
            tickets.append(ticket)
            if len(tickets) >= half:
                halfway.set()
            if n % 50 == 49:  # an order handler waiting for its outcome now and then
                await ticket

    await asyncio.gather(*(one(size.seed + i) for i in range(size.producers)))
    return tickets


def reported(
    reports: list[BatchReport], status: OutcomeStatus, item_of: ItemOf
) -> Counter[tuple[str, int]]:
    """(item id, signed amount) of the reported entries with this status."""
    out: Counter[tuple[str, int]] = Counter()
    for report in reports:
        for entry, outcome in zip(report.entries, report.outcomes, strict=True):
            if outcome.status is not status:
                continue
            item = item_of(entry.key)
            if item is None:  # no such item: it can only have been refused, or never answered
                require(status is not C, f"committed an entry for no item: {entry}")
                item = "missing"
            out[(item, entry.amount)] += 1
    return out


def journal_changes(emu: Emulator, v1_item: V1Item) -> Counter[tuple[str, int]]:
    """(item id, signed amount) of every applied adjust entry, V1 and V3."""
    out: Counter[tuple[str, int]] = Counter()
    for record in emu.journal():
        if record.endpoint in ("incrementInventory", "decrementInventory"):
            sign = 1 if record.endpoint == "incrementInventory" else -1
            for e in record.entries:
                amount = e.get("incrementBy") or e.get("decrementBy")
                out[(v1_item(e["productId"], e["variantId"]), sign * amount)] += 1
        elif record.endpoint.startswith("bulk"):
            for e in record.entries:
                if e["success"]:
                    out[(e["inventoryItemId"], e["change"])] += 1
    return out


class Run(NamedTuple):
    """One finished run, before checking."""

    emu: Emulator
    tickets: list[Ticket]
    reports: list[BatchReport]
    adj: InventoryAdjuster
    seconds: float


def check(run: Run, before: dict[str, int], item_of: ItemOf, v1_item: V1Item) -> StressResult:
    """The proof (see the module doc); the run's figures when it holds."""
    tickets, adj = run.tickets, run.adj
    require(all(t.outcome is not None for t in tickets), "a ticket has no outcome")
    statuses = Counter(t.outcome.status for t in tickets if t.outcome is not None)
    require(statuses[X] == 0, f"{statuses[X]} tickets cancelled")
    for status in (C, D, R):
        require(statuses[status] > 0, f"no {status.name} ticket: the run proves too little")
    committed, doubted = reported(run.reports, C, item_of), reported(run.reports, D, item_of)
    journal = journal_changes(run.emu, v1_item)
    missing = committed - journal
    require(not missing, f"committed entries missing from the journal: {list(missing)[:5]}")
    unasked = journal - committed - doubted
    require(not unasked, f"entries applied twice or unasked: {list(unasked)[:5]}")
    in_doubt = sum(doubted.values())
    require(in_doubt == len(adj.in_doubt()), f"{in_doubt} in doubt, {len(adj.in_doubt())} kept")
    applied: Counter[str] = Counter()
    for (item, amount), times in journal.items():
        applied[item] += amount * times
    after = {r.id: r.quantity for r in run.emu.v3_store().records()}
    wrong = [i for i in before if after[i] != before[i] + applied[i]]
    require(not wrong, f"{len(wrong)} items off initial + journal, e.g. {wrong[:3]}")
    return StressResult(
        deltas=len(tickets),
        seconds=run.seconds,
        statuses=Counter({s.name: n for s, n in statuses.items()}),
        codes=Counter(t.outcome.code or "" for t in tickets if t.outcome and t.outcome.status is R),
        committed_entries=sum(committed.values()),
        in_doubt_entries=in_doubt,
        in_doubt_applied=sum((journal - committed).values()),
        journal_changes=sum(journal.values()),
        stats=adj.stats(),
    )


async def drive(
    emu: Emulator,
    targets: list[Target],
    low: list[Target],
    size: Size,
    during: Callable[[asyncio.Event], Any] | None = None,
) -> Run:
    """Faults on, the producers through one adjuster to the end, faults off."""
    emu.set_faults(fault_plan(size.seed))
    reports: list[BatchReport] = []
    halfway = asyncio.Event()
    client = client_for(emu, size.seed)
    adj = InventoryAdjuster(
        client,
        linger=0.01,
        max_batch=size.max_batch,
        max_in_flight=size.max_in_flight,
        on_batch=reports.append,
    )
    started = time.monotonic()
    async with client, adj:
        side = asyncio.create_task(during(halfway)) if during is not None else None
        tickets = await produce(adj, targets, low, size, halfway)
        if side is not None:
            await side
    seconds = time.monotonic() - started
    emu.set_faults(None)
    return Run(emu, tickets, reports, adj, seconds)


async def run_v3_site(size: Size) -> StressResult:
    """A faulty V3 site: SKU, second-location, unknown-variant and past-zero deltas; checked,
    plus what this scenario must show (its rejection codes, no bisection, no V1 request)."""
    async with Emulator(
        products=size.products, variants_per_product=3, seed=size.seed, catalog="v3", locations=2
    ) as emu:
        store = emu.v3_store()
        default, second = store.default_location, store.locations[1]
        tracked = [r for r in store.records() if r.track is True]
        docs = {d["id"]: d for d in store.items()}
        sku_of = {r.id: docs[r.id]["product"]["variantSku"] for r in tracked}
        targets: list[Target] = []
        for r in tracked:
            if r.location_id == default:
                targets.append(("p", r.variant_id, {}))
                if len(targets) % 7 == 0:
                    targets.append((None, None, {"sku": sku_of[r.id]}))
            elif len(targets) % 3 == 0:
                targets.append(("p", r.variant_id, {"location_id": second}))
        targets += [("p", f"22222222-2222-2222-2222-{i:012d}", {}) for i in range(20)]
        targets.append((None, None, {"sku": "NO-SUCH-SKU"}))
        random.Random(size.seed).shuffle(targets)
        low = [t for t in targets if t[2].get("location_id")][:5]
        by_place = {(r.variant_id, r.location_id): r.id for r in store.records()}
        by_sku = {sku_of[r.id]: r.id for r in tracked if r.location_id == default}

        def item_of(key: DeltaKey) -> str | None:
            if key.sku is not None:
                return by_sku.get(key.sku)
            return by_place.get((key.variant_id, key.location_id or default))

        before = {r.id: r.quantity for r in tracked}
        run = await drive(emu, targets, low, size)
        result = check(run, before, item_of, lambda p, v: "")
    codes = {"NOT_FOUND", "SKU_NOT_FOUND", "INSUFFICIENT_INVENTORY"}
    require(codes <= set(result.codes), f"rejection codes {dict(result.codes)} lack {codes}")
    stats = result.stats
    require(stats.bisect_requests == 0, f"{stats.bisect_requests} bisection requests on V3")
    require(stats.requests_by_catalog["V1_CATALOG"] == 0, "a V1 request to a V3 site")
    require(stats.sku_searches >= 1 and stats.rate_limited > 0, f"no search or 429: {stats}")
    return result


async def run_migration(size: Size) -> StressResult:
    """The same run (V1 keys) on a V1 site migrated to V3 halfway: V1 batches refused by the
    428 go once through V3; checked against both journals, and both catalogs were used."""
    async with Emulator(products=size.products, variants_per_product=3, seed=size.seed) as emu:
        v1 = [
            (i.product_id, v.variant_id, v.quantity)
            for i in emu.store.items()
            if i.track_quantity is True
            for v in i.variants
        ]
        targets: list[Target] = [(p, v, {}) for p, v, _ in v1]
        targets += [("no-such-product", v1[0][1], {})]
        random.Random(size.seed).shuffle(targets)

        async def migrate(halfway: asyncio.Event) -> None:
            await halfway.wait()
            emu.migrate_to_v3()

        run = await drive(emu, targets, targets[:5], size, during=migrate)
        (moved,) = [j for j in emu.journal() if j.endpoint == "migrateToV3"]
        item_by_v1: dict[tuple[str, str], str] = {}
        for e in moved.entries:
            v1_id = e.get("v1VariantId") or e["variantId"]
            item_by_v1[(e["productId"], v1_id)] = e["inventoryItemId"]
        before = {item_by_v1[(p, v)]: q for p, v, q in v1}

        def item_of(key: DeltaKey) -> str | None:
            return item_by_v1.get((key.product_id, key.variant_id))  # type: ignore[arg-type]

        result = check(run, before, item_of, lambda p, v: item_by_v1[(p, v)])
    by_catalog = result.stats.requests_by_catalog
    require(by_catalog["V1_CATALOG"] > 0 and by_catalog["V3_CATALOG"] > 0, f"{by_catalog}")
    catalogs = {r.catalog for r in run.reports}
    require(catalogs == {"V1_CATALOG", "V3_CATALOG"}, f"batches went to {catalogs}")
    return result
