"""Applying an increment or decrement batch all or nothing, in one pass.

Entries are applied in order, in place (so the same key twice is fine), with an undo list; at
the first problem every change is rolled back before anything else can run (there is no await
in between), and the one :class:`WixApiError` the whole batch fails with is raised.
Precedence: a malformed entry (400) over an unknown one (404) over a refused one (428); among
equals, the first entry. This is the emulator's hot path, so the loop stays flat and the
rare failure takes a separate, slower path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, NoReturn

from ..core.validation import is_guid
from ..models import MAX_BATCH, MAX_ID_LENGTH, MAX_QUANTITY
from ._errors import WixApiError, application_error, validation_error
from .items import Item, Variant
from .requests import DecrementEntry, IncrementEntry

__all__ = ["Applied", "Index", "apply_decrement", "apply_increment", "changes"]

Applied = list[Variant]
"""The variant of each entry, in entry order (entry ``i`` changed ``applied[i]``)."""
Entry = DecrementEntry | IncrementEntry
_DEC: Final = "decrementData"


class Index:
    """The store's lookups: by product id, by inventory id, and every variant by its number
    (what the journal keeps instead of references: see :mod:`.journal`)."""

    __slots__ = ("by_inventory", "by_product", "variants")

    def __init__(self, items: Iterable[Item] = ()) -> None:
        self.by_product: dict[str, Item] = {}
        self.by_inventory: dict[str, Item] = {}
        self.variants: list[Variant] = []
        """``variants[v.number] is v``."""
        for item in items:
            self.add(item)

    def __repr__(self) -> str:
        return f"Index(items={len(self.by_product)}, variants={len(self.variants)})"

    def add(self, item: Item) -> None:
        self.by_product[item.product_id] = item
        self.by_inventory[item.id] = item
        for variant in item.variants.values():
            variant.number = len(self.variants)
            self.variants.append(variant)

    def locate(
        self, product_id: str | None, inventory_id: str | None, variant_id: str
    ) -> Variant | None:
        """The variant an entry names (by product, inventory item or both), or ``None``."""
        if product_id is not None:
            item = self.by_product.get(product_id)
        else:
            item = self.by_inventory.get(inventory_id or "")
        if item is None or (inventory_id is not None and item.id != inventory_id):
            return None
        return item.variants.get(variant_id)


_INC: Final = "incrementData"


def apply_decrement(entries: Sequence[DecrementEntry], index: Index) -> Applied:
    """Apply a Decrement Inventory batch, or change nothing and raise its error."""
    _check_size(_DEC, entries)
    applied: Applied = []
    append, product = applied.append, index.by_product.get
    for entry in entries:  # entry number len(applied): every earlier one was applied
        # The hot path: the usual entry (by product id, of a tracked item) is found by two
        # probes with the strings as decoded (a joined key would cost a new string each);
        # anything else (inventory ids, untracked, unknown) takes the slow lookup.
        pid, by = entry.product_id, entry.decrement_by
        item = product(pid) if pid is not None and entry.inventory_id is None else None
        variant = item.variants.get(entry.variant_id) if item is not None and item.track else None
        if variant is None:
            variant = _slow_lookup(_DEC, len(applied), entries, applied, index)
        quantity = variant.quantity - by
        if quantity < 0 or by < 1:
            item = variant.item
            assert item is not None
            position = len(applied)
            problem = _decrement_refusal(position, entry, item, variant.quantity, quantity)
            if by < 1 or problem is not None:
                _fail(_DEC, entries, applied, problem, index)
        variant.quantity = quantity
        append(variant)
    return applied


def apply_increment(entries: Sequence[IncrementEntry], index: Index) -> Applied:
    """Apply an Increment Inventory batch, or change nothing and raise its error."""
    _check_size(_INC, entries)
    applied: Applied = []
    append, product = applied.append, index.by_product.get
    for entry in entries:  # entry number len(applied): every earlier one was applied
        pid, by = entry.product_id, entry.increment_by
        item = product(pid) if pid is not None and entry.inventory_id is None else None
        variant = item.variants.get(entry.variant_id) if item is not None and item.track else None
        if variant is None:
            variant = _slow_lookup(_INC, len(applied), entries, applied, index)
        quantity = variant.quantity + by
        if quantity > MAX_QUANTITY or by < 1:
            item = variant.item
            assert item is not None
            position = len(applied)
            problem = _increment_refusal(position, entry, item, variant.quantity, quantity)
            _fail(_INC, entries, applied, problem, index)
        variant.quantity = quantity
        append(variant)
    return applied


def _slow_lookup(
    field: str, position: int, entries: Sequence[Entry], applied: Applied, index: Index
) -> Variant:
    """The variant of an entry the fast index does not hold: by inventory id, untracked,
    or unknown (then the batch fails)."""
    entry = entries[position]
    variant = index.locate(entry.product_id, entry.inventory_id, entry.variant_id)
    if variant is None:
        _fail(field, entries, applied, None, index)
    item = variant.item
    assert item is not None
    if not item.track:
        _fail(field, entries, applied, _untracked(field, position, entry), index)
    return variant


def changes(entries: Sequence[Entry]) -> list[int]:
    """The signed quantity change of each entry."""
    return [-e.decrement_by if isinstance(e, DecrementEntry) else e.increment_by for e in entries]


def _check_size(field: str, entries: Sequence[Entry]) -> None:
    if not 1 <= len(entries) <= MAX_BATCH:
        raise validation_error(
            [(field, f"must hold 1 to {MAX_BATCH} entries, got {len(entries)}")], rule="SIZE"
        )


def _decrement_refusal(
    index: int, entry: DecrementEntry, item: Item, current: int, quantity: int
) -> WixApiError | None:
    """The 428 for one decrement, or ``None`` when a preorder allows going below zero."""
    if entry.decrement_by < 1:
        return None
    if not item.track:
        return _untracked(_DEC, index, entry)
    floor = item.preorder_floor() if entry.preorder_request and item.preorder_enabled else 0
    if floor is None or quantity >= floor:
        return None
    text = f"insufficient inventory: {current} available, {entry.decrement_by} requested"
    return _precondition("INSUFFICIENT_INVENTORY", text, _DEC, index, entry, current)


def _increment_refusal(
    index: int, entry: IncrementEntry, item: Item, current: int, quantity: int
) -> WixApiError | None:
    if entry.increment_by < 1:
        return None
    if not item.track:
        return _untracked(_INC, index, entry)
    text = f"quantity would be {quantity}, above the maximum of {MAX_QUANTITY}"
    return _precondition("MAX_QUANTITY_LIMIT_REACHED", text, _INC, index, entry, current)


def _untracked(field: str, index: int, entry: Entry) -> WixApiError:
    text = "the quantity of this item is not tracked: it cannot be incremented or decremented"
    return _precondition("INVENTORY_QUANTITY_NOT_TRACKED", text, field, index, entry, None)


def _fail(
    field: str,
    entries: Sequence[Entry],
    applied: Applied,
    refusal: WixApiError | None,
    catalog: Index,
) -> NoReturn:
    """Undo ``applied``, then raise the batch's error: 400 over 404 over ``refusal`` (428)."""
    for variant, change in reversed(list(zip(applied, changes(entries), strict=False))):
        variant.quantity -= change
    violations = [
        v for index, entry in enumerate(entries) for v in _violations(field, index, entry)
    ]
    if violations:
        raise validation_error(violations)
    by_product, by_inventory = catalog.by_product, catalog.by_inventory
    for index, entry in enumerate(entries):
        pid, iid = entry.product_id, entry.inventory_id
        item = by_product.get(pid) if pid is not None else by_inventory.get(iid or "")
        if item is None or (iid is not None and item.id != iid):
            what = f"product {pid!r}" if pid is not None else f"inventory item {iid!r}"
            if item is not None:
                what = f"inventory item {iid!r} for product {pid!r}"
            text = f"{field}[{index}]: no such {what}"
        elif entry.variant_id not in item.variants:
            text = f"{field}[{index}]: no such variant {entry.variant_id!r}"
        else:
            continue
        raise application_error(404, "NOT_FOUND", text, entry_data(index, entry))
    assert refusal is not None, "a batch failed without a reason"
    raise refusal


