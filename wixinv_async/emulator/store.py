"""One site's inventory: the rules of the five calls, applied all or nothing, and a journal.

Pure and synchronous (no asyncio, no clock at module level): the server calls in with a
decoded request, a request id and ``now``; a refusal is raised as a
:class:`~wixinv_async.emulator._errors.WixApiError` carrying the Wix status and body, and
nothing is changed. Tests may also read and seed the store directly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core.validation import is_guid
from ..models import (
    DEFAULT_VARIANT_ID,
    MAX_ID_LENGTH,
    InventoryItem,
    PreorderInfo,
    VariantValues,
)
from ._errors import WixApiError, application_error, validation_error
from .batch import Applied, Index, apply_decrement, apply_increment, changes
from .catalog import new_guid, seed_catalog
from .items import Item, Variant
from .journal import Record, expand, pack, record_batch, unpack
from .query import CompiledQuery, Page, run_query
from .requests import DecrementEntry, IncrementEntry, ItemUpdateIn
from .updates import apply_update

if TYPE_CHECKING:
    from .v3_store import V3Listener

__all__ = ["ChangeEvent", "JournalEntry", "Listener", "SiteStore"]

_MAX_UNSTAMPED = 256
"""Batches whose lastUpdated stamps may wait for the next read."""


class ChangeEvent(NamedTuple):
    """One inventory item changed by one request (what a Wix webhook would report)."""

    site_id: str
    instance_id: str
    request_id: str
    inventory_item_id: str
    product_id: str
    track_quantity: bool
    preorder_info: PreorderInfo
    item_fields_changed: tuple[str, ...]
    variants: tuple[tuple[str, VariantValues, VariantValues], ...]


class JournalEntry(NamedTuple):
    """One applied write: its request id, endpoint (SDK method name), entries, the wall time
    it was applied at, and its ``source``: ``"api"`` (applied as it arrived), ``"late"``
    (applied after its ambiguous answer, by a ``late_`` fault) or ``"third_party"`` (an
    out-of-band edit, request id ``""``)."""

    request_id: str
    endpoint: str
    entries: list[dict[str, Any]]
    at: float
    source: str = "api"


Listener = Callable[[ChangeEvent], None]
Entry = DecrementEntry | IncrementEntry
_Snapshot = tuple[bool, bool, str | None, int | None, dict[str, tuple[int, bool]]]


class SiteStore:
    """The items of one site (one instance), ordered by numericId, and its journal."""

    def __init__(
        self,
        *,
        site_id: str,
        instance_id: str,
        products: int = 100,
        variants_per_product: int = 3,
        seed: int = 0,
        id_distribution: str = "clustered",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.site_id = site_id
        self.instance_id = instance_id
        self._journal: list[JournalEntry] = []
        self._unconverted: list[tuple[str, str, Record, float, str]] = []
        self.source = "api"
        """The ``source`` stamped on journal entries (the server sets ``"late"`` around a
        late apply; synchronous, so no other request is journaled meanwhile)."""
        self._unstamped: list[tuple[bytes, int]] = []
        """(variant numbers, lastUpdated) of batches not yet stamped: no references (see
        :mod:`.journal`)."""
        self._seeding = (products, variants_per_product, seed, id_distribution)
        self._wall_clock = wall_clock
        self._listeners: list[Listener] = []
        self.v3_listeners: list[V3Listener] = []
        """Listeners of the site's V3 store, kept here: that store is replaced when the site
        migrates or is reset, and each new one is handed this list."""
        self._items: list[Item] = []
        self._numeric_ids: list[int] = []
        self._index = Index()
        self._rng = random.Random(seed ^ 0x5EED)
        self.entries_applied = 0
        self.reset()

    def __repr__(self) -> str:
        return f"SiteStore(site_id={self.site_id!r}, items={len(self._items)})"

    def __len__(self) -> int:
        return len(self._items)

    # --- inspection and seeding ----------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeded catalog, with an empty journal (listeners are kept)."""
        products, variants_per_product, seed, distribution = self._seeding
        self._items = seed_catalog(products, variants_per_product, seed, distribution)
        self._numeric_ids = [item.numeric_id for item in self._items]
        self._index = Index(self._items)
        self._rng = random.Random(seed ^ 0x5EED)
        self._journal = []
        self._unconverted = []
        self._unstamped = []
        self.entries_applied = 0
        self.hidden: set[str] = set()
        """Product ids hidden from the storefront (``visible: false``); seeded ones are not."""

    @property
    def journal(self) -> list[JournalEntry]:
        """Every applied write, in order, with its entries (see :mod:`.journal` for their
        normalized form). Kept compact and converted to dicts on first read: off the request
        path, and small while a long benchmark runs."""
        if self._unconverted:
            variants = self._index.variants
            self._journal.extend(
                JournalEntry(rid, endpoint, expand(endpoint, record, variants), at, source)
                for rid, endpoint, record, at, source in self._unconverted
            )
            self._unconverted.clear()
        return self._journal

    def _settle(self) -> None:
        """Stamp ``lastUpdated`` (and drop the cached JSON) of the items changed by batches
        since the last read: done lazily, off the write path, and always before any read or
        direct change of an item."""
        variants = self._index.variants
        for numbers, stamp in self._unstamped:
            for item in {variants[n].item for n in unpack(numbers)}:
                assert item is not None
                item.last_updated = stamp
                item.json = None
        self._unstamped.clear()

    def records(self) -> list[Item]:
        """The live item records, in numericId order (what a migration to V3 reads)."""
        self._settle()
        return list(self._items)

    def items(self) -> list[InventoryItem]:
        """Every item in the wire format, in numericId order (a snapshot)."""
        self._settle()
        return [item.to_wire() for item in self._items]

    def state_json(self) -> bytes:
        """``{"inventoryItems": [...]}``: every item's wire JSON, in numericId order."""
        self._settle()
        return b'{"inventoryItems":[' + b",".join([i.wire_json() for i in self._items]) + b"]}"

    def item(self, product_id: str) -> InventoryItem | None:
        """One product's item in the wire format, or ``None``."""
        self._settle()
        item = self._index.by_product.get(product_id)
        return item.to_wire() if item is not None else None

    def quantity(self, product_id: str, variant_id: str) -> int | None:
        """A tracked variant's quantity; ``None`` for an untracked or unknown one."""
        item = self._index.by_product.get(product_id)
        variant = item.variants.get(variant_id) if item is not None else None
        if item is None or variant is None or not item.track:
            return None
        return variant.quantity

    def add_product(
        self, *, variants: int = 1, quantity: int = 10, track: bool = True, visible: bool = True
    ) -> InventoryItem:
        """A new product (default variant only when ``variants`` is 1), numericId above all;
        ``visible=False`` hides it from the storefront (as a witness product is)."""
        if variants < 1:
            raise ValueError(f"variants={variants!r}: must be at least 1")
        ids = (
            [DEFAULT_VARIANT_ID]
            if variants == 1
            else [new_guid(self._rng) for _ in range(variants)]
        )
        now = self._wall_clock()
        last = self._numeric_ids[-1] if self._numeric_ids else 0
        numeric_id = max(int(now * 1_000_000), last + 1)
        stock = {vid: Variant(vid, quantity if track else 0, quantity > 0) for vid in ids}
        item = Item(new_guid(self._rng), new_guid(self._rng), numeric_id, track, stock)
        item.last_updated = int(now * 1000)
        self._items.append(item)
        self._numeric_ids.append(numeric_id)
        self._index.add(item)
        if not visible:
            self.hidden.add(item.product_id)
        return item.to_wire()

    def product(self, product_id: str) -> dict[str, Any]:
        """Get Product (Catalog V1): the product with the fields the emulator keeps
        (``visible``, ``stock``, ``manageVariants``; name and slug made up from the id)."""
        _check_id("id", product_id)
        item = self._index.by_product.get(product_id)
        if item is None:
            raise _not_found(f"no product with id {product_id!r}", {"id": product_id})
        in_stock = [v.in_stock for v in item.variants.values()]
        status = "IN_STOCK" if all(in_stock) else "OUT_OF_STOCK" if not any(in_stock) else None
        return {
            "id": product_id,
            "name": f"Product {product_id[:8]}",
            "slug": f"product-{product_id[:8]}",
            "visible": product_id not in self.hidden,
            "productType": "physical",
            "manageVariants": len(item.variants) > 1,
            "stock": {
                "trackInventory": item.track,
                "inStock": any(in_stock),
                "inventoryStatus": status or "PARTIALLY_OUT_OF_STOCK",
            },
        }

    def set_visible(self, product_id: str, visible: bool) -> None:
        """Show or hide a product in the storefront (as from the Wix dashboard)."""
        if product_id not in self._index.by_product:
            raise KeyError(f"no product {product_id!r}")
        (self.hidden.discard if visible else self.hidden.add)(product_id)

    def set_quantity(self, product_id: str, variant_id: str, quantity: int) -> None:
        """Set a variant's quantity directly (as from the Wix dashboard): not journaled, but
        listeners hear of it, with request id ``""``."""
        item = self._index.by_product.get(product_id)
        variant = item.variants.get(variant_id) if item is not None else None
        if item is None or variant is None:
            raise KeyError(f"no variant {variant_id!r} of product {product_id!r}")
        before = self._snapshot(item)
        variant.quantity = quantity
        if not item.track:
            variant.in_stock = quantity > 0
        self._settle()
        item.last_updated = int(self._wall_clock() * 1000)
        item.json = None
        self._notify("", [(item, before)])

    def edit_quantity(
        self, product_id: str, variant_id: str, *, quantity: int | None = None, delta: int = 0
    ) -> tuple[int, int]:
        """A third party's edit (another app, a dashboard user): set ``quantity`` or add
        ``delta``, the result 0 to 99999. Journaled as ``thirdPartyEdit`` (source
        ``third_party``, request id ``""``); listeners hear of it. Returns (before, after)."""
        item = self._index.by_product.get(product_id)
        variant = item.variants.get(variant_id) if item is not None else None
        if item is None or variant is None:
            raise KeyError(f"no variant {variant_id!r} of product {product_id!r}")
        before = variant.quantity
        after = before + delta if quantity is None else quantity
        if not 0 <= after <= 99_999:
            raise ValueError(f"quantity {after!r} (from {before} by {delta}): must be 0 to 99999")
        self.set_quantity(product_id, variant_id, after)
        entry = {
            "productId": product_id,
            "variantId": variant_id,
            "quantityBefore": before,
            "quantityAfter": after,
        }
        at = self._wall_clock()
        self._unconverted.append(("", "thirdPartyEdit", [entry], at, "third_party"))
        return before, after

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with one :class:`ChangeEvent` per item changed, after each change."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    # --- the five calls ------------------------------------------------------------------

    def query(self, query: CompiledQuery) -> Page:
        """Query Inventory: one page and the total number of matches."""
        self._settle()
        return run_query(self._items, self._numeric_ids, query)

    def get_variants(
        self, inventory_id: str | None, product_id: str | None, variant_ids: Sequence[str] | None
    ) -> InventoryItem:
        """Get Inventory Variants, by inventory id (falling back to product id) or product id."""
        self._settle()
        key = product_id if product_id is not None else inventory_id
        field = "productId" if product_id is not None else "inventoryId"
        _check_id(field, key)
        assert key is not None
        item = self._index.by_product.get(key) if product_id is not None else None
        if item is None and product_id is None:
            item = self._index.by_inventory.get(key) or self._index.by_product.get(key)
        if item is None:
            raise _not_found(f"no inventory item with {field} {key!r}", {field: key})
        for index, vid in enumerate(variant_ids or ()):
            _check_guid(f"variantIds[{index}]", vid)
        return item.to_wire(set(variant_ids) if variant_ids is not None else None)

    def decrement(
        self, entries: list[DecrementEntry], request_id: str, *, raw: bytes | None = None
    ) -> None:
        """Decrement Inventory: validated whole, applied all or nothing, journaled (``raw``:
        the request body the entries were decoded from, journaled instead of them)."""
        applied = apply_decrement(entries, self._index)
        self._adjust("decrementInventory", applied, entries, request_id, raw)

    def increment(
        self, entries: list[IncrementEntry], request_id: str, *, raw: bytes | None = None
    ) -> None:
        """Increment Inventory, as :meth:`decrement`."""
        applied = apply_increment(entries, self._index)
        self._adjust("incrementInventory", applied, entries, request_id, raw)

    def _adjust(
        self,
        endpoint: str,
        applied: Applied,
        entries: Sequence[Entry],
        request_id: str,
        raw: bytes | None,
    ) -> None:
        """Book an applied batch: lastUpdated, the journal, the listeners."""
        before = self._snapshots(applied, entries) if self._listeners else []
        now = self._wall_clock()
        record = record_batch(endpoint, applied, entries, raw)
        numbers = record[0] if isinstance(record, tuple) else _numbers(applied)
        self._unstamped.append((numbers, int(now * 1000)))
        if len(self._unstamped) >= _MAX_UNSTAMPED:
            self._settle()
        self.entries_applied += len(entries)
        self._unconverted.append((request_id, endpoint, record, now, self.source))
        if before:
            self._notify(request_id, before)

    def update(self, product_id: str, body: ItemUpdateIn, request_id: str) -> None:
        """Update Inventory Variants (the ``trackQuantity`` trap included): all or nothing."""
        _check_id("productId", product_id)
        item = self._index.by_product.get(product_id)
        if item is None:
            raise _not_found(f"no product {product_id!r}", {"productId": product_id})
        before = self._snapshot(item)
        entries = apply_update(item, product_id, body)
        self._settle()
        now = self._wall_clock()
        item.last_updated = int(now * 1000)
        item.json = None
        self.entries_applied += 1
        self._unconverted.append((request_id, "updateInventoryVariants", entries, now, self.source))
        self._notify(request_id, [(item, before)])

    # --- change events -------------------------------------------------------------------

    def _snapshots(
        self, applied: Applied, entries: Sequence[Entry]
    ) -> list[tuple[Item, _Snapshot]]:
        """Each touched item (once, in entry order) with its state before ``applied``."""
        undo: dict[Variant, int] = {}
        for variant, change in zip(applied, changes(entries), strict=True):
            undo[variant] = undo.get(variant, 0) + change
        items = dict.fromkeys(v.item for v in undo if v.item is not None)
        return [(item, self._snapshot(item, undo)) for item in items]

    def _snapshot(self, item: Item, undo: dict[Variant, int] | None = None) -> _Snapshot:
        """The item's state; ``undo`` subtracts changes already applied to its variants."""
        undo = undo or {}
        variants = {
            vid: (v.quantity - undo.get(v, 0), v.in_stock) for vid, v in item.variants.items()
        }
        return (
            item.track,
            item.preorder_enabled,
            item.preorder_message,
            item.preorder_limit,
            variants,
        )

    def _notify(self, request_id: str, changed: Iterable[tuple[Item, _Snapshot]]) -> None:
        """One event per item whose tracking, preorder settings or variants changed (a write
        that changed nothing visible, e.g. a decrement then an increment of the same key in one
        batch, tells no one)."""
        if not self._listeners:
            return
        events = [self._event(request_id, item, before) for item, before in changed]
        for event in (e for e in events if e.item_fields_changed or e.variants):
            for listener in list(self._listeners):
                listener(event)

    def _event(self, request_id: str, item: Item, before: _Snapshot) -> ChangeEvent:
        track, enabled, message, limit, variants = before
        fields: list[str] = []
        if track != item.track:
            fields.append("trackQuantity")
        if (enabled, message, limit) != (
            item.preorder_enabled,
            item.preorder_message,
            item.preorder_limit,
        ):
            fields.append("preorderInfo")
        old = Item(item.id, item.product_id, item.numeric_id, track, {})
        old.preorder_enabled, old.preorder_message, old.preorder_limit = enabled, message, limit
        changes = []
        for vid, variant in item.variants.items():
            quantity, in_stock = variants[vid]
            old_values = old.values(Variant(vid, quantity, in_stock))
            new_values = item.values(variant)
            if old_values != new_values:
                changes.append((vid, old_values, new_values))
        return ChangeEvent(
            self.site_id,
            self.instance_id,
            request_id,
            item.id,
            item.product_id,
            item.track,
            item.preorder_info(),
            tuple(fields),
            tuple(changes),
        )


def _numbers(applied: Applied) -> bytes:
    return pack([variant.number for variant in applied])


def _not_found(text: str, data: dict[str, Any]) -> WixApiError:
    return application_error(404, "NOT_FOUND", text, data)


def _check_id(field: str, value: str | None) -> None:
    if value is None or not 1 <= len(value) <= MAX_ID_LENGTH:
        raise validation_error([(field, f"must be 1 to {MAX_ID_LENGTH} characters, got {value!r}")])


def _check_guid(field: str, value: str) -> None:
    if not is_guid(value):
        raise validation_error([(field, f"must be a GUID, got {value!r}")])
