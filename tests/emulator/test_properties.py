"""Invariants, property-tested: batches are all or nothing, queries match a naive evaluation."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.emulator import SiteStore
from wixinv_async.emulator._errors import WixApiError
from wixinv_async.emulator.query import compile_query, run_query
from wixinv_async.emulator.requests import DecrementEntry, IncrementEntry

STORE = SiteStore(site_id="s", instance_id="i", products=30, variants_per_product=2, seed=11)
KEYS = [(i.product_id, v.variant_id) for i in STORE._items for v in i.variants.values()]
ITEMS = list(STORE._items)
IDS = [i.numeric_id for i in ITEMS]

entry = st.tuples(
    st.sampled_from([*KEYS, ("unknown-product", KEYS[0][1])]),
    st.integers(min_value=0, max_value=700),
    st.booleans(),
)
batch = st.tuples(st.booleans(), st.lists(entry, min_size=1, max_size=8))


@settings(max_examples=60, deadline=None)
@given(st.lists(batch, min_size=1, max_size=12))
def test_batches_apply_all_or_nothing_and_the_journal_explains_every_quantity(batches: Any) -> None:
    """After any mix of accepted and refused batches, each quantity is the seeded one plus
    exactly the journaled entries: refused batches left no trace."""
    STORE.reset()
    start = {key: STORE._index.by_product[key[0]].variants[key[1]].quantity for key in KEYS}
    accepted = 0
    refusals: list[int] = []
    for is_decrement, entries in batches:
        try:
            if is_decrement:
                STORE.decrement(
                    [
                        DecrementEntry(
                            product_id=p, variant_id=v, decrement_by=n, preorder_request=pre
                        )
                        for (p, v), n, pre in entries
                    ],
                    "r",
                )
            else:
                STORE.increment(
                    [
                        IncrementEntry(product_id=p, variant_id=v, increment_by=n)
                        for (p, v), n, _ in entries
                    ],
                    "r",
                )
            accepted += 1
        except WixApiError as refused:
            refusals.append(refused.status)
    expected = dict(start)
    for record in STORE.journal:
        for e in record.entries:
            sign = -1 if record.endpoint == "decrementInventory" else 1
            key = (e["productId"], e["variantId"])
            expected[key] += sign * e.get("decrementBy", e.get("incrementBy", 0))
    assert set(refusals) <= {400, 404, 428}
    assert len(STORE.journal) == accepted
    assert {
        key: STORE._index.by_product[key[0]].variants[key[1]].quantity for key in KEYS
    } == expected


bound = st.sampled_from(IDS)
numeric_condition = st.fixed_dictionaries(
    {},
    optional={
        "$gt": bound,
        "$gte": bound,
        "$lt": bound,
        "$lte": bound,
        "$ne": bound,
        "$in": st.lists(bound, max_size=4),
    },
)
simple = st.one_of(
    st.builds(lambda c: {"numericId": c}, numeric_condition.filter(bool)),
    st.builds(lambda b: {"trackQuantity": b}, st.booleans()),
    st.builds(
        lambda ps: {"productId": {"$in": ps}},
        st.lists(st.sampled_from([i.product_id for i in ITEMS]), max_size=5),
    ),
)
filters = st.one_of(
    simple,
    st.builds(lambda a, b: {"$or": [a, b]}, simple, simple),
    st.builds(lambda a, b: {"$and": [a, b]}, simple, simple),
    st.builds(lambda a, b: {**a, **b}, simple, simple),
)

OPS = {
    "$gt": lambda x, y: x > y,
    "$gte": lambda x, y: x >= y,
    "$lt": lambda x, y: x < y,
    "$lte": lambda x, y: x <= y,
    "$ne": lambda x, y: x != y,
    "$in": lambda x, y: x in y,
}


def naive(item: Any, node: dict[str, Any]) -> bool:
    for key, value in node.items():
        if key == "$or" and not any(naive(item, sub) for sub in value):
            return False
        if key == "$and" and not all(naive(item, sub) for sub in value):
            return False
        if key == "numericId" and not all(OPS[op](item.numeric_id, v) for op, v in value.items()):
            return False
        if key == "trackQuantity" and item.track != value:
            return False
        if key == "productId" and item.product_id not in value["$in"]:
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    filters,
    st.sampled_from([None, '[{"numericId":"asc"}]', '[{"numericId":"desc"}]']),
    st.integers(1, 10),
    st.integers(0, 40),
)
def test_query_matches_a_naive_evaluation(
    filter_: dict[str, Any], sort: str | None, limit: int, offset: int
) -> None:
    """Every filter, sort and page gives what a plain scan, sort and slice would."""
    STORE.reset()
    page = run_query(
        STORE._items, STORE._numeric_ids, compile_query(json.dumps(filter_), sort, limit, offset)
    )
    matched = [i for i in STORE._items if naive(i, filter_)]
    if sort is not None and "desc" in sort:
        matched.reverse()
    assert page.total == len(matched)
    assert [i.numeric_id for i in page.items] == [
        i.numeric_id for i in matched[offset : offset + limit]
    ]
