"""The V3 client end to end, over real HTTP against the emulator's Catalog V3 sites."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from wixinv_async.adjuster import InventoryAdjuster, OutcomeStatus
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.catalog import CatalogVersion
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.core.bulk_results import BulkItemStatus
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule
from wixinv_async.errors import (
    NotFoundError,
    OutcomeUnknownError,
    RevisionConflictError,
    WrongCatalogError,
)
from wixinv_async.models import DecrementData
from wixinv_async.models_v3 import (
    DecrementDataById,
    DecrementDataByVariantAndLocation,
    IncrementDataById,
    IncrementDataByVariantAndLocation,
    Sorting,
    UpdateInventoryItem,
)

APPLIED, REFUSED, UNKNOWN = BulkItemStatus.APPLIED, BulkItemStatus.REFUSED, BulkItemStatus.UNKNOWN
MISSING = "99999999-9999-4999-8999-999999999999"


def client_of(emu: Emulator, **options: Any) -> InventoryClient:
    options.setdefault("rate_limit", None)
    options.setdefault("retry", RetryPolicy(seed=2, base_delay=0.0, max_delay=0.0))
    return InventoryClient(
        ApiKeyAuth(emu.api_key, site_id=emu.site_id), base_url=emu.url, **options
    )


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A V3 site: 40 products of 3 variants at 2 locations."""
    async with Emulator(
        catalog="v3", products=40, variants_per_product=3, seed=5, locations=2
    ) as e:
        yield e


def quantities(emu: Emulator) -> dict[str, int | None]:
    """Every item's quantity (``None`` if untracked), by id, from the emulator's store."""
    return {
        item["id"]: item.get("quantity") if item.get("trackQuantity") else None
        for item in emu.v3_store().items()
    }


def tracked(emu: Emulator, *, at_least: int = 6, skip: int = 0) -> list[dict[str, Any]]:
    items = [
        i
        for i in emu.v3_store().items()
        if i.get("trackQuantity")
        and i.get("quantity", 0) >= at_least
        and not (i.get("preorderInfo") or {}).get("enabled")
    ]
    return items[skip:]


async def test_every_call_works_against_a_v3_site(emu: Emulator) -> None:
    """Version, get, update, bulk update, the four bulk adjustments, query, search, update by
    filter and delete: each answered as the typings say, each visible in the store."""
    first, second, third = tracked(emu)[:3]
    async with client_of(emu) as client:
        assert await client.get_catalog_version() is CatalogVersion.V3_CATALOG
        item = await client.get_inventory_item(first["id"])
        assert item.quantity == first["quantity"] and item.revision == "1"
        updated = await client.update_inventory_item(
            first["id"], revision=item.revision, quantity=50, reason="MANUAL"
        )
        assert updated.quantity == 50 and updated.revision == "2"
        bulk = await client.bulk_update_inventory_items(
            [UpdateInventoryItem(id=second["id"], revision="1", quantity=40)], return_entity=True
        )
        assert bulk.all_applied and bulk[0].item is not None and bulk[0].item.quantity == 40
        dec = await client.bulk_decrement_inventory_items(
            [DecrementDataById(inventory_item_id=first["id"], decrement_by=5)], reason="ORDER"
        )
        inc = await client.bulk_increment_inventory_items(
            [IncrementDataById(inventory_item_id=second["id"], increment_by=2)]
        )
        place = {"variant_id": third["variantId"], "location_id": third["locationId"]}
        dec_vl = await client.bulk_decrement_inventory_items_by_variant_and_location(
            [DecrementDataByVariantAndLocation(**place, decrement_by=1)]
        )
        inc_vl = await client.bulk_increment_inventory_items_by_variant_and_location(
            [IncrementDataByVariantAndLocation(**place, increment_by=3)], return_entity=True
        )
        assert all(r.all_applied for r in (dec, inc, dec_vl, inc_vl))
        assert inc_vl[0].inventory_item_id == third["id"]
        page = await client.query_inventory_items(
            filter={"productId": first["productId"]},
            sort=[Sorting(field_name="updatedDate", order="ASC")],
        )
        assert first["id"] in {i.id for i in page.inventory_items}
        low = [i async for i in client.search_all_inventory_items(filter={"quantity": {"$lt": 3}})]
        assert all(isinstance(i.quantity, int) and i.quantity < 3 for i in low)
        job = await client.bulk_update_inventory_items_by_filter(
            {"id": {"$eq": third["id"]}}, quantity=7
        )
        assert job
        await client.delete_inventory_item(second["id"])
        with pytest.raises(NotFoundError):
            await client.get_inventory_item(second["id"])
    store = quantities(emu)
    assert store[first["id"]] == 45 and second["id"] not in store and store[third["id"]] == 7


