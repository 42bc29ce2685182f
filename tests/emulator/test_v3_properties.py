"""Invariants of the V3 keyset pages and per-item bulk rules, checked on the pure store."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.emulator.catalogs import location_ids, seed_v3
from wixinv_async.emulator.store import SiteStore
from wixinv_async.emulator.v3_query import compile_plan, decode_cursor
from wixinv_async.emulator.v3_store import AdjustIn, V3Store

SORTS = [
    [],
    [("createdDate", "ASC")],
    [("createdDate", "DESC")],
    [("product.name", "DESC"), ("createdDate", "ASC")],
    [("trackQuantity", "ASC"), ("productId", "DESC")],
]
FILTERS: list[dict[str, Any] | None] = [
    None,
    {"trackQuantity": True},
    {"$or": [{"inStock": True}, {"preorderInfo.enabled": False}]},
]


def _store(seed: int) -> V3Store:
    v1 = SiteStore(site_id="s", instance_id="i", products=40, variants_per_product=2, seed=seed)
    return seed_v3(v1, seed, location_ids(seed, 2))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 1000),
    sort=st.sampled_from(SORTS),
    filter_=st.sampled_from(FILTERS),
    limit=st.integers(1, 40),
)
def test_paging_with_stock_changes_between_pages_reads_each_match_once(
    seed: int, sort: list[tuple[str, str]], filter_: dict[str, Any] | None, limit: int
) -> None:
    """Whatever the sort, filter and page size, decrements and increments between pages (they
    change neither sort keys nor matches here) leave every match read exactly once, in order."""
    store = _store(seed)
    rng = random.Random(seed)
    plan = compile_plan("query", filter_, sort, None, "query")
    expected = [i.id for i in store.page(plan, 1000, None, False).items]
    seen: list[str] = []
    page = store.page(plan, limit, None, False)
    while True:
        seen += [i.id for i in page.items]
        tracked = [i.id for i in store.records() if i.track]
        entries = [AdjustIn(i, None, None, rng.randint(1, 3)) for i in rng.sample(tracked, 5)]
        store.adjust(
            "x", entries, decrementing=False, restrict=True, reason=None, rid="r", fault=None
        )
        if page.next is None:
            break
        cursor = decode_cursor("query", page.next, "query")
        page = store.page(cursor.plan, limit, cursor.after, cursor.backward)
    assert seen == expected


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 1000),
    amounts=st.lists(
        st.tuples(st.integers(0, 9), st.integers(1, 400), st.booleans()), min_size=1, max_size=30
    ),
    restrict=st.booleans(),
)
def test_a_bulk_changes_exactly_its_successful_entries(
    seed: int, amounts: list[tuple[int, int, bool]], restrict: bool
) -> None:
    """Per item, the stock after a bulk is the stock before plus the amounts of the entries
    reported successful; refused entries change nothing; every item stays within +-99999."""
    store = _store(seed)
    items = store.records()[:10]
    before = {i.id: (i.quantity, i.revision) for i in items}
    entries = [AdjustIn(items[k].id, None, None, n) for k, n, _ in amounts]
    down = [d for _, _, d in amounts]
    applied_flags = []
    for entry, decrementing in zip(entries, down, strict=True):
        settled = store.adjust(
            "x",
            [entry],
            decrementing=decrementing,
            restrict=restrict,
            reason=None,
            rid="r",
            fault=None,
        )
        applied_flags.append(not settled.failed)
    for item in items:
        mine = [
            (e, d, ok)
            for e, d, ok in zip(entries, down, applied_flags, strict=True)
            if e.inventory_item_id == item.id
        ]
        applied = [(e, d) for e, d, ok in mine if ok]
        change = sum(-e.amount if d else e.amount for e, d in applied)
        quantity, revision = before[item.id]
        assert item.quantity == quantity + change
        assert item.revision == revision + len(applied)
        assert -99_999 <= item.quantity <= 99_999
        if not item.track:
            assert not applied
