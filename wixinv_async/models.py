"""msgspec wire models of the Wix Stores Catalog V1 inventory API.

Field names are the wire's (camelCase through ``rename="camel"``; ``id``, never ``_id``;
``numericId`` a string of digits). Decoding tolerates unknown fields, because Wix adds fields.

Read models (:class:`InventoryItem`, :class:`InventoryVariant`, :class:`QueryInventoryResponse`)
need nothing from msgspec to use: an item's ``id`` and a variant's ``variantId``, which identify
them, have plain types and an answer without one is malformed; ``variants`` and
``inventoryItems`` are plain lists (empty when absent); every other field is ``X | None``,
``None`` whether the wire sent null or nothing (an untracked variant's ``quantity`` comes
either way), narrowed with ``is not None``. Those are not required on decoding: Wix documents
them in every item, but no schema says they are always sent, and a crawl must not fail on one
item that lacks, say, ``lastUpdated`` (the client refuses to guess a missing ``trackQuantity``
where it matters, in ``track_quantity="keep"``).

Models that are also written (:class:`PreorderInfo`, the request bodies) keep ``UNSET``:
"absent on the wire" there differs from ``None`` ("null on the wire"), as a field left out of an
update is left unchanged. :data:`UNSET` is re-exported here and :func:`or_none` turns it into
``None``, so narrowing such a field needs no import from msgspec either.

The request bodies match what the official Wix JavaScript SDK sends
(``shared/wire/official-sdk-requests.json``): ``filter`` and ``sort`` are JSON *strings*.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeVar

import msgspec
from msgspec import UNSET, Struct, UnsetType

__all__ = [
    "DEFAULT_VARIANT_ID",
    "MAX_BATCH",
    "MAX_ID_LENGTH",
    "MAX_OFFSET_ITEMS",
    "MAX_PAGE_LIMIT",
    "MAX_QUANTITY",
    "UNSET",
    "ApplicationError",
    "ChangedVariant",
    "DecrementData",
    "DecrementInventoryRequest",
    "EmptyResponse",
    "ErrorBody",
    "ErrorDetails",
    "FieldMask",
    "FieldViolation",
    "GetInventoryVariantsRequest",
    "GetInventoryVariantsResponse",
    "GetProductResponse",
    "IncrementData",
    "IncrementInventoryRequest",
    "InventoryItem",
    "InventoryItemChanged",
    "InventoryItemUpdate",
    "InventoryVariant",
    "InventoryVariantsChanged",
    "Paging",
    "PagingMetadata",
    "PreorderInfo",
    "Product",
    "ProductStock",
    "Query",
    "QueryInventoryRequest",
    "QueryInventoryResponse",
    "TokenRequest",
    "TokenResponse",
    "UnsetType",
    "UpdateInventoryVariantsRequest",
    "VariantUpdate",
    "VariantValues",
    "WebhookEnvelope",
    "WebhookIdentity",
    "or_none",
]

T = TypeVar("T")

DEFAULT_VARIANT_ID: Final = "00000000-0000-0000-0000-000000000000"
"""The one variant of a product without options."""
MAX_BATCH: Final = 300
"""Most entries in one increment or decrement request."""
MAX_PAGE_LIMIT: Final = 100
"""Most items in one Query Inventory page."""
MAX_OFFSET_ITEMS: Final = 10_000
"""Past this many items, offset paging fails: crawl by numericId."""
MAX_ID_LENGTH: Final = 36
"""Longest productId or inventoryId."""
MAX_QUANTITY: Final = 99_999
"""Largest stock quantity."""


class _Wire(Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """Base of every wire model."""


def or_none(value: T | UnsetType) -> T | None:
    """``value``, or ``None`` when it is :data:`UNSET` (absent on the wire)::

    message = or_none(item.preorder_info.message)  # str | None
    """
    return None if value is UNSET else value


# --- Inventory items -----------------------------------------------------------------


class PreorderInfo(_Wire, kw_only=True):
    enabled: bool | UnsetType = UNSET
    message: str | None | UnsetType = UNSET
    limit: int | None | UnsetType = UNSET


class InventoryVariant(_Wire, kw_only=True):
    """One variant's stock, as Wix reads it out."""

    variant_id: str
    in_stock: bool | None = None
    quantity: int | None = None
    """``None`` for untracked items (Wix sends null or nothing)."""
    available_for_preorder: bool | None = None


