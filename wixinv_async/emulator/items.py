"""The emulator's mutable inventory records and their wire form.

Kept as small ``__slots__`` objects (not wire structs) so that applying a 300-entry batch
touches plain attributes; :meth:`Item.to_wire` builds the wire model only when answering.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from ..models import InventoryItem, InventoryVariant, PreorderInfo, VariantValues

__all__ = ["Item", "Variant", "rfc3339"]

_encode = msgspec.json.Encoder().encode


def rfc3339(epoch_ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC string, e.g. ``2024-05-01T10:00:00.123Z``."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{datetime.fromtimestamp(seconds, UTC).isoformat()[:-6]}.{millis:03d}Z"


class Variant:
    """One variant's stock. ``quantity`` is kept for untracked items too, but never shown."""

    __slots__ = ("in_stock", "item", "number", "quantity", "variant_id")

    def __init__(self, variant_id: str, quantity: int, in_stock: bool) -> None:
        self.variant_id = variant_id
        self.quantity = quantity
        self.in_stock = in_stock
        self.item: Item | None = None
        """The item holding this variant (set by :class:`Item`)."""
        self.number = -1
        """Its place in the store's index (``Index.variants``), set when indexed."""

    def __repr__(self) -> str:
        return f"Variant({self.variant_id!r}, quantity={self.quantity}, in_stock={self.in_stock})"


class Item:
    """One inventory item (one product): tracking and preorder are product-wide."""

    __slots__ = (
        "id",
        "json",
        "last_updated",
        "numeric_id",
        "preorder_enabled",
        "preorder_limit",
        "preorder_message",
        "product_id",
        "track",
        "variants",
    )

    def __init__(
        self,
        inventory_id: str,
        product_id: str,
        numeric_id: int,
        track: bool,
        variants: dict[str, Variant],
    ) -> None:
        self.id = inventory_id
        self.product_id = product_id
        self.numeric_id = numeric_id
        self.track = track
        self.variants = variants
        for variant in variants.values():
            variant.item = self
        self.preorder_enabled = False
        self.preorder_message: str | None = None
        self.preorder_limit: int | None = None
        self.last_updated = 0
        """Epoch milliseconds (Wix's precision), so filters compare exactly."""
        self.json: bytes | None = None
        """The wire JSON, cached; whoever changes the item sets it back to ``None``."""

    def __repr__(self) -> str:
        return f"Item(id={self.id!r}, product_id={self.product_id!r}, numeric_id={self.numeric_id})"

    def preorder_floor(self) -> int | None:
        """The lowest quantity a preorder decrement may reach, ``None`` for no floor."""
        return -self.preorder_limit if self.preorder_limit is not None else None

    def in_stock(self, variant: Variant) -> bool:
        """Tracked items: quantity above zero. Untracked: the ``inStock`` set by hand."""
        return variant.quantity > 0 if self.track else variant.in_stock

    def available_for_preorder(self, variant: Variant) -> bool:
        """Preorder enabled and, for tracked items, the preorder limit not yet used up."""
        if not self.preorder_enabled:
            return False
        floor = self.preorder_floor()
        return not self.track or floor is None or variant.quantity > floor

    def values(self, variant: Variant) -> VariantValues:
        """The webhook view of one variant (quantity ``None`` when untracked)."""
        return VariantValues(
            quantity=variant.quantity if self.track else None,
            in_stock=self.in_stock(variant),
            available_for_preorder=self.available_for_preorder(variant),
        )

    def preorder_info(self) -> PreorderInfo:
        return PreorderInfo(
            enabled=self.preorder_enabled, message=self.preorder_message, limit=self.preorder_limit
        )

    def wire_json(self) -> bytes:
        """The wire form as JSON bytes, cached until the item changes."""
        cached = self.json
        if cached is None:
            cached = self.json = _encode(self.to_wire())
        return cached

    def to_wire(self, variant_ids: set[str] | None = None) -> InventoryItem:
        """The wire model; ``variant_ids`` keeps only those variants."""
        variants = [
            InventoryVariant(
                variant_id=v.variant_id,
                in_stock=self.in_stock(v),
                quantity=v.quantity if self.track else None,
                available_for_preorder=self.available_for_preorder(v),
            )
            for v in self.variants.values()
            if variant_ids is None or v.variant_id in variant_ids
        ]
        return InventoryItem(
            id=self.id,
            external_id=self.product_id,
            product_id=self.product_id,
            track_quantity=self.track,
            variants=variants,
            last_updated=rfc3339(self.last_updated),
            numeric_id=str(self.numeric_id),
            preorder_info=self.preorder_info(),
        )
