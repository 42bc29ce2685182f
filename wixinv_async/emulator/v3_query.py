"""Catalog V3 query and search: filters, sorts, free-text search, keyset cursors. Pure code.

A :class:`Plan` is a compiled filter, a sort and a free-text test. Pages are cut by keyset:
every item has a key (its sort fields, then its id, which is unique), a page holds the
``limit`` smallest keys after the cursor's key, and a cursor is the opaque base64url JSON of
the plan's source plus the boundary key. So a cursor stays valid however the catalog
changes, and paging by an immutable order (no sort: id; or ``createdDate``) reads every item
that exists throughout exactly once. An item whose sort field changes during a crawl moves
in the order (as in any database): it may be read twice or not at all.

Filters are evaluated on the item's REST document: a field the item does not show (``inStock``
of a tracked item, ``quantity`` of an untracked one) is absent: it fails every comparison but
``$ne``, ``$nin`` and ``$exists: false``.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

import msgspec

from ._errors import WixApiError, validation_error
from .v3_items import V3Item

__all__ = [
    "FIELDS",
    "SORTABLE",
    "Page",
    "Plan",
    "comparable",
    "compile_plan",
    "cursor_for",
    "decode_cursor",
    "key_function",
    "operand_value",
    "run",
]

Getter = Callable[[V3Item], Any]
Predicate = Callable[[V3Item], bool]

_STRING: Final = "string"
_NUMBER: Final = "number"
_BOOL: Final = "bool"
_DATE: Final = "date"
_LIST: Final = "list"

FIELDS: Final[dict[str, tuple[str, Getter]]] = {
    "id": (_STRING, lambda i: i.id),
    "variantId": (_STRING, lambda i: i.variant_id),
    "locationId": (_STRING, lambda i: i.location_id),
    "productId": (_STRING, lambda i: i.product_id),
    "quantity": (_NUMBER, lambda i: i.quantity if i.track else None),
    "inStock": (_BOOL, lambda i: None if i.track else i.in_stock),
    "trackQuantity": (_BOOL, lambda i: i.track),
    "availabilityStatus": (_STRING, lambda i: i.availability()),
    "preorderInfo.enabled": (_BOOL, lambda i: i.preorder_enabled),
    "createdDate": (_DATE, lambda i: i.created),
    "updatedDate": (_DATE, lambda i: i.updated),
    "product.name": (_STRING, lambda i: i.name),
    "product.variantName": (_STRING, lambda i: i.variant_name),
    "product.variantSku": (_STRING, lambda i: i.variant_sku),
    "product.variantBarcode": (_STRING, lambda i: None),
    "product.brand.id": (_STRING, lambda i: None),
    "product.directCategoryIds": (_LIST, lambda i: []),
}
"""Filterable fields (the typings' ``wql`` fields, by their REST names): type and value."""
SORTABLE: Final = frozenset(FIELDS) - {"id", "variantId", "locationId"}
"""The typings give ``id``, ``variantId`` and ``locationId`` ``sort: 'NONE'``."""
SEARCHABLE: Final = (
    "product.name",
    "product.variantBarcode",
    "product.variantName",
    "product.variantSku",
)
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$eq": lambda a, b: a is not None and a == b,
    "$ne": lambda a, b: a != b,
    "$gt": lambda a, b: a is not None and a > b,
    "$gte": lambda a, b: a is not None and a >= b,
    "$lt": lambda a, b: a is not None and a < b,
    "$lte": lambda a, b: a is not None and a <= b,
}
_LIST_OPS: Final = ("$in", "$nin", "$hasSome", "$hasAll")
MAX_CURSOR: Final = 16_000


class Plan(NamedTuple):
    """A compiled query: what matches, in which order, from which source (kept in cursors)."""

    kind: str
    match: Predicate
    sort: tuple[tuple[str, bool], ...]
    """(field, descending) pairs; the id (ascending) always breaks ties."""
    source: dict[str, Any]


class Page(NamedTuple):
    items: list[V3Item]
    next: str | None
    prev: str | None


def compile_plan(
    kind: str,
    filter_: dict[str, Any] | None,
    sort: Sequence[tuple[str, str]] | None,
    search: dict[str, Any] | None,
    prefix: str,
) -> Plan:
    """Compile a query (``kind`` ``query`` or ``search``); 400 naming the field if invalid."""
    at = f"{prefix}." if prefix else ""
    match = _compile_filter(filter_ or {}, f"{at}filter")
    pairs = []
    for index, (field, order) in enumerate(sort or ()):
        if field not in SORTABLE:
            text = f"cannot sort by {field!r}: sortable fields are {sorted(SORTABLE)}"
            raise validation_error([(f"{at}sort[{index}].fieldName", text)])
        pairs.append((field, order == "DESC"))
    if search:
        text_match = _compile_search(search, f"{at}search")
        base = match
        match = lambda item: base(item) and text_match(item)  # noqa: E731
    source = {"filter": filter_ or {}, "sort": list(sort or ()), "search": search or {}}
    return Plan(kind, match, tuple(pairs), source)


