"""The Catalog V3 calls over one site's :class:`~.v3_store.V3Store`: decode, apply, encode.

Synchronous, like the V1 handlers: a request is applied with no await in between. Query and
search read their request from the ``.r`` query parameter (the base64url JSON the SDK sends
with GET) or from a POST body (the SDK's fallback for long queries).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgspec

from ._errors import validation_error
from .v3_items import V3Item
from .v3_query import Page, Plan, compile_plan, decode_cursor
from .v3_requests import (
    GUID_PATTERN,
    BulkUpdateBody,
    ByIdDecrementBody,
    ByIdIncrementBody,
    ByLocationDecrementBody,
    ByLocationIncrementBody,
    CursorPagingIn,
    QueryRequest,
    SearchRequest,
    SortingIn,
    UpdateBody,
    UpdateByFilterBody,
    decode3,
    decode_bulk,
)
from .v3_store import Adjust, ItemFault, Refusal, Settled, V3Store, check_update_shape

__all__ = ["V3_HANDLERS", "V3Call", "V3Handler", "bulk_answer"]

_encode = msgspec.json.Encoder().encode
_GUID: Final = re.compile(GUID_PATTERN)
DEFAULT_LIMIT: Final = 100


class V3Call(NamedTuple):
    """One V3 request as the handlers see it."""

    store: V3Store
    path: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    rid: str
    fault: ItemFault | None


V3Handler = Callable[[V3Call], bytes]


# --- bulk increments and decrements --------------------------------------------------------


_DONE: Final = b'{"itemMetadata":{"id":%b,"originalIndex":%d,"success":true}}'
"""The answer of one applied entry (no ``returnEntity``): what encoding its dict gives."""
_ANSWER: Final = (
    b'{"results":[%b],"bulkActionMetadata":'
    b'{"totalSuccesses":%d,"totalFailures":%d,"undetailedFailures":%d}}'
)


_HEAD: Final = '{"results":[{"itemMetadata":{"id":"'
_CLOSES: Final = tuple(f'","originalIndex":{i},"success":true}}}}' for i in range(1_000))
"""What follows the id in the answer of applied entry ``i``, for every entry a bulk call may
hold; ``_NEXT[i]`` is the same followed by the next entry's opening."""
_NEXT: Final = tuple(close + ',{"itemMetadata":{"id":"' for close in _CLOSES)
_TAIL: Final = (
    '],"bulkActionMetadata":{"totalSuccesses":%d,"totalFailures":0,"undetailedFailures":0}}'
)


def _all_applied(targets: Sequence[V3Item | None]) -> bytes:
    """The answer of a call whose every entry applied: ``_DONE`` of each, but when JSON
    writes the ids as they are (ASCII, and encoding them all adds only the two quotes: no
    escape), they are joined between their entries' closes in one pass instead of encoded
    one by one."""
    ids = [item.id for item in targets if item is not None]
    count = len(ids)
    joined = "".join(ids)
    plain = joined.isascii() and len(_encode(joined)) == len(joined) + 2
    if not plain or not 0 < count == len(targets) <= len(_CLOSES):
        done = [_DONE % (_encode(item.id), i) for i, item in enumerate(targets) if item]
        return _ANSWER % (b",".join(done), len(targets), 0, 0)
    parts = [_HEAD] * (2 * count + 1)
    parts[1::2] = ids
    parts[2::2] = _NEXT[:count]
    parts[-1] = _CLOSES[count - 1] + _TAIL % count
    return "".join(parts).encode()


