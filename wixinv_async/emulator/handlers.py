"""The five Wix inventory calls (and Get Product) over one site's store: decode the body,
apply, encode the answer.

Synchronous on purpose: a request is applied without any await in between, so a cancelled or
concurrent request can never observe or cause a half-applied batch. Each raises
:class:`~wixinv_async.emulator._errors.WixApiError` for a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import msgspec

from ._errors import validation_error
from .query import compile_query
from .requests import (
    DecrementBody,
    GetVariantsBody,
    IncrementBody,
    QueryBody,
    UpdateBody,
    decode,
)
from .store import SiteStore

__all__ = [
    "Handler",
    "decrement_inventory",
    "get_inventory_variants",
    "get_product",
    "increment_inventory",
    "query_inventory",
    "update_inventory_variants",
]

Handler = Callable[[SiteStore, Mapping[str, str], bytes, str], bytes]
"""(store, path parameters, request body, request id) -> response body."""

_encode = msgspec.json.Encoder().encode
_EMPTY: Final = b"{}"


def query_inventory(store: SiteStore, path: Mapping[str, str], body: bytes, rid: str) -> bytes:
    """Query Inventory: one page, with ``metadata`` and ``totalResults``."""
    query = decode(QueryBody, body or _EMPTY).query
    paging = query.paging if query is not None else None
    compiled = compile_query(
        query.filter if query is not None else None,
        query.sort if query is not None else None,
        paging.limit if paging is not None else None,
        paging.offset if paging is not None else None,
    )
    page = store.query(compiled)
    items = b",".join([item.wire_json() for item in page.items])
    tail = f'],"metadata":{{"items":{len(page.items)},"offset":{compiled.offset}}},'
    return b'{"inventoryItems":[' + items + f'{tail}"totalResults":{page.total}}}'.encode()


def get_inventory_variants(
    store: SiteStore, path: Mapping[str, str], body: bytes, rid: str
) -> bytes:
    """Get Inventory Variants: by the path's inventory id, or the body's product id."""
    wanted = decode(GetVariantsBody, body or _EMPTY)
    path_id = path["inventoryId"]
    if wanted.inventory_id is not None and wanted.inventory_id != path_id:
        text = f"{wanted.inventory_id!r} differs from the path's {path_id!r}"
        raise validation_error([("inventoryId", text)])
    inventory_id = None if wanted.product_id is not None else path_id
    item = store.get_variants(inventory_id, wanted.product_id, wanted.variant_ids)
    return _encode({"inventoryItem": item})


def get_product(store: SiteStore, path: Mapping[str, str], body: bytes, rid: str) -> bytes:
    """Get Product (Catalog V1 products): whether it is visible, how its stock is kept."""
    return _encode({"product": store.product(path["productId"])})


def update_inventory_variants(
    store: SiteStore, path: Mapping[str, str], body: bytes, rid: str
) -> bytes:
    """Update Inventory Variants of the path's product."""
    store.update(path["productId"], decode(UpdateBody, body).inventory_item, rid)
    return _EMPTY


def decrement_inventory(store: SiteStore, path: Mapping[str, str], body: bytes, rid: str) -> bytes:
    """Decrement Inventory; the raw body is what the journal keeps."""
    store.decrement(decode(DecrementBody, body).decrement_data, rid, raw=body)
    return _EMPTY


def increment_inventory(store: SiteStore, path: Mapping[str, str], body: bytes, rid: str) -> bytes:
    """Increment Inventory; the raw body is what the journal keeps."""
    store.increment(decode(IncrementBody, body).increment_data, rid, raw=body)
    return _EMPTY