# --- filters -------------------------------------------------------------------------------


def _compile_filter(spec: Any, path: str) -> Predicate:
    if not isinstance(spec, dict):
        raise validation_error([(path, f"a filter is an object, got {spec!r}")])
    parts = [_compile_entry(key, value, f"{path}.{key}") for key, value in spec.items()]
    if len(parts) == 1:
        return parts[0]
    return lambda item: all(part(item) for part in parts)


def _compile_entry(key: str, value: Any, path: str) -> Predicate:
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise validation_error([(path, f"{key} takes a non-empty list of filters")])
        parts = [_compile_filter(v, f"{path}[{i}]") for i, v in enumerate(value)]
        combine = all if key == "$and" else any
        return lambda item: combine(part(item) for part in parts)
    if key == "$not":
        inner = _compile_filter(value, path)
        return lambda item: not inner(item)
    field = FIELDS.get(key)
    if field is None:
        known = [*sorted(FIELDS), "$and", "$not", "$or"]
        raise validation_error([(path, f"unknown filter field {key!r}: use one of {known}")])
    kind, getter = field
    if not isinstance(value, dict) or "$date" in value:
        value = {"$eq": value}
    tests = [
        _compile_op(kind, getter, op, operand, f"{path}.{op}") for op, operand in value.items()
    ]
    if len(tests) == 1:
        return tests[0]
    return lambda item: all(test(item) for test in tests)


def _compile_op(kind: str, getter: Getter, op: str, operand: Any, path: str) -> Predicate:
    if op == "$exists":
        if not isinstance(operand, bool):
            raise validation_error([(path, f"$exists takes true or false, got {operand!r}")])
        return lambda item: (getter(item) is not None) is operand
    if op in _COMPARE:
        if kind == _LIST:
            raise validation_error([(path, f"{op} does not apply to a list field")])
        compare = _COMPARE[op]
        want = operand_value(kind, operand, path)
        return lambda item: bool(compare(_value(kind, getter(item)), want))
    if op in _LIST_OPS:
        return _compile_list_op(kind, getter, op, operand, path)
    if op == "$startsWith":
        if kind != _STRING or not isinstance(operand, str):
            raise validation_error([(path, "$startsWith takes a string, on a string field")])
        lowered = operand.lower()
        return lambda item: isinstance(v := getter(item), str) and v.lower().startswith(lowered)
    known = sorted([*_COMPARE, *_LIST_OPS, "$exists", "$startsWith"])
    raise validation_error([(path, f"unknown operator {op!r}: use one of {known}")])


def _compile_list_op(kind: str, getter: Getter, op: str, operand: Any, path: str) -> Predicate:
    if not isinstance(operand, list):
        raise validation_error([(path, f"{op} takes a list, got {operand!r}")])
    if kind == _LIST:
        wanted = frozenset(operand_value(_STRING, v, f"{path}[{i}]") for i, v in enumerate(operand))
        if op == "$hasAll":
            return lambda item: wanted <= frozenset(getter(item))
        if op == "$hasSome":
            return lambda item: bool(wanted & frozenset(getter(item)))
        raise validation_error([(path, f"{op} does not apply to a list field")])
    if op == "$hasAll":
        raise validation_error([(path, "$hasAll applies to product.directCategoryIds only")])
    values = frozenset(operand_value(kind, v, f"{path}[{i}]") for i, v in enumerate(operand))
    if op == "$nin":
        return lambda item: _value(kind, getter(item)) not in values
    return lambda item: _value(kind, getter(item)) in values


def _value(kind: str, value: Any) -> Any:
    return int(value) if kind == _BOOL and value is not None else value


def operand_value(kind: str, operand: Any, path: str) -> Any:
    """The operand in the field's comparable form (dates: epoch ms, bools: 0 or 1)."""
    if kind == _DATE:
        return _date_ms(operand, path)
    ok = {
        _STRING: isinstance(operand, str),
        _NUMBER: isinstance(operand, int | float) and not isinstance(operand, bool),
        _BOOL: isinstance(operand, bool),
        _LIST: isinstance(operand, str),
    }[kind]
    if not ok:
        raise validation_error([(path, f"expected a {kind} operand, got {operand!r}")])
    return int(operand) if kind == _BOOL else operand


def _date_ms(operand: Any, path: str) -> int:
    raw = operand.get("$date") if isinstance(operand, dict) else operand
    if isinstance(raw, str):
        try:
            return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    text = f"expected an RFC 3339 date string or {{'$date': ...}}, got {operand!r}"
    raise validation_error([(path, text)])