def bulk_answer(settled: Settled, return_entity: bool) -> bytes:
    """``results`` (one per entry, but undetailed failures) and ``bulkActionMetadata``."""
    targets, failed = settled
    if not failed and not return_entity:  # the usual answer: every entry applied
        return _all_applied(targets)
    results = []
    undetailed = 0
    for index, item in enumerate(targets):
        refusal = failed.get(index)
        if refusal is None and not return_entity:
            assert item is not None
            results.append(_DONE % (_encode(item.id), index))
            continue
        if refusal is not None and not refusal[1]:
            undetailed += 1
            continue
        results.append(_encode(_result(index, item, refusal, return_entity)))
    metadata = {
        "totalSuccesses": len(targets) - len(failed),
        "totalFailures": len(failed),
        "undetailedFailures": undetailed,
    }
    return (
        b'{"results":[' + b",".join(results) + b'],"bulkActionMetadata":' + _encode(metadata) + b"}"
    )


def _result(
    index: int, item: V3Item | None, refusal: Refusal | None, return_entity: bool
) -> dict[str, Any]:
    item_id = item.id if refusal is None and item is not None else None
    if refusal is not None:
        item_id = refusal[2]
    meta: dict[str, Any] = {"originalIndex": index, "success": refusal is None}
    if item_id is not None:
        meta = {"id": item_id, **meta}
    if refusal is not None:
        meta["error"] = refusal[0].wire()
    result: dict[str, Any] = {"itemMetadata": meta}
    if return_entity and refusal is None and item is not None:
        result["item"] = item.to_wire()
    return result


def decrement_by_id(call: V3Call) -> bytes:
    body = decode_bulk(ByIdDecrementBody, call.body, lambda b: call.store.has_ids(b.decrement_data))
    restrict = body.restrict_inventory is not False
    return _adjusted(
        call,
        "bulkDecrementInventoryItems",
        body.decrement_data,
        body,
        decrementing=True,
        restrict=restrict,
    )


def increment_by_id(call: V3Call) -> bytes:
    body = decode_bulk(ByIdIncrementBody, call.body, lambda b: call.store.has_ids(b.increment_data))
    return _adjusted(
        call,
        "bulkIncrementInventoryItems",
        body.increment_data,
        body,
        decrementing=False,
        restrict=True,
    )


def decrement_by_location(call: V3Call) -> bytes:
    body = decode_bulk(
        ByLocationDecrementBody, call.body, lambda b: call.store.has_places(b.decrement_data)
    )
    restrict = body.restrict_inventory is not False
    return _adjusted(
        call,
        "bulkDecrementInventoryItemsByVariantAndLocation",
        body.decrement_data,
        body,
        decrementing=True,
        restrict=restrict,
    )


def increment_by_location(call: V3Call) -> bytes:
    body = decode_bulk(
        ByLocationIncrementBody, call.body, lambda b: call.store.has_places(b.increment_data)
    )
    return _adjusted(
        call,
        "bulkIncrementInventoryItemsByVariantAndLocation",
        body.increment_data,
        body,
        decrementing=False,
        restrict=True,
    )


_BulkBody = (
    ByIdDecrementBody[str]
    | ByIdIncrementBody[str]
    | ByLocationDecrementBody[str]
    | ByLocationIncrementBody[str]
)


def _adjusted(
    call: V3Call,
    endpoint: str,
    entries: Sequence[Adjust],
    body: _BulkBody,
    *,
    decrementing: bool,
    restrict: bool,
) -> bytes:
    """Apply one bulk increment or decrement and answer it per item."""
    settled = call.store.adjust(
        endpoint,
        entries,
        decrementing=decrementing,
        restrict=restrict,
        reason=body.reason,
        rid=call.rid,
        fault=call.fault,
    )
    return bulk_answer(settled, body.return_entity)


# --- one item ------------------------------------------------------------------------------


def _path_id(call: V3Call) -> str:
    item_id = call.path["inventoryItemId"]
    if not _GUID.match(item_id):
        raise validation_error([("inventoryItemId", f"must be a GUID, got {item_id!r}")])
    sent = call.query.get("inventoryItemId")
    if sent is not None and sent != item_id:
        raise validation_error(
            [("inventoryItemId", f"{sent!r} differs from the path's {item_id!r}")]
        )
    return item_id


def _item_answer(item: V3Item) -> bytes:
    return b'{"inventoryItem":' + item.wire_json() + b"}"


