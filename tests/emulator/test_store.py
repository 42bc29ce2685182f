"""The store and its seeded catalog, without HTTP: determinism, shape, change events."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

import pytest

from wixinv_async.emulator import ChangeEvent, SiteStore
from wixinv_async.emulator.catalog import NUMERIC_ID_SPAN, NUMERIC_ID_START, numeric_ids
from wixinv_async.emulator.query import compile_query, run_query
from wixinv_async.emulator.requests import DecrementEntry, IncrementEntry, ItemUpdateIn, VariantIn
from wixinv_async.models import DEFAULT_VARIANT_ID


def make(products: int = 200, seed: int = 1, **kwargs: Any) -> SiteStore:
    return SiteStore(site_id="site", instance_id="inst", products=products, seed=seed, **kwargs)


def test_same_seed_same_catalog() -> None:
    """Two stores with one seed hold identical catalogs; another seed differs."""
    assert make(seed=5).items() == make(seed=5).items()
    assert make(seed=5).items() != make(seed=6).items()


def test_catalog_shape() -> None:
    """A mix of default-variant and 3-variant products, tracked and untracked, some preorder,
    quantities within 0..99999, 16-digit numericIds ascending."""
    items = make(products=2_000).items()
    sizes = {len(i.variants) for i in items}
    assert sizes == {1, 3}
    assert all(
        i.variants[0].variant_id == DEFAULT_VARIANT_ID for i in items if len(i.variants) == 1
    )
    tracked = [i.track_quantity for i in items]
    assert 0.75 < sum(tracked) / len(items) < 0.95
    assert any(i.preorder_info.enabled for i in items)  # type: ignore[union-attr]
    quantities = [v.quantity for i in items if i.track_quantity for v in i.variants]
    assert all(isinstance(q, int) and 0 <= q <= 99_999 for q in quantities)
    assert 0 in quantities
    ids = [int(i.numeric_id) for i in items]  # type: ignore[arg-type]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i.numeric_id) == 16 for i in items)  # type: ignore[arg-type]
    assert len({i.id for i in items} | {i.product_id for i in items}) == 2 * len(items)


def test_single_variant_catalogs() -> None:
    """variants_per_product=1 gives every product the default variant only."""
    items = make(products=50, variants_per_product=1).items()
    assert {tuple(v.variant_id for v in i.variants) for i in items} == {(DEFAULT_VARIANT_ID,)}


@pytest.mark.parametrize("distribution", ["clustered", "uniform", "skewed"])
def test_numeric_ids_are_distinct_ascending_16_digits(distribution: str) -> None:
    """Every distribution gives distinct ascending 16-digit ids."""
    ids = numeric_ids(5_000, random.Random(3), distribution)
    assert len(ids) == 5_000
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert all(len(str(i)) == 16 for i in ids)


def _densest_tenth(ids: Sequence[int]) -> float:
    """The largest share of ids falling in any window a tenth of the id span wide."""
    width = NUMERIC_ID_SPAN // 10
    best, j = 0, 0
    for i, start in enumerate(ids):
        while j < len(ids) and ids[j] < start + width:
            j += 1
        best = max(best, j - i)
    return best / len(ids)


def test_skewed_puts_80_percent_in_a_tenth_of_the_range() -> None:
    """'skewed': at least 80 % of the ids in one tenth of the range; 'uniform' far less."""
    assert _densest_tenth(numeric_ids(5_000, random.Random(1), "skewed")) >= 0.8
    assert _densest_tenth(numeric_ids(5_000, random.Random(1), "uniform")) < 0.15


def test_clustered_ids_come_in_bursts() -> None:
    """'clustered': many ids a few ms apart (bulk imports), with long gaps between bursts."""
    ids = numeric_ids(5_000, random.Random(2), "clustered")
    gaps = [b - a for a, b in itertools.pairwise(ids)]
    close = sum(1 for g in gaps if g <= 20_000)
    assert close / len(gaps) > 0.5
    assert max(gaps) > 1_000 * 20_000
    assert ids[0] > NUMERIC_ID_START and ids[-1] < NUMERIC_ID_START + 2 * NUMERIC_ID_SPAN


def test_unknown_distribution_is_refused() -> None:
    """An unknown id_distribution raises ValueError naming it."""
    with pytest.raises(ValueError, match="lumpy"):
        numeric_ids(3, random.Random(1), "lumpy")


def test_add_product_goes_after_every_numeric_id() -> None:
    """add_product gives a numericId above all others and the quantity asked for."""
    store = make(products=10)
    item = store.add_product(variants=2, quantity=7)
    assert int(item.numeric_id) > int(store.items()[-2].numeric_id)  # type: ignore[arg-type]
    assert [store.quantity(item.product_id, v.variant_id) for v in item.variants] == [7, 7]  # type: ignore[arg-type]
    assert store.items()[-1] == item


def test_set_quantity_and_quantity_of_unknown() -> None:
    """set_quantity changes one variant; quantity() of unknown keys is None, set_quantity raises."""
    store = make(products=10)
    item = store.add_product()
    store.set_quantity(item.product_id, DEFAULT_VARIANT_ID, 3)  # type: ignore[arg-type]
    assert store.quantity(item.product_id, DEFAULT_VARIANT_ID) == 3  # type: ignore[arg-type]
    assert store.quantity("nope", DEFAULT_VARIANT_ID) is None
    with pytest.raises(KeyError):
        store.set_quantity("nope", DEFAULT_VARIANT_ID, 1)


def test_listeners_get_one_event_per_item_with_old_and_new_values() -> None:
    """A batch touching two variants of one item and one of another gives two events,
    each listing only the variants that changed, old and new."""
    store = make(products=10)
    events: list[ChangeEvent] = []
    store.add_listener(events.append)
    a = store.add_product(variants=3, quantity=5)
    b = store.add_product(quantity=1)
    va, vb = a.variants[0].variant_id, a.variants[1].variant_id
    store.decrement(
        [
            DecrementEntry(product_id=a.product_id, variant_id=va, decrement_by=1),
            DecrementEntry(product_id=a.product_id, variant_id=vb, decrement_by=2),
            DecrementEntry(product_id=b.product_id, variant_id=DEFAULT_VARIANT_ID, decrement_by=1),
        ],
        "rid-1",
    )
    assert [(e.product_id, e.request_id, e.site_id, e.instance_id) for e in events] == [
        (a.product_id, "rid-1", "site", "inst"),
        (b.product_id, "rid-1", "site", "inst"),
    ]
    changes = {vid: (old.quantity, new.quantity) for vid, old, new in events[0].variants}
    assert changes == {va: (5, 4), vb: (5, 3)}
    ((_, old, new),) = events[1].variants
    assert (old.in_stock, new.in_stock, new.quantity) == (True, False, 0)
    assert events[0].item_fields_changed == ()


def test_update_event_names_track_quantity_change() -> None:
    """An update switching tracking off reports the trackQuantity field."""
    store = make(products=10)
    item = store.add_product(quantity=4)
    events: list[ChangeEvent] = []
    store.add_listener(events.append)
    store.update(
        item.product_id, ItemUpdateIn(variants=[VariantIn(variant_id=DEFAULT_VARIANT_ID)]), "r"
    )  # type: ignore[arg-type]
    (event,) = events
    assert (event.item_fields_changed, event.track_quantity) == (("trackQuantity",), False)
    store.remove_listener(events.append)
    store.set_quantity(item.product_id, DEFAULT_VARIANT_ID, 1)  # type: ignore[arg-type]
    assert len(events) == 1


def test_failed_batch_fires_no_event_and_journals_nothing() -> None:
    """A refused batch changes nothing, calls no listener and adds no journal entry."""
    from wixinv_async.emulator._errors import WixApiError

    store = make(products=10)
    item = store.add_product(quantity=1)
    events: list[ChangeEvent] = []
    store.add_listener(events.append)
    with pytest.raises(WixApiError) as refused:
        store.increment(
            [
                IncrementEntry(
                    product_id=item.product_id, variant_id=DEFAULT_VARIANT_ID, increment_by=99_999
                )
            ],
            "r",
        )  # type: ignore[arg-type]
    assert refused.value.code == "MAX_QUANTITY_LIMIT_REACHED"
    assert (events, store.journal, store.quantity(item.product_id, DEFAULT_VARIANT_ID)) == (
        [],
        [],
        1,
    )  # type: ignore[arg-type]


def test_reset_restores_the_seeded_catalog() -> None:
    """reset() brings back the seeded items and empties the journal."""
    store = make(products=10)
    seeded = store.items()
    item = store.add_product(quantity=3)
    store.decrement(
        [DecrementEntry(product_id=item.product_id, variant_id=DEFAULT_VARIANT_ID, decrement_by=1)],
        "r",
    )  # type: ignore[arg-type]
    store.reset()
    assert (store.items(), store.journal) == (seeded, [])


class CountingItems(list):  # type: ignore[type-arg]
    """A list that records how many items each slice handed out."""

    handed_out = 0

    def __getitem__(self, index: Any) -> Any:
        result = super().__getitem__(index)
        if isinstance(index, slice):
            CountingItems.handed_out += len(result)
        return result


@pytest.mark.parametrize("sort", ['[{"numericId":"asc"}]', '[{"numericId":"desc"}]', None])
def test_numeric_id_range_page_touches_only_the_page(sort: str | None) -> None:
    """A numericId range + numericId sort + limit 100 reads only the page's items (bisection)."""
    store = make(products=20_000, variants_per_product=1)
    raw = store._items
    ids = [i.numeric_id for i in raw]
    items = CountingItems(raw)
    CountingItems.handed_out = 0
    query = compile_query(
        f'{{"numericId": {{"$gt": {ids[5_000]}, "$lte": {ids[15_000]}}}}}', sort, 100, 0
    )
    page = run_query(items, ids, query)
    assert page.total == 10_000
    assert len(page.items) == 100
    assert CountingItems.handed_out == 100


