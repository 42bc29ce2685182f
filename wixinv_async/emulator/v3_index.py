"""A sorted index of a V3 store's items, so a keyset page reads its window, not the catalog.

:func:`~wixinv_async.emulator.v3_query.run` keys and filters every item for every page: a
crawl of ``N`` items in pages of ``L`` costs ``N * N / L`` key computations (about 1 s a page
at 100,000 items). For a plan whose sort fields no write changes (:data:`IMMUTABLE`, and the
id order of no sort) the order is fixed between creations and deletions, so the store keeps
the items sorted once per sort (:class:`SortedItems`) and :func:`run_sorted` finds the
cursor's place by bisection and walks from it, testing the filter only until the page is
full. A filter bounding the first sort field (``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$eq`` at
the filter's top level, as the crawler's productId ranges are) narrows the walk to that
window. The answer is the scan's, item for item and cursor for cursor (a hypothesis property,
``tests/emulator/test_v3_index.py``); only the work differs.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any, Final

from .v3_items import V3Item
from .v3_query import FIELDS, Page, Plan, comparable, cursor_for, key_function, operand_value

__all__ = ["IMMUTABLE", "SortedItems", "indexable", "ordered_sorted", "run_sorted"]

IMMUTABLE: Final = frozenset(
    {"productId", "createdDate", "product.name", "product.variantName", "product.variantSku"}
)
"""Sortable fields set when an item is created and never changed afterwards."""
_LOWER: Final = ("$gt", "$gte", "$eq")
_UPPER: Final = ("$lt", "$lte", "$eq")


def indexable(plan: Plan) -> bool:
    """Whether the plan's order is fixed by the items alone (no write can change it)."""
    return all(field in IMMUTABLE for field, _ in plan.sort)


class SortedItems:
    """Every item of a store in one plan order: ``keys[i]`` is ``items[i]``'s sort key."""

    __slots__ = ("firsts", "items", "keys", "sort")

    def __init__(self, plan: Plan, items: Iterable[V3Item]) -> None:
        key = key_function(plan)
        pairs = sorted(((key(item), item) for item in items), key=_first)
        self.sort = plan.sort
        self.keys = [k for k, _ in pairs]
        self.items = [item for _, item in pairs]
        self.firsts = [k[0] for k in self.keys]
        """The first key component of each item (its first sort field, or its id)."""

    def __len__(self) -> int:
        return len(self.items)


def run_sorted(
    plan: Plan, index: SortedItems, limit: int, after: Sequence[Any] | None, backward: bool
) -> Page:
    """:func:`~wixinv_async.emulator.v3_query.run` over a :class:`SortedItems` of the
    plan's sort: the same page and cursors."""
    low, high = _window(plan, index)
    keys, items, match = index.keys, index.items, plan.match
    bound = comparable(plan, after) if after is not None else None
    if backward:
        assert bound is not None
        end = bisect.bisect_left(keys, bound)  # keys[:end] < bound
        chosen = _walk(items, match, range(min(end, high) - 1, low - 1, -1), limit + 1)
        more_before, chosen = len(chosen) > limit, chosen[:limit][::-1]
        more_after = bool(_walk(items, match, range(max(end, low), high), 1))
    else:
        start = low if bound is None else max(low, bisect.bisect_right(keys, bound))
        chosen = _walk(items, match, range(start, high), limit + 1)
        more_after, chosen = len(chosen) > limit, chosen[:limit]
        more_before = bound is not None and bool(
            _walk(items, match, range(min(start, high) - 1, low - 1, -1), 1)
        )
    next_cursor = cursor_for(plan, chosen[-1], "next") if chosen and more_after else None
    prev_cursor = cursor_for(plan, chosen[0], "prev") if chosen and more_before else None
    return Page(chosen, next_cursor, prev_cursor)


def ordered_sorted(plan: Plan, index: SortedItems) -> list[V3Item]:
    """Every matching item in the plan's order (offset paging), from the index."""
    low, high = _window(plan, index)
    match = plan.match
    return [item for item in index.items[low:high] if match(item)]


def _walk(items: list[V3Item], match: Any, indexes: range, wanted: int) -> list[V3Item]:
    """The first ``wanted`` matching items at these positions, in walking order."""
    out: list[V3Item] = []
    for i in indexes:
        item = items[i]
        if match(item):
            out.append(item)
            if len(out) == wanted:
                break
    return out


def _window(plan: Plan, index: SortedItems) -> tuple[int, int]:
    """The positions ``[low, high)`` outside which no item can match: every item whose first
    sort field (or id, unsorted) is outside the top-level filter's bounds on it."""
    field, descending = plan.sort[0] if plan.sort else ("id", False)
    spec = plan.source["filter"].get(field)
    if spec is None:
        return 0, len(index)
    if not isinstance(spec, dict) or "$date" in spec:
        spec = {"$eq": spec}
    kind = FIELDS[field][0]
    lows = [operand_value(kind, spec[op], field) for op in _LOWER if op in spec]
    highs = [operand_value(kind, spec[op], field) for op in _UPPER if op in spec]
    wrap = _first_component(plan)
    firsts = index.firsts
    least, most = 0, len(firsts)
    if lows:  # in ascending order: from the first item at or above the greatest lower bound
        edge = wrap(max(lows))
        if descending:
            most = bisect.bisect_right(firsts, edge)
        else:
            least = bisect.bisect_left(firsts, edge)
    if highs:
        edge = wrap(min(highs))
        if descending:
            least = bisect.bisect_left(firsts, edge)
        else:
            most = bisect.bisect_right(firsts, edge)
    return least, max(least, most)


def _first_component(plan: Plan) -> Any:
    """The first key component an item with this first-field value has."""
    if not plan.sort:
        return lambda value: value
    return lambda value: comparable(plan, [value, ""])[0]


def _first(pair: tuple[tuple[Any, ...], V3Item]) -> tuple[Any, ...]:
    return pair[0]
