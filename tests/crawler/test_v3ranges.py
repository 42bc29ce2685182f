"""The V3 crawl's productId ranges (pure core): tiling, splitting and exactly-once reading."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.core import v3ranges
from wixinv_async.core.v3ranges import (
    GUID_SPACE,
    KeyRange,
    RangeSegment,
    cut_page,
    estimate_items,
    guid_text,
    guid_value,
    range_filter,
    ranges_between,
    split_after,
)
from wixinv_async.errors import TransportError

guids = st.integers(0, GUID_SPACE - 1).map(guid_text)
product_ids = st.one_of(guids, st.text("0123456789abcdef-ABCxyz", min_size=1, max_size=12))


@given(st.integers(0, GUID_SPACE - 1))
def test_guid_text_and_value_round_trip(value: int) -> None:
    """A GUID's text and its 128-bit value convert both ways."""
    assert guid_value(guid_text(value)) == value


@given(st.integers(0, GUID_SPACE - 1), st.integers(0, GUID_SPACE - 1))
def test_guids_compare_as_their_values(a: int, b: int) -> None:
    """Canonical GUIDs sort as strings exactly as their values sort (the split relies on it)."""
    assert (guid_text(a) < guid_text(b)) == (a < b)


@pytest.mark.parametrize("text", ["P1", "0000000-0000-0000-0000-000000000000", "A" * 36, ""])
def test_guid_value_refuses_other_strings(text: str) -> None:
    """Strings that are not canonical lowercase GUIDs have no value (no split on them)."""
    assert guid_value(text) is None


@given(guids, guids, st.integers(1, 64))
def test_split_after_lies_in_the_open_range(last: str, hi: str, parts: int) -> None:
    """Boundaries ascend strictly, above the last productId read and at most the highest."""
    boundaries = split_after(last, hi, parts)
    assert len(boundaries) <= max(0, parts - 1)
    assert all(last < b <= hi for b in boundaries)
    assert boundaries == sorted(set(boundaries))


@given(st.lists(guids, max_size=10, unique=True), st.lists(product_ids, min_size=1))
def test_ranges_tile_every_string_exactly_once(edges: list[str], keys: list[str]) -> None:
    """Any productId, a GUID or not, falls in exactly one range."""
    ranges = ranges_between(sorted(edges))
    for key in keys:
        assert sum(r.holds(key) for r in ranges) == 1


def test_range_filter_ands_the_user_filter() -> None:
    """The range becomes $gte / $lt on productId, AND-ed with the user's filter."""
    assert range_filter(None, KeyRange(None, None)) is None
    assert range_filter({"quantity": {"$lt": 5}}, KeyRange(None, None)) == {"quantity": {"$lt": 5}}
    assert range_filter(None, KeyRange("a", "b")) == {
        "$and": [{"productId": {"$gte": "a"}}, {"productId": {"$lt": "b"}}]
    }
    assert range_filter({"trackQuantity": True}, KeyRange(None, "b")) == {
        "$and": [{"trackQuantity": True}, {"productId": {"$lt": "b"}}]
    }


def test_cut_page_keeps_the_prefix_below_the_upper_bound() -> None:
    """A page crossing the range's upper bound keeps only what lies below it."""
    assert cut_page(["a", "a", "b", "c"], None, KeyRange(None, "b")) == 2
    assert cut_page(["a", "b"], "a", KeyRange(None, None)) == 2


def test_cut_page_refuses_a_page_that_does_not_ascend() -> None:
    """A page that goes back, or starts below its range, is a malformed answer."""
    with pytest.raises(TransportError, match="productId 'a'"):
        cut_page(["b", "a"], None, KeyRange(None, None))
    with pytest.raises(TransportError, match="below 'c'"):
        cut_page(["b"], None, KeyRange("c", None))