def get_item(call: V3Call) -> bytes:
    return _item_answer(call.store.get(_path_id(call)))


def update_item(call: V3Call) -> bytes:
    item_id = _path_id(call)
    body = decode3(UpdateBody, call.body)
    change = body.inventory_item
    if change.id is not None and change.id != item_id:
        raise validation_error(
            [("inventoryItem.id", f"{change.id!r} differs from the path's {item_id!r}")]
        )
    if change.revision is None:
        raise validation_error([("inventoryItem.revision", "required: the revision you read")])
    check_update_shape(change, "inventoryItem")
    return _item_answer(call.store.update(item_id, change, body.reason, call.rid))


def delete_item(call: V3Call) -> bytes:
    call.store.delete(_path_id(call), call.rid)
    return b"{}"


def bulk_update(call: V3Call) -> bytes:
    body = decode3(BulkUpdateBody, call.body)
    changes = []
    for index, masked in enumerate(body.inventory_items):
        change, field = masked.inventory_item, f"inventoryItems[{index}].inventoryItem"
        if change.id is None:
            raise validation_error([(f"{field}.id", "required")])
        if change.revision is None:
            raise validation_error([(f"{field}.revision", "required: the revision you read")])
        check_update_shape(change, field)
        changes.append(change)
    settled = call.store.bulk_update(changes, body.reason, call.rid, call.fault)
    return bulk_answer(settled, body.return_entity)


def update_by_filter(call: V3Call) -> bytes:
    body = decode3(UpdateByFilterBody, call.body)
    if body.filter is None:
        raise validation_error([("filter", "required")])
    check_update_shape(body.inventory_item, "inventoryItem")
    search = msgspec.to_builtins(body.search) if body.search is not None else None
    plan = compile_plan("query", body.filter, None, search, "")
    return _encode({"jobId": call.store.update_by_filter(plan, body.inventory_item, call.rid)})


# --- query and search ----------------------------------------------------------------------


def _request_json(call: V3Call) -> bytes:
    """The request: a POST body, or the GET's ``.r`` parameter (base64url JSON)."""
    unknown = sorted(set(call.query) - {".r"})
    if unknown:
        raise validation_error([(unknown[0], "unknown query parameter: send the request in .r")])
    if call.body:
        return call.body
    encoded = call.query.get(".r")
    if encoded is None:
        return b"{}"
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
        msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise validation_error([(".r", "not the base64url of a JSON request")]) from None
    return raw


def _sort_pairs(sort: list[SortingIn] | None) -> list[tuple[str, str]] | None:
    return [(s.field_name, s.order) for s in sort] if sort is not None else None


def _cursor_page(
    store: V3Store, kind: str, prefix: str, paging: CursorPagingIn | None, fresh: Callable[[], Plan]
) -> Page:
    limit = (paging.limit if paging is not None else None) or DEFAULT_LIMIT
    cursor = paging.cursor if paging is not None else None
    if cursor is None:
        return store.page(fresh(), limit, None, False)
    decoded = decode_cursor(kind, cursor, prefix)
    return store.page(decoded.plan, limit, decoded.after, decoded.backward)


def _page_answer(page: Page, search: bool) -> bytes:
    items = b",".join([item.wire_json() for item in page.items])
    meta: dict[str, Any] = {
        "count": len(page.items),
        "cursors": {"next": page.next, "prev": page.prev},
        "hasNext": page.next is not None,
    }
    return (
        b'{"inventoryItems":['
        + items
        + b'],"pagingMetadata":'
        + _encode(meta)
        + (b',"aggregationData":{}}' if search else b"}")
    )


