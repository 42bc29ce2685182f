"""Update Inventory Variants: validate a whole update, then apply it to one item.

Faithful to Wix's trap: ``trackQuantity`` is product-wide and an update that omits it is
read as ``false``, switching tracking off for every variant of the product.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..core.validation import is_guid
from ..models import MAX_QUANTITY
from ._errors import WixApiError, application_error, validation_error
from .items import Item
from .requests import ItemUpdateIn, PreorderIn

__all__ = ["apply_update"]

_PREORDER_LIMIT_MAX = 100_000
_MESSAGE_MAX = 250
_FIELD = "inventoryItem"


def apply_update(item: Item, product_id: str, body: ItemUpdateIn) -> list[dict[str, Any]]:
    """Apply ``body`` to ``item`` (all or nothing); returns the journal entries (the body)."""
    _validate(item, product_id, body)
    track = bool(body.track_quantity)
    if item.track and not track:
        for variant in item.variants.values():
            variant.in_stock = variant.quantity > 0
    for update in body.variants or []:
        variant = item.variants[update.variant_id]
        if update.quantity is not None:
            variant.quantity = update.quantity
        if update.in_stock is not None:
            variant.in_stock = update.in_stock
        elif update.quantity is not None:
            variant.in_stock = update.quantity > 0
    item.track = track
    if body.preorder_info is not None:
        _apply_preorder(item, body.preorder_info)
    entry = msgspec.to_builtins(body)
    entry.setdefault("productId", product_id)
    return [entry]


def _apply_preorder(item: Item, info: PreorderIn) -> None:
    if info.enabled is not None:
        item.preorder_enabled = info.enabled
    if info.message is not None:
        item.preorder_message = info.message
    if info.limit is not None:
        item.preorder_limit = info.limit


def _validate(item: Item, product_id: str, body: ItemUpdateIn) -> None:
    violations: list[tuple[str, str]] = []
    if body.product_id is not None and body.product_id != product_id:
        violations.append(
            (f"{_FIELD}.productId", f"{body.product_id!r} differs from the path's {product_id!r}")
        )
    for index, update in enumerate(body.variants or []):
        where = f"{_FIELD}.variants[{index}]"
        if not is_guid(update.variant_id):
            violations.append((f"{where}.variantId", f"must be a GUID, got {update.variant_id!r}"))
        if update.quantity is not None and update.quantity < 0:
            violations.append((f"{where}.quantity", f"must be >= 0, got {update.quantity}"))
    violations.extend(_preorder_violations(body.preorder_info))
    if violations:
        raise validation_error(violations)
    _check_application(item, body)


def _preorder_violations(info: PreorderIn | None) -> list[tuple[str, str]]:
    if info is None:
        return []
    out = []
    where = f"{_FIELD}.preorderInfo"
    if info.message is not None and not 1 <= len(info.message) <= _MESSAGE_MAX:
        out.append((f"{where}.message", f"must be 1 to {_MESSAGE_MAX} characters"))
    if info.limit is not None and not 0 <= info.limit <= _PREORDER_LIMIT_MAX:
        out.append((f"{where}.limit", f"must be 0 to {_PREORDER_LIMIT_MAX}, got {info.limit}"))
    return out


def _check_application(item: Item, body: ItemUpdateIn) -> None:
    for index, update in enumerate(body.variants or []):
        data = {"index": index, "productId": item.product_id, "variantId": update.variant_id}
        if update.variant_id not in item.variants:
            raise application_error(
                404, "NOT_FOUND", f"{_FIELD}.variants[{index}]: no such variant", data
            )
        if update.quantity is not None and update.quantity > MAX_QUANTITY:
            raise _too_much(index, update.quantity, data)


def _too_much(index: int, quantity: int, data: dict[str, Any]) -> WixApiError:
    return application_error(
        428,
        "MAX_QUANTITY_LIMIT_REACHED",
        f"{_FIELD}.variants[{index}]: quantity {quantity} is above the maximum of {MAX_QUANTITY}",
        data,
    )
