"""The V3 crawl's fan-out decision on a virtual clock, against a small in-memory V3 site."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from wixinv_async.catalog import CatalogVersion
from wixinv_async.core.v3ranges import guid_text
from wixinv_async.crawler import crawl_inventory, crawl_inventory_items
from wixinv_async.errors import TransportError
from wixinv_async.models_v3 import (
    Cursors,
    InventoryItemsPage,
    InventoryItemV3,
    PagingMetadataV3,
    Sorting,
)

Key = tuple[str, str]


def _holds(product: str, where: Mapping[str, Any] | None) -> bool:
    if not where:
        return True
    if "$and" in where:
        return all(_holds(product, clause) for clause in where["$and"])
    bounds = where["productId"]
    low, high = bounds.get("$gte"), bounds.get("$lt")
    return (low is None or product >= low) and (high is None or product < high)


class _Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class FakeV3Site:
    """Keyset cursors over (productId, id), range filters on productId, a pace and latency
    on a virtual clock (one answer per ``interval``, ``latency`` after its slot)."""

    def __init__(
        self, count: int, seed: int, latency: float, interval: float, clock: _Clock
    ) -> None:
        rng = random.Random(seed)
        products = [guid_text(rng.getrandbits(128)) for _ in range(max(1, count // 3))]
        self.items = sorted((rng.choice(products), f"item-{i:06d}") for i in range(count))
        self.latency, self.interval, self.clock = latency, interval, clock
        self.next_slot = clock.now
        self.cursors: dict[str, tuple[Mapping[str, Any] | None, Key]] = {}
        self.requests = 0
        self.reverse_page = False

    async def query_inventory_items(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: Sequence[Sorting | Mapping[str, str]] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> InventoryItemsPage:
        self.requests += 1
        slot = max(self.clock.now, self.next_slot)
        self.next_slot = slot + self.interval
        await asyncio.sleep(0)
        self.clock.now = max(self.clock.now, slot + self.latency)
        after: Key | None = None
        if cursor is not None:
            filter, after = self.cursors[cursor]
        keys = [k for k in self.items if _holds(k[0], filter) and (after is None or k > after)]
        if sort and isinstance(sort[0], Sorting) and sort[0].order == "DESC":
            keys.reverse()
        page = keys[:limit]
        token = None
        if page and len(keys) > limit:
            token = f"c{len(self.cursors)}"
            self.cursors[token] = (filter, page[-1])
        if self.reverse_page:
            page.reverse()
        items = [InventoryItemV3(id=i, product_id=p) for p, i in page]
        meta = PagingMetadataV3(count=len(items), cursors=Cursors(next=token), has_next=bool(token))
        return InventoryItemsPage(inventory_items=items, paging_metadata=meta)

    def ids(self) -> list[str]:
        return sorted(i for _, i in self.items)


async def _crawl(
    count: int, latency: float, interval: float, **kwargs: Any
) -> tuple[list[str], Any, FakeV3Site]:
    loop = asyncio.get_running_loop()
    clock = _Clock(loop.time())
    site = FakeV3Site(count, 5, latency, interval, clock)
    loop.time = clock  # type: ignore[method-assign]
    try:
        crawl = crawl_inventory_items(site, segments=8, page_size=100, **kwargs)
        async with crawl as items:
            got = [str(item.id) async for item in items]
    finally:
        del loop.time  # the instance attribute hid the class's method
    return got, crawl.stats(), site


@pytest.mark.parametrize("count", [1234, 1200])
async def test_a_paced_v3_site_is_read_by_one_cursor_one_request_above_the_minimum(
    count: int,
) -> None:
    """Latency under the pace's slot: one cursor, ceil(N / 100) + 1 requests."""
    got, stats, site = await _crawl(count, latency=0.1, interval=0.3)
    assert sorted(got) == site.ids() and len(got) == count
    assert stats.cursors == 1 and stats.requests == math.ceil(count / 100) + 1, stats


async def test_latency_over_two_slots_fans_out_after_a_probe_page() -> None:
    """0.65 s per answer against a 0.3 s pace: a timed probe page, then two cursors."""
    got, stats, site = await _crawl(5000, latency=0.65, interval=0.3)
    assert sorted(got) == site.ids() and len(got) == len(set(got))
    assert stats.cursors == 2 == stats.segments, stats
    assert stats.requests <= 50 + 1 + 1, stats


async def test_an_unpaced_v3_site_gets_every_cursor_at_once() -> None:
    """Answers that travel together fan out to all eight productId ranges."""
    got, stats, site = await _crawl(5000, latency=0.05, interval=0.0)
    assert sorted(got) == site.ids() and len(got) == 5000
    assert stats.cursors == 8 == stats.segments and stats.requests <= 50 + 1 + 7, stats


async def test_a_small_v3_catalog_runs_one_cursor_whatever_the_pace() -> None:
    """A catalog with under four pages per extra cursor is not split (estimated from the
    first page's spread of GUIDs)."""
    got, stats, site = await _crawl(550, latency=0.05, interval=0.0)
    assert sorted(got) == site.ids() and stats.cursors == 1, stats


async def test_ordered_v3_crawl_ascends_across_the_split() -> None:
    """ordered=True yields productIds ascending, with eight cursors and a small buffer."""
    loop = asyncio.get_running_loop()
    site = FakeV3Site(3000, 9, 0.0, 0.0, _Clock(loop.time()))
    crawl = crawl_inventory_items(site, fanout="max", page_size=50, ordered=True, buffer_pages=2)
    async with crawl as items:
        got = [item async for item in items]
    assert [(str(i.product_id), str(i.id)) for i in got] == site.items


async def test_a_page_that_does_not_ascend_is_a_malformed_answer() -> None:
    """A page out of productId order raises TransportError instead of being trimmed."""
    loop = asyncio.get_running_loop()
    site = FakeV3Site(300, 9, 0.0, 0.0, _Clock(loop.time()))
    site.reverse_page = True
    with pytest.raises(TransportError, match="must ascend"):
        await _drain(crawl_inventory_items(site, page_size=50))


async def _drain(crawl: Any) -> None:
    async with crawl as items:
        async for _ in items:
            pass


class _NoStores:
    """A site without stores: the version call says so, and no query may be sent."""

    async def catalog_version(self) -> CatalogVersion:
        return CatalogVersion.STORES_NOT_INSTALLED

    async def query_inventory(self, **_: Any) -> Any:
        raise AssertionError("no query on a site without stores")

    async def query_inventory_items(self, **_: Any) -> Any:
        raise AssertionError("no query on a site without stores")


async def test_a_site_without_stores_yields_nothing_and_sends_no_query() -> None:
    """STORES_NOT_INSTALLED: the crawl ends at once, its stats naming that catalog."""
    crawl = crawl_inventory(_NoStores())
    async with crawl as items:
        assert [item async for item in items] == []
    assert crawl.stats().requests == 0
    assert crawl.stats().catalog is CatalogVersion.STORES_NOT_INSTALLED