def query_items(call: V3Call) -> bytes:
    query = decode3(QueryRequest, _request_json(call)).query
    if query is None:
        query = decode3(QueryRequest, b'{"query":{}}').query
        assert query is not None
    if query.paging is not None and query.cursor_paging is not None:
        raise validation_error([("query.paging", "use paging or cursorPaging, not both")])
    has_cursor = query.cursor_paging is not None and query.cursor_paging.cursor is not None
    if has_cursor and (query.filter is not None or query.sort is not None):
        raise validation_error(
            [
                (
                    "query.cursorPaging.cursor",
                    "a cursor carries its filter and sort: send only the cursor",
                )
            ]
        )

    def fresh() -> Plan:
        return compile_plan("query", query.filter, _sort_pairs(query.sort), None, "query")

    if query.paging is not None:
        limit, offset = query.paging.limit or DEFAULT_LIMIT, query.paging.offset or 0
        items = call.store.offset_page(fresh(), limit, offset)
        body = b",".join([item.wire_json() for item in items])
        meta = _encode({"count": len(items), "offset": offset})
        return b'{"inventoryItems":[' + body + b'],"pagingMetadata":' + meta + b"}"
    page = _cursor_page(call.store, "query", "query", query.cursor_paging, fresh)
    return _page_answer(page, False)


def search_items(call: V3Call) -> bytes:
    search = decode3(SearchRequest, _request_json(call)).search
    if search is None:
        search = decode3(SearchRequest, b'{"search":{}}').search
        assert search is not None
    if search.aggregations:
        raise validation_error(
            [("search.aggregations", "aggregations are not supported by the emulator")]
        )
    has_cursor = search.cursor_paging is not None and search.cursor_paging.cursor is not None
    if has_cursor and (
        search.filter is not None or search.sort is not None or search.search is not None
    ):
        raise validation_error(
            [
                (
                    "search.cursorPaging.cursor",
                    "a cursor carries its filter, sort and search: send only the cursor",
                )
            ]
        )
    details = msgspec.to_builtins(search.search) if search.search is not None else None

    def fresh() -> Plan:
        return compile_plan("search", search.filter, _sort_pairs(search.sort), details, "search")

    page = _cursor_page(call.store, "search", "search", search.cursor_paging, fresh)
    return _page_answer(page, True)


V3_HANDLERS: Final[dict[str, tuple[str, str, V3Handler]]] = {
    "bulkDecrementInventoryItems": (
        "POST",
        "/stores/v3/bulk/inventory-items/decrement",
        decrement_by_id,
    ),
    "bulkIncrementInventoryItems": (
        "POST",
        "/stores/v3/bulk/inventory-items/increment",
        increment_by_id,
    ),
    "bulkDecrementInventoryItemsByVariantAndLocation": (
        "POST",
        "/stores/v3/bulk/inventory-items/decrement-by-variant-and-location",
        decrement_by_location,
    ),
    "bulkIncrementInventoryItemsByVariantAndLocation": (
        "POST",
        "/stores/v3/bulk/inventory-items/increment-by-variant-and-location",
        increment_by_location,
    ),
    "bulkUpdateInventoryItems": ("POST", "/stores/v3/bulk/inventory-items/update", bulk_update),
    "bulkUpdateInventoryItemsByFilter": (
        "POST",
        "/stores/v3/bulk/inventory-items/update-by-filter",
        update_by_filter,
    ),
    "queryInventoryItems": ("GET", "/stores/v3/inventory-items/query", query_items),
    "queryInventoryItems.post": ("POST", "/stores/v3/inventory-items/query", query_items),
    "searchInventoryItems": ("GET", "/stores/v3/inventory-items/search", search_items),
    "searchInventoryItems.post": ("POST", "/stores/v3/inventory-items/search", search_items),
    "getInventoryItem": ("GET", "/stores/v3/inventory-items/{inventoryItemId}", get_item),
    "updateInventoryItem": ("PATCH", "/stores/v3/inventory-items/{inventoryItemId}", update_item),
    "deleteInventoryItem": ("DELETE", "/stores/v3/inventory-items/{inventoryItemId}", delete_item),
}
"""Route key -> (method, path, handler), in registration order (query and search before the
``{inventoryItemId}`` routes). The endpoint name (for faults and stats) is the key up to a dot."""
