"""The journals' records of applied batches (V1 batches, V3 bulk adjusts) hold nothing the garbage collector tracks, so
a long run's journal never makes the collector walk it (or trigger full collections)."""

from __future__ import annotations

import gc

import msgspec

from wixinv_async.emulator import SiteStore
from wixinv_async.emulator.catalogs import seed_v3
from wixinv_async.emulator.requests import DecrementBody, IncrementBody, decode
from wixinv_async.emulator.v3_store import AdjustIn


def _keys(store: SiteStore) -> list[tuple[str, str]]:
    return [
        (i.product_id, v.variant_id)
        for i in store.items()
        if i.track_quantity is True
        for v in i.variants
    ]


def test_batch_records_are_untracked_after_a_collection_and_expand_as_sent() -> None:
    """After a decrement and an increment batch and two collections, the pending journal
    records and lastUpdated stamps are untracked, and the journal still shows each entry."""
    store = SiteStore(site_id="s", instance_id="i", products=20, seed=3)
    keys = _keys(store)[:5]
    for key in keys:
        store.set_quantity(*key, 50)
    dec = [{"productId": p, "variantId": v, "decrementBy": 2} for p, v in keys]
    inc = [{"productId": p, "variantId": v, "incrementBy": 3} for p, v in keys]
    store.decrement(decode(DecrementBody, _body("decrementData", dec)).decrement_data, "r1")
    store.increment(decode(IncrementBody, _body("incrementData", inc)).increment_data, "r2")
    gc.collect()
    gc.collect()  # a tuple is untracked once its items are: the outer ones on the second
    assert [gc.is_tracked(record) for record in store._unconverted] == [False, False]
    assert [gc.is_tracked(stamp) for stamp in store._unstamped] == [False, False]
    first, second = store.journal
    assert first.entries == [{**e, "preorderRequest": False} for e in dec]
    assert second.entries == inc
    assert [store.quantity(*key) for key in keys] == [51] * len(keys)


def _body(field: str, entries: list[dict[str, object]]) -> bytes:
    return msgspec.json.encode({field: entries})


def test_v3_bulk_adjust_records_are_untracked_after_a_collection_and_expand_as_applied() -> None:
    """After V3 bulk adjusts (one applied whole, one with an unknown id and a refused entry)
    and two collections, the pending journal records are untracked, and the journal still
    shows each entry where it landed, with its stock before and after."""
    v3 = seed_v3(SiteStore(site_id="s", instance_id="i", products=20, seed=3), 3, ["loc"])
    tracked = [item for item in v3.records() if item.track and item.quantity >= 5][:2]
    first, second = tracked
    missing = AdjustIn("ffffffff-ffff-ffff-ffff-ffffffffffff", None, None, 1)
    batches = [
        [AdjustIn(first.id, None, None, 2, True), AdjustIn(second.id, None, None, 1)],
        [missing, AdjustIn(first.id, None, None, 100_000)],
    ]
    for n, entries in enumerate(batches):
        v3.adjust(
            "bulk",
            entries,
            decrementing=True,
            restrict=True,
            reason="ORDER",
            rid=f"r{n}",
            fault=None,
        )
    gc.collect()
    gc.collect()
    assert [gc.is_tracked(record) for record in v3._pending] == [False, False]
    applied, refused = (entry.entries for entry in v3.journal)
    assert [(e["inventoryItemId"], e["variantId"], e["change"]) for e in applied] == [
        (first.id, first.variant_id, -2),
        (second.id, second.variant_id, -1),
    ]
    assert [e["preorderRequest"] for e in applied] == [True, False]
    assert [(e["inventoryItemId"], e["success"], e.get("error")) for e in refused] == [
        (missing.inventory_item_id, False, "NOT_FOUND"),
        (first.id, False, "INSUFFICIENT_INVENTORY"),
    ]
    assert refused[1]["quantityBefore"] == refused[1]["quantityAfter"] == first.quantity
    assert refused[0]["quantityBefore"] is None
