"""The adjuster on Catalog V3 sites and across a migration, over real HTTP against the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from wixinv_async.adjuster import BatchReport, InventoryAdjuster, OutcomeStatus, SentBatch
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule
from wixinv_async.errors import InvalidInputError
from wixinv_async.models import DEFAULT_VARIANT_ID

C, R, D = OutcomeStatus.COMMITTED, OutcomeStatus.REJECTED, OutcomeStatus.IN_DOUBT
MISSING = "11111111-1111-1111-1111-111111111111"


def client_for(emu: Emulator, *, timeout: float = 5.0) -> InventoryClient:
    retry = RetryPolicy(max_attempts=10, base_delay=0.001, max_delay=0.01, seed=3)
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    return InventoryClient(auth, base_url=emu.url, rate_limit=None, timeout=timeout, retry=retry)


def tracked_items(emu: Emulator) -> list[Any]:
    """The V3 site's tracked items at the default location."""
    store = emu.v3_store()
    return [
        r for r in store.records() if r.track is True and r.location_id == store.default_location
    ]


def v3_requests(emu: Emulator) -> int:
    """Bulk adjust requests the emulator journaled on the V3 site."""
    return sum(1 for j in emu.v3_store().journal if j.endpoint.startswith("bulk"))


async def test_one_request_rejects_only_the_bad_entries() -> None:
    """A V3 batch with an unknown variant and a decrement past the stock: one request, those two
    REJECTED with Wix's codes, the rest COMMITTED from the same answer."""
    async with Emulator(products=10, variants_per_product=1, seed=11, catalog="v3") as emu:
        items = tracked_items(emu)[:4]
        before = {i.variant_id: i.quantity for i in items}
        reports: list[BatchReport] = []
        sent: list[SentBatch] = []

        async def on_send(batch: SentBatch) -> None:
            sent.append(batch)

        async with client_for(emu) as client:
            adj = InventoryAdjuster(client, linger=10, on_batch=reports.append, on_send=on_send)
            async with adj:
                good = [adj.submit_nowait("p", i.variant_id, -1) for i in items[:3]]
                unknown = adj.submit_nowait("p", MISSING, -1)
                past = adj.submit_nowait(
                    "p", items[3].variant_id, -(before[items[3].variant_id] + 1)
                )
                await adj.flush()
            stats = adj.stats()
        assert [t.result().status for t in good] == [C, C, C]
        assert (unknown.result().status, unknown.result().code) == (R, "NOT_FOUND")
        assert (past.result().status, past.result().code) == (R, "INSUFFICIENT_INVENTORY")
        assert v3_requests(emu) == 1 and stats.requests == 1 and stats.bisect_requests == 0
        assert stats.requests_by_catalog == {"V1_CATALOG": 0, "V3_CATALOG": 1}
        assert stats.batches_by_catalog["V3_CATALOG"] == 1
        assert [b.catalog for b in sent] == ["V3_CATALOG"]
        (report,) = reports
        assert report.catalog == "V3_CATALOG" and report.requests == 1
        assert [r.status.value if r else None for r in report.results] == [
            "applied",
            "applied",
            "applied",
            "refused",
            "refused",
        ]
        store = emu.v3_store()
        for item in items[:3]:
            assert store.at(item.variant_id).quantity == before[item.variant_id] - 1  # type: ignore[union-attr]
        assert store.at(items[3].variant_id).quantity == before[items[3].variant_id]  # type: ignore[union-attr]


async def test_entries_without_a_result_are_in_doubt_and_never_resent() -> None:
    """Entries the answer gives no result for (undetailed failures) are IN_DOUBT, the others
    decided from the same answer, and no second request is made."""
    plan = FaultPlan(endpoints={"*": FaultRule(item_undetailed=0.5)}, seed=5)
    async with Emulator(products=20, variants_per_product=1, seed=12, catalog="v3") as emu:
        items = tracked_items(emu)[:12]
        emu.set_faults(plan)
        async with client_for(emu) as client:
            async with InventoryAdjuster(client, linger=10) as adj:
                tickets = [adj.submit_nowait("p", i.variant_id, 2) for i in items]
                await adj.flush()
            doubts = adj.in_doubt()
        statuses = [t.result().status for t in tickets]
        assert D in statuses and C in statuses and set(statuses) <= {C, D}
        assert v3_requests(emu) == 1
        (entry,) = [j for j in emu.v3_store().journal if j.endpoint.startswith("bulk")]
        applied = {e["variantId"] for e in entry.entries if e["success"]}
        assert {
            i.variant_id for i, t in zip(items, tickets, strict=True) if t.result().status is C
        } == applied
        assert {d.key.variant_id for d in doubts} == {i.variant_id for i in items} - applied
        assert all(d.code == "ITEM_UNKNOWN" for d in doubts)


