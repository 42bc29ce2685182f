"""64 producers against a faulty V3 emulator, and the same run across a V1 -> V3 migration.

The issue's figure is 10,000 deltas per producer; these runs send 300 each (19,200 deltas,
batches of 10 so that faults hit hundreds of requests) to stay within a few seconds: the
accounting is the same at any size. Every ticket gets an outcome; the journal holds exactly
the committed entries plus some of the in-doubt ones; each item's stock is its initial stock
plus exactly what the journal applied.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from wixinv_async.adjuster import BatchReport, InventoryAdjuster, OutcomeStatus, Ticket
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
PRODUCERS, EACH, SEED = 64, 300, 77
FAULTS = FaultRule(
    rate_limited=0.05,
    error_503=0.04,
    error_500=0.02,
    reset_after=0.03,
    error_504=0.02,
    stall_after=0.02,
)
Target = tuple[Any, ...]
"""The positional and keyword arguments of one submit."""


def client_for(emu: Emulator) -> InventoryClient:
    retry = RetryPolicy(max_attempts=10, base_delay=0.001, max_delay=0.01, seed=SEED)
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    return InventoryClient(auth, base_url=emu.url, rate_limit=None, timeout=0.3, retry=retry)


async def produce(
    adj: InventoryAdjuster, targets: list[Target], low: list[Target], halfway: asyncio.Event
) -> list[Ticket]:
    """64 producers: hot targets, any target, and decrements on a few low-stock ones."""
    tickets: list[Ticket] = []

    async def one(seed: int) -> None:
        rng = random.Random(seed)
        hot = targets[: max(1, len(targets) // 20)]
        for n in range(EACH):
            roll = rng.random()
            if roll < 0.05:
                args, delta = rng.choice(low), -5
            else:
                args = rng.choice(hot) if roll < 0.5 else rng.choice(targets)
                delta = rng.choice((-3, -2, -1, 1, 2, 5))
            product, variant, kwargs = args
            tickets.append(await adj.submit(product, variant, delta, **kwargs))
            if len(tickets) >= PRODUCERS * EACH // 2:
                halfway.set()
            if n % 50 == 0:
                await asyncio.sleep(0.002)

    await asyncio.gather(*(one(SEED + i) for i in range(PRODUCERS)))
    return tickets


def reported(
    reports: list[BatchReport], status: OutcomeStatus, item_of: Callable[[DeltaKey], str | None]
) -> Counter[tuple[str, int]]:
    """(item id, signed amount) of the reported entries with this status."""
    out: Counter[tuple[str, int]] = Counter()
    for report in reports:
        for entry, outcome in zip(report.entries, report.outcomes, strict=True):
            if outcome.status is not status:
                continue
            item = item_of(entry.key)
            if item is None:  # no such item: it can only have been refused, or never answered
                assert status is not C, entry
                item = "missing"
            out[(item, entry.amount)] += 1
    return out


def journal_changes(emu: Emulator, v1_item: Callable[[str, str], str]) -> Counter[tuple[str, int]]:
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


def check(
    emu: Emulator,
    tickets: list[Ticket],
    reports: list[BatchReport],
    adj: InventoryAdjuster,
    before: dict[str, int],
    item_of: Callable[[DeltaKey], str | None],
    v1_item: Callable[[str, str], str],
) -> None:
    assert all(t.outcome is not None for t in tickets)
    statuses = Counter(t.outcome.status for t in tickets if t.outcome is not None)
    assert statuses[X] == 0 and statuses[C] > 0 and statuses[D] > 0 and statuses[R] > 0
    committed, doubted = reported(reports, C, item_of), reported(reports, D, item_of)
    journal = journal_changes(emu, v1_item)
    assert committed - journal == Counter(), "a committed entry is missing from the journal"
    assert journal - committed - doubted == Counter(), "an entry was applied twice or unasked"
    assert sum(doubted.values()) == len(adj.in_doubt())
    applied: Counter[str] = Counter()
    for (item, amount), times in journal.items():
        applied[item] += amount * times
    after = {r.id: r.quantity for r in emu.v3_store().records()}
    assert all(after[i] == before[i] + applied[i] for i in before)


async def test_64_producers_on_a_faulty_v3_site() -> None:
    """V3 with 429s, 5xx, resets and stalls; SKU, second-location, unknown-variant and
    past-zero deltas: every ticket has an outcome and the stock matches the journal."""
    async with Emulator(
        products=300, variants_per_product=3, seed=SEED, catalog="v3", locations=2
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
        random.Random(SEED).shuffle(targets)
        low = [t for t in targets if t[2].get("location_id")][:5]
        by_place = {(r.variant_id, r.location_id): r.id for r in store.records()}
        by_sku = {sku_of[r.id]: r.id for r in tracked if r.location_id == default}

        def item_of(key: DeltaKey) -> str | None:
            if key.sku is not None:
                return by_sku.get(key.sku)
            return by_place.get((key.variant_id, key.location_id or default))

        before = {r.id: r.quantity for r in store.records() if r.track is True}
        emu.set_faults(FaultPlan(endpoints={"*": FAULTS}, seed=SEED, stall_seconds=5))
        reports: list[BatchReport] = []
        client = client_for(emu)
        adj = InventoryAdjuster(client, linger=0.01, max_batch=10, on_batch=reports.append)
        async with client, adj:
            tickets = await produce(adj, targets, low, asyncio.Event())
        emu.set_faults(None)
        check(emu, tickets, reports, adj, before, item_of, lambda p, v: "")
        codes = Counter(t.outcome.code for t in tickets if t.outcome and t.outcome.status is R)
        assert {"NOT_FOUND", "SKU_NOT_FOUND", "INSUFFICIENT_INVENTORY"} <= set(codes)
        stats = adj.stats()
        assert stats.bisect_requests == 0 and stats.requests_by_catalog["V1_CATALOG"] == 0
        assert stats.sku_searches >= 1 and stats.rate_limited > 0


async def test_64_producers_across_a_migration_halfway() -> None:
    """The same run (V1 keys) on a V1 site migrated to V3 halfway: V1 batches refused by the
    428 go once through V3, and the stock matches both journals."""
    async with Emulator(products=300, variants_per_product=3, seed=SEED) as emu:
        v1 = [
            (i.product_id, v.variant_id, v.quantity)
            for i in emu.store.items()
            if i.track_quantity is True
            for v in i.variants
        ]
        targets: list[Target] = [(p, v, {}) for p, v, _ in v1]
        targets += [("no-such-product", v1[0][1], {})]
        random.Random(SEED).shuffle(targets)
        low = targets[:5]
        emu.set_faults(FaultPlan(endpoints={"*": FAULTS}, seed=SEED, stall_seconds=5))
        reports: list[BatchReport] = []
        halfway = asyncio.Event()
        client = client_for(emu)
        adj = InventoryAdjuster(client, linger=0.01, max_batch=10, on_batch=reports.append)

        async def migrate() -> None:
            await halfway.wait()
            emu.migrate_to_v3()

        async with client, adj:
            migration = asyncio.create_task(migrate())
            tickets = await produce(adj, targets, low, halfway)
            await migration
        emu.set_faults(None)
        (moved,) = [j for j in emu.journal() if j.endpoint == "migrateToV3"]
        item_by_v1: dict[tuple[str, str], str] = {}
        for e in moved.entries:
            item_by_v1[(e["productId"], e.get("v1VariantId") or e["variantId"])] = e[
                "inventoryItemId"
            ]
        before = {item_by_v1[(p, v)]: q for p, v, q in v1}

        def item_of(key: DeltaKey) -> str | None:
            return item_by_v1.get((key.product_id, key.variant_id))  # type: ignore[arg-type]

        check(emu, tickets, reports, adj, before, item_of, lambda p, v: item_by_v1[(p, v)])
        stats = adj.stats()
        assert stats.requests_by_catalog["V1_CATALOG"] > 0
        assert stats.requests_by_catalog["V3_CATALOG"] > 0
        assert {r.catalog for r in reports} == {"V1_CATALOG", "V3_CATALOG"}
