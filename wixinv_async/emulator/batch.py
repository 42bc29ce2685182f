"""Planning an increment or decrement batch: one pass, nothing changed until it all holds.

Pure: takes the decoded entries and the store's indexes, returns the new quantity of every
touched variant (entries applied in order, so the same key twice is fine) and the touched
items, or raises the one :class:`WixApiError` the whole batch fails with. Precedence: a
malformed entry (400) over an unknown one (404) over a refused one (428); among equals, the
first entry. This is the emulator's hot path, so the loop stays flat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..core.validation import is_guid
from ..models import MAX_BATCH, MAX_ID_LENGTH, MAX_QUANTITY
from ._errors import WixApiError, application_error, validation_error
from .items import Item, Variant
from .requests import DecrementEntry, IncrementEntry

__all__ = ["Plan", "plan_decrement", "plan_increment"]

Plan = tuple[dict[Variant, int], dict[Item, None]]
Entry = DecrementEntry | IncrementEntry
_DEC: Final = "decrementData"
_INC: Final = "incrementData"


def plan_decrement(
    entries: Sequence[DecrementEntry],
    by_product: Mapping[str, Item],
    by_inventory: Mapping[str, Item],
) -> Plan:
    """New quantities for a Decrement Inventory batch, or the error it fails with."""
    _check_size(_DEC, entries)
    plan: dict[Variant, int] = {}
    items: dict[Item, None] = {}
    misses: list[int] = []
    refusal: WixApiError | None = None
    for index, entry in enumerate(entries):
        # Inlined lookups (the same in plan_increment): this loop is the emulator's hot path.
        pid, iid = entry.product_id, entry.inventory_id
        item = by_product.get(pid) if pid is not None else by_inventory.get(iid or "")
        if item is None or (iid is not None and item.id != iid):
            misses.append(index)
            continue
        variant = item.variants.get(entry.variant_id)
        if variant is None:
            misses.append(index)
            continue
        by = entry.decrement_by
        quantity = plan.get(variant, variant.quantity) - by
        if quantity < 0 or by < 1 or not item.track:
            if by < 1:  # malformed: _fail reports it as a 400
                misses.append(index)
                continue
            problem = _decrement_refusal(index, entry, item, quantity + by, quantity)
            if problem is not None:
                refusal = refusal or problem
                continue
        plan[variant] = quantity
        items[item] = None
    _fail(_DEC, entries, misses, refusal, by_product, by_inventory)
    return plan, items


def plan_increment(
    entries: Sequence[IncrementEntry],
    by_product: Mapping[str, Item],
    by_inventory: Mapping[str, Item],
) -> Plan:
    """New quantities for an Increment Inventory batch, or the error it fails with."""
    _check_size(_INC, entries)
    plan: dict[Variant, int] = {}
    items: dict[Item, None] = {}
    misses: list[int] = []
    refusal: WixApiError | None = None
    for index, entry in enumerate(entries):
        pid, iid = entry.product_id, entry.inventory_id
        item = by_product.get(pid) if pid is not None else by_inventory.get(iid or "")
        if item is None or (iid is not None and item.id != iid):
            misses.append(index)
            continue
        variant = item.variants.get(entry.variant_id)
        if variant is None:
            misses.append(index)
            continue
        by = entry.increment_by
        quantity = plan.get(variant, variant.quantity) + by
        if quantity > MAX_QUANTITY or by < 1 or not item.track:
            if by < 1:  # malformed: _fail reports it as a 400
                misses.append(index)
            else:
                refusal = refusal or _increment_refusal(index, entry, item, quantity - by, quantity)
            continue
        plan[variant] = quantity
        items[item] = None
    _fail(_INC, entries, misses, refusal, by_product, by_inventory)
    return plan, items


def _check_size(field: str, entries: Sequence[Entry]) -> None:
    if not 1 <= len(entries) <= MAX_BATCH:
        raise validation_error(
            [(field, f"must hold 1 to {MAX_BATCH} entries, got {len(entries)}")], rule="SIZE"
        )


def _decrement_refusal(
    index: int, entry: DecrementEntry, item: Item, current: int, quantity: int
) -> WixApiError | None:
    if not item.track:
        return _untracked(_DEC, index, entry)
    floor = item.preorder_floor() if entry.preorder_request and item.preorder_enabled else 0
    if floor is None or quantity >= floor:
        return None
    text = f"insufficient inventory: {current} available, {entry.decrement_by} requested"
    return _precondition("INSUFFICIENT_INVENTORY", text, _DEC, index, entry, current)


def _increment_refusal(
    index: int, entry: IncrementEntry, item: Item, current: int, quantity: int
) -> WixApiError:
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
    misses: list[int],
    refusal: WixApiError | None,
    by_product: Mapping[str, Item],
    by_inventory: Mapping[str, Item],
) -> None:
    """Raise the batch's error, if any: 400 over 404 over 428."""
    if not misses and refusal is None:
        return
    violations = [
        v for index, entry in enumerate(entries) for v in _violations(field, index, entry)
    ]
    if violations:
        raise validation_error(violations)
    if misses:
        index = misses[0]
        entry = entries[index]
        pid, iid = entry.product_id, entry.inventory_id
        item = by_product.get(pid) if pid is not None else by_inventory.get(iid or "")
        what = "variant" if item is not None and (iid is None or item.id == iid) else "item"
        text = f"{field}[{index}]: no such {what}" + (
            f" {entry.variant_id!r}"
            if what == "variant"
            else f" (productId {pid!r}, inventoryId {iid!r})"
        )
        raise application_error(404, "NOT_FOUND", text, entry_data(index, entry))
    if refusal is not None:
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