async def test_per_item_failures_in_one_batch_touch_nothing_else(emu: Emulator) -> None:
    """Good entries applied, an unknown item, an over-decrement and an untracked item each
    refused with Wix's code, every other item unchanged."""
    good, over = tracked(emu)[:2]
    untracked = next(i for i in emu.v3_store().items() if not i.get("trackQuantity"))
    before = quantities(emu)
    entries = [
        DecrementDataById(inventory_item_id=good["id"], decrement_by=2),
        DecrementDataById(inventory_item_id=MISSING, decrement_by=1),
        DecrementDataById(inventory_item_id=over["id"], decrement_by=over["quantity"] + 1),
        DecrementDataById(inventory_item_id=untracked["id"], decrement_by=1),
    ]
    async with client_of(emu) as client:
        result = await client.bulk_decrement_inventory_items(entries)
    assert [(r.status, r.code) for r in result] == [
        (APPLIED, None),
        (REFUSED, "NOT_FOUND"),
        (REFUSED, "INSUFFICIENT_INVENTORY"),
        (REFUSED, "INVENTORY_QUANTITY_NOT_TRACKED"),
    ]
    after = quantities(emu)
    assert after[good["id"]] == before[good["id"]] - 2  # type: ignore[operator]
    assert {k: v for k, v in after.items() if k != good["id"]} == {
        k: v for k, v in before.items() if k != good["id"]
    }


async def test_undetailed_failures_come_back_unknown_never_applied(emu: Emulator) -> None:
    """Entries the server counted in undetailedFailures have no result: UNKNOWN, and the
    store shows each of them was not applied (so UNKNOWN was the honest answer)."""
    items = tracked(emu)[:20]
    before = quantities(emu)
    plan = FaultPlan({"bulkIncrementInventoryItems": FaultRule(item_undetailed=0.4)}, seed=9)
    emu.set_faults(plan)
    async with client_of(emu) as client:
        result = await client.bulk_increment_inventory_items(
            [IncrementDataById(inventory_item_id=i["id"], increment_by=1) for i in items]
        )
    after = quantities(emu)
    assert result.unknown and result.applied
    assert result.metadata is not None and result.metadata.undetailed_failures == len(
        result.unknown
    )
    for entry, item in zip(result, items, strict=True):
        change = after[item["id"]] - before[item["id"]]  # type: ignore[operator]
        assert change == (1 if entry.status is APPLIED else 0)
        assert entry.status in (APPLIED, UNKNOWN)


async def test_an_ambiguous_bulk_decrement_is_applied_once_and_reported(emu: Emulator) -> None:
    """The connection drops after the emulator applied it: OutcomeUnknownError, one request,
    applied exactly once."""
    item = tracked(emu)[0]
    emu.set_faults(FaultPlan({"bulkDecrementInventoryItems": FaultRule(reset_after=1.0)}))
    async with client_of(emu) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.bulk_decrement_inventory_items(
                [DecrementDataById(inventory_item_id=item["id"], decrement_by=1)]
            )
        assert client.stats().requests_by_endpoint["bulk_decrement_inventory_items"] == 1
    assert quantities(emu)[item["id"]] == item["quantity"] - 1


async def test_cursor_paging_reads_every_item_once_while_items_change() -> None:
    """Over 5,000 items in pages of 1000 while another task keeps updating quantities: each item
    is read exactly once."""
    async with Emulator(catalog="v3", products=2000, variants_per_product=3, seed=3) as emu:
        ids = [i["id"] for i in emu.v3_store().items()]
        writes = tracked(emu, at_least=3)[:200]
        async with client_of(emu) as client:

            async def churn() -> None:
                for item in writes:
                    await client.bulk_decrement_inventory_items(
                        [DecrementDataById(inventory_item_id=item["id"], decrement_by=1)]
                    )

            writer = asyncio.create_task(churn())
            seen = [item.id async for item in client.query_all_inventory_items(limit=1000)]
            await writer
            assert client.stats().requests_by_endpoint["query_inventory_items"] >= 6
    assert len(ids) > 5000 and len(seen) == len(set(seen)) and set(seen) == set(ids)