def _compile_search(search: dict[str, Any], path: str) -> Predicate:
    """Free text: case-insensitive substring terms over the searchable fields; mode OR
    (default: any term) or AND (every term). ``fuzzy`` is accepted and ignored."""
    terms = str(search.get("expression") or "").lower().split()
    fields = search.get("fields") or list(SEARCHABLE)
    for index, name in enumerate(fields):
        if name not in SEARCHABLE:
            text = f"{name!r} is not searchable: use {list(SEARCHABLE)}"
            raise validation_error([(f"{path}.fields[{index}]", text)])
    getters = [FIELDS[name][1] for name in fields]
    combine = all if search.get("mode") == "AND" else any
    if not terms:
        return lambda item: True

    def match(item: V3Item) -> bool:
        text = " ".join(str(g(item) or "") for g in getters).lower()
        return combine(term in text for term in terms)

    return match


# --- order and keyset ----------------------------------------------------------------------


class _Desc:
    """Reverses the order of one key component (for DESC fields of any type)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


def _raw_key(plan: Plan, item: V3Item) -> list[Any]:
    """The item's sort values (absent: ``None``, sorted first ascending) and its id."""
    return [_value(FIELDS[field][0], FIELDS[field][1](item)) for field, _ in plan.sort] + [item.id]


def comparable(plan: Plan, raw: Sequence[Any]) -> tuple[Any, ...]:
    """A raw key (``_raw_key``, or a cursor's) as a tuple that sorts in the plan's order."""
    parts: list[Any] = []
    for (_, descending), value in zip(plan.sort, raw, strict=False):
        part = (0, 0) if value is None else (1, value)
        parts.append(_Desc(part) if descending else part)
    parts.append(raw[-1])
    return tuple(parts)


def key_function(plan: Plan) -> Callable[[V3Item], tuple[Any, ...]]:
    """``comparable(plan, _raw_key(plan, item))``, specialised for the common plans (the
    hot path of a crawl: one key per item per page)."""
    if not plan.sort:
        return lambda item: (item.id,)
    if len(plan.sort) == 1 and not plan.sort[0][1]:
        kind, getter = FIELDS[plan.sort[0][0]]

        def one(item: V3Item) -> tuple[Any, ...]:
            value = _value(kind, getter(item))
            return ((0, 0) if value is None else (1, value), item.id)

        return one
    return lambda item: comparable(plan, _raw_key(plan, item))


def run(
    plan: Plan, items: Iterable[V3Item], limit: int, after: Sequence[Any] | None, backward: bool
) -> Page:
    """One page: the ``limit`` items after the key ``after`` (before it when ``backward``)."""
    key = key_function(plan)
    match = plan.match
    keyed = [(key(i), i) for i in items if match(i)]
    bound = comparable(plan, after) if after is not None else None
    if backward:
        assert bound is not None
        rest = [pair for pair in keyed if pair[0] < bound]
        chosen = heapq.nlargest(limit + 1, rest, key=_first)
        more_before, chosen = len(chosen) > limit, chosen[:limit][::-1]
        more_after = len(rest) < len(keyed)
    else:
        rest = keyed if bound is None else [pair for pair in keyed if bound < pair[0]]
        chosen = heapq.nsmallest(limit + 1, rest, key=_first)
        more_after, chosen = len(chosen) > limit, chosen[:limit]
        more_before = len(rest) < len(keyed)
    page = [item for _, item in chosen]
    next_cursor = cursor_for(plan, page[-1], "next") if page and more_after else None
    prev_cursor = cursor_for(plan, page[0], "prev") if page and more_before else None
    return Page(page, next_cursor, prev_cursor)


def ordered(plan: Plan, items: Iterable[V3Item]) -> list[V3Item]:
    """Every matching item in the plan's order (offset paging)."""
    key = key_function(plan)
    keyed = [(key(i), i) for i in items if plan.match(i)]
    keyed.sort(key=_first)
    return [item for _, item in keyed]


def _first(pair: tuple[tuple[Any, ...], V3Item]) -> tuple[Any, ...]:
    return pair[0]


# --- cursors -------------------------------------------------------------------------------


def cursor_for(plan: Plan, item: V3Item, direction: str) -> str:
    body = {"k": plan.kind, **plan.source, "at": _raw_key(plan, item), "d": direction}
    return base64.urlsafe_b64encode(msgspec.json.encode(body)).rstrip(b"=").decode()


class Cursor(NamedTuple):
    plan: Plan
    after: list[Any]
    backward: bool


def decode_cursor(kind: str, cursor: str, prefix: str) -> Cursor:
    """A cursor from an earlier page of the same kind of call, or a 400."""
    field = f"{prefix}.cursorPaging.cursor"
    try:
        data = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or data.get("k") != kind:
            raise ValueError(kind)
        sort = [(str(f), str(o)) for f, o in data["sort"]]
        plan = compile_plan(kind, data["filter"], sort, data["search"], prefix)
        after = list(data["at"])
        if len(after) != len(plan.sort) + 1 or data["d"] not in ("next", "prev"):
            raise ValueError(cursor)
    except (ValueError, KeyError, TypeError, binascii.Error, msgspec.DecodeError, WixApiError):
        text = f"not a cursor of a {kind} page of this emulator: {cursor[:40]!r}"
        raise validation_error([(field, text)]) from None
    return Cursor(plan, after, data["d"] == "prev")
