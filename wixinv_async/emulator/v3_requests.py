"""The emulator's Catalog V3 request models: strict (``forbid_unknown_fields``), with the
typings' limits (``@min``, ``@max``, ``@minSize``, ``@maxSize``, ``@format GUID``) as
msgspec constraints, so a request outside them is a 400 naming the field.

Read-only item fields (``createdDate``, ``updatedDate``, ``trackQuantity``,
``availabilityStatus``, ``product``, ``preorderInfo.counter`` and ``.quantity``) are accepted
and ignored, so a client may send back an item it read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Final, Generic, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from .requests import decode_with

__all__ = [
    "BulkUpdateBody",
    "ByIdDecrementBody",
    "ByIdIncrementBody",
    "ByLocationDecrementBody",
    "ByLocationIncrementBody",
    "CursorPagingIn",
    "ItemIn",
    "OffsetPagingIn",
    "PreorderInfoIn",
    "QueryRequest",
    "QueryV2In",
    "Reason",
    "SearchDetailsIn",
    "SearchIn",
    "SearchRequest",
    "SortingIn",
    "UpdateBody",
    "UpdateByFilterBody",
    "decode3",
    "decode_bulk",
]

GUID_PATTERN: Final = (
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_Guid = Annotated[str, Meta(pattern=GUID_PATTERN)]
_Amount = Annotated[int, Meta(ge=1, le=99_999)]
_Quantity = Annotated[int, Meta(ge=-99_999, le=99_999)]
Reason = Literal["ORDER", "MANUAL", "REVERT_INVENTORY_CHANGE"]


class _Req(
    Struct, kw_only=True, omit_defaults=True, rename="camel", forbid_unknown_fields=True, gc=False
):
    """Base of the V3 request models."""


Id = TypeVar("Id", bound=str)
"""The id fields of the bulk adjust models: ``_Guid`` (checked, the models as served) or
``str`` (unchecked: what :func:`decode_bulk` tries first)."""


class DecrementById(_Req, Generic[Id], kw_only=True):
    """The store reads every entry through one shape (``v3_store.Adjust``): the amount and
    the preorder flag under one name in each model, the other model's ids as ``None``."""

    inventory_item_id: Id
    amount: _Amount = msgspec.field(name="decrementBy")
    preorder: bool = msgspec.field(default=False, name="preorderRequest")
    variant_id: ClassVar[None] = None
    location_id: ClassVar[None] = None


class IncrementById(_Req, Generic[Id], kw_only=True):
    inventory_item_id: Id
    amount: _Amount = msgspec.field(name="incrementBy")
    preorder: ClassVar[bool] = False
    variant_id: ClassVar[None] = None
    location_id: ClassVar[None] = None


class DecrementByLocation(_Req, Generic[Id], kw_only=True):
    variant_id: Id
    location_id: Id | None = None
    amount: _Amount = msgspec.field(name="decrementBy")
    preorder: bool = msgspec.field(default=False, name="preorderRequest")
    inventory_item_id: ClassVar[None] = None


class IncrementByLocation(_Req, Generic[Id], kw_only=True):
    variant_id: Id
    location_id: Id | None = None
    amount: _Amount = msgspec.field(name="incrementBy")
    preorder: ClassVar[bool] = False
    inventory_item_id: ClassVar[None] = None


class ByIdDecrementBody(_Req, Generic[Id], kw_only=True):
    decrement_data: Annotated[list[DecrementById[Id]], Meta(min_length=1, max_length=300)]
    restrict_inventory: bool | None = None
    return_entity: bool = False
    reason: Reason | None = None


class ByIdIncrementBody(_Req, Generic[Id], kw_only=True):
    increment_data: Annotated[list[IncrementById[Id]], Meta(min_length=1, max_length=300)]
    return_entity: bool = False
    reason: Reason | None = None


class ByLocationDecrementBody(_Req, Generic[Id], kw_only=True):
    decrement_data: Annotated[list[DecrementByLocation[Id]], Meta(min_length=1, max_length=300)]
    restrict_inventory: bool | None = None
    return_entity: bool = False
    reason: Reason | None = None


class ByLocationIncrementBody(_Req, Generic[Id], kw_only=True):
    increment_data: Annotated[list[IncrementByLocation[Id]], Meta(min_length=1, max_length=300)]
    return_entity: bool = False
    reason: Reason | None = None


class PreorderInfoIn(_Req, kw_only=True):
    enabled: bool | None = None
    message: Annotated[str, Meta(min_length=1, max_length=250)] | None = None
    limit: Annotated[int, Meta(ge=0, le=100_000)] | None = None
    counter: int | None = None
    quantity: int | None = None


