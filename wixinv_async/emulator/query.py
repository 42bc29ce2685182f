"""The Query Inventory language: ``filter`` and ``sort`` JSON strings, compiled and run.

Pure code over a list of items kept in numericId order. A filter compiles to a numericId
range (from the numericId conditions joined by AND) plus a residual predicate, so a crawl
page (``numericId`` range, numericId sort, limit 100) costs two bisections, not a scan.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

import msgspec

from ..models import MAX_OFFSET_ITEMS, MAX_PAGE_LIMIT
from ._errors import WixApiError, validation_error
from .items import Item

__all__ = ["CompiledQuery", "Page", "compile_query", "run_query"]

Predicate = Callable[[Item], bool]
SortKey = tuple[str, bool]  # (field, descending)

_FILTER: Final = "query.filter"
_SORT: Final = "query.sort"
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
}
_SET_OPS: Final = ("$in", "$hasSome")
_ORDERED_FIELDS: Final = ("numericId", "lastUpdated", "productId", "externalId", "id")
_FIELDS: Final = (*_ORDERED_FIELDS, "trackQuantity")
_SORT_FIELDS: Final = ("numericId", "lastUpdated")
_GETTERS: Final[dict[str, Callable[[Item], Any]]] = {
    "numericId": operator.attrgetter("numeric_id"),
    "lastUpdated": operator.attrgetter("last_updated"),
    "productId": operator.attrgetter("product_id"),
    "externalId": operator.attrgetter("product_id"),
    "id": operator.attrgetter("id"),
    "trackQuantity": operator.attrgetter("track"),
}


class CompiledQuery(NamedTuple):
    """A numericId range (inclusive bounds, ``None`` = open), the rest, the sort, the page."""

    low: int | None
    high: int | None
    predicate: Predicate | None
    sort: tuple[SortKey, ...]
    offset: int
    limit: int


class Page(NamedTuple):
    items: list[Item]
    total: int


def _bad_filter(text: str) -> WixApiError:
    return validation_error([(_FILTER, text)])


def compile_query(
    filter_text: str | None, sort_text: str | None, limit: int | None, offset: int | None
) -> CompiledQuery:
    """Validate and compile a query, or raise a 400 naming the offending field."""
    limit = MAX_PAGE_LIMIT if limit is None else limit
    offset = 0 if offset is None else offset
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise validation_error(
            [("query.paging.limit", f"must be 1 to {MAX_PAGE_LIMIT}, got {limit}")]
        )
    if offset < 0:
        raise validation_error([("query.paging.offset", f"must be >= 0, got {offset}")])
    if offset + limit > MAX_OFFSET_ITEMS:
        raise validation_error(
            [
                (
                    "query.paging.offset",
                    f"offset + limit = {offset + limit} is past the {MAX_OFFSET_ITEMS} items "
                    "served by offset: crawl by numericId instead (sort numericId asc, filter "
                    "numericId $gt the last value seen, until a page comes back empty)",
                )
            ],
            rule="OFFSET_LIMIT",
        )
    low, high, predicate = _compile_filter(filter_text)
    return CompiledQuery(low, high, predicate, _compile_sort(sort_text), offset, limit)


def _parse_json(text: str, field: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise validation_error([(field, f"not valid JSON: {text[:200]!r}")]) from None


def _compile_filter(text: str | None) -> tuple[int | None, int | None, Predicate | None]:
    if text is None or not text.strip():
        return None, None, None
    node = _parse_json(text, _FILTER)
    return _compile_node(node)


def _compile_node(node: Any) -> tuple[int | None, int | None, Predicate | None]:
    """An object of conditions joined by AND: the numericId range and the residual predicate."""
    if not isinstance(node, dict):
        raise _bad_filter(f"a filter must be a JSON object, got {node!r}")
    low: int | None = None
    high: int | None = None
    predicates: list[Predicate] = []
    for key, value in node.items():
        if key == "$and":
            parts = [_compile_node(sub) for sub in _operands(key, value)]
        elif key == "$or":
            predicates.append(
                _any_of([_as_predicate(_compile_node(s)) for s in _operands(key, value)])
            )
            continue
        elif key.startswith("$"):
            raise _bad_filter(f"unknown operator {key!r}")
        else:
            parts = [_compile_field(key, value)]
        for part_low, part_high, predicate in parts:
            low = part_low if low is None or (part_low is not None and part_low > low) else low
            high = (
                part_high if high is None or (part_high is not None and part_high < high) else high
            )
            if predicate is not None:
                predicates.append(predicate)
    return low, high, _all_of(predicates)


def _operands(key: str, value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _bad_filter(f"{key} takes a non-empty list of filters, got {value!r}")
    return value


def _as_predicate(compiled: tuple[int | None, int | None, Predicate | None]) -> Predicate:
    low, high, predicate = compiled
    ranged = _range_predicate(low, high)
    return _all_of([p for p in (ranged, predicate) if p is not None]) or (lambda _item: True)


def _range_predicate(low: int | None, high: int | None) -> Predicate | None:
    if low is None and high is None:
        return None
    lo = -math.inf if low is None else low
    hi = math.inf if high is None else high
    return lambda item: lo <= item.numeric_id <= hi


def _all_of(predicates: list[Predicate]) -> Predicate | None:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return lambda item: all(p(item) for p in predicates)


def _any_of(predicates: list[Predicate]) -> Predicate:
    return lambda item: any(p(item) for p in predicates)


def _compile_field(field: str, condition: Any) -> tuple[int | None, int | None, Predicate | None]:
    if field not in _FIELDS:
        raise _bad_filter(f"unknown field {field!r}: filter on one of {', '.join(_FIELDS)}")
    ops = condition if isinstance(condition, dict) else {"$eq": condition}
    if not ops:
        raise _bad_filter(f"{field}: empty condition")
    low: int | None = None
    high: int | None = None
    predicates: list[Predicate] = []
    for op, raw in ops.items():
        if field == "numericId" and op in ("$eq", "$gt", "$gte", "$lt", "$lte"):
            value = _value(field, op, raw)
            op_low, op_high = _numeric_bounds(op, value)
            low = op_low if low is None or (op_low is not None and op_low > low) else low
            high = op_high if high is None or (op_high is not None and op_high < high) else high
        else:
            predicates.append(_compile_op(field, op, raw))
    return low, high, _all_of(predicates)


def _numeric_bounds(op: str, value: int) -> tuple[int | None, int | None]:
    return {
        "$eq": (value, value),
        "$gt": (value + 1, None),
        "$gte": (value, None),
        "$lt": (None, value - 1),
        "$lte": (None, value),
    }[op]


def _compile_op(field: str, op: str, raw: Any) -> Predicate:
    getter = _GETTERS[field]
    if op in _SET_OPS:
        if not isinstance(raw, list):
            raise _bad_filter(f"{field}.{op} takes a list, got {raw!r}")
        wanted = frozenset(_value(field, op, v) for v in raw)
        return lambda item: getter(item) in wanted
    compare = _COMPARE.get(op)
    if compare is None:
        raise _bad_filter(f"{field}: unknown operator {op!r}")
    if field == "trackQuantity" and op not in ("$eq", "$ne"):
        raise _bad_filter(f"trackQuantity: operator {op!r} does not apply to a boolean")
    value = _value(field, op, raw)
    return lambda item: compare(getter(item), value)


def _value(field: str, op: str, raw: Any) -> Any:
    """A filter operand converted to the field's type, or a 400."""
    bad = _bad_filter(f"{field}.{op}: bad value {raw!r}")
    if field == "numericId":
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise bad
        if isinstance(raw, str) and not (raw.isascii() and raw.isdigit()):
            raise bad
        return int(raw)
    if field == "lastUpdated":
        return _timestamp(raw, bad)
    if field == "trackQuantity":
        if not isinstance(raw, bool):
            raise bad
        return raw
    if not isinstance(raw, str):
        raise bad
    return raw


