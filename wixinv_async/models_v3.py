"""msgspec wire models of the Wix Stores Catalog V3 inventory-items API.

Shapes, enums and limits follow the official SDK's typings
(``@wix/auto_sdk_stores_inventory-items-v-3`` 1.0.98, vendored in ``tests/wire/v3/``); the
request bodies match what that SDK sends (``tests/wire/v3/official-sdk-v3-requests.json``).
As in :mod:`wixinv_async.models`: camelCase on the wire, ``id`` (never ``_id``), ``UNSET`` for
"absent", and decoding tolerates unknown fields (Wix adds fields).

Unlike V1, V3 filters and sorts are plain JSON objects, paging is by cursor, and a bulk write
answers per item (``results[].itemMetadata``) inside an HTTP 200:
:mod:`wixinv_async.core.bulk_results` turns that answer into one result per request entry.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

__all__ = [
    "MAX_BULK_UPDATE",
    "MAX_CURSOR_LENGTH",
    "MAX_QUERY_LIMIT",
    "MAX_SORTS",
    "MAX_V3_BATCH",
    "MAX_V3_QUANTITY",
    "BulkActionMetadata",
    "BulkAdjustResponse",
    "BulkAnswer",
    "BulkDecrementByIdRequest",
    "BulkDecrementByVariantAndLocationRequest",
    "BulkIncrementByIdRequest",
    "BulkIncrementByVariantAndLocationRequest",
    "BulkUpdateByFilterRequest",
    "BulkUpdateByFilterResponse",
    "BulkUpdateInventoryItemsRequest",
    "ByFilterUpdate",
    "CatalogVersionResponse",
    "CursorPaging",
    "CursorQuery",
    "CursorSearch",
    "Cursors",
    "DecrementDataById",
    "DecrementDataByVariantAndLocation",
    "IncrementDataById",
    "IncrementDataByVariantAndLocation",
    "InventoryItemProduct",
    "InventoryItemResponse",
    "InventoryItemV3",
    "InventoryItemsPage",
    "ItemError",
    "ItemMetadata",
    "MaskedInventoryItem",
    "PagingMetadataV3",
    "PreorderInfoV3",
    "QueryInventoryItemsRequest",
    "Reason",
    "SearchInventoryItemsRequest",
    "Sorting",
    "UpdateInventoryItem",
    "UpdateInventoryItemRequest",
    "WireBulkResult",
]

MAX_V3_BATCH: Final = 300
"""Most entries in one bulk increment or decrement (``@maxSize 300``)."""
MAX_BULK_UPDATE: Final = 1000
"""Most items in one Bulk Update Inventory Items (``@maxSize 1000``)."""
MAX_QUERY_LIMIT: Final = 1000
"""Largest ``cursorPaging.limit`` of query and search (``@max 1000``)."""
MAX_CURSOR_LENGTH: Final = 16_000
"""Longest cursor (``@maxLength 16000``)."""
MAX_SORTS: Final = 10
"""Most sort entries in one query or search (``@maxSize 10``)."""
MAX_V3_QUANTITY: Final = 99_999
"""Largest ``incrementBy`` / ``decrementBy`` and largest absolute ``quantity``."""

Reason = Literal["ORDER", "MANUAL", "REVERT_INVENTORY_CHANGE"]
"""Why stock changed; Wix echoes it, with the app id, in the updated-with-reason event."""


class _Wire(Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """Base of every V3 wire model."""


# --- Catalog version -----------------------------------------------------------------


class CatalogVersionResponse(_Wire, kw_only=True):
    """``GET /stores/v3/provision/version``: ``V1_CATALOG``, ``V3_CATALOG`` or
    ``STORES_NOT_INSTALLED`` (kept as a string here; :class:`~wixinv_async.CatalogVersion`
    parses it)."""

    catalog_version: str = ""


# --- Inventory items -----------------------------------------------------------------


class PreorderInfoV3(_Wire, kw_only=True):
    enabled: bool | None | UnsetType = UNSET
    message: str | None | UnsetType = UNSET
    """1 to 250 characters."""
    limit: int | None | UnsetType = UNSET
    """At most 100000; tracked items only."""
    counter: int | None | UnsetType = UNSET
    """Read-only: how many times the item was preordered."""
    quantity: int | None | UnsetType = UNSET
    """Read-only: how many more may be preordered."""


class InventoryItemProduct(_Wire, kw_only=True):
    """The product and variant summary an item carries (read-only)."""

    name: str | None | UnsetType = UNSET
    direct_category_ids: list[str] | UnsetType = UNSET
    variant_name: str | None | UnsetType = UNSET
    variant_sku: str | None | UnsetType = UNSET
    variant_visible: bool | None | UnsetType = UNSET


class InventoryItemV3(_Wire, kw_only=True):
    """One V3 inventory item: one variant at one location (``(variantId, locationId)`` is
    unique). Tracked items carry ``quantity`` (which may be negative), untracked ones
    ``inStock``. ``revision`` is a string of digits, sent back on update."""

    id: str | UnsetType = UNSET
    revision: str | UnsetType = UNSET
    variant_id: str | UnsetType = UNSET
    location_id: str | None | UnsetType = UNSET
    product_id: str | UnsetType = UNSET
    track_quantity: bool | UnsetType = UNSET
    quantity: int | None | UnsetType = UNSET
    in_stock: bool | None | UnsetType = UNSET
    availability_status: str | UnsetType = UNSET
    """``IN_STOCK``, ``OUT_OF_STOCK`` or ``PREORDER``."""
    preorder_info: PreorderInfoV3 | UnsetType = UNSET
    product: InventoryItemProduct | UnsetType = UNSET
    created_date: str | None | UnsetType = UNSET
    updated_date: str | None | UnsetType = UNSET
    extended_fields: Any = UNSET


class InventoryItemResponse(_Wire, kw_only=True):
    """Get and Update Inventory Item: ``{"inventoryItem": {...}}``."""

    inventory_item: InventoryItemV3 | UnsetType = UNSET


# --- Bulk increment / decrement --------------------------------------------------------


class DecrementDataById(_Wire, kw_only=True, gc=False):
    """One decrement of an inventory item by its id. ``preorder_request`` is sent only when
    given (the SDK omits it by default)."""

    inventory_item_id: str
    decrement_by: int
    preorder_request: bool | UnsetType = UNSET


class IncrementDataById(_Wire, kw_only=True, gc=False):
    inventory_item_id: str
    increment_by: int


class DecrementDataByVariantAndLocation(_Wire, kw_only=True, gc=False):
    """One decrement of the item of a variant at a location (the default location when
    ``location_id`` is absent)."""

    variant_id: str
    location_id: str | UnsetType = UNSET
    decrement_by: int
    preorder_request: bool | UnsetType = UNSET


class IncrementDataByVariantAndLocation(_Wire, kw_only=True, gc=False):
    variant_id: str
    location_id: str | UnsetType = UNSET
    increment_by: int


class BulkDecrementByIdRequest(_Wire, kw_only=True):
    decrement_data: list[DecrementDataById]
    restrict_inventory: bool | UnsetType = UNSET
    return_entity: bool | UnsetType = UNSET
    reason: str | UnsetType = UNSET


class BulkIncrementByIdRequest(_Wire, kw_only=True):
    increment_data: list[IncrementDataById]
    return_entity: bool | UnsetType = UNSET
    reason: str | UnsetType = UNSET


class BulkDecrementByVariantAndLocationRequest(_Wire, kw_only=True):
    decrement_data: list[DecrementDataByVariantAndLocation]
    restrict_inventory: bool | UnsetType = UNSET
    return_entity: bool | UnsetType = UNSET
    reason: str | UnsetType = UNSET


class BulkIncrementByVariantAndLocationRequest(_Wire, kw_only=True):
    increment_data: list[IncrementDataByVariantAndLocation]
    return_entity: bool | UnsetType = UNSET
    reason: str | UnsetType = UNSET


# --- Per-item answers ------------------------------------------------------------------
# Decoded from JSON, which cannot make a cycle: ``gc=False`` keeps the one per entry of every
# bulk answer out of the cycle collector's passes.


class ItemError(_Wire, kw_only=True, gc=False):
    """``itemMetadata.error``: why one entry was refused."""

    code: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    data: Any = UNSET


class ItemMetadata(_Wire, kw_only=True, gc=False):
    id: str | None | UnsetType = UNSET
    original_index: int | UnsetType = UNSET
    success: bool | UnsetType = UNSET
    error: ItemError | UnsetType = UNSET


class WireBulkResult(_Wire, kw_only=True, gc=False):
    """One element of ``results``: its metadata and, with ``returnEntity``, the item."""

    item_metadata: ItemMetadata | UnsetType = UNSET
    item: InventoryItemV3 | UnsetType = UNSET


class BulkActionMetadata(_Wire, kw_only=True):
    total_successes: int | UnsetType = UNSET
    total_failures: int | UnsetType = UNSET
    undetailed_failures: int | UnsetType = UNSET
    """Failures the server gave no details for (its detail threshold was exceeded)."""


class BulkAnswer(_Wire, kw_only=True):
    """A bulk write's answer when every part of it is well formed (decoded in one pass; the
    client falls back to :class:`BulkAdjustResponse` when it is not)."""

    results: list[WireBulkResult] | UnsetType = UNSET
    bulk_action_metadata: BulkActionMetadata | UnsetType = UNSET


class BulkAdjustResponse(_Wire, kw_only=True):
    """A bulk write's answer, decoded leniently: each result stays raw until it is matched,
    so one malformed element makes its entry unknown instead of failing the whole answer."""

    results: list[msgspec.Raw] | UnsetType = UNSET
    bulk_action_metadata: msgspec.Raw | UnsetType = UNSET


# --- Updates -------------------------------------------------------------------------------


class UpdateInventoryItem(_Wire, kw_only=True):
    """What one update sends: the ``revision`` read (required), and the fields to change.
    ``quantity`` tracks by quantity, ``in_stock`` by status (give at most one)."""

    revision: str
    quantity: int | UnsetType = UNSET
    in_stock: bool | UnsetType = UNSET
    preorder_info: PreorderInfoV3 | UnsetType = UNSET
    id: str


class UpdateInventoryItemRequest(_Wire, kw_only=True):
    inventory_item: UpdateInventoryItem
    reason: str | UnsetType = UNSET


class MaskedInventoryItem(_Wire, kw_only=True):
    inventory_item: UpdateInventoryItem


class BulkUpdateInventoryItemsRequest(_Wire, kw_only=True):
    inventory_items: list[MaskedInventoryItem]
    return_entity: bool | UnsetType = UNSET
    reason: str | UnsetType = UNSET


class ByFilterUpdate(_Wire, kw_only=True):
    """What Bulk Update Inventory Items By Filter sets on every matched item."""

    quantity: int | UnsetType = UNSET
    in_stock: bool | UnsetType = UNSET
    preorder_info: PreorderInfoV3 | UnsetType = UNSET


class BulkUpdateByFilterRequest(_Wire, kw_only=True):
    filter: dict[str, Any]
    inventory_item: ByFilterUpdate


class BulkUpdateByFilterResponse(_Wire, kw_only=True):
    job_id: str | UnsetType = UNSET
    """The async job's id (``Get Async Job`` reports its progress)."""


