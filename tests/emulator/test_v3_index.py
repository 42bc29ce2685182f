"""The V3 store's sorted index answers every keyset page exactly as a scan of every item."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.emulator.catalogs import location_ids, seed_v3
from wixinv_async.emulator.store import SiteStore
from wixinv_async.emulator.v3_index import SortedItems, indexable, run_sorted
from wixinv_async.emulator.v3_items import V3Item
from wixinv_async.emulator.v3_query import Plan, compile_plan, cursor_for, decode_cursor, run
from wixinv_async.emulator.v3_store import V3Store

SORTS = [
    [],
    [("productId", "ASC")],
    [("productId", "DESC")],
    [("createdDate", "ASC")],
    [("createdDate", "DESC"), ("product.variantSku", "ASC")],
    [("product.name", "DESC"), ("productId", "ASC")],
]


def _store(seed: int, products: int = 40) -> V3Store:
    v1 = SiteStore(
        site_id="s", instance_id="i", products=products, variants_per_product=2, seed=seed
    )
    return seed_v3(v1, seed, location_ids(seed, 2))


def _filters(store: V3Store, rng: random.Random) -> list[dict[str, Any] | None]:
    """Filters bounding the sort's first field (or the id), alone or with others."""
    items = store.records()
    a, b = sorted(rng.choice(items).product_id for _ in range(2))
    i, j = sorted(rng.choice(items).id for _ in range(2))
    created = rng.choice(items).created / 1000
    day = {"$date": datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")}
    return [
        None,
        {"productId": {"$gte": a, "$lt": b}},
        {"productId": {"$gt": a, "$lte": b}, "trackQuantity": True},
        {"productId": a},
        {"productId": {"$lt": a}, "$or": [{"inStock": True}, {"quantity": {"$gt": 50}}]},
        {"id": {"$gte": i, "$lt": j}},
        {"createdDate": {"$gte": day}},
        {"createdDate": {"$lt": day}, "productId": {"$in": [a, b]}},
        {"trackQuantity": False},
    ]


def _page_ids(page: Any) -> tuple[list[str], str | None, str | None]:
    return [i.id for i in page.items], page.next, page.prev


def _bound(plan: Plan, item: V3Item) -> list[Any]:
    return decode_cursor(plan.kind, cursor_for(plan, item, "next"), "").after


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    sort=st.sampled_from(SORTS),
    which=st.integers(0, 8),
    limit=st.integers(1, 30),
    backward=st.booleans(),
    deleted=st.integers(0, 20),
)
def test_an_indexed_page_is_the_scanned_page(
    seed: int, sort: list[tuple[str, str]], which: int, limit: int, backward: bool, deleted: int
) -> None:
    """Any indexable sort, bounding filter, page size and direction, from a cursor at a live
    or a deleted item: the same items and the same cursors as the scan."""
    store = _store(seed)
    rng = random.Random(seed)
    plan = compile_plan("search", _filters(store, rng)[which], sort, None, "")
    assert indexable(plan)
    at = rng.choice(store.records())
    after = _bound(plan, at) if backward or rng.random() < 0.8 else None
    for item in rng.sample(store.records(), deleted):
        store.delete(item.id, "r")
    items = store.records()
    expected = run(plan, items, limit, after, backward)
    assert _page_ids(run_sorted(plan, SortedItems(plan, items), limit, after, backward)) == (
        _page_ids(expected)
    )
    assert _page_ids(store.page(plan, limit, after, backward)) == _page_ids(expected)


def test_a_page_of_a_productid_range_tests_only_its_window() -> None:
    """Mid-crawl, a productId-range page tests the filter on about a page of items, not on
    the whole catalog (the scan tested every item on every page)."""
    store = _store(1, products=1_000)
    calls = 0
    base = compile_plan(
        "search", {"productId": {"$gte": "4", "$lt": "8"}}, [("productId", "ASC")], None, ""
    )

    def counted(item: V3Item) -> bool:
        nonlocal calls
        calls += 1
        return base.match(item)

    plan = base._replace(match=counted)
    first = store.page(plan, 50, None, False)
    assert first.next is not None
    calls = 0
    cursor = decode_cursor("search", first.next, "")
    page = store.page(plan, 50, cursor.after, False)
    assert len(page.items) == 50 and calls <= 52 < len(store) // 10


def test_a_deleted_item_leaves_the_index() -> None:
    """A page after a deletion (the index already built) no longer holds the item."""
    store = _store(2)
    plan = compile_plan("query", None, [("productId", "ASC")], None, "query")
    victim = store.page(plan, 5, None, False).items[2]
    store.delete(victim.id, "r")
    ids = [i.id for i in store.page(plan, 5, None, False).items]
    assert victim.id not in ids
    assert ids == [i.id for i in run(plan, store.records(), 5, None, False).items]


def test_a_sort_by_a_field_writes_change_is_not_indexed() -> None:
    """Quantity and updatedDate change with every write: such plans keep the scan."""
    for sort in ([("quantity", "ASC")], [("productId", "ASC"), ("updatedDate", "DESC")]):
        assert not indexable(compile_plan("query", None, sort, None, "query"))
