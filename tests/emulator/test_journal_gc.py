"""The V1 journal's records of applied batches hold nothing the garbage collector tracks, so
a long run's journal never makes the collector walk it (or trigger full collections)."""

from __future__ import annotations

import gc

import msgspec

from wixinv_async.emulator import SiteStore
from wixinv_async.emulator.requests import DecrementBody, IncrementBody, decode


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