class ItemIn(_Req, kw_only=True):
    """An ``InventoryItem`` in an update: the writable fields plus the ignored read-only ones."""

    id: _Guid | None = None
    revision: str | int | None = None
    in_stock: bool | None = None
    quantity: _Quantity | None = None
    variant_id: str | None = None
    location_id: str | None = None
    product_id: str | None = None
    preorder_info: PreorderInfoIn | None = None
    created_date: str | None = None
    updated_date: str | None = None
    track_quantity: bool | None = None
    availability_status: str | None = None
    product: dict[str, Any] | None = None
    extended_fields: dict[str, Any] | None = None


class UpdateBody(_Req, kw_only=True):
    inventory_item: ItemIn
    reason: Reason | None = None


class MaskedItemIn(_Req, kw_only=True):
    inventory_item: ItemIn


class BulkUpdateBody(_Req, kw_only=True):
    inventory_items: Annotated[list[MaskedItemIn], Meta(min_length=1, max_length=1000)]
    return_entity: bool = False
    reason: Reason | None = None


class SearchDetailsIn(_Req, kw_only=True):
    mode: Literal["OR", "AND"] | None = None
    expression: Annotated[str, Meta(max_length=100)] | None = None
    fields: Annotated[list[Annotated[str, Meta(max_length=200)]], Meta(max_length=20)] | None = None
    fuzzy: bool | None = None


class UpdateByFilterBody(_Req, kw_only=True):
    filter: dict[str, Any] | None
    inventory_item: ItemIn
    search: SearchDetailsIn | None = None


class SortingIn(_Req, kw_only=True):
    field_name: Annotated[str, Meta(max_length=512)]
    order: Literal["ASC", "DESC"] = "ASC"


_Sort = Annotated[list[SortingIn], Meta(max_length=10)]


class CursorPagingIn(_Req, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=1000)] | None = None
    cursor: Annotated[str, Meta(max_length=16_000)] | None = None


class OffsetPagingIn(_Req, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=1000)] | None = None
    offset: Annotated[int, Meta(ge=0)] | None = None


class QueryV2In(_Req, kw_only=True):
    paging: OffsetPagingIn | None = None
    cursor_paging: CursorPagingIn | None = None
    filter: dict[str, Any] | None = None
    sort: _Sort | None = None


class QueryRequest(_Req, kw_only=True):
    query: QueryV2In | None = None


class SearchIn(_Req, kw_only=True):
    cursor_paging: CursorPagingIn | None = None
    filter: dict[str, Any] | None = None
    sort: _Sort | None = None
    aggregations: list[dict[str, Any]] | None = None
    search: SearchDetailsIn | None = None
    time_zone: Annotated[str, Meta(max_length=50)] | None = None


class SearchRequest(_Req, kw_only=True):
    search: SearchIn | None = None


_BULK: Final = (
    ByIdDecrementBody,
    ByIdIncrementBody,
    ByLocationDecrementBody,
    ByLocationIncrementBody,
)
_MODELS: Final = (
    UpdateBody,
    BulkUpdateBody,
    UpdateByFilterBody,
    QueryRequest,
    SearchRequest,
)
_DECODERS: Final[dict[type[Any], msgspec.json.Decoder[Any]]] = {
    model: msgspec.json.Decoder(model) for model in _MODELS
}
_STRICT: Final[dict[type[Any], msgspec.json.Decoder[Any]]] = {
    model: msgspec.json.Decoder(model[_Guid]) for model in _BULK
}
_UNCHECKED: Final[dict[type[Any], msgspec.json.Decoder[Any]]] = {
    model: msgspec.json.Decoder(model[str]) for model in _BULK
}
B = TypeVar("B")


def decode_bulk(model: type[B], body: bytes, known: Callable[[B], bool]) -> B:
    """Decode a bulk adjust body exactly as its strict model (GUID ids) would, or raise that
    model's 400. msgspec checks a GUID by a regex per id (most of the decoding time of 300
    entries), so the body is decoded unchecked first; when it decodes and ``known`` says
    every entry names one of the store's items (whose ids are GUIDs), the strict model
    would give the same; otherwise the strict model decides (the same value, or the same
    first violation in document order)."""
    try:
        unchecked: B = _UNCHECKED[model].decode(body)
    except msgspec.MsgspecError:
        pass
    else:
        if known(unchecked):
            return unchecked
    result: B = decode_with(_STRICT[model], body)
    return result


T = TypeVar("T")


def decode3(model: type[T], body: bytes) -> T:
    """Decode a V3 request body, or raise a 400 naming the field."""
    result: T = decode_with(_DECODERS[model], body)
    return result
