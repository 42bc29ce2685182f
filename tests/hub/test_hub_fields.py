"""The hub's producers take every field the adjuster's do, with the same checks, on V1 and V3."""

from __future__ import annotations

import pytest

from wixinv_async import AppCredentials, InvalidInputError, InventoryHub, OutcomeStatus
from wixinv_async.emulator import Emulator, SiteSpec

C = OutcomeStatus.COMMITTED


async def test_sku_location_and_inventory_id_reach_a_v3_site_through_the_hub() -> None:
    """On a V3 site, deltas by SKU, at a second location and by inventory item id (through
    submit_nowait, submit and adjust) land on exactly those items."""
    specs = [SiteSpec(catalog="v1"), SiteSpec(catalog="v3", locations=2)]
    async with Emulator(sites=specs, products=6, variants_per_product=2, seed=21) as emu:
        instance, site = emu.instances[1], emu.sites[1]
        store = emu.v3_store(site)
        default, second = store.default_location, store.locations[1]
        records = [r for r in store.records() if r.track is True]
        at_default = [r for r in records if r.location_id == default]
        by_sku, by_id = at_default[0], at_default[1]
        sku = next(d["product"]["variantSku"] for d in store.items() if d["id"] == by_sku.id)
        elsewhere = next(
            r for r in records if r.location_id == second and r.variant_id != by_sku.variant_id
        )
        before = {r.id: r.quantity for r in (by_sku, by_id, elsewhere)}
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url
        ) as hub:
            ticket = hub.submit_nowait(instance, None, None, 3, sku=sku)
            there = await hub.submit(instance, "p", elsewhere.variant_id, 7, location_id=second)
            direct = await hub.adjust(instance, None, by_id.variant_id, -1, inventory_id=by_id.id)
            assert ((await ticket).status, (await there).status, direct.status) == (C, C, C)
        after = {r.id: store.find(r.id).quantity for r in (by_sku, by_id, elsewhere)}  # type: ignore[union-attr]
        assert after == {
            by_sku.id: before[by_sku.id] + 3,  # type: ignore[operator]
            by_id.id: before[by_id.id] - 1,  # type: ignore[operator]
            elsewhere.id: before[elsewhere.id] + 7,  # type: ignore[operator]
        }


async def test_the_hub_refuses_what_the_adjuster_refuses() -> None:
    """Bad input through the hub is the adjuster's InvalidInputError naming the field; once a
    V1 site's catalog is known, a location or a SKU for it is refused the same way."""
    async with Emulator(sites=[SiteSpec(catalog="v1")], products=4, seed=22) as emu:
        instance = emu.instances[0]
        item = next(i for i in emu.site(emu.sites[0]).items() if i.track_quantity is True)
        key = (item.product_id, item.variants[0].variant_id)
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url
        ) as hub:
            with pytest.raises(InvalidInputError) as caught:
                hub.submit_nowait(instance, *key, 0)
            assert caught.value.field == "delta"
            with pytest.raises(InvalidInputError) as caught:
                await hub.submit(instance, *key, 1, preorder="yes")  # type: ignore[typeddict-item]
            assert caught.value.field == "preorder"
            assert (await hub.adjust(instance, *key, 1)).status is C  # the catalog is now known
            with pytest.raises(InvalidInputError) as caught:
                hub.submit_nowait(instance, *key, 1, location_id="L2")
            assert caught.value.field == "location_id"
            with pytest.raises(InvalidInputError) as caught:
                await hub.adjust(instance, None, None, 1, sku="S-1")
            assert caught.value.field == "sku"


async def test_a_tag_and_preorder_given_by_position_reach_the_batch_report() -> None:
    """The hub's fields by position (inventory_id, location_id, sku, preorder, tag) go the
    positional way to the table: the tag comes back in the site's batch report, a preorder
    increment commits."""
    async with Emulator(sites=[SiteSpec(catalog="v1")], products=4, seed=23) as emu:
        instance = emu.instances[0]
        item = next(i for i in emu.site(emu.sites[0]).items() if i.track_quantity is True)
        key = (item.product_id, item.variants[0].variant_id)
        reports: list[tuple[str, object]] = []
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            on_batch=lambda site, report: reports.extend(
                (site, tag) for entry in report.entries for tag in entry.tags
            ),
        ) as hub:
            tagged = hub.submit_nowait(instance, *key, 2, None, None, None, False, "order-7")
            preorder = hub.submit_nowait(instance, *key, 1, preorder=True)
            assert ((await tagged).status, (await preorder).status) == (C, C)
        assert reports == [(instance, "order-7")]
