"""The V3 writer's bulk bodies, written from its entries, are the bytes the V3 request structs
encode to (and so the official SDK's body, which ``tests/wire`` checks for the structs)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec import UNSET

from wixinv_async.core import wirebody
from wixinv_async.core.table import Entry, Key
from wixinv_async.errors import InvalidInputError
from wixinv_async.inventory_v3 import bulk_adjust_body, check_adjust_entry
from wixinv_async.models_v3 import (
    BulkDecrementByIdRequest,
    BulkDecrementByVariantAndLocationRequest,
    BulkIncrementByIdRequest,
    BulkIncrementByVariantAndLocationRequest,
    DecrementDataById,
    DecrementDataByVariantAndLocation,
    IncrementDataById,
    IncrementDataByVariantAndLocation,
)

ENCODE = msgspec.json.encode
ids = st.text(min_size=1, max_size=36)
Draw = tuple[str, str | None, bool, int, bool]
"""An id, a location (``None``: the default one), preorder, net, sent by a learnt variant."""


def _encodable(draws: list[Draw]) -> bool:
    try:
        for text, location, *_ in draws:
            text.encode()
            (location or "").encode()
    except UnicodeEncodeError:
        return False
    return True


draws_st = st.lists(
    st.tuples(ids, st.none() | ids, st.booleans(), st.integers(1, 99_999), st.booleans()),
    min_size=1,
    max_size=40,
).filter(_encodable)
options = st.tuples(st.none() | st.booleans(), st.none() | st.sampled_from(["ORDER", "MANUAL"]))


def _key(index: int, text: str, location: str | None, preorder: bool) -> Key:
    if location is None:
        return ("p", None, f"{text}{index}", preorder, None)
    return ("p", None, f"{text}{index}", preorder, None, location, None)


def _variant_group(draws: list[Draw], sign: int) -> list[tuple[Entry, str]]:
    group = []
    for index, (text, location, preorder, net, learnt) in enumerate(draws):
        key = _key(index, text, location, preorder)
        group.append((Entry(key, 0.0, sign * net, 1), f"L{text}" if learnt else key[2]))
    return group


def _by_variant(group: list[tuple[Entry, str]], decrement: bool) -> list[object]:
    wire: list[object] = []
    for entry, variant in group:
        location = entry.key[5] if len(entry.key) > 5 else UNSET
        if decrement:
            wire.append(
                DecrementDataByVariantAndLocation(
                    variant_id=variant,
                    location_id=location,  # type: ignore[arg-type]
                    decrement_by=-entry.net,
                    preorder_request=True if entry.key[3] else UNSET,
                )
            )
        else:
            wire.append(
                IncrementDataByVariantAndLocation(
                    variant_id=variant,
                    location_id=location,  # type: ignore[arg-type]
                    increment_by=entry.net,
                )
            )
    return wire


def _unset(value: object) -> object:
    return UNSET if value is None else value


def _written(
    group: list[tuple[Entry, str]], decrement: bool, restrict: bool | None, reason: str | None
) -> bytes:
    own = all(variant == entry.key[2] for entry, variant in group)  # as the writer knows it
    entries = wirebody.bulk_entries(group, decrement=decrement, check=lambda e, i: None, own=own)
    call = bulk_adjust_body(
        entries,
        len(group),
        decrement=decrement,
        by_variant=bool(group[0][1]),
        restrict_inventory=restrict if decrement else None,
        reason=reason,
    )
    return call.body


@given(draws_st, options)
def test_by_variant_bodies_are_the_structs_encoding(
    draws: list[Draw], option: tuple[bool | None, str | None]
) -> None:
    """Any ids, locations (default or not), amounts, preorder flags, learnt variants and
    options: the written body equals the encoded request, twice (the second from the cache)."""
    restrict, reason = option
    down = _variant_group(draws, -1)
    expected_down = ENCODE(
        BulkDecrementByVariantAndLocationRequest(
            decrement_data=_by_variant(down, True),  # type: ignore[arg-type]
            restrict_inventory=_unset(restrict),  # type: ignore[arg-type]
            reason=_unset(reason),  # type: ignore[arg-type]
        )
    )
    up = _variant_group(draws, 1)
    expected_up = ENCODE(
        BulkIncrementByVariantAndLocationRequest(
            increment_data=_by_variant(up, False),  # type: ignore[arg-type]
            reason=_unset(reason),  # type: ignore[arg-type]
        )
    )
    for _ in range(2):
        assert _written(down, True, restrict, reason) == expected_down
        assert _written(up, False, None, reason) == expected_up


@given(draws_st, options)
def test_by_id_bodies_are_the_structs_encoding(
    draws: list[Draw], option: tuple[bool | None, str | None]
) -> None:
    """The same by inventory item id (no variant sent: ``""`` in the group)."""
    restrict, reason = option
    keys = [(None, f"{t}{i}", "v", p, None) for i, (t, _, p, _, _) in enumerate(draws)]
    down = [(Entry(k, 0.0, -d[3], 1), "") for k, d in zip(keys, draws, strict=True)]
    up = [(Entry(k, 0.0, d[3], 1), "") for k, d in zip(keys, draws, strict=True)]
    expected_down = ENCODE(
        BulkDecrementByIdRequest(
            decrement_data=[
                DecrementDataById(
                    inventory_item_id=e.key[1],  # type: ignore[arg-type]
                    decrement_by=-e.net,
                    preorder_request=True if e.key[3] else UNSET,
                )
                for e, _ in down
            ],
            restrict_inventory=_unset(restrict),  # type: ignore[arg-type]
            reason=_unset(reason),  # type: ignore[arg-type]
        )
    )
    expected_up = ENCODE(
        BulkIncrementByIdRequest(
            increment_data=[
                IncrementDataById(inventory_item_id=e.key[1], increment_by=e.net)  # type: ignore[arg-type]
                for e, _ in up
            ],
            reason=_unset(reason),  # type: ignore[arg-type]
        )
    )
    for _ in range(2):
        assert _written(down, True, restrict, reason) == expected_down
        assert _written(up, False, None, reason) == expected_up


def test_unchecked_entries_are_checked_once_then_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """An item id the table did not check is checked (a bad one raises, naming its index);
    a learnt variant is checked on every batch, never held."""
    bad = [(Entry((None, "not-a-guid", "v", False, None), 0.0, -1, 1), "")]
    with pytest.raises(InvalidInputError):
        wirebody.bulk_entries(bad, decrement=True, check=check_adjust_entry)
    seen: list[int] = []
    learnt = [(Entry(("p", None, "own", False, None), 0.0, -2, 1), "learnt")]
    for _ in range(2):
        wirebody.bulk_entries(learnt, decrement=True, check=lambda e, i: seen.append(i))
    assert seen == [0, 0]


def test_a_batch_size_or_option_out_of_range_is_refused() -> None:
    """As the struct path refuses them: no entry, more than 300, an unknown reason, and
    ``restrictInventory`` on an increment."""
    for size in (0, 301):
        with pytest.raises(InvalidInputError):
            bulk_adjust_body(b"", size, decrement=True, by_variant=True)
    with pytest.raises(InvalidInputError):
        bulk_adjust_body(b"{}", 1, decrement=True, by_variant=False, reason="NOPE")
    with pytest.raises(InvalidInputError):
        bulk_adjust_body(b"{}", 1, decrement=False, by_variant=True, restrict_inventory=True)