def test_estimate_items_scales_the_first_page_by_its_share() -> None:
    """A page over a tenth of the span from its first productId estimates ten pages."""
    first, last, hi = guid_text(0), guid_text(GUID_SPACE // 10), guid_text(GUID_SPACE - 1)
    assert estimate_items(first, last, hi, 100) in range(990, 1010)
    assert estimate_items("p1", "p2", "p3", 100) is None
    assert estimate_items(first, first, hi, 100) is None


# --- exactly once, over any interleaving ------------------------------------------------------


class _Server:
    """A V3 query server in miniature: items ordered by (productId, id), keyset cursors that
    keep their query's range, ``hasNext`` by look-ahead; the catalog changes between reads."""

    def __init__(self, items: dict[str, str]) -> None:
        self.items = dict(items)  # id -> productId
        self.requests = 0

    def page(
        self, key_range: KeyRange, after: tuple[str, str] | None, limit: int
    ) -> tuple[list[tuple[str, str]], tuple[KeyRange, tuple[str, str]] | None]:
        self.requests += 1
        keys = sorted((p, i) for i, p in self.items.items() if key_range.holds(p))
        rest = [k for k in keys if after is None or k > after]
        page = rest[:limit]
        cursor = (key_range, page[-1]) if page and len(rest) > limit else None
        return page, cursor


def _read(
    server: _Server,
    segment: RangeSegment,
    cursors: dict[int, tuple[KeyRange, tuple[str, str]]],
    limit: int,
) -> list[str]:
    """One page of ``segment``: through its cursor (its first query's range) or afresh."""
    if segment.key in cursors:
        query_range, after = cursors[segment.key]
        page, cursor = server.page(query_range, after, limit)
    else:
        page, cursor = server.page(segment.range, None, limit)
    keep = segment.record_page([p for p, _ in page], "c" if cursor else None)
    if cursor is not None:
        cursors[segment.key] = cursor
    return [i for _, i in page[:keep]]


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.uuids().map(str), st.sampled_from([*"abc"]) | guids, max_size=60),
    st.integers(1, 7),
    st.integers(1, 8),
    st.integers(0, 2**32),
)
def test_every_item_that_exists_throughout_is_read_exactly_once(
    catalog: dict[str, str], limit: int, parts: int, seed: int
) -> None:
    """Any catalog (GUIDs, shared and non-GUID productIds), any page size and split, reads in
    any order, items created and deleted between reads: each item that exists throughout is
    read exactly once, and none twice."""
    rng = random.Random(seed)
    server = _Server(catalog)
    initial = set(server.items)
    deleted: set[str] = set()
    hi_page, _ = server.page(KeyRange(None, None), None, len(server.items) + 1)
    hi = hi_page[-1][0] if hi_page else None
    first = RangeSegment(0, KeyRange(None, None))
    cursors: dict[int, tuple[KeyRange, tuple[str, str]]] = {}
    seen = _read(server, first, cursors, limit)
    segments = [first]
    if not first.done and hi is not None and first.last is not None:
        boundaries = split_after(first.last, hi, parts)
        if boundaries:
            first.narrow(boundaries[0])
            for key, key_range in enumerate(ranges_between(boundaries)[1:], start=1):
                segments.append(RangeSegment(key, key_range))
    while open_ := [s for s in segments if not s.done]:
        _mutate(server, rng, deleted)
        seen.extend(_read(server, rng.choice(open_), cursors, limit))
    assert len(seen) == len(set(seen)), "an item was read twice"
    throughout = initial - deleted
    assert throughout <= set(seen)
    assert set(seen) <= initial | set(server.items) | deleted


def _mutate(server: _Server, rng: random.Random, deleted: set[str]) -> None:
    """Create an item (a new or an existing product) or delete one, sometimes."""
    roll = rng.random()
    if roll < 0.3:
        product = rng.choice([*server.items.values(), guid_text(rng.getrandbits(128))])
        server.items[f"new-{rng.getrandbits(64):016x}"] = product
    elif roll < 0.45 and server.items:
        victim = rng.choice(sorted(server.items))
        deleted.add(victim)
        del server.items[victim]


def test_segment_refuses_reads_once_done() -> None:
    """A done segment records no more pages (the driver would be reading past its end)."""
    segment = RangeSegment(0, KeyRange(None, None))
    assert segment.record_page(["a"], None) == 1
    with pytest.raises(RuntimeError, match="done"):
        segment.record_page(["b"], None)


def test_narrow_must_stay_above_what_was_read() -> None:
    """The split never hands a thief productIds the first segment already read."""
    segment = RangeSegment(0, KeyRange(None, None))
    segment.record_page(["b"], "next")
    with pytest.raises(ValueError, match="above"):
        segment.narrow("b")


def test_v3ranges_imports_nothing_async_or_random() -> None:
    """The V3 range core is sans-IO: no asyncio, anyio, aiohttp, clock or random."""
    tree = ast.parse(Path(v3ranges.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"asyncio", "anyio", "aiohttp", "time", "random", "threading"}