def test_a_write_that_changes_nothing_visible_tells_no_listener() -> None:
    """An update that sets what is already there produces no change event."""
    store = make(products=10)
    item = store.add_product(quantity=4)
    events: list[ChangeEvent] = []
    store.add_listener(events.append)
    same = ItemUpdateIn(
        track_quantity=True, variants=[VariantIn(variant_id=DEFAULT_VARIANT_ID, quantity=4)]
    )
    store.update(item.product_id, same, "r")  # type: ignore[arg-type]
    assert events == []
    assert len(store.journal) == 1


def test_last_updated_of_many_batches_is_stamped_in_order() -> None:
    """Batch stamps settle lazily, yet every read sees the latest write's time, also after a
    later direct change and past the settling threshold."""
    times = iter(float(t) for t in range(1_000, 2_000))
    store = SiteStore(
        site_id="s", instance_id="i", products=3, seed=1, wall_clock=lambda: next(times)
    )
    item = store.add_product(quantity=5_000)
    entry = [
        DecrementEntry(product_id=item.product_id, variant_id=DEFAULT_VARIANT_ID, decrement_by=1)
    ]  # type: ignore[arg-type]
    for _ in range(300):
        store.decrement(entry, "r")
    assert store.item(item.product_id).last_updated == "1970-01-01T00:21:40.000Z"  # type: ignore[union-attr]
    store.decrement(entry, "r")
    store.set_quantity(item.product_id, DEFAULT_VARIANT_ID, 7)  # type: ignore[arg-type]
    assert store.item(item.product_id).last_updated == "1970-01-01T00:21:42.000Z"  # type: ignore[union-attr]
