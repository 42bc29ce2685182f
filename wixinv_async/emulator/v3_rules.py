"""The per-item rules of the V3 writes: decrement, increment, update. Pure code.

Each rule checks one item and either changes it (returning ``None``) or returns the
:class:`ItemError` that refuses the entry, leaving the item as it was. Choices where the
typings are silent are listed in the package docstring.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .v3_items import MAX_QUANTITY, V3Item
from .v3_requests import ItemIn

__all__ = ["ItemError", "decrement", "increment", "update"]


class ItemError(NamedTuple):
    """``itemMetadata.error`` of a refused entry (and its HTTP status when not in a bulk)."""

    code: str
    description: str
    data: dict[str, Any]
    status: int = 428

    def wire(self) -> dict[str, Any]:
        return {"code": self.code, "description": self.description, "data": self.data}


def _stock(item: V3Item) -> dict[str, Any]:
    return {"inventoryItemId": item.id, "quantity": item.quantity}


def decrement(item: V3Item, by: int, *, preorder: bool, restrict: bool) -> ItemError | None:
    """Take ``by`` units. Below zero only as a preorder (within the preorder capacity, counted
    in ``preorderInfo.counter``) or with ``restrict`` false (down to -99999)."""
    if not item.track:
        return ItemError(
            "INVENTORY_QUANTITY_NOT_TRACKED",
            "the item's quantity is not tracked",
            {"inventoryItemId": item.id},
        )
    after = item.quantity - by
    if after < -MAX_QUANTITY:
        text = f"decrementing {item.quantity} by {by} passes the minimum -{MAX_QUANTITY}"
        return ItemError("MIN_QUANTITY_LIMIT_REACHED", text, _stock(item))
    short = max(0, by - max(item.quantity, 0))
    if short and preorder and item.preorder_enabled:
        if short > item.preorder_remaining() or item.preorder_counter + short > MAX_QUANTITY:
            text = f"{short} units to preorder, {item.preorder_remaining()} available for preorder"
            data = {**_stock(item), "preorderQuantity": item.preorder_remaining()}
            return ItemError("INSUFFICIENT_INVENTORY", text, data)
        item.preorder_counter += short
    elif short and restrict:
        text = f"decrement by {by} with {item.quantity} in stock"
        return ItemError("INSUFFICIENT_INVENTORY", text, _stock(item))
    item.quantity = after
    return None


def increment(item: V3Item, by: int) -> ItemError | None:
    """Add ``by`` units, up to 99999; units covering negative stock settle preorders first."""
    if not item.track:
        return ItemError(
            "INVENTORY_QUANTITY_NOT_TRACKED",
            "the item's quantity is not tracked",
            {"inventoryItemId": item.id},
        )
    if item.quantity + by > MAX_QUANTITY:
        text = f"incrementing {item.quantity} by {by} passes the maximum {MAX_QUANTITY}"
        return ItemError("MAX_QUANTITY_LIMIT_REACHED", text, _stock(item))
    covered = min(by, max(0, -item.quantity))
    item.preorder_counter = max(0, item.preorder_counter - covered)
    item.quantity += by
    return None


def update(item: V3Item, change: ItemIn) -> ItemError | None:
    """Apply the writable fields of ``change``: ``quantity`` (tracks by quantity), ``inStock``
    (tracks by status), ``preorderInfo`` {enabled, message, limit}. Checked first, then
    applied, so a refusal changes nothing."""
    error = _check_update(item, change)
    if error is not None:
        return error
    if change.quantity is not None:
        item.track, item.quantity = True, change.quantity
    if change.in_stock is not None:
        item.track, item.in_stock = False, change.in_stock
    info = change.preorder_info
    if info is not None:
        if info.enabled is not None:
            item.preorder_enabled = info.enabled
        if info.message is not None:
            item.preorder_message = info.message
        if info.limit is not None:
            item.preorder_limit = info.limit
    return None


def _check_update(item: V3Item, change: ItemIn) -> ItemError | None:
    immutable = (
        ("variantId", change.variant_id, item.variant_id),
        ("locationId", change.location_id, item.location_id),
        ("productId", change.product_id, item.product_id),
    )
    for name, sent, now in immutable:
        if sent is not None and sent != now:
            text = f"{name} is immutable: {sent!r} differs from {now!r}"
            return ItemError("IMMUTABLE_FIELD", text, {name: now}, 400)
    if change.quantity is not None and change.quantity < 0:
        text = f"quantity {change.quantity}: a quantity set must be >= 0 (decrement to go lower)"
        return ItemError(
            "REQUESTED_QUANTITY_MUST_BE_NON_NEGATIVE_DECREASING",
            text,
            {"quantity": change.quantity},
        )
    tracked = (
        item.track
        if change.quantity is None and change.in_stock is None
        else change.in_stock is None
    )
    info = change.preorder_info
    if info is not None and info.limit is not None:
        if not tracked:
            text = "a preorder limit is supported only for items tracked by quantity"
            return ItemError("PRE_ORDER_VALIDATION", text, {"limit": info.limit})
        if info.limit < item.preorder_counter:
            text = (
                f"limit {info.limit} is below the {item.preorder_counter} units already preordered"
            )
            return ItemError(
                "PRE_ORDER_VALIDATION",
                text,
                {"limit": info.limit, "counter": item.preorder_counter},
            )
    return None
