"""crawl_inventory on Catalog V3 sites over HTTP: past 10,000 items, changes mid-crawl, fan-out
by productId ranges, the paced single cursor, and sites that migrate during a crawl."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from msgspec import UNSET

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.catalog import CatalogVersion
from wixinv_async.client import InventoryClient
from wixinv_async.crawler import crawl_inventory, crawl_inventory_items, crawl_inventory_pages
from wixinv_async.emulator import Emulator
from wixinv_async.errors import InvalidInputError, WrongCatalogError
from wixinv_async.models import InventoryItem, QueryInventoryResponse
from wixinv_async.models_v3 import (
    IncrementDataById,
    InventoryItemsPage,
    InventoryItemV3,
)
from wixinv_async.transport import RateLimit


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A V3 site of 12,024 items: 2,400 products' variants at two locations each."""
    async with Emulator(catalog="v3", products=2400, variants_per_product=3, locations=2) as emu:
        yield emu


@pytest.fixture
async def small() -> AsyncIterator[Emulator]:
    """A V3 site of about 3,000 items: 600 products' variants at two locations each."""
    async with Emulator(catalog="v3", products=600, variants_per_product=3, locations=2) as emu:
        yield emu


@pytest.fixture
async def small_client(small: Emulator) -> AsyncIterator[InventoryClient]:
    """An unpaced client of the small site."""
    auth = ApiKeyAuth(small.api_key, site_id=small.site_id)
    async with InventoryClient(auth, base_url=small.url, rate_limit=None) as c:
        yield c


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[InventoryClient]:
    """An unpaced client of the emulator's site."""
    auth = ApiKeyAuth(emulator.api_key, site_id=emulator.site_id)
    async with InventoryClient(auth, base_url=emulator.url, rate_limit=None) as c:
        yield c


def _v3_ids(items: Sequence[object]) -> list[str]:
    ids = []
    for item in items:
        assert isinstance(item, InventoryItemV3), item
        assert isinstance(item.id, str)
        ids.append(item.id)
    return ids


async def _drain(crawl: Any, each: Callable[[object], None]) -> None:
    async with crawl as items:
        async for item in items:
            each(item)


def _store_ids(emulator: Emulator) -> list[str]:
    return sorted(item.id for item in emulator.v3_store().records())


async def test_a_v3_site_is_read_past_10000_items_exactly_once(
    emulator: Emulator, client: InventoryClient
) -> None:
    """crawl_inventory detects V3 and yields every item (per variant and location) once, by
    eight productId ranges, in at most ceil(N / 1000) + 1 + 7 requests."""
    crawl = crawl_inventory(client, fanout="max", segments=8)
    async with crawl as items:
        got = _v3_ids([item async for item in items])
    total = len(emulator.v3_store().records())
    assert len(got) == total > 10_000
    assert sorted(got) == _store_ids(emulator)
    stats = crawl.stats()
    assert stats.catalog is CatalogVersion.V3_CATALOG and stats.cursors == 8 == stats.segments
    assert stats.requests <= math.ceil(total / 1000) + 1 + 7, stats
    assert stats.items == total


async def test_items_at_every_location_carry_location_and_sku(
    small: Emulator, small_client: InventoryClient
) -> None:
    """Each (variant, location) is one item, with its location id and SKU."""
    async with crawl_inventory_items(small_client, fanout="max", segments=4) as items:
        got = [item async for item in items]
    pairs = {(item.variant_id, item.location_id) for item in got}
    assert len(pairs) == len(got)
    assert {item.location_id for item in got} == set(small.v3_store().locations)
    assert all(item.product is not UNSET and item.product.variant_sku for item in got)


class _Busy:
    """A client proxy: before each V3 query, stock changes (by HTTP) and items are deleted."""

    def __init__(self, client: InventoryClient, emulator: Emulator, seed: int) -> None:
        self.client = client
        self.store = emulator.v3_store()
        self.rng = random.Random(seed)
        self.deleted: set[str] = set()
        self.queries = 0

    async def catalog_version(self) -> CatalogVersion:
        return await self.client.catalog_version()

    async def query_inventory(self, **query: Any) -> QueryInventoryResponse:
        raise AssertionError("a V3 crawl sends no V1 query")

    async def query_inventory_items(self, **query: Any) -> InventoryItemsPage:
        self.queries += 1
        records = [r for r in self.store.records() if r.track]
        bumps = [
            IncrementDataById(inventory_item_id=r.id, increment_by=self.rng.randint(1, 5))
            for r in self.rng.sample(records, 20)
        ]
        await self.client.bulk_increment_inventory_items(bumps)
        victim = self.rng.choice(records)
        await self.client.delete_inventory_item(victim.id)
        self.deleted.add(victim.id)
        return await self.client.query_inventory_items(**query)


@pytest.mark.parametrize("ordered", [False, True])
async def test_stock_changes_and_deletes_mid_crawl_read_each_item_once(
    small: Emulator, small_client: InventoryClient, ordered: bool
) -> None:
    """Stock written and items deleted before every query: every item that exists throughout
    is read exactly once, none twice, and ``ordered`` yields ascending productIds."""
    before = set(_store_ids(small))
    busy = _Busy(small_client, small, seed=11)
    crawl = crawl_inventory(busy, fanout="max", segments=6, ordered=ordered, v3_page_size=100)
    async with crawl as items:
        got = [item async for item in items]
    ids = _v3_ids(got)
    assert len(ids) == len(set(ids))
    assert before - busy.deleted <= set(ids) <= before
    assert busy.queries == crawl.stats().requests > 6
    if ordered:
        products = [str(item.product_id) for item in got]
        assert products == sorted(products)


