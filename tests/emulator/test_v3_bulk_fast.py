"""The V3 bulk adjust's inline usual case and its compact journal agree with the per-item
rules (``v3_rules``) applied one entry at a time, and its answer with the documented shape."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.emulator.v3_handlers import bulk_answer
from wixinv_async.emulator.v3_items import V3Item
from wixinv_async.emulator.v3_rules import ItemError, decrement, increment
from wixinv_async.emulator.v3_store import AdjustIn, V3Store

MISSING = "ffffffff-ffff-ffff-ffff-ffffffffffff"
_quantity = st.one_of(st.integers(-99_999, 99_999), st.integers(-3, 3), st.just(99_998))
_item = st.tuples(
    st.booleans(), _quantity, st.booleans(), st.integers(0, 100_000), st.integers(0, 50)
)
_entry = st.tuples(st.integers(0, 5), st.one_of(st.integers(1, 99_999), st.integers(1, 4)))


State = tuple[bool, int, bool, int, int]
"""An item's tracking, quantity, preorder enabled, preorder limit and preorder counter."""


def _items(states: list[State]) -> list[V3Item]:
    out = []
    for n, (track, quantity, preorder, limit, counter) in enumerate(states):
        item = V3Item(
            f"00000000-0000-0000-0000-{n:012d}",
            variant_id=f"10000000-0000-0000-0000-{n:012d}",
            location_id="20000000-0000-0000-0000-000000000000",
            product_id=f"30000000-0000-0000-0000-{n:012d}",
            track=track,
            quantity=quantity,
            in_stock=True,
            created=1,
        )
        item.preorder_enabled, item.preorder_limit = preorder, limit
        item.preorder_counter = counter
        out.append(item)
    return out


def _reference(
    items: list[V3Item], entries: list[AdjustIn], decrementing: bool, restrict: bool
) -> list[tuple[ItemError | None, int | None, int | None]]:
    """Each entry's error and the stock before and after it, by the rules alone."""
    by_id = {i.id: i for i in items}
    out: list[tuple[ItemError | None, int | None, int | None]] = []
    for entry in entries:
        item = by_id.get(entry.inventory_item_id or "")
        if item is None:
            out.append((ItemError("NOT_FOUND", "", {}, 404), None, None))
            continue
        before = item.quantity
        if decrementing:
            error = decrement(item, entry.amount, preorder=entry.preorder, restrict=restrict)
        else:
            error = increment(item, entry.amount)
        if error is None:
            item.revision += 1
        out.append((error, before, item.quantity))
    return out


@settings(max_examples=300, deadline=None)
@given(
    states=st.lists(_item, min_size=1, max_size=5),
    raw=st.lists(st.tuples(_entry, st.booleans()), min_size=1, max_size=12),
    decrementing=st.booleans(),
    restrict=st.booleans(),
)
def test_bulk_adjust_agrees_with_the_rules_entry_by_entry(
    states: list[State],
    raw: list[tuple[tuple[int, int], bool]],
    decrementing: bool,
    restrict: bool,
) -> None:
    """Same errors, stock, preorder counters, revisions and journaled before/after as the
    rules applied one by one, and the answer the documented per-entry shape."""
    items = _items(states)
    mirror = copy.deepcopy(items)
    ids = [i.id for i in items]
    entries = [
        AdjustIn(ids[k] if k < len(ids) else MISSING, None, None, amount, preorder)
        for (k, amount), preorder in raw
    ]
    store = V3Store(site_id="s", items=items, locations=["20000000-0000-0000-0000-000000000000"])
    settled = store.adjust(
        "bulk",
        entries,
        decrementing=decrementing,
        restrict=restrict,
        reason=None,
        rid="r",
        fault=None,
    )
    expected = _reference(mirror, entries, decrementing, restrict)
    codes = {i: r[0].code for i, r in settled.failed.items()}
    assert codes == {i: e.code for i, (e, _, _) in enumerate(expected) if e is not None}
    for ours, theirs in zip(sorted(items, key=_id), sorted(mirror, key=_id), strict=True):
        assert (ours.quantity, ours.preorder_counter, ours.revision) == (
            theirs.quantity,
            theirs.preorder_counter,
            theirs.revision,
        )
    journal = store.journal[-1].entries
    assert [(j["quantityBefore"], j["quantityAfter"]) for j in journal] == [
        (before, after) for _, before, after in expected
    ]
    assert msgspec.json.decode(bulk_answer(settled, False)) == _answer(entries, settled.failed)


def _id(item: V3Item) -> str:
    return item.id


def _answer(entries: list[AdjustIn], failed: dict[int, Any]) -> dict[str, Any]:
    """The documented answer, built the plain way: one itemMetadata per entry."""
    results = []
    for index, entry in enumerate(entries):
        meta: dict[str, Any] = {"id": entry.inventory_item_id, "originalIndex": index}
        meta["success"] = index not in failed
        if index in failed:
            meta["error"] = failed[index][0].wire()
        results.append({"itemMetadata": meta})
    metadata = {
        "totalSuccesses": len(entries) - len(failed),
        "totalFailures": len(failed),
        "undetailedFailures": 0,
    }
    return {"results": results, "bulkActionMetadata": metadata}
