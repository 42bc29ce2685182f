"""The crawler's driver against a small in-memory client: fan-out, stealing, order, stopping."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import pytest
from msgspec import UNSET

from wixinv_async.catalog import CatalogVersion
from wixinv_async.crawler import (
    crawl_inventory,
    crawl_inventory_pages,
    paginate_inventory,
)
from wixinv_async.errors import (
    InvalidInputError,
    OffsetLimitError,
    ServerError,
    TransportError,
)
from wixinv_async.models import InventoryItem, PagingMetadata, QueryInventoryResponse
from wixinv_async.models_v3 import InventoryItemsPage

Hook = Callable[["FakeInventory", Mapping[str, Any] | None], Awaitable[None]]


def _matches(item: InventoryItem, node: Mapping[str, Any]) -> bool:
    for key, condition in node.items():
        if key == "$and":
            if not all(_matches(item, sub) for sub in condition):
                return False
        elif key == "numericId":
            value = int(str(item.numeric_id))
            ops = {"$gt": int.__gt__, "$gte": int.__ge__, "$lt": int.__lt__, "$lte": int.__le__}
            if not all(ops[op](value, bound) for op, bound in condition.items()):
                return False
        elif key == "productId":
            if item.product_id not in condition["$hasSome"]:
                return False
        else:
            raise AssertionError(f"the fake does not know {key!r}")
    return True


def _item(numeric_id: int) -> InventoryItem:
    return InventoryItem(
        id=f"i{numeric_id}", product_id=f"p{numeric_id}", numeric_id=str(numeric_id)
    )


def _key(item: InventoryItem) -> int:
    return int(str(item.numeric_id))


class FakeInventory:
    """Answers query_inventory from a list, with the filter forms the crawler sends."""

    def __init__(self, numeric_ids: Sequence[int], hook: Hook | None = None) -> None:
        self.items = sorted(map(_item, numeric_ids), key=_key)
        self.hook = hook
        self.calls: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled = 0

    def add(self, numeric_id: int) -> None:
        self.items.append(_item(numeric_id))
        self.items.sort(key=_key)

    def ids(self) -> list[int]:
        return [int(str(item.numeric_id)) for item in self.items]

    async def catalog_version(self) -> CatalogVersion:
        return CatalogVersion.V1_CATALOG

    async def query_inventory_items(self, **_: Any) -> InventoryItemsPage:
        raise AssertionError("a V1 site's crawl sends no V3 query")

    async def query_inventory(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: Sequence[Mapping[str, str]] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> QueryInventoryResponse:
        self.calls.append({"filter": filter, "sort": sort, "limit": limit, "offset": offset})
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)  # let the other workers run: no timing involved
            if self.hook is not None:
                await self.hook(self, filter)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        matched = [item for item in self.items if filter is None or _matches(item, filter)]
        if sort and sort[0].get("numericId") == "desc":
            matched.reverse()
        page = matched[offset : offset + limit]
        return QueryInventoryResponse(
            inventory_items=page,
            metadata=PagingMetadata(items=len(page), offset=offset),
            total_results=len(matched),
        )


def _skewed(count: int, seed: int) -> list[int]:
    """80 % of the ids in a tenth of the range, like the emulator's skewed catalogs."""
    rng = random.Random(seed)
    hot = rng.sample(range(500_000, 600_000), count * 8 // 10)
    cold = rng.sample(range(500_000), count - len(hot))
    return sorted(hot + cold)


async def _ids(crawl: Any) -> list[int]:
    async with crawl as items:
        return [int(item.numeric_id) async for item in items]


def _window_start(filter: Mapping[str, Any] | None) -> int | None:
    """The ``$gt`` bound of a crawl query, or None for the bound queries."""
    if not filter:
        return None
    clauses = filter.get("$and", [filter])
    for clause in clauses:
        bound = clause.get("numericId", {}).get("$gt")
        if bound is not None:
            return int(bound)
    return None


# --- fan-out and exactly once ------------------------------------------------------------


async def test_every_item_is_yielded_exactly_once() -> None:
    """A thousand spread ids through eight cursors come out once each."""
    fake = FakeInventory(random.Random(1).sample(range(1, 10**6), 1000))
    ids = await _ids(crawl_inventory(fake, fanout="max", segments=8, page_size=10))
    assert sorted(ids) == fake.ids() and len(ids) == len(set(ids))


async def test_segments_are_read_concurrently() -> None:
    """With four segments, four queries are in flight at once."""
    fake = FakeInventory(range(1, 2001))
    await _ids(crawl_inventory(fake, fanout="max", segments=4, page_size=10))
    assert fake.max_in_flight == 4


async def test_bounds_come_from_one_ascending_and_one_descending_query() -> None:
    """The first two requests are limit-1 queries sorted each way."""
    fake = FakeInventory(range(10, 20))
    await _ids(crawl_inventory(fake, fanout="max", segments=2))
    bounds = sorted(fake.calls[:2], key=lambda call: call["sort"][0]["numericId"])
    assert [(c["limit"], c["sort"]) for c in bounds] == [
        (1, ({"numericId": "asc"},)),
        (1, ({"numericId": "desc"},)),
    ]


async def test_empty_catalog_yields_nothing_after_two_queries() -> None:
    """No items: the bound queries find nothing and no cursor starts."""
    fake = FakeInventory([])
    crawl = crawl_inventory(fake)
    assert await _ids(crawl) == []
    assert len(fake.calls) == 2 and crawl.stats().requests == 2


async def test_skewed_catalog_is_rebalanced_by_stealing() -> None:
    """Idle workers take halves of the dense segment, and nothing is read twice."""
    fake = FakeInventory(_skewed(3000, seed=2))
    crawl = crawl_inventory(fake, fanout="max", segments=8, page_size=20)
    ids = await _ids(crawl)
    assert sorted(ids) == fake.ids() and len(ids) == len(set(ids))
    assert crawl.stats().steals > 0


async def test_static_split_never_steals() -> None:
    """adaptive=False keeps the initial split (the baseline of the benchmark)."""
    fake = FakeInventory(_skewed(1000, seed=3))
    crawl = crawl_inventory(fake, fanout="max", segments=8, page_size=20, adaptive=False)
    assert sorted(await _ids(crawl)) == fake.ids()
    assert crawl.stats().steals == 0 and crawl.stats().segments == 8


async def test_user_filter_is_anded_with_each_window() -> None:
    """Only items matching the user filter come out; each query ANDs it with the window."""
    fake = FakeInventory(range(1, 501))
    wanted = [f"p{i}" for i in range(1, 501, 7)]
    user = {"productId": {"$hasSome": wanted}}
    ids = await _ids(crawl_inventory(fake, filter=user, segments=4, page_size=5))
    assert sorted(ids) == list(range(1, 501, 7))
    reads = [c["filter"] for c in fake.calls[2:]]
    assert all(f["$and"][0] == user for f in reads)


async def test_items_created_during_the_crawl_are_yielded() -> None:
    """Items created above every id while the crawl runs are read by the open tail."""
    rng = random.Random(4)

    async def create(fake: FakeInventory, _filter: Mapping[str, Any] | None) -> None:
        if rng.random() < 0.3:
            fake.add(fake.ids()[-1] + rng.randint(1, 50))

    fake = FakeInventory(range(1, 1001, 3), hook=create)
    ids = await _ids(crawl_inventory(fake, fanout="max", segments=6, page_size=10))
    assert len(fake.ids()) > 334
    assert sorted(ids) == fake.ids()


async def test_item_created_before_the_last_request_is_seen() -> None:
    """The crawl's final request re-reads the top, so a late creation is not missed."""
    created: list[int] = []

    async def create_once_the_tail_is_read(fake: FakeInventory, filter: Any) -> None:
        start = _window_start(filter)
        if not created and start is not None and start >= 900:
            created.append(10_000)
            fake.add(10_000)

    fake = FakeInventory(range(1, 1001), hook=create_once_the_tail_is_read)
    ids = await _ids(crawl_inventory(fake, fanout="max", segments=4, page_size=100))
    assert 10_000 in ids and sorted(ids) == fake.ids()


# --- order and buffering -----------------------------------------------------------------


async def test_ordered_crawl_yields_ascending_numeric_ids() -> None:
    """ordered=True gives numericId order even with steals."""
    fake = FakeInventory(_skewed(2000, seed=5))
    crawl = crawl_inventory(
        fake, fanout="max", segments=8, page_size=10, ordered=True, buffer_pages=3
    )
    ids = await _ids(crawl)
    assert ids == fake.ids()
    assert crawl.stats().steals > 0


async def _slow_consumer(crawl: Any) -> list[int]:
    seen = []
    async with crawl as items:
        async for item in items:
            seen.append(int(item.numeric_id))
            for _ in range(10):
                await asyncio.sleep(0)
    return seen


@pytest.mark.parametrize("ordered", [False, True])
async def test_buffering_is_bounded_for_a_slow_consumer(ordered: bool) -> None:
    """However slowly items are taken, at most about twice buffer_pages pages wait."""
    fake = FakeInventory(range(1, 1001))
    crawl = crawl_inventory(
        fake, fanout="max", segments=8, page_size=10, ordered=ordered, buffer_pages=4
    )
    seen = await _slow_consumer(crawl)
    assert sorted(seen) == fake.ids()
    assert crawl.stats().max_buffered <= 2 * 4 + 1  # the page the consumer waits for may pass


async def test_page_variant_yields_lists_of_at_most_page_size() -> None:
    """crawl_inventory_pages hands over whole pages, ascending within each."""
    fake = FakeInventory(range(1, 301))
    async with crawl_inventory_pages(fake, fanout="max", segments=3, page_size=25) as pages:
        got = [page async for page in pages]
    assert all(0 < len(page) <= 25 for page in got)
    assert all(
        [int(str(i.numeric_id)) for i in page] == sorted(int(str(i.numeric_id)) for i in page)
        for page in got
    )
    assert sorted(int(str(i.numeric_id)) for page in got for i in page) == fake.ids()


# --- stopping and errors -----------------------------------------------------------------


def _other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


async def test_breaking_out_stops_every_worker() -> None:
    """Leaving an `async with` crawl early leaves no task and no query running."""
    fake = FakeInventory(range(1, 2001))
    async with crawl_inventory(fake, fanout="max", segments=8, page_size=10) as items:
        async for item in items:
            if int(item.numeric_id) > 0:
                break
    assert _other_tasks() == set()
    assert fake.in_flight == 0


async def test_plain_break_stops_the_workers_once_the_iterator_is_dropped() -> None:
    """Without `async with`, the dropped iterator is finalized by the loop and stops them."""
    fake = FakeInventory(range(1, 2001))
    async for item in crawl_inventory(fake, fanout="max", segments=8, page_size=10):
        if int(item.numeric_id) > 0:
            break
    for _ in range(100):  # let the loop run the async-generator finalizer: no timing involved
        if not _other_tasks():
            break
        await asyncio.sleep(0)
    assert _other_tasks() == set()
    assert fake.in_flight == 0


async def test_aclosing_a_crawl_stops_it() -> None:
    """contextlib.aclosing works as well as `async with`."""
    fake = FakeInventory(range(1, 2001))
    async with aclosing(crawl_inventory(fake, fanout="max", segments=4, page_size=10)) as items:
        assert await anext(items) is not None
    assert _other_tasks() == set() and fake.in_flight == 0


async def test_closing_before_iterating_sends_nothing() -> None:
    """A crawl closed before its first item makes no request."""
    fake = FakeInventory(range(1, 100))
    await crawl_inventory(fake).aclose()
    assert fake.calls == []


async def test_error_in_one_segment_cancels_the_others_and_is_raised() -> None:
    """One failing cursor: the others' queries are cancelled and its error surfaces."""
    blocked = asyncio.Event()

    async def fail_in_third_segment(fake: FakeInventory, filter: Any) -> None:
        start = _window_start(filter)
        if start is None:
            return
        if 500 <= start < 750:
            raise ServerError(500, "boom", request_id="r-1")
        await blocked.wait()  # the other cursors would wait forever

    fake = FakeInventory(range(1, 1001), hook=fail_in_third_segment)
    with pytest.raises(ServerError, match="boom"):
        await _ids(crawl_inventory(fake, fanout="max", segments=4, page_size=10))
    assert fake.cancelled == 3
    assert _other_tasks() == set()


async def test_error_in_a_bound_query_is_raised_as_is() -> None:
    """A failing bound query raises its own error, not an ExceptionGroup."""

    async def fail(fake: FakeInventory, filter: Any) -> None:
        raise ServerError(503, "unavailable")

    with pytest.raises(ServerError, match="unavailable"):
        await _ids(crawl_inventory(FakeInventory(range(5), hook=fail)))


@pytest.mark.parametrize("bad", ["12a", "1\u00b2", "1\u0663", "-12", ""])
async def test_item_without_a_numeric_id_is_a_malformed_response(bad: str) -> None:
    """An item the crawler cannot place (not ASCII digits) fails the crawl with a
    TransportError naming it."""

    class Corrupting(FakeInventory):
        async def query_inventory(self, **kwargs: Any) -> QueryInventoryResponse:
            response = await super().query_inventory(**kwargs)
            for i, item in enumerate(response.inventory_items):
                if item.numeric_id == "12":
                    response.inventory_items[i] = InventoryItem(id="broken", numeric_id=bad)
            return response

    with pytest.raises(TransportError, match="broken"):
        await _ids(crawl_inventory(Corrupting(range(1, 50)), fanout="max", segments=2, page_size=5))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"segments": 0}, "segments"),
        ({"segments": True}, "segments"),
        ({"page_size": 101}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"buffer_pages": 0}, "buffer_pages"),
        ({"filter": "numericId > 5"}, "filter"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    """Bad crawl settings fail at the call, naming field and value."""
    with pytest.raises(InvalidInputError) as info:
        crawl_inventory(FakeInventory([]), **kwargs)
    assert info.value.field == field
    assert info.value.value == next(iter(kwargs.values()))


# --- offset paging -----------------------------------------------------------------------


async def test_paginate_reads_a_small_set_in_order() -> None:
    """A small result set comes back whole, in the requested order, by offset."""
    fake = FakeInventory(range(1, 251))
    items = paginate_inventory(fake, sort=[{"numericId": "desc"}], page_size=100)
    got = [int(str(item.numeric_id)) async for item in items]
    assert got == list(range(250, 0, -1))
    assert [c["offset"] for c in fake.calls] == [0, 100, 200]


async def test_paginate_refuses_more_than_ten_thousand_items() -> None:
    """Past 10,000 matching items paging fails at once, pointing at the crawler."""
    fake = FakeInventory(range(1, 10_002))
    items = paginate_inventory(fake)
    with pytest.raises(OffsetLimitError, match="crawl_inventory"):
        await anext(items)
    assert len(fake.calls) == 1


async def test_paginate_reads_exactly_ten_thousand_items_without_error() -> None:
    """A set of exactly 10,000 items, its total reported, is served whole with no error."""
    fake = FakeInventory(range(1, 10_001))
    got = [int(str(item.numeric_id)) async for item in paginate_inventory(fake)]
    assert got == list(range(1, 10_001))
    assert fake.calls[-1]["offset"] + fake.calls[-1]["limit"] == 10_000


async def test_paginate_without_a_total_stops_at_ten_thousand_items() -> None:
    """No total reported and the 10,000th item ends a full page: there may be more, so it fails."""
    fake = FakeInventory(range(1, 10_001))
    untotalled = fake.query_inventory

    async def query_inventory(**query: Any) -> QueryInventoryResponse:
        response = await untotalled(**query)
        response.total_results = UNSET
        return response

    fake.query_inventory = query_inventory  # type: ignore[method-assign]
    got: list[InventoryItem] = []

    async def read() -> None:
        got.extend([item async for item in paginate_inventory(fake)])

    with pytest.raises(OffsetLimitError, match="crawl_inventory"):
        await read()
    assert not got  # the comprehension never finished; the items were yielded, then it failed
    assert fake.calls[-1]["offset"] == 9_900


async def test_paginate_with_max_items_stops_early_on_a_big_set() -> None:
    """max_items below the limit reads just that many, whatever the total."""
    fake = FakeInventory(range(1, 10_002))
    got = [item async for item in paginate_inventory(fake, max_items=150, page_size=100)]
    assert len(got) == 150 and [c["limit"] for c in fake.calls] == [100, 50]


async def test_paginate_refuses_max_items_past_the_limit() -> None:
    """Asking for more than 10,000 items by offset is refused before any request."""
    fake = FakeInventory(range(1, 10))
    with pytest.raises(OffsetLimitError, match="crawl_inventory"):
        await anext(paginate_inventory(fake, max_items=10_001))
    assert fake.calls == []


async def test_paginate_refuses_a_bad_page_size() -> None:
    """page_size outside 1..100 names the field."""
    with pytest.raises(InvalidInputError, match="page_size"):
        await anext(paginate_inventory(FakeInventory([]), page_size=500))


@pytest.mark.parametrize("seed", range(12))
async def test_ordered_crawl_with_a_busy_tail_and_a_slow_consumer(seed: int) -> None:
    """Tiny buffers, a slow consumer and items created at the top: order and completeness hold."""
    rng = random.Random(seed)

    async def create(fake: FakeInventory, _filter: Any) -> None:
        if rng.random() < 0.5:
            fake.add(fake.ids()[-1] + rng.randint(1, 3))

    fake = FakeInventory(sorted(rng.sample(range(1, 3000), 300)), hook=create)
    crawl = crawl_inventory(
        fake, fanout="max", segments=rng.randint(2, 6), page_size=5, ordered=True, buffer_pages=1
    )
    seen = await _slow_consumer(crawl)
    assert seen == fake.ids(), f"seed {seed}"


async def test_pages_of_one_segment_come_out_in_recorded_order() -> None:
    """Two workers holding pages of the open tail: the later-recorded page never overtakes."""
    from wixinv_async._pagebuffer import PageBuffer, Signal
    from wixinv_async.core.keyset import KeysetPlan

    plan = KeysetPlan(1, 100, 1)
    tail = plan.ordered()[0]
    buffer = PageBuffer[list[Any]](ordered=True, capacity=4, signal=Signal())
    buffer.plan = plan
    first, second = buffer.ticket(tail), buffer.ticket(tail)
    await buffer.put(tail, second, [_item(2)])  # the re-reading worker gets there first
    buffer.seal(tail)
    waiting = asyncio.create_task(buffer.get())
    await asyncio.sleep(0)
    assert not waiting.done()  # the earlier page is still due
    await buffer.put(tail, first, [_item(1)])
    buffer.close()
    assert [(await waiting)[0].numeric_id, (await buffer.get() or [])[0].numeric_id] == ["1", "2"]
    assert await buffer.get() is None


@pytest.mark.parametrize("old", [0, 1, 10])
async def test_recent_cluster_after_sparse_old_items_costs_no_steal_storm(old: int) -> None:
    """A few old items and 300 recent ones (numericIds are microsecond timestamps): the empty
    segments between them must not set idle workers halving the range request after request."""
    base, span = 1_500_000_000_000_000, 10**14
    recent = range(base + span, base + span + 300_000, 1000)
    fake = FakeInventory([*range(base, base + old), *recent])
    crawl = crawl_inventory(fake, fanout="max", segments=8)
    assert sorted(await _ids(crawl)) == fake.ids()
    assert crawl.stats().requests <= 2 + 8 + 8, crawl.stats()


class _CappedPages(FakeInventory):
    """A server whose pages stop at 7 items whatever the limit, totalResults still exact."""

    async def query_inventory(self, **query: Any) -> QueryInventoryResponse:
        response = await super().query_inventory(**query)
        response.inventory_items = response.inventory_items[:7]
        return response


@pytest.mark.parametrize("segments", [1, 4])
async def test_short_page_that_is_not_the_last_loses_nothing(segments: int) -> None:
    """A page shorter than page_size while totalResults says more match reads on, not stops."""
    fake = _CappedPages(range(1, 301))
    ids = await _ids(crawl_inventory(fake, fanout="max", segments=segments, page_size=10))
    assert sorted(ids) == fake.ids() and len(ids) == len(set(ids))


async def test_recent_cluster_at_the_top_of_a_wide_segment_is_shared() -> None:
    """A big recent import above a few old items, all in the top segment's last sliver: the
    empty ids before the cluster don't hide its density, so idle workers take halves of it."""
    base, span = 1_500_000_000_000_000, 10**14
    fake = FakeInventory(
        [*range(base, base + 3), *range(base + span, base + span + 3_000_000, 1000)]
    )
    crawl = crawl_inventory(fake, fanout="max", segments=8)
    assert sorted(await _ids(crawl)) == fake.ids()
    assert crawl.stats().steals >= 4 and crawl.stats().requests <= 2 + 30 + 8 + 16, crawl.stats()


# --- the fan-out, measured on a virtual clock ---------------------------------------------


class _Clock:
    """The event loop's time, moved only by the fake site's answers."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class _PacedSite(FakeInventory):
    """A site that answers one request per ``interval`` (its pace), ``latency`` after its slot."""

    def __init__(self, ids: Sequence[int], latency: float, interval: float, clock: _Clock) -> None:
        super().__init__(ids)
        self.latency, self.interval, self.clock = latency, interval, clock
        self.next_slot = clock.now

    async def query_inventory(self, **query: Any) -> QueryInventoryResponse:
        slot = max(self.clock.now, self.next_slot)
        self.next_slot = slot + self.interval
        response = await super().query_inventory(**query)
        self.clock.now = max(self.clock.now, slot + self.latency)
        return response


async def _crawl_on_virtual_time(
    count: int, latency: float, interval: float, **kwargs: Any
) -> tuple[list[int], Any, _PacedSite]:
    loop = asyncio.get_running_loop()
    clock = _Clock(loop.time())
    site = _PacedSite(range(1, count + 1), latency, interval, clock)
    loop.time = clock  # type: ignore[method-assign]
    try:
        crawl = crawl_inventory(site, segments=8, **kwargs)
        ids = await _ids(crawl)
    finally:
        del loop.time  # the instance attribute hid the class's method
    return ids, crawl.stats(), site


@pytest.mark.parametrize("count", [1234, 1200])
async def test_a_paced_site_is_crawled_by_one_cursor_in_the_fewest_requests(count: int) -> None:
    """Latency under the pace's slot: one cursor spends the budget, ceil(N/100) + 2 requests
    (no empty read after a full last page either)."""
    ids, stats, site = await _crawl_on_virtual_time(count, latency=0.1, interval=0.3)
    assert ids == site.ids()
    assert stats.cursors == 1 and stats.requests == -(-count // 100) + 2, stats


async def test_the_old_fixed_fan_out_spends_more_on_a_paced_site() -> None:
    """fanout="max" (every segment a cursor) pays requests for no speed on the same site."""
    ids, stats, site = await _crawl_on_virtual_time(1234, 0.1, 0.3, fanout="max")
    assert sorted(ids) == site.ids() and stats.cursors == 8 and stats.requests > 15, stats


async def test_latency_over_two_slots_fans_out_after_a_timed_probe_page() -> None:
    """0.65 s per answer against a 0.3 s pace: one probe page, then two cursors fill the slots."""
    ids, stats, site = await _crawl_on_virtual_time(5000, latency=0.65, interval=0.3)
    assert sorted(ids) == site.ids() and len(ids) == len(set(ids))
    assert stats.cursors == 2 and stats.requests <= 50 + 2 + 2, stats


async def test_an_unpaced_site_gets_every_cursor_at_once() -> None:
    """Answers that travel together (no pace) fan out to all segments without a probe."""
    ids, stats, site = await _crawl_on_virtual_time(5000, latency=0.05, interval=0.0)
    assert sorted(ids) == site.ids() and stats.cursors == 8, stats


async def test_fan_out_is_logged_with_its_measurements(caplog: pytest.LogCaptureFixture) -> None:
    """The chosen fan-out and what it was measured from go to the crawler's logger at INFO."""
    with caplog.at_level(logging.INFO, logger="wixinv_async.crawler"):
        await _crawl_on_virtual_time(1234, latency=0.1, interval=0.3)
    (record,) = [r for r in caplog.records if r.name == "wixinv_async.crawler"]
    assert record.levelno == logging.INFO
    assert "1 of at most 8 cursors" in record.getMessage()
    assert "answers 300.0 ms apart" in record.getMessage()


async def test_steals_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """Each steal names the thief, the victim and the range taken."""
    fake = FakeInventory(_skewed(4000, seed=3))
    with caplog.at_level(logging.DEBUG, logger="wixinv_async.crawler"):
        crawl = crawl_inventory(fake, fanout="max", segments=8, page_size=20)
        await _ids(crawl)
    steals = [r.getMessage() for r in caplog.records if "steal" in r.getMessage()]
    assert len(steals) == crawl.stats().steals > 0
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "steal" in r.getMessage())


async def test_ordered_crawl_stays_in_order_across_the_probe_split() -> None:
    """The probe page, then its segment split among cursors: ordered=True still ascends."""
    ids, stats, site = await _crawl_on_virtual_time(3000, 0.65, 0.3, ordered=True, buffer_pages=2)
    assert ids == site.ids() and stats.cursors == 2, stats


async def test_a_failed_crawl_is_logged_once_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The error that ends a crawl is logged at WARNING with the requests spent, and raised."""

    async def fail(fake: FakeInventory, filter: Mapping[str, Any] | None) -> None:
        if len(fake.calls) > 6:
            raise ServerError(500, "boom")

    fake = FakeInventory(range(1, 400), hook=fail)
    with (
        caplog.at_level(logging.WARNING, logger="wixinv_async.crawler"),
        pytest.raises(ServerError),
    ):
        await _ids(crawl_inventory(fake, fanout="max", segments=4, page_size=10))
    (record,) = [r for r in caplog.records if r.name == "wixinv_async.crawler"]
    message = record.getMessage()
    assert record.levelno == logging.WARNING and "ServerError" in message and "boom" in message