class InventoryItem(_Wire, kw_only=True):
    """One product's inventory, as Query Inventory and Get Inventory Variants answer it."""

    id: str
    """The inventory item id."""
    product_id: str | None = None
    numeric_id: str | None = None
    """A string of digits, ascending in creation order: what the crawler pages by."""
    track_quantity: bool | None = None
    variants: list[InventoryVariant] = msgspec.field(default_factory=list)
    external_id: str | None = None
    """Deprecated by Wix; equals ``product_id``."""
    last_updated: str | None = None
    """RFC 3339."""
    preorder_info: PreorderInfo | None = None


# --- Query Inventory ---------------------------------------------------------------


class Paging(_Wire, kw_only=True):
    limit: int | UnsetType = UNSET
    offset: int | UnsetType = UNSET


class Query(_Wire, kw_only=True):
    paging: Paging | UnsetType = UNSET
    filter: str | UnsetType = UNSET
    """A JSON-encoded object, e.g. ``'{"numericId":{"$gt":5}}'``."""
    sort: str | UnsetType = UNSET
    """A JSON-encoded list, e.g. ``'[{"numericId":"asc"}]'``."""


class QueryInventoryRequest(_Wire, kw_only=True):
    query: Query = msgspec.field(default_factory=Query)


class PagingMetadata(_Wire, kw_only=True):
    items: int = 0
    offset: int = 0


class QueryInventoryResponse(_Wire, kw_only=True):
    inventory_items: list[InventoryItem] = msgspec.field(default_factory=list)
    metadata: PagingMetadata | None = None
    total_results: int | None = None
    """Items matching the query's filter (all pages together)."""


# --- Get Inventory Variants --------------------------------------------------------


class GetInventoryVariantsRequest(_Wire, kw_only=True):
    """By inventory id (as the official SDK sends it) or by product id."""

    inventory_id: str | UnsetType = UNSET
    product_id: str | UnsetType = UNSET
    variant_ids: list[str] | UnsetType = UNSET


class GetInventoryVariantsResponse(_Wire, kw_only=True):
    inventory_item: InventoryItem


# --- Get Product (Catalog V1 products, read for the witness check) -----------------


class ProductStock(_Wire, kw_only=True):
    """A V1 product's ``stock``: ``trackInventory`` is the inventory item's ``trackQuantity``."""

    track_inventory: bool | None = None
    in_stock: bool | None = None
    inventory_status: str | None = None
    """``IN_STOCK``, ``OUT_OF_STOCK`` or ``PARTIALLY_OUT_OF_STOCK``."""


class Product(_Wire, kw_only=True):
    """A Catalog V1 product (``GET /stores-reader/v1/products/{id}``), the fields the library
    reads: ``visible`` says whether site visitors see it in the storefront."""

    id: str
    name: str | None = None
    slug: str | None = None
    visible: bool | None = None
    product_type: str | None = None
    manage_variants: bool | None = None
    stock: ProductStock | None = None


class GetProductResponse(_Wire, kw_only=True):
    product: Product


# --- Update Inventory Variants -----------------------------------------------------


class VariantUpdate(_Wire, kw_only=True):
    variant_id: str
    quantity: int | UnsetType = UNSET
    in_stock: bool | UnsetType = UNSET


class InventoryItemUpdate(_Wire, kw_only=True):
    product_id: str | UnsetType = UNSET
    track_quantity: bool | UnsetType = UNSET
    """Product-wide. Absent on the wire reads as ``false``: the client always sends it."""
    variants: list[VariantUpdate] | UnsetType = UNSET
    preorder_info: PreorderInfo | UnsetType = UNSET


class UpdateInventoryVariantsRequest(_Wire, kw_only=True):
    inventory_item: InventoryItemUpdate


# --- Increment / Decrement ---------------------------------------------------------


class DecrementData(Struct, kw_only=True, rename="camel", gc=False):
    """One decrement entry. ``preorderRequest`` is always sent, as the official SDK does.

    Entries hold only strings, ints and bools, so they can never be part of a reference cycle:
    ``gc=False`` keeps the hundreds built per batch out of the garbage collector's sweeps."""

    product_id: str | UnsetType = UNSET
    inventory_id: str | UnsetType = UNSET
    variant_id: str
    decrement_by: int
    preorder_request: bool = False


class IncrementData(_Wire, kw_only=True, gc=False):
    """One increment entry (``gc=False``: as for :class:`DecrementData`)."""

    product_id: str | UnsetType = UNSET
    inventory_id: str | UnsetType = UNSET
    variant_id: str
    increment_by: int