def _timestamp(raw: Any, bad: WixApiError) -> int:
    """Epoch ms of an RFC 3339 string, ``{"$date": "..."}``, or a number of epoch ms."""
    if isinstance(raw, dict) and set(raw) == {"$date"}:
        raw = raw["$date"]
    if isinstance(raw, bool):
        raise bad
    if isinstance(raw, int | float):
        return int(raw)
    if not isinstance(raw, str):
        raise bad
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise bad from None
    if parsed.tzinfo is None:
        raise bad
    return round(parsed.timestamp() * 1000)


def _compile_sort(text: str | None) -> tuple[SortKey, ...]:
    if text is None or not text.strip():
        return ()
    node = _parse_json(text, _SORT)
    if isinstance(node, dict):
        node = [node]
    if not isinstance(node, list):
        raise validation_error([(_SORT, f"must be a JSON list of {{field: order}}, got {node!r}")])
    keys: list[SortKey] = []
    for entry in node:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise validation_error([(_SORT, f"each sort entry is {{field: order}}, got {entry!r}")])
        ((field, order),) = entry.items()
        if field not in _SORT_FIELDS:
            raise validation_error(
                [(_SORT, f"cannot sort by {field!r}: use numericId or lastUpdated")]
            )
        if not isinstance(order, str) or order.lower() not in ("asc", "desc"):
            raise validation_error([(_SORT, f"{field}: order must be asc or desc, got {order!r}")])
        keys.append((field, order.lower() == "desc"))
    return tuple(keys)


def run_query(items: Sequence[Item], numeric_ids: Sequence[int], query: CompiledQuery) -> Page:
    """One page of ``items`` (in numericId order, ``numeric_ids`` their ints) and the total."""
    start = 0 if query.low is None else bisect.bisect_left(numeric_ids, query.low)
    stop = len(items) if query.high is None else bisect.bisect_right(numeric_ids, query.high)
    stop = max(start, stop)
    sort = query.sort
    first, last = query.offset, query.offset + query.limit
    if query.predicate is None and sort in ((), (("numericId", False),)):
        return Page(list(items[start + first : min(start + last, stop)]), stop - start)
    if query.predicate is None and sort == (("numericId", True),):
        lo, hi = max(start, stop - last), stop - first
        return Page(list(reversed(items[lo:hi])) if hi > lo else [], stop - start)
    predicate = query.predicate
    matched = [item for item in items[start:stop] if predicate is None or predicate(item)]
    for field, descending in reversed(sort):
        matched.sort(key=_GETTERS[field], reverse=descending)
    return Page(matched[first:last], len(matched))