async def test_two_concurrent_writers_lose_no_update(emu: Emulator) -> None:
    """Two writers each add 1, 15 times, to one item by read-modify-write with its revision:
    conflicts happen, are retried, and the item ends 30 higher."""
    item = tracked(emu)[0]
    conflicts = 0

    async def writer(client: InventoryClient) -> None:
        nonlocal conflicts
        for _ in range(15):
            await client.set_inventory_quantity(
                item["id"],
                lambda read: int(read.quantity) + 1,
                max_attempts=50,  # type: ignore[arg-type]
            )

    async with client_of(emu) as a, client_of(emu) as b:
        await asyncio.gather(writer(a), writer(b))
        conflicts = a.stats().failures + b.stats().failures
    assert quantities(emu)[item["id"]] == item["quantity"] + 30
    assert conflicts > 0  # they did collide: the revision check is what kept the sum


async def test_a_blind_update_with_a_stale_revision_is_refused(emu: Emulator) -> None:
    """Writing with a revision read before someone else's write: RevisionConflictError, and
    the other write stands."""
    item = tracked(emu)[0]
    async with client_of(emu) as client:
        read = await client.get_inventory_item(item["id"])
        await client.update_inventory_item(item["id"], revision=read.revision, quantity=11)
        with pytest.raises(RevisionConflictError) as caught:
            await client.update_inventory_item(item["id"], revision=read.revision, quantity=99)
    assert caught.value.code == "REVISION_MISMATCH"
    assert quantities(emu)[item["id"]] == 11


@pytest.mark.parametrize("scope", [True, False])
async def test_a_migration_invalidates_the_cached_catalog(scope: bool) -> None:
    """A V1 site (found by the version call, or without the scope by the V3 probe) moves to
    V3 mid-traffic: the next V1 write is refused whole (WrongCatalogError, not applied), the
    cache is dropped, and the client now finds V3 and writes through V3."""
    async with Emulator(catalog="v1", products=10, seed=4, version_scope=scope) as emu:
        product = next(i for i in emu.store.items() if i.track_quantity)
        variant = next(
            v for v in product.variants if isinstance(v.quantity, int) and v.quantity > 2
        )
        entry = DecrementData(
            product_id=product.product_id, variant_id=variant.variant_id, decrement_by=1
        )
        async with client_of(emu) as client:
            assert await client.catalog_version() is CatalogVersion.V1_CATALOG
            await client.decrement_inventory([entry])
            v3 = emu.migrate_to_v3()
            journal_before = len(emu.journal())
            with pytest.raises(WrongCatalogError) as caught:
                await client.decrement_inventory([entry])
            assert caught.value.retriable
            assert len(emu.journal()) == journal_before  # refused whole: nothing applied
            assert await client.catalog_version() is CatalogVersion.V3_CATALOG
            migrated = next(i for i in v3.items() if i["productId"] == product.product_id)
            result = await client.bulk_decrement_inventory_items(
                [DecrementDataById(inventory_item_id=migrated["id"], decrement_by=1)]
            )
            assert result.all_applied


async def test_an_adjuster_batch_refused_for_the_wrong_catalog_goes_once_through_v3() -> None:
    """After a migration, an adjuster that assumes V1 sends one V1 request (no bisection); its
    wrong-catalog refusal applied nothing, so the three deltas go once through V3 and commit."""
    async with Emulator(catalog="v1", products=10, seed=4) as emu:
        keys = [
            (item.product_id, variant.variant_id)
            for item in emu.store.items()
            if item.track_quantity
            for variant in item.variants
            if isinstance(variant.quantity, int) and variant.quantity > 2
        ][:3]
        emu.migrate_to_v3()
        async with (
            client_of(emu) as client,
            InventoryAdjuster(client, linger=0.01, catalog=CatalogVersion.V1_CATALOG) as adjuster,
        ):
            outcomes = await asyncio.gather(*(adjuster.adjust(p, v, -1) for p, v in keys))
            by_endpoint = client.stats().requests_by_endpoint
            sent = by_endpoint["decrement_inventory"]
            v3 = by_endpoint["bulk_decrement_inventory_items_by_variant_and_location"]
    assert {o.status for o in outcomes} == {OutcomeStatus.COMMITTED}
    assert v3 == 1
    assert sent == 1 and len(keys) == 3
