"""The V3 bulk adjust's fast paths agree with the general ones: its inline usual case and
compact journal with the per-item rules (``v3_rules``) applied one entry at a time, its answer
with the documented shape, its unchecked-first decoding with the strict models."""

from __future__ import annotations

import copy
from typing import Annotated, Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import Meta

from wixinv_async.emulator._errors import WixApiError
from wixinv_async.emulator.requests import decode_with
from wixinv_async.emulator.v3_handlers import bulk_answer
from wixinv_async.emulator.v3_items import V3Item
from wixinv_async.emulator.v3_requests import (
    GUID_PATTERN,
    ByIdDecrementBody,
    ByIdIncrementBody,
    ByLocationDecrementBody,
    ByLocationIncrementBody,
    decode_bulk,
)
from wixinv_async.emulator.v3_rules import ItemError, decrement, increment
from wixinv_async.emulator.v3_store import AdjustIn, Settled, V3Store

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
    assert store.journal[-1].entries == _journaled(mirror, entries, expected, decrementing)
    assert msgspec.json.decode(bulk_answer(settled, False)) == _answer(entries, settled.failed)


def _journaled(
    items: list[V3Item],
    entries: list[AdjustIn],
    expected: list[tuple[ItemError | None, int | None, int | None]],
    decrementing: bool,
) -> list[dict[str, Any]]:
    """The journal entries of a bulk adjust, built the plain way from what was sent and
    the rules' outcome."""
    by_id = {i.id: i for i in items}
    out = []
    for index, (entry, (error, before, after)) in enumerate(zip(entries, expected, strict=True)):
        item = by_id.get(entry.inventory_item_id or "")
        record: dict[str, Any] = {
            "originalIndex": index,
            "inventoryItemId": entry.inventory_item_id,
            "variantId": item.variant_id if item is not None else None,
            "locationId": item.location_id if item is not None else None,
            "productId": item.product_id if item is not None else None,
            "decrementBy" if decrementing else "incrementBy": entry.amount,
            "success": error is None,
            "change": (after - before) if after is not None and before is not None else 0,
            "quantityBefore": before,
            "quantityAfter": after,
            "reason": None,
        }
        if decrementing:
            record["preorderRequest"] = entry.preorder
        if error is not None:
            record["error"] = error.code
        out.append(record)
    return out


_odd_ids = st.one_of(
    st.text(max_size=6), st.sampled_from([",", '"', "\\", "a,b", "\u00e9", "\n", ""])
)


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(_odd_ids, min_size=1, max_size=40), entity=st.booleans())
def test_the_all_applied_answer_is_each_entry_encoded_alone(ids: list[str], entity: bool) -> None:
    """Whatever the ids (commas, quotes, escapes), the answer of a call whose every entry
    applied is the documented shape, entry by entry, in order."""
    items = _items([(True, 1, False, 0, 0)] * len(ids))
    for item, item_id in zip(items, ids, strict=True):
        item.id = item_id
    answer = msgspec.json.decode(bulk_answer(Settled(items, {}), entity))
    assert [r["itemMetadata"] for r in answer["results"]] == [
        {"id": item_id, "originalIndex": index, "success": True}
        for index, item_id in enumerate(ids)
    ]
    assert answer["bulkActionMetadata"] == {
        "totalSuccesses": len(ids),
        "totalFailures": 0,
        "undetailedFailures": 0,
    }


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


KNOWN = [f"00000000-0000-0000-0000-{n:012d}" for n in range(3)]
_ids = st.sampled_from([*KNOWN, MISSING, "x", "", KNOWN[0].upper(), KNOWN[1] + "\n", "1" * 36])
_amounts = st.sampled_from([1, 1, 3, 0, 100_000, "1"])
_MODELS = [
    (ByIdDecrementBody, "decrementData", ("inventoryItemId",), "decrementBy"),
    (ByIdIncrementBody, "incrementData", ("inventoryItemId",), "incrementBy"),
    (ByLocationDecrementBody, "decrementData", ("variantId", "locationId"), "decrementBy"),
    (ByLocationIncrementBody, "incrementData", ("variantId", "locationId"), "incrementBy"),
]
_ANY_FIELD = {
    "inventoryItemId": _ids,
    "variantId": _ids,
    "decrementBy": _amounts,
    "preorderRequest": st.sampled_from([True, False, 1]),
    "other": st.just(1),
}


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[type[Any], str, bytes]:
    """A body of one bulk model: mostly well formed, with odd ids, amounts and fields."""
    model, field, id_fields, amount = draw(st.sampled_from(_MODELS))
    entry = st.fixed_dictionaries(
        dict.fromkeys(id_fields, _ids) | {amount: _amounts},
        optional={"preorderRequest": st.sampled_from([True, False, 1])},
    )
    odd = st.fixed_dictionaries({}, optional=_ANY_FIELD)
    entries = draw(st.lists(st.one_of(entry, entry, entry, odd), max_size=4))
    extra = draw(st.dictionaries(st.sampled_from(["reason", "returnEntity", "x"]), _ids))
    return model, field, msgspec.json.encode({field: entries, **extra})


@settings(max_examples=400, deadline=None)
@given(drawn=_bodies())
def test_the_unchecked_first_decoding_answers_as_the_strict_model(
    drawn: tuple[type[Any], str, bytes],
) -> None:
    """Whatever the body, the bulk decoding gives the strict (GUID-checked) model's value or
    its exact 400."""
    model, field, body = drawn
    known = set(KNOWN)

    def names_known(decoded: Any) -> bool:
        data = getattr(decoded, field.replace("Data", "_data"))
        ids = [e.inventory_item_id or e.variant_id for e in data]
        return all(i in known for i in ids) and all(e.location_id in (None, KNOWN[0]) for e in data)

    strict = msgspec.json.Decoder(model[Annotated[str, Meta(pattern=GUID_PATTERN)]])
    try:
        expected: Any = decode_with(strict, body)
    except WixApiError as error:
        expected = error.encode()
    try:
        got: Any = decode_bulk(model, body, names_known)
    except WixApiError as error:
        got = error.encode()
    assert got == expected
