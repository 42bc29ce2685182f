"""The Catalog V3 inventory-items calls as pure request builders: checked input in, the exact
request the official SDK sends out (:class:`V3Call`); ``InventoryClient`` sends it.

What each call sends (``tests/wire/v3/official-sdk-v3-requests.json``; paths under
``/stores/v3``; ``X`` is ``decrement`` or ``increment``)::

    get_catalog_version                GET    /provision/version
    bulk_X_inventory_items             POST   /bulk/inventory-items/X
    bulk_X_..._by_variant_and_location POST   /bulk/inventory-items/X-by-variant-and-location
    get_inventory_item                 GET    /inventory-items/{id}?inventoryItemId={id}
    update_inventory_item              PATCH  /inventory-items/{id}
    bulk_update_inventory_items        POST   /bulk/inventory-items/update
    bulk_update_..._by_filter          POST   /bulk/inventory-items/update-by-filter
    delete_inventory_item              DELETE /inventory-items/{id}?inventoryItemId={id}
    query_inventory_items              GET    /inventory-items/query?.r={base64url JSON}
    search_inventory_items             GET    /inventory-items/search?.r={base64url JSON}

``.r`` is the request body, ``{"query": ...}`` or ``{"search": ...}``, as compact JSON in
unpadded base64url: the SDK (``@wix/sdk`` ``buildRESTDescriptor``) sends it so, and falls
back to a POST of the same JSON to the same path when the query string (``.r=...``) would
pass :data:`MAX_QUERY_STRING` characters. Bodiless calls carry no ``Content-Type``. Input
is checked against the typings' limits (``@max``, ``@maxSize``, GUID formats) first: a
violation raises :class:`~wixinv_async.errors.InvalidInputError` naming field and value.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple, TypeVar, cast
from urllib.parse import quote

import msgspec
from msgspec import UNSET, UnsetType

from .core import validation
from .core.failures import RequestKind
from .errors import InvalidInputError
from .models_v3 import (
    MAX_BULK_UPDATE,
    MAX_CURSOR_LENGTH,
    MAX_QUERY_LIMIT,
    MAX_SORTS,
    MAX_V3_BATCH,
    MAX_V3_QUANTITY,
    BulkDecrementByIdRequest,
    BulkDecrementByVariantAndLocationRequest,
    BulkIncrementByIdRequest,
    BulkIncrementByVariantAndLocationRequest,
    BulkUpdateByFilterRequest,
    BulkUpdateInventoryItemsRequest,
    ByFilterUpdate,
    CursorPaging,
    CursorQuery,
    CursorSearch,
    DecrementDataById,
    DecrementDataByVariantAndLocation,
    IncrementDataById,
    IncrementDataByVariantAndLocation,
    MaskedInventoryItem,
    PreorderInfoV3,
    QueryInventoryItemsRequest,
    SearchInventoryItemsRequest,
    Sorting,
    UpdateInventoryItem,
    UpdateInventoryItemRequest,
)
from .settings import is_int

__all__ = [
    "MAX_QUERY_STRING",
    "REASONS",
    "V3Call",
    "bulk_adjust_body",
    "bulk_adjust_by_id",
    "bulk_adjust_by_variant_and_location",
    "bulk_update",
    "bulk_update_by_filter",
    "catalog_version_call",
    "check_adjust_entry",
    "check_update",
    "delete_item",
    "get_item",
    "query_items",
    "search_items",
    "update_item",
]

_V3: Final = "/stores/v3"
MAX_QUERY_STRING: Final = 4000
"""Longest ``.r=...`` query string a query or search sends as a GET (the SDK's threshold);
past it the same JSON goes as a POST body."""
REASONS: Final = frozenset({"ORDER", "MANUAL", "REVERT_INVENTORY_CHANGE"})

_ENCODER: Final = msgspec.json.Encoder()
_T = TypeVar("_T")

BulkAdjustRequest = (
    BulkDecrementByIdRequest
    | BulkIncrementByIdRequest
    | BulkDecrementByVariantAndLocationRequest
    | BulkIncrementByVariantAndLocationRequest
)
AdjustEntry = (
    DecrementDataById
    | IncrementDataById
    | DecrementDataByVariantAndLocation
    | IncrementDataByVariantAndLocation
)


class V3Call(NamedTuple):
    """One request to send: ``endpoint`` names it in the client's stats; ``path`` holds the
    query string, if any; ``kind`` says whether resending it is harmless."""

    endpoint: str
    method: str
    path: str
    body: bytes = b""
    kind: RequestKind = RequestKind.READ


def catalog_version_call() -> V3Call:
    return V3Call("get_catalog_version", "GET", f"{_V3}/provision/version")


# --- bulk increment / decrement --------------------------------------------------------------


def bulk_adjust_by_id(
    entries: Sequence[DecrementDataById] | Sequence[IncrementDataById],
    entry_type: type[DecrementDataById] | type[IncrementDataById],
    *,
    restrict_inventory: bool | None = None,
    return_entity: bool | None = None,
    reason: str | None = None,
    validate: bool = True,
) -> V3Call:
    """Bulk Decrement / Increment Inventory Items (by inventory item id); ``validate=False``
    checks only the batch's size (for entries built from input checked the same way)."""
    decrement = entry_type is DecrementDataById
    field = "decrementData" if decrement else "incrementData"
    checked = _check_entries(field, entries, entry_type, validate)
    request: BulkAdjustRequest
    if decrement:
        request = BulkDecrementByIdRequest(
            decrement_data=checked,  # type: ignore[arg-type]
            restrict_inventory=_flag("restrictInventory", restrict_inventory),
        )
        endpoint, verb = "bulk_decrement_inventory_items", "decrement"
    else:
        _no_restrict(restrict_inventory)
        request = BulkIncrementByIdRequest(increment_data=checked)  # type: ignore[arg-type]
        endpoint, verb = "bulk_increment_inventory_items", "increment"
    _options(request, return_entity, reason)
    path = f"{_V3}/bulk/inventory-items/{verb}"
    return V3Call(endpoint, "POST", path, _ENCODER.encode(request), RequestKind.WRITE)


def bulk_adjust_by_variant_and_location(
    entries: Sequence[DecrementDataByVariantAndLocation]
    | Sequence[IncrementDataByVariantAndLocation],
    entry_type: type[DecrementDataByVariantAndLocation] | type[IncrementDataByVariantAndLocation],
    *,
    restrict_inventory: bool | None = None,
    return_entity: bool | None = None,
    reason: str | None = None,
    validate: bool = True,
) -> V3Call:
    """Bulk Decrement / Increment Inventory Items By Variant And Location (``validate``: as
    for :func:`bulk_adjust_by_id`)."""
    decrement = entry_type is DecrementDataByVariantAndLocation
    field = "decrementData" if decrement else "incrementData"
    checked = _check_entries(field, entries, entry_type, validate)
    request: BulkAdjustRequest
    if decrement:
        request = BulkDecrementByVariantAndLocationRequest(
            decrement_data=checked,  # type: ignore[arg-type]
            restrict_inventory=_flag("restrictInventory", restrict_inventory),
        )
        verb = "decrement"
    else:
        _no_restrict(restrict_inventory)
        request = BulkIncrementByVariantAndLocationRequest(
            increment_data=checked  # type: ignore[arg-type]
        )
        verb = "increment"
    _options(request, return_entity, reason)
    endpoint = f"bulk_{verb}_inventory_items_by_variant_and_location"
    path = f"{_V3}/bulk/inventory-items/{verb}-by-variant-and-location"
    return V3Call(endpoint, "POST", path, _ENCODER.encode(request), RequestKind.WRITE)


def bulk_adjust_body(
    entries: bytes,
    size: int,
    *,
    decrement: bool,
    by_variant: bool,
    restrict_inventory: bool | None = None,
    reason: str | None = None,
) -> V3Call:
    """The bulk call :func:`bulk_adjust_by_variant_and_location` (``by_variant``) or
    :func:`bulk_adjust_by_id` would make of ``size`` entries whose joined encodings are
    ``entries`` (:func:`~wixinv_async.core.wirebody.bulk_entries`): the same bytes, the
    options checked alike, the entries not checked but their count."""
    field = "decrementData" if decrement else "incrementData"
    if not 1 <= size <= MAX_V3_BATCH:
        raise InvalidInputError(field, size, f"must hold 1 to {MAX_V3_BATCH} entries")
    request: BulkAdjustRequest
    if decrement:
        flag = _flag("restrictInventory", restrict_inventory)
        if by_variant:
            request = BulkDecrementByVariantAndLocationRequest(
                decrement_data=[], restrict_inventory=flag
            )
        else:
            request = BulkDecrementByIdRequest(decrement_data=[], restrict_inventory=flag)
    else:
        _no_restrict(restrict_inventory)
        if by_variant:
            request = BulkIncrementByVariantAndLocationRequest(increment_data=[])
        else:
            request = BulkIncrementByIdRequest(increment_data=[])
    _options(request, None, reason)
    empty = _ENCODER.encode(request)  # the data field comes first: its "[]" splits the body
    at = empty.index(b"[]") + 1
    verb = "decrement" if decrement else "increment"
    if by_variant:
        endpoint = f"bulk_{verb}_inventory_items_by_variant_and_location"
        path = f"{_V3}/bulk/inventory-items/{verb}-by-variant-and-location"
    else:
        endpoint = f"bulk_{verb}_inventory_items"
        path = f"{_V3}/bulk/inventory-items/{verb}"
    body = empty[:at] + entries + empty[at:]
    return V3Call(endpoint, "POST", path, body, RequestKind.WRITE)


def check_adjust_entry(entry: object, index: int) -> None:
    """One bulk entry checked as :func:`bulk_adjust_by_id` checks it (``validate=True``)."""
    _check_entry(cast(AdjustEntry, entry), index)


def _check_entries(
    field: str, entries: Sequence[Any], entry_type: type[_T], validate: bool = True
) -> list[_T]:
    """A batch of 1 to 300 entries of ``entry_type``, each valid (``validate=False``: the
    size only)."""
    if isinstance(entries, str | bytes) or not isinstance(entries, Sequence):
        raise InvalidInputError(field, entries, "must be a list of entries")
    if not 1 <= len(entries) <= MAX_V3_BATCH:
        raise InvalidInputError(field, len(entries), f"must hold 1 to {MAX_V3_BATCH} entries")
    if not validate:
        return entries if type(entries) is list else list(entries)
    for index, entry in enumerate(entries):
        if type(entry) is not entry_type:  # exactly: the body is encoded as that struct
            raise InvalidInputError(field, entry, f"must be a {entry_type.__name__}", index=index)
        _check_entry(cast(AdjustEntry, entry), index)
    return list(entries)


def _check_entry(entry: AdjustEntry, index: int) -> None:
    if isinstance(entry, DecrementDataById | IncrementDataById):
        validation.check_variant_id(entry.inventory_item_id, index=index, field="inventoryItemId")
    else:
        validation.check_variant_id(entry.variant_id, index=index)
        if entry.location_id is not UNSET:
            validation.check_variant_id(entry.location_id, index=index, field="locationId")
    if isinstance(entry, DecrementDataById | DecrementDataByVariantAndLocation):
        validation.check_amount("decrementBy", entry.decrement_by, index=index)
        if entry.preorder_request is not UNSET and not isinstance(entry.preorder_request, bool):
            raise InvalidInputError(
                "preorderRequest", entry.preorder_request, "must be a bool", index=index
            )
    else:
        validation.check_amount("incrementBy", entry.increment_by, index=index)


def _no_restrict(restrict_inventory: bool | None) -> None:
    if restrict_inventory is not None:
        raise InvalidInputError(
            "restrictInventory", restrict_inventory, "applies to decrements only"
        )


def _options(request: BulkAdjustRequest, return_entity: bool | None, reason: str | None) -> None:
    request.return_entity = _flag("returnEntity", return_entity)
    request.reason = _reason(reason)


def _flag(field: str, value: bool | None) -> bool | UnsetType:
    """An optional boolean option: absent when ``None`` (the server's default applies)."""
    if value is None:
        return UNSET
    if not isinstance(value, bool):
        raise InvalidInputError(field, value, "must be a bool or None")
    return value


def _reason(reason: str | None) -> str | UnsetType:
    if reason is None:
        return UNSET
    if reason not in REASONS:
        raise InvalidInputError("reason", reason, f"must be one of {sorted(REASONS)}")
    return reason


# --- single items --------------------------------------------------------------------------


def get_item(inventory_item_id: str) -> V3Call:
    """Get Inventory Item: the id in the path and, as the SDK sends it, in the query."""
    path = _item_path(inventory_item_id)
    return V3Call("get_inventory_item", "GET", path)


def delete_item(inventory_item_id: str) -> V3Call:
    path = _item_path(inventory_item_id)
    return V3Call("delete_inventory_item", "DELETE", path, b"", RequestKind.WRITE)


def _item_path(inventory_item_id: str) -> str:
    checked = quote(validation.check_variant_id(inventory_item_id, field="inventoryItemId"), "")
    return f"{_V3}/inventory-items/{checked}?inventoryItemId={checked}"


def check_update(
    inventory_item_id: object,
    revision: object,
    *,
    quantity: int | None = None,
    in_stock: bool | None = None,
    preorder_info: PreorderInfoV3 | None = None,
    index: int | None = None,
) -> UpdateInventoryItem:
    """One item update: a GUID, the revision read (digits; an int is sent as its string),
    and at most one tracking method (``quantity`` -99999..99999, or ``in_stock``)."""
    item_id = validation.check_variant_id(inventory_item_id, index=index, field="id")
    if is_int(revision) and revision >= 0:
        revision = str(revision)
    if not isinstance(revision, str) or not revision.isdigit() or not revision.isascii():
        raise InvalidInputError("revision", revision, "must be the revision read", index=index)
    update = UpdateInventoryItem(revision=revision, id=item_id)
    if quantity is not None and in_stock is not None:
        raise InvalidInputError(
            "quantity", quantity, "give quantity or in_stock, not both", index=index
        )
    if quantity is not None:
        if not is_int(quantity):
            raise InvalidInputError("quantity", quantity, "must be an int", index=index)
        if not -MAX_V3_QUANTITY <= quantity <= MAX_V3_QUANTITY:
            raise InvalidInputError(
                "quantity",
                quantity,
                f"must be from -{MAX_V3_QUANTITY} to {MAX_V3_QUANTITY}",
                index=index,
            )
        update.quantity = quantity
    if in_stock is not None:
        update.in_stock = _flag("inStock", in_stock)
    if preorder_info is not None:
        update.preorder_info = _check_preorder(preorder_info, index)
    return update


def _check_preorder(info: object, index: int | None) -> PreorderInfoV3:
    if not isinstance(info, PreorderInfoV3):
        raise InvalidInputError("preorderInfo", info, "must be a PreorderInfoV3", index=index)
    message = info.message
    if isinstance(message, str) and not 1 <= len(message) <= 250:
        raise InvalidInputError(
            "preorderInfo.message", message, "must be 1 to 250 characters", index=index
        )
    limit = info.limit
    if isinstance(limit, int) and not 0 <= limit <= 100_000:
        raise InvalidInputError(
            "preorderInfo.limit", limit, "must be from 0 to 100000", index=index
        )
    return PreorderInfoV3(enabled=info.enabled, message=info.message, limit=info.limit)


def update_item(update: UpdateInventoryItem, *, reason: str | None = None) -> V3Call:
    """Update Inventory Item (``update`` from :func:`check_update`)."""
    request = UpdateInventoryItemRequest(inventory_item=update, reason=_reason(reason))
    path = f"{_V3}/inventory-items/{quote(update.id, '')}"
    return V3Call(
        "update_inventory_item", "PATCH", path, _ENCODER.encode(request), RequestKind.WRITE
    )


def bulk_update(
    updates: Sequence[UpdateInventoryItem],
    *,
    return_entity: bool | None = None,
    reason: str | None = None,
) -> V3Call:
    """Bulk Update Inventory Items: 1 to 1000 updates, each with its revision."""
    if isinstance(updates, str | bytes) or not isinstance(updates, Sequence):
        raise InvalidInputError("inventoryItems", updates, "must be a list of updates")
    if not 1 <= len(updates) <= MAX_BULK_UPDATE:
        raise InvalidInputError(
            "inventoryItems", len(updates), f"must hold 1 to {MAX_BULK_UPDATE} items"
        )
    checked = []
    for index, update in enumerate(updates):
        if not isinstance(update, UpdateInventoryItem):
            raise InvalidInputError(
                "inventoryItems", update, "must be an UpdateInventoryItem", index=index
            )
        checked.append(MaskedInventoryItem(inventory_item=_recheck(update, index)))
    request = BulkUpdateInventoryItemsRequest(
        inventory_items=checked,
        return_entity=_flag("returnEntity", return_entity),
        reason=_reason(reason),
    )
    path = f"{_V3}/bulk/inventory-items/update"
    return V3Call(
        "bulk_update_inventory_items", "POST", path, _ENCODER.encode(request), RequestKind.WRITE
    )


def _recheck(update: UpdateInventoryItem, index: int) -> UpdateInventoryItem:
    """An update built by hand, checked as :func:`check_update` checks its arguments."""
    return check_update(
        update.id,
        update.revision,
        quantity=None if update.quantity is UNSET else update.quantity,
        in_stock=None if update.in_stock is UNSET else update.in_stock,
        preorder_info=None if update.preorder_info is UNSET else update.preorder_info,
        index=index,
    )


def bulk_update_by_filter(
    filter: Mapping[str, Any],
    *,
    quantity: int | None = None,
    in_stock: bool | None = None,
    preorder_info: PreorderInfoV3 | None = None,
) -> V3Call:
    """Bulk Update Inventory Items By Filter: an async job on every item ``filter`` matches
    (no revision: it overwrites whatever is there)."""
    checked = _filter("filter", filter)
    if checked is UNSET:
        raise InvalidInputError("filter", filter, "is required")
    probe = check_update(
        "00000000-0000-0000-0000-000000000000",
        "0",
        quantity=quantity,
        in_stock=in_stock,
        preorder_info=preorder_info,
    )
    item = ByFilterUpdate(
        quantity=probe.quantity, in_stock=probe.in_stock, preorder_info=probe.preorder_info
    )
    request = BulkUpdateByFilterRequest(filter=checked, inventory_item=item)
    path = f"{_V3}/bulk/inventory-items/update-by-filter"
    return V3Call(
        "bulk_update_inventory_items_by_filter",
        "POST",
        path,
        _ENCODER.encode(request),
        RequestKind.WRITE,
    )


# --- query and search ----------------------------------------------------------------------


def query_items(
    *,
    filter: Mapping[str, Any] | None = None,
    sort: Sequence[Sorting | Mapping[str, str]] | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> V3Call:
    """Query Inventory Items: a first page (``filter``, ``sort``) or a later one (``cursor``
    only, as the SDK sends it)."""
    paging, checked_filter, checked_sort = _paging_filter_sort(filter, sort, limit, cursor)
    query = CursorQuery(filter=checked_filter, cursor_paging=paging, sort=checked_sort)
    return _get_or_post("query_inventory_items", "query", QueryInventoryItemsRequest(query=query))


def search_items(
    *,
    filter: Mapping[str, Any] | None = None,
    sort: Sequence[Sorting | Mapping[str, str]] | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> V3Call:
    """Search Inventory Items, paged as :func:`query_items`."""
    paging, checked_filter, checked_sort = _paging_filter_sort(filter, sort, limit, cursor)
    search = CursorSearch(filter=checked_filter, sort=checked_sort, cursor_paging=paging)
    return _get_or_post(
        "search_inventory_items", "search", SearchInventoryItemsRequest(search=search)
    )


def _paging_filter_sort(
    filter: Mapping[str, Any] | None,
    sort: Sequence[Sorting | Mapping[str, str]] | None,
    limit: int,
    cursor: str | None,
) -> tuple[CursorPaging, dict[str, Any] | UnsetType, list[Sorting] | UnsetType]:
    if not is_int(limit) or not 1 <= limit <= MAX_QUERY_LIMIT:
        raise InvalidInputError(
            "cursorPaging.limit", limit, f"must be an int from 1 to {MAX_QUERY_LIMIT}"
        )
    paging = CursorPaging(limit=limit)
    if cursor is None:
        return paging, _filter("filter", filter), _sort(sort)
    if not isinstance(cursor, str) or not 1 <= len(cursor) <= MAX_CURSOR_LENGTH:
        raise InvalidInputError(
            "cursorPaging.cursor", cursor, f"must be 1 to {MAX_CURSOR_LENGTH} characters"
        )
    if filter is not None or sort is not None:
        raise InvalidInputError(
            "cursorPaging.cursor", cursor, "a later page sends the cursor alone: no filter or sort"
        )
    paging.cursor = cursor
    return paging, UNSET, UNSET


def _filter(field: str, value: Mapping[str, Any] | None) -> dict[str, Any] | UnsetType:
    if value is None:
        return UNSET
    if not isinstance(value, Mapping):
        raise InvalidInputError(field, value, "must be a mapping (a JSON object)")
    try:
        _ENCODER.encode(value)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise InvalidInputError(field, value, f"is not JSON-encodable: {exc}") from None
    return dict(value)


def _sort(value: Sequence[Sorting | Mapping[str, str]] | None) -> list[Sorting] | UnsetType:
    if value is None:
        return UNSET
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidInputError("sort", value, "must be a list of Sorting")
    if len(value) > MAX_SORTS:
        raise InvalidInputError("sort", len(value), f"must hold at most {MAX_SORTS} entries")
    return [_sorting(entry, index) for index, entry in enumerate(value)]


def _sorting(entry: Sorting | Mapping[str, str], index: int) -> Sorting:
    if not isinstance(entry, Sorting):
        try:
            entry = msgspec.convert(entry, Sorting)
        except msgspec.ValidationError as exc:
            reason = f"is not a Sorting: {exc}"
            raise InvalidInputError("sort", entry, reason, index=index) from None
    name = entry.field_name
    if not isinstance(name, str) or not 1 <= len(name) <= 512:
        raise InvalidInputError("sort.fieldName", name, "must be 1 to 512 characters", index=index)
    if entry.order not in ("ASC", "DESC", UNSET):
        raise InvalidInputError("sort.order", entry.order, 'must be "ASC" or "DESC"', index=index)
    return entry


def _get_or_post(
    endpoint: str, verb: str, request: QueryInventoryItemsRequest | SearchInventoryItemsRequest
) -> V3Call:
    """A GET with ``.r`` holding the request, or, past the SDK's threshold, a POST of it."""
    body = _ENCODER.encode(request)
    path = f"{_V3}/inventory-items/{verb}"
    query = ".r=" + base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii")
    if len(query) > MAX_QUERY_STRING:
        return V3Call(endpoint, "POST", path, body)
    return V3Call(endpoint, "GET", f"{path}?{query}")
