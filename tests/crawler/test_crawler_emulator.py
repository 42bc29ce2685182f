"""The crawler against the emulator over HTTP: 30,000 skewed items, changes mid-crawl, filters."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.catalog import CatalogVersion
from wixinv_async.client import InventoryClient
from wixinv_async.crawler import crawl_inventory, paginate_inventory
from wixinv_async.emulator import Emulator
from wixinv_async.errors import OffsetLimitError
from wixinv_async.models import MAX_OFFSET_ITEMS, InventoryItem, QueryInventoryResponse
from wixinv_async.models_v3 import InventoryItemsPage
from wixinv_async.transport import RateLimit

ITEMS = 30_000


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """30,000 single-variant products, 80 % of their numericIds in a tenth of the range."""
    async with Emulator(products=ITEMS, variants_per_product=1, id_distribution="skewed") as emu:
        yield emu


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[InventoryClient]:
    """A client of the emulator without pacing: these tests measure correctness, not the limit."""
    auth = ApiKeyAuth(emulator.api_key, site_id=emulator.site_id)
    async with InventoryClient(auth, base_url=emulator.url, rate_limit=None) as c:
        yield c


def _ids(items: Sequence[InventoryItem]) -> list[int]:
    return [int(str(item.numeric_id)) for item in items]


async def test_crawl_reads_past_the_offset_limit_exactly_once(
    emulator: Emulator, client: InventoryClient
) -> None:
    """All 30,000 items, each once, where offset paging refuses to go."""
    crawl = crawl_inventory(client, fanout="max", segments=8)
    async with crawl as items:
        got = _ids([item async for item in items])
    assert len(got) == ITEMS > MAX_OFFSET_ITEMS
    assert sorted(got) == _ids(emulator.store.items())
    assert crawl.stats().steals > 0
    with pytest.raises(OffsetLimitError, match="crawl_inventory"):
        await anext(paginate_inventory(client))


class _Busy:
    """A client proxy: before each query, the catalog changes (new products, new stock)."""

    def __init__(self, client: InventoryClient, emulator: Emulator, seed: int) -> None:
        self.client = client
        self.store = emulator.store
        self.rng = random.Random(seed)
        self.pool = [str(item.product_id) for item in emulator.store.items()]
        self.created: list[str] = []
        self.changed: set[str] = set()

    async def query_inventory(self, **query: Any) -> QueryInventoryResponse:
        for _ in range(self.rng.randint(0, 2)):
            self.created.append(
                str(self.store.add_product(quantity=self.rng.randint(1, 9)).product_id)
            )
        for _ in range(3):
            product = self.rng.choice(self.pool)
            self.store.set_quantity(product, DEFAULT_VARIANT, self.rng.randint(0, 500))
            self.changed.add(product)
        return await self.client.query_inventory(**query)

    async def catalog_version(self) -> CatalogVersion:
        return await self.client.catalog_version()

    async def query_inventory_items(self, **query: Any) -> InventoryItemsPage:
        return await self.client.query_inventory_items(**query)


DEFAULT_VARIANT = "00000000-0000-0000-0000-000000000000"


async def test_items_created_and_changed_mid_crawl_are_read_once(
    emulator: Emulator, client: InventoryClient
) -> None:
    """New products and stock changes during the crawl: the ids read equal the final state."""
    busy = _Busy(client, emulator, seed=7)
    async with crawl_inventory(busy, fanout="max", segments=8) as items:
        got = [item async for item in items]
    final = emulator.store.items()
    assert busy.created and len(busy.changed) > 100
    assert sorted(_ids(got)) == _ids(final)
    unchanged = {str(i.product_id): i for i in final if str(i.product_id) not in busy.changed}
    for item in got:
        if str(item.product_id) in unchanged:
            assert item.variants == unchanged[str(item.product_id)].variants


Build = Callable[[int], dict[str, Any]]
Wanted = Callable[[InventoryItem, int], bool]
FILTERS: list[tuple[str, Build, Wanted]] = [
    (
        "untracked",
        lambda median: {"trackQuantity": {"$eq": False}},
        lambda item, median: item.track_quantity is False,
    ),
    (
        "lower-half",
        lambda median: {"numericId": {"$lt": median}},
        lambda item, median: int(str(item.numeric_id)) < median,
    ),
    (
        "or",
        lambda median: {
            "$or": [{"trackQuantity": {"$eq": False}}, {"numericId": {"$gte": median}}]
        },
        lambda item, median: item.track_quantity is False or int(str(item.numeric_id)) >= median,
    ),
]


@pytest.mark.parametrize(("name", "build", "wanted"), FILTERS, ids=[f[0] for f in FILTERS])
async def test_user_filters_are_honoured(
    emulator: Emulator, client: InventoryClient, name: str, build: Build, wanted: Wanted
) -> None:
    """A user filter AND-ed with the cursors yields exactly the matching items."""
    everything = emulator.store.items()
    median = int(str(everything[len(everything) // 2].numeric_id))
    async with crawl_inventory(client, filter=build(median), fanout="max", segments=6) as items:
        got = _ids([item async for item in items])
    expected = _ids([item for item in everything if wanted(item, median)])
    assert 0 < len(expected) < len(everything), name
    assert sorted(got) == expected and len(got) == len(set(got))


async def test_ordered_crawl_matches_the_store_order(
    emulator: Emulator, client: InventoryClient
) -> None:
    """ordered=True over HTTP yields the store's numericId order."""
    async with crawl_inventory(client, fanout="max", segments=8, ordered=True) as items:
        got = _ids([item async for item in items])
    assert got == _ids(emulator.store.items())


async def test_a_paced_crawl_over_http_spends_the_fewest_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Against a client paced slower than the emulator answers, the default crawl (segments=8)
    runs one cursor: ceil(N/100) + 2 requests, every item once, and no secret in the logs."""
    async with Emulator(products=450, variants_per_product=1, rate_limit=None) as emu:
        auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
        pace = RateLimit(20, 1.0)  # one request per 51 ms: far slower than a local answer
        with caplog.at_level(logging.DEBUG, logger="wixinv_async"):
            async with InventoryClient(auth, base_url=emu.url, rate_limit=pace) as client:
                crawl = crawl_inventory(client)
                async with crawl as items:
                    got = _ids([item async for item in items])
        assert sorted(got) == _ids(emu.store.items()) and len(got) == len(set(got)) == 450
        assert crawl.stats().cursors == 1 and crawl.stats().requests == 5 + 2, crawl.stats()
        assert emu.api_key not in caplog.text