async def test_a_v3_filter_is_anded_with_the_ranges(
    small: Emulator, small_client: InventoryClient
) -> None:
    """A V3 filter (one location's tracked items) is honoured by every cursor."""
    location = small.v3_store().locations[1]
    where = {"locationId": {"$eq": location}, "trackQuantity": {"$eq": True}}
    async with crawl_inventory(small_client, filter=where, fanout="max", segments=5) as items:
        got = _v3_ids([item async for item in items])
    want = [r.id for r in small.v3_store().records() if r.location_id == location and r.track]
    assert sorted(got) == sorted(want) and want


async def test_a_paced_v3_crawl_runs_one_cursor_one_request_above_the_minimum(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Against a client paced slower than the emulator answers, segments=8 runs one cursor:
    ceil(N / 1000) + 1 requests (the query for the highest productId the only extra)."""
    async with Emulator(catalog="v3", products=1500, variants_per_product=3) as emu:
        auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
        total = len(emu.v3_store().records())
        with caplog.at_level(logging.INFO, logger="wixinv_async.crawler"):
            async with InventoryClient(auth, base_url=emu.url, rate_limit=RateLimit(8, 1.0)) as c:
                crawl = crawl_inventory(c)
                async with crawl as items:
                    got = _v3_ids([item async for item in items])
        assert sorted(got) == sorted(r.id for r in emu.v3_store().records())
        assert crawl.stats().cursors == 1, crawl.stats()
        assert crawl.stats().requests == math.ceil(total / 1000) + 1
        assert "V3 crawl fan-out: 1 of at most 8" in caplog.text


async def test_a_one_page_v3_catalog_ends_after_its_first_page() -> None:
    """A catalog that fits in one page costs the first page and the highest-productId query."""
    async with Emulator(catalog="v3", products=30, variants_per_product=2) as emu:
        auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
        async with InventoryClient(auth, base_url=emu.url, rate_limit=None) as c:
            crawl = crawl_inventory_items(c, fanout="max")
            async with crawl as items:
                got = _v3_ids([item async for item in items])
        assert sorted(got) == sorted(r.id for r in emu.v3_store().records())
        assert crawl.stats().requests == 2 and crawl.stats().cursors == 1


async def test_a_site_migrating_mid_crawl_raises_and_never_mixes_catalogs() -> None:
    """A V1 crawl whose site moves to V3 raises WrongCatalogError after V1 items only; the
    next crawl of the same client reads the V3 items."""
    async with Emulator(products=600, variants_per_product=2) as emu:
        auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
        async with InventoryClient(auth, base_url=emu.url, rate_limit=None) as client:
            seen: list[object] = []
            crawl = crawl_inventory(client, fanout="max", segments=2, page_size=10)

            def migrate_after_the_first(item: object) -> None:
                seen.append(item)
                if len(seen) == 1:
                    emu.migrate_to_v3()

            with pytest.raises(WrongCatalogError) as caught:
                await _drain(crawl, migrate_after_the_first)
            assert caught.value.site_catalog is CatalogVersion.V3_CATALOG
            assert seen and all(isinstance(item, InventoryItem) for item in seen)
            assert len(seen) < 600
            assert crawl.stats().catalog is CatalogVersion.V1_CATALOG
            async with crawl_inventory(client) as items:
                again = _v3_ids([item async for item in items])
            assert sorted(again) == sorted(r.id for r in emu.v3_store().records())


async def test_v3_only_and_v1_only_calls_refuse_the_other_catalog() -> None:
    """crawl_inventory_items on a V1 site and crawl_inventory_pages on a V3 site raise
    WrongCatalogError instead of reading nothing."""
    async with Emulator(products=20, catalog=["v1", "v3"], extra_sites=1) as emu:
        v1_site, v3_site = emu.sites
        for site, crawl_of in ((v1_site, crawl_inventory_items), (v3_site, crawl_inventory_pages)):
            auth = ApiKeyAuth(emu.api_key, site_id=site)
            async with InventoryClient(auth, base_url=emu.url, rate_limit=None) as client:
                with pytest.raises(WrongCatalogError):
                    await _drain(crawl_of(client), lambda _: None)  # type: ignore[operator]


@pytest.mark.parametrize("size", [0, 1001, True])
async def test_v3_page_size_is_checked_at_the_call(size: object) -> None:
    """A V3 page size outside 1 to 1000 is refused naming the field, before any request."""
    with pytest.raises(InvalidInputError, match="v3_page_size"):
        crawl_inventory(object(), v3_page_size=size)  # type: ignore[arg-type]


async def test_a_stale_cached_catalog_restarts_the_crawl_before_any_item() -> None:
    """The client cached V1, then the site moved: the crawl's first queries are refused, it
    detects again and reads the V3 items (nothing was handed over, so nothing is mixed)."""
    async with Emulator(products=200, variants_per_product=2) as emu:
        auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
        async with InventoryClient(auth, base_url=emu.url, rate_limit=None) as client:
            assert await client.catalog_version() is CatalogVersion.V1_CATALOG
            emu.migrate_to_v3()
            crawl = crawl_inventory(client)
            async with crawl as items:
                got = _v3_ids([item async for item in items])
        assert sorted(got) == sorted(r.id for r in emu.v3_store().records())
        stats = crawl.stats()
        assert stats.catalog is CatalogVersion.V3_CATALOG
        assert stats.requests == 2 + 2, stats  # the refused V1 bound queries, then V3's two