def _violations(field: str, index: int, entry: Entry) -> list[tuple[str, str]]:
    """What is malformed in one entry (only reached when the batch already failed)."""
    amount_name = "decrementBy" if isinstance(entry, DecrementEntry) else "incrementBy"
    amount = entry.decrement_by if isinstance(entry, DecrementEntry) else entry.increment_by
    out = []
    if amount < 1:
        out.append((f"{field}[{index}].{amount_name}", f"must be at least 1, got {amount}"))
    if not is_guid(entry.variant_id):
        out.append((f"{field}[{index}].variantId", f"must be a GUID, got {entry.variant_id!r}"))
    pid, iid = entry.product_id, entry.inventory_id
    if pid is None and iid is None:
        out.append((f"{field}[{index}].productId", "productId or inventoryId is required"))
    for name, value in (("productId", pid), ("inventoryId", iid)):
        if value is not None and not 1 <= len(value) <= MAX_ID_LENGTH:
            text = f"must be 1 to {MAX_ID_LENGTH} characters, got {value!r}"
            out.append((f"{field}[{index}].{name}", text))
    return out


def entry_data(index: int, entry: Entry) -> dict[str, Any]:
    """``applicationError.data`` for one entry: its index and ids."""
    data: dict[str, Any] = {"index": index, "variantId": entry.variant_id}
    if entry.product_id is not None:
        data["productId"] = entry.product_id
    if entry.inventory_id is not None:
        data["inventoryId"] = entry.inventory_id
    return data


def _precondition(
    code: str, text: str, field: str, index: int, entry: Entry, current: int | None
) -> WixApiError:
    data = entry_data(index, entry)
    if current is not None:
        data["quantity"] = current
    return application_error(428, code, f"{field}[{index}]: {text}", data)