async def test_sku_and_second_location_deltas() -> None:
    """Deltas by SKU (one search for all of them, cached) and at a second location land on the
    right items; an unknown SKU is REJECTED with SKU_NOT_FOUND."""
    async with Emulator(
        products=10, variants_per_product=2, seed=13, catalog="v3", locations=2
    ) as emu:
        store = emu.v3_store()
        default, second = store.default_location, store.locations[1]
        docs = [d for d in store.items() if d.get("trackQuantity") and d["locationId"] == default]
        by_sku = {d["product"]["variantSku"]: d for d in docs[:5]}
        skued = {d["variantId"] for d in by_sku.values()}
        other = next(
            r
            for r in store.records()
            if r.track is True and r.location_id == second and r.variant_id not in skued
        )
        before_other = other.quantity
        before_default = store.at(other.variant_id).quantity  # type: ignore[union-attr]
        async with client_for(emu) as client:
            async with InventoryAdjuster(client, linger=10) as adj:
                by = [adj.submit_nowait(None, None, 3, sku=sku) for sku in by_sku]
                nope = adj.submit_nowait(None, None, 3, sku="NO-SUCH-SKU")
                there = adj.submit_nowait("p", other.variant_id, 7, location_id=second)
                await adj.flush()
                later = adj.submit_nowait(None, None, 1, sku=next(iter(by_sku)))
                await adj.flush()
                again = later.result()
            stats = adj.stats()
        assert [t.result().status for t in by] == [C] * 5 and again.status is C
        assert (nope.result().status, nope.result().code) == (R, "SKU_NOT_FOUND")
        assert there.result().status is C
        assert stats.sku_searches == 1  # the second batch's SKU was cached
        for index, doc in enumerate(by_sku.values()):
            extra = 1 if index == 0 else 0
            assert store.find(doc["id"]).quantity == doc["quantity"] + 3 + extra  # type: ignore[union-attr]
        assert store.find(other.id).quantity == before_other + 7  # type: ignore[union-attr]
        assert store.at(other.variant_id).quantity == before_default  # type: ignore[union-attr]


async def test_a_location_or_sku_on_a_v1_site() -> None:
    """On a V1 site: before the catalog is known such deltas are REJECTED (LOCATION_NEEDS_V3,
    SKU_NEEDS_V3); once it is known, submit refuses them with InvalidInputError."""
    async with Emulator(products=5, variants_per_product=1, seed=14) as emu:
        item = next(i for i in emu.store.items() if i.track_quantity is True)
        variant = item.variants[0].variant_id
        async with client_for(emu) as client, InventoryAdjuster(client, linger=10) as adj:
            at = adj.submit_nowait(item.product_id, variant, 1, location_id=MISSING)
            by = adj.submit_nowait(None, None, 1, sku="S")
            ok = adj.submit_nowait(item.product_id, variant, 1)
            await adj.flush()
            with pytest.raises(InvalidInputError) as caught:
                adj.submit_nowait(item.product_id, variant, 1, location_id=MISSING)
            assert caught.value.field == "location_id"
            with pytest.raises(InvalidInputError) as caught:
                adj.submit_nowait(None, None, 1, sku="S")
            assert caught.value.field == "sku"
        assert (at.result().code, by.result().code) == ("LOCATION_NEEDS_V3", "SKU_NEEDS_V3")
        assert ok.result().status is C


async def test_a_v1_batch_refused_after_migration_goes_out_once_through_v3() -> None:
    """A site moves to V3 between two batches: the second V1 batch is refused with a
    wrong-catalog 428, re-planned for V3 (a default variant found by product id) and committed
    once; the stock is the initial stock plus exactly the committed deltas."""
    async with Emulator(products=6, variants_per_product=1, seed=15) as emu:
        items = [i for i in emu.store.items() if i.track_quantity is True][:4]
        keys = [(i.product_id, i.variants[0].variant_id) for i in items]
        assert all(v == DEFAULT_VARIANT_ID for _, v in keys)
        initial = {p: i.variants[0].quantity for (p, _), i in zip(keys, items, strict=True)}
        reports: list[BatchReport] = []
        async with client_for(emu) as client:
            async with InventoryAdjuster(client, linger=10, on_batch=reports.append) as adj:
                first = [adj.submit_nowait(p, v, 2) for p, v in keys]
                await adj.flush()
                emu.migrate_to_v3()
                second = [adj.submit_nowait(p, v, 5) for p, v in keys]
                await adj.flush()
            stats = adj.stats()
        assert [t.result().status for t in first + second] == [C] * 8
        assert [r.catalog for r in reports] == ["V1_CATALOG", "V3_CATALOG"]
        assert stats.requests_by_catalog == {"V1_CATALOG": 2, "V3_CATALOG": 1}
        assert stats.committed_by_catalog == {"V1_CATALOG": 4, "V3_CATALOG": 4}
        store = emu.v3_store()
        quantities = {r.product_id: r.quantity for r in store.records()}
        for product, _ in keys:
            assert quantities[product] == initial[product] + 2 + 5  # type: ignore[operator]
