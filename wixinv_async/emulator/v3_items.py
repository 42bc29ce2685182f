"""Catalog V3 inventory items: the emulator's mutable record, its wire form, and seeding.

One :class:`V3Item` per (variant, location). Kept as a small ``__slots__`` object; the wire
dict (``InventoryItem`` of the typings, with the REST names ``id``, ``createdDate``,
``updatedDate``) is built on demand and its JSON cached until the item changes. Items are
seeded from a V1 catalog (:func:`from_v1`): a V3 site is a seeded V1 catalog migrated, so
the same seed gives the same products, variants and stock on both catalogs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec

from ..models import DEFAULT_VARIANT_ID
from .catalog import new_guid
from .items import Item, rfc3339

__all__ = [
    "DEFAULT_PRODUCT_LIMIT",
    "MAX_QUANTITY",
    "V3Item",
    "from_v1",
]

MAX_QUANTITY: Final = 99_999
"""The quantity cap, both ways (``@min -99999 @max 99999``)."""
DEFAULT_PRODUCT_LIMIT: Final = 100_000
"""``preorderInfo.limit`` when none is set (the typings' default)."""

_encode = msgspec.json.Encoder().encode


class V3Item:
    """One inventory item: a variant's stock at one location.

    ``quantity`` is kept for untracked items too (never shown), so switching tracking back on
    shows the last one. ``preorder_counter`` counts units preordered below zero that are not
    yet covered by restocking (see the package docstring).
    """

    __slots__ = (
        "created",
        "id",
        "in_stock",
        "json",
        "location_id",
        "name",
        "number",
        "preorder_counter",
        "preorder_enabled",
        "preorder_limit",
        "preorder_message",
        "product_id",
        "quantity",
        "revision",
        "track",
        "updated",
        "v1_variant_id",
        "variant_id",
        "variant_name",
        "variant_sku",
    )

    def __init__(
        self,
        item_id: str,
        *,
        variant_id: str,
        location_id: str,
        product_id: str,
        track: bool,
        quantity: int,
        in_stock: bool,
        created: int,
    ) -> None:
        self.id = item_id
        self.variant_id = variant_id
        self.location_id = location_id
        self.product_id = product_id
        self.track = track
        self.quantity = quantity
        self.in_stock = in_stock
        self.revision = 1
        self.created = created
        """Epoch milliseconds, like ``updated``."""
        self.updated = created
        self.preorder_enabled = False
        self.preorder_message: str | None = None
        self.preorder_limit = DEFAULT_PRODUCT_LIMIT
        self.preorder_counter = 0
        self.name = ""
        self.variant_name = ""
        self.variant_sku = ""
        self.v1_variant_id: str | None = None
        """The V1 variant id it was migrated from, when that differs (the default variant)."""
        self.json: bytes | None = None
        self.number = -1
        """Its place in its store's list of items (what the journal keeps instead of a
        reference), set by the store."""

    def __repr__(self) -> str:
        stock = f"quantity={self.quantity}" if self.track else f"in_stock={self.in_stock}"
        return (
            f"V3Item(id={self.id!r}, variant_id={self.variant_id!r}, {stock}, rev={self.revision})"
        )

    def touch(self, now_ms: int) -> None:
        """Book a change: revision + 1, ``updatedDate`` now, cached JSON dropped."""
        self.revision += 1
        if now_ms > self.updated:  # never back in time (a comparison: cheaper than max())
            self.updated = now_ms
        self.json = None

    def preorder_remaining(self) -> int:
        """Units still available for preorder (tracked items)."""
        return max(0, self.preorder_limit - self.preorder_counter)

    def availability(self) -> str:
        """``IN_STOCK``, ``PREORDER`` (no stock, preorder enabled with capacity left) or
        ``OUT_OF_STOCK``, as the typings' ``AvailabilityStatus`` describes them."""
        has_stock = self.quantity > 0 if self.track else self.in_stock
        if has_stock:
            return "IN_STOCK"
        if self.preorder_enabled and (not self.track or self.preorder_remaining() > 0):
            return "PREORDER"
        return "OUT_OF_STOCK"

    def preorder_wire(self) -> dict[str, Any]:
        info: dict[str, Any] = {"enabled": self.preorder_enabled}
        if self.preorder_message is not None:
            info["message"] = self.preorder_message
        if self.track:  # limit, counter and quantity: "supported only for trackQuantity"
            info["limit"] = self.preorder_limit
            info["counter"] = self.preorder_counter
            info["quantity"] = self.preorder_remaining()
        return info

    def to_wire(self) -> dict[str, Any]:
        """The item as the REST API shows it (one of ``quantity`` / ``inStock``)."""
        wire: dict[str, Any] = {
            "id": self.id,
            "revision": str(self.revision),
            "createdDate": rfc3339(self.created),
            "updatedDate": rfc3339(self.updated),
            "variantId": self.variant_id,
            "locationId": self.location_id,
            "productId": self.product_id,
            "trackQuantity": self.track,
        }
        if self.track:
            wire["quantity"] = self.quantity
        else:
            wire["inStock"] = self.in_stock
        wire["availabilityStatus"] = self.availability()
        wire["preorderInfo"] = self.preorder_wire()
        wire["product"] = {
            "name": self.name,
            "directCategoryIds": [],
            "variantName": self.variant_name,
            "variantSku": self.variant_sku,
            "variantVisible": True,
        }
        return wire

    def wire_json(self) -> bytes:
        cached = self.json
        if cached is None:
            cached = self.json = _encode(self.to_wire())
        return cached


def from_v1(
    items: Iterable[Item],
    rng: random.Random,
    *,
    locations: Sequence[str],
    extra_stock: bool,
) -> list[V3Item]:
    """The V3 items of a V1 catalog: each variant at ``locations[0]`` (the default location)
    with its quantity (or ``inStock``), tracking and preorder settings; with ``extra_stock``,
    also at every other location with a seeded quantity and no preorder.

    V1's shared default variant id (``00000000-...``) becomes a fresh GUID per product, since
    ``(variantId, locationId)`` is unique in V3. A V1 preorder ``limit`` of ``None`` (no
    floor) becomes the default 100000; stock already below zero becomes the preorder counter.
    ``createdDate`` is the V1 creation time (the numericId, in microseconds), ``updatedDate``
    its ``lastUpdated``.
    """
    out: list[V3Item] = []
    for number, item in enumerate(items, 1):
        for index, variant in enumerate(item.variants.values(), 1):
            default = variant.variant_id == DEFAULT_VARIANT_ID
            base = V3Item(
                new_guid(rng),
                variant_id=new_guid(rng) if default else variant.variant_id,
                location_id=locations[0],
                product_id=item.product_id,
                track=item.track,
                quantity=max(-MAX_QUANTITY, min(MAX_QUANTITY, variant.quantity)),
                in_stock=item.in_stock(variant),
                created=item.numeric_id // 1000,
            )
            base.updated = max(item.last_updated, base.created)
            if default:
                base.v1_variant_id = variant.variant_id
            if item.preorder_enabled:
                base.preorder_enabled = True
                base.preorder_message = item.preorder_message
                limit = item.preorder_limit
                base.preorder_limit = DEFAULT_PRODUCT_LIMIT if limit is None else limit
                base.preorder_counter = max(0, -base.quantity) if item.track else 0
            copies = [base]
            if extra_stock:
                copies += [_at(base, location, rng) for location in locations[1:]]
            for copy in copies:
                _name(copy, number, index, default)
            out.extend(copies)
    return out


def _at(base: V3Item, location_id: str, rng: random.Random) -> V3Item:
    """The same variant at another location: its own id and a seeded stock."""
    quantity = rng.randint(0, 200)
    return V3Item(
        new_guid(rng),
        variant_id=base.variant_id,
        location_id=location_id,
        product_id=base.product_id,
        track=base.track,
        quantity=quantity if base.track else 0,
        in_stock=quantity > 0,
        created=base.created,
    )


def _name(item: V3Item, product_number: int, variant_number: int, default: bool) -> None:
    """The ``product`` summary: a name per product, a name and a unique SKU per variant."""
    item.name = f"Product {product_number}"
    item.variant_name = "Default" if default else f"Option {variant_number}"
    item.variant_sku = f"SKU-{item.product_id[:8].upper()}-{variant_number}"