# --- Query and search ----------------------------------------------------------------------


class Sorting(_Wire, kw_only=True):
    field_name: str
    order: Literal["ASC", "DESC"] | UnsetType = UNSET


class CursorPaging(_Wire, kw_only=True):
    limit: int | UnsetType = UNSET
    cursor: str | UnsetType = UNSET


class CursorQuery(_Wire, kw_only=True):
    """``query`` of Query Inventory Items (field order as the SDK's builder writes it)."""

    filter: dict[str, Any] | UnsetType = UNSET
    cursor_paging: CursorPaging | UnsetType = UNSET
    sort: list[Sorting] | UnsetType = UNSET


class CursorSearch(_Wire, kw_only=True):
    """``search`` of Search Inventory Items."""

    filter: dict[str, Any] | UnsetType = UNSET
    sort: list[Sorting] | UnsetType = UNSET
    cursor_paging: CursorPaging | UnsetType = UNSET


class QueryInventoryItemsRequest(_Wire, kw_only=True):
    query: CursorQuery


class SearchInventoryItemsRequest(_Wire, kw_only=True):
    search: CursorSearch


class Cursors(_Wire, kw_only=True):
    next: str | None | UnsetType = UNSET
    prev: str | None | UnsetType = UNSET


class PagingMetadataV3(_Wire, kw_only=True):
    count: int | None | UnsetType = UNSET
    cursors: Cursors | UnsetType = UNSET
    has_next: bool | None | UnsetType = UNSET


class InventoryItemsPage(_Wire, kw_only=True):
    """One page of Query or Search Inventory Items."""

    inventory_items: list[InventoryItemV3] = msgspec.field(default_factory=list)
    paging_metadata: PagingMetadataV3 | UnsetType = UNSET

    @property
    def next_cursor(self) -> str | None:
        """The cursor of the next page, or ``None`` on the last page (``hasNext`` false, or
        no ``next`` cursor)."""
        meta = self.paging_metadata
        if meta is UNSET or meta.has_next is False or meta.cursors is UNSET:
            return None
        cursor = meta.cursors.next
        return cursor if isinstance(cursor, str) and cursor else None