class DecrementInventoryRequest(_Wire, kw_only=True):
    decrement_data: list[DecrementData]


class IncrementInventoryRequest(_Wire, kw_only=True):
    increment_data: list[IncrementData]


class EmptyResponse(_Wire, kw_only=True):
    """The ``{}`` that writes answer with."""


# --- Errors ------------------------------------------------------------------------


class FieldViolation(_Wire, kw_only=True):
    field: str = ""
    description: str | UnsetType = UNSET
    violated_rule: str | UnsetType = UNSET
    rule_name: str | UnsetType = UNSET
    data: Any = UNSET


class ValidationErrorDetails(_Wire, kw_only=True):
    field_violations: list[FieldViolation] = msgspec.field(default_factory=list)


class ApplicationError(_Wire, kw_only=True):
    code: str = ""
    description: str | UnsetType = UNSET
    data: Any = UNSET


class ErrorDetails(_Wire, kw_only=True):
    application_error: ApplicationError | UnsetType = UNSET
    validation_error: ValidationErrorDetails | UnsetType = UNSET


class ErrorBody(_Wire, kw_only=True):
    message: str = ""
    details: ErrorDetails | UnsetType = UNSET
    error: Any = None
    """RFC 6749 section 5.2 (the OAuth token endpoint's error): ``invalid_client``, ...;
    typed loosely, since other servers put an object here."""
    error_description: Any = msgspec.field(default=None, name="error_description")


# --- OAuth ---------------------------------------------------------------------------


class TokenRequest(Struct, kw_only=True):
    """``POST /oauth2/token`` body; the wire names are snake_case here."""

    grant_type: Literal["client_credentials"] = "client_credentials"
    client_id: str
    client_secret: str
    instance_id: str

    def __repr__(self) -> str:
        return f"TokenRequest(client_id={self.client_id!r}, instance_id={self.instance_id!r})"


class TokenResponse(Struct, kw_only=True):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int = 14_400

    def __repr__(self) -> str:
        return f"TokenResponse(token_type={self.token_type!r}, expires_in={self.expires_in})"


# --- Webhook payloads ----------------------------------------------------------------


class FieldMask(_Wire, kw_only=True):
    paths: list[str] = msgspec.field(default_factory=list)


class InventoryItemChanged(_Wire, kw_only=True):
    """Payload of ``com.wix.ecommerce.inventory.api.v1.InventoryItemChanged``."""

    inventory_item_id: str
    external_id: str | UnsetType = UNSET
    product_id: str | UnsetType = UNSET
    track_inventory: bool | UnsetType = UNSET
    preorder_info: PreorderInfo | UnsetType = UNSET
    field_mask: FieldMask | UnsetType = UNSET
    updated_date: str | UnsetType = UNSET


class VariantValues(_Wire, kw_only=True):
    quantity: int | None | UnsetType = UNSET
    in_stock: bool | UnsetType = UNSET
    available_for_preorder: bool | UnsetType = UNSET


class ChangedVariant(_Wire, kw_only=True):
    id: str
    old_value: VariantValues = msgspec.field(default_factory=VariantValues)
    new_value: VariantValues = msgspec.field(default_factory=VariantValues)


class InventoryVariantsChanged(_Wire, kw_only=True):
    """Payload of ``com.wix.ecommerce.inventory.api.v1.InventoryVariantsChanged``."""

    inventory_item_id: str
    external_id: str | UnsetType = UNSET
    product_id: str | UnsetType = UNSET
    variants: list[ChangedVariant] = msgspec.field(default_factory=list)


class WebhookEnvelope(_Wire, kw_only=True):
    """The JSON string in a webhook JWT's ``data`` claim; ``data`` and ``identity`` are JSON
    strings again."""

    event_type: str
    instance_id: str | UnsetType = UNSET
    data: str = "{}"
    identity: str | UnsetType = UNSET
    account_info: Any = UNSET


class WebhookIdentity(_Wire, kw_only=True):
    """Who caused a webhook event: the JSON string in the envelope's ``identity``."""

    identity_type: str | UnsetType = UNSET
    """``ANONYMOUS_VISITOR``, ``MEMBER``, ``WIX_USER`` or ``APP``."""
    anonymous_visitor_id: str | UnsetType = UNSET
    member_id: str | UnsetType = UNSET
    wix_user_id: str | UnsetType = UNSET
    app_id: str | UnsetType = UNSET
