"""One Catalog V3 site's inventory items, the calls over them, and their journal.

Pure and synchronous like the V1 :class:`~wixinv_async.emulator.store.SiteStore`: the server
calls in with a decoded request and a request id; a request-level refusal raises a
:class:`~wixinv_async.emulator._errors.WixApiError` and changes nothing, while a bulk call
settles entry by entry (per-item failures are data, in an HTTP 200: good entries applied,
bad ones refused, nothing else changed). Every change adds 1 to the item's ``revision``.
"""

from __future__ import annotations

import operator
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, NamedTuple, Protocol

import msgspec

from ._errors import WixApiError, application_error, validation_error
from .catalog import new_guid
from .journal import pack, unpack
from .store import JournalEntry
from .v3_index import SortedItems, indexable, ordered_sorted, run_sorted
from .v3_items import MAX_QUANTITY, V3Item
from .v3_query import Page, Plan, ordered, run
from .v3_requests import ItemIn
from .v3_rules import ItemError, decrement, increment, update

__all__ = [
    "Adjust",
    "AdjustIn",
    "ItemFault",
    "Refusal",
    "Settled",
    "V3Change",
    "V3Listener",
    "V3Store",
]

_INVENTORY_ITEM_ID: Final = operator.attrgetter("inventory_item_id")
_encode = msgspec.json.Encoder().encode
ItemFault = Callable[[], str | None]
"""Draws one entry's injected fault: ``None``, ``"error"`` or ``"undetailed"``."""


class Adjust(Protocol):
    """One increment or decrement entry, by inventory item id or by (variant, location): the
    decoded request entries (``v3_requests``) have this shape, and so has :class:`AdjustIn`."""

    @property
    def inventory_item_id(self) -> str | None: ...
    @property
    def variant_id(self) -> str | None: ...
    @property
    def location_id(self) -> str | None: ...
    @property
    def amount(self) -> int: ...
    @property
    def preorder(self) -> bool: ...


class AdjustIn(NamedTuple):
    """An :class:`Adjust` made in code (tests, tools) rather than decoded from a request."""

    inventory_item_id: str | None
    variant_id: str | None
    location_id: str | None
    amount: int
    preorder: bool = False


Refusal = tuple[ItemError, bool, str | None]
"""A refused bulk entry: its error, whether the answer details it, the item id it reports."""


class Settled(NamedTuple):
    """A settled bulk call: per entry its item (``None``: no such item; the item of an entry
    not refused is the one it changed), and the entries refused, by index."""

    targets: Sequence[V3Item | None]
    failed: dict[int, Refusal]


class V3Change(NamedTuple):
    """One applied change of one item, as listeners (the webhook sender) hear of it."""

    site_id: str
    kind: str
    """``updated`` or ``deleted``."""
    item: dict[str, Any]
    """The item's wire form after the change (for ``deleted``: as it was)."""
    reason: str | None
    request_id: str


V3Listener = Callable[[V3Change], None]


_INJECTED = ItemError(
    "INTERNAL_ERROR", "injected per-item fault: the entry was not applied", {}, 500
)


class V3Store:
    """The items of one V3 site, by id and by (variant, location), with a journal."""

    locations: list[str]
    """Location ids, the default location first."""
    default_location: str
    entries_applied: int

    def __init__(
        self,
        *,
        site_id: str,
        items: Iterable[V3Item],
        locations: Sequence[str],
        seed: int = 0,
        wall_clock: Callable[[], float] = time.time,
        listeners: list[V3Listener] | None = None,
    ) -> None:
        self.site_id = site_id
        self.listeners = [] if listeners is None else listeners
        """Called after each applied change, once per item changed (shared, not copied)."""
        self.locations = list(locations)
        self.default_location = self.locations[0]
        self._by_id = {item.id: item for item in sorted(items, key=_item_id)}
        self._numbered = list(self._by_id.values())
        """Every item this store ever held (deleted ones too), ``_numbered[i.number] is i``."""
        for number, item in enumerate(self._numbered):
            item.number = number
        self._by_place = {(i.variant_id, i.location_id): i for i in self._by_id.values()}
        self._sorted: dict[tuple[tuple[str, bool], ...], SortedItems] = {}
        """The items in the order of each sort asked for by fields no write changes, made on
        first use and dropped when an item is deleted (:mod:`.v3_index`)."""
        self._wall_clock = wall_clock
        self._rng = random.Random(seed ^ 0x3B3B)
        self._journal_entries: list[JournalEntry] = []
        self._pending: list[tuple[str, str, _Record, float, str]] = []
        """Journal entries not yet expanded to dicts: bulk adjusts are kept compactly."""
        self.entries_applied = 0
        self.source = "api"
        """The ``source`` stamped on journal entries (see ``SiteStore.source``)."""

    def __repr__(self) -> str:
        return f"V3Store(site_id={self.site_id!r}, items={len(self._by_id)})"

    def __len__(self) -> int:
        return len(self._by_id)

    # --- inspection ----------------------------------------------------------------------

    def items(self) -> list[dict[str, Any]]:
        """Every item in the wire format, in id order (a snapshot)."""
        return [item.to_wire() for item in self._by_id.values()]

    def state_json(self) -> bytes:
        """``{"inventoryItems": [...]}`` with every item, in id order."""
        return (
            b'{"inventoryItems":['
            + b",".join([i.wire_json() for i in self._by_id.values()])
            + b"]}"
        )

    def find(self, item_id: str) -> V3Item | None:
        """The live record of one item (tests may read it; change it only through the API)."""
        return self._by_id.get(item_id)

    def at(self, variant_id: str, location_id: str | None = None) -> V3Item | None:
        """The item of a variant at a location (default: the default location)."""
        return self._by_place.get((variant_id, location_id or self.default_location))

    def has_ids(self, entries: Sequence[Adjust]) -> bool:
        """Whether every entry's inventory item id is one of this store's items."""
        return all(map(self._by_id.__contains__, map(_INVENTORY_ITEM_ID, entries)))

    def has_places(self, entries: Sequence[Adjust]) -> bool:
        """Whether every entry's variant has an item at its location (default: the default)."""
        places, default = self._by_place, self.default_location
        return all((e.variant_id, e.location_id or default) in places for e in entries)

    def records(self) -> list[V3Item]:
        return list(self._by_id.values())

    def _now(self) -> int:
        return int(self._wall_clock() * 1000)

    @property
    def journal(self) -> list[JournalEntry]:
        """Every applied V3 write (a ``migrateToV3`` entry first on a migrated site), in
        order. Bulk adjusts are kept compactly and expanded to dicts on first read, off the
        request path (appending to the list returned keeps the order)."""
        if self._pending:
            self._journal_entries.extend(
                JournalEntry(rid, endpoint, _expand(record, self._numbered), at, source)
                for rid, endpoint, record, at, source in self._pending
            )
            self._pending.clear()
        return self._journal_entries

    def _journal(
        self, rid: str, endpoint: str, entries: list[dict[str, Any]], source: str | None = None
    ) -> None:
        at = self._wall_clock()
        self._pending.append((rid, endpoint, entries, at, source or self.source))

    def edit_quantity(
        self, item_id: str, *, quantity: int | None = None, delta: int = 0
    ) -> tuple[int, int]:
        """A third party's edit of a tracked item's quantity (set, or add ``delta``; the
        result 0 to 99999): revision + 1, journaled as ``thirdPartyEdit`` (source
        ``third_party``, request id ``""``). Returns (before, after)."""
        item = self._by_id.get(item_id)
        if item is None:
            raise KeyError(f"no inventory item {item_id!r}")
        if not item.track:
            raise ValueError(f"inventory item {item_id!r} is not tracked by quantity")
        before = item.quantity
        after = before + delta if quantity is None else quantity
        if not 0 <= after <= 99_999:
            raise ValueError(f"quantity {after!r} (from {before} by {delta}): must be 0 to 99999")
        item.quantity = after
        item.touch(self._now())
        entry = {
            "inventoryItemId": item_id,
            "variantId": item.variant_id,
            "locationId": item.location_id,
            "quantityBefore": before,
            "quantityAfter": after,
        }
        self._journal("", "thirdPartyEdit", [entry], "third_party")
        return before, after

    def _changed(self, kind: str, item: V3Item, reason: str | None, rid: str) -> None:
        if self.listeners:  # the item's wire form only when someone listens
            change = V3Change(self.site_id, kind, item.to_wire(), reason, rid)
            for listener in list(self.listeners):
                listener(change)

    # --- reads ---------------------------------------------------------------------------

    def get(self, item_id: str) -> V3Item:
        item = self._by_id.get(item_id)
        if item is None:
            raise _not_found(item_id)
        return item

    def page(self, plan: Plan, limit: int, after: Sequence[Any] | None, backward: bool) -> Page:
        if indexable(plan):
            return run_sorted(plan, self._sorted_by(plan), limit, after, backward)
        return run(plan, self._by_id.values(), limit, after, backward)

    def offset_page(self, plan: Plan, limit: int, offset: int) -> list[V3Item]:
        return self._ordered(plan)[offset : offset + limit]

    def _ordered(self, plan: Plan) -> list[V3Item]:
        if indexable(plan):
            return ordered_sorted(plan, self._sorted_by(plan))
        return ordered(plan, self._by_id.values())

    def _sorted_by(self, plan: Plan) -> SortedItems:
        index = self._sorted.get(plan.sort)
        if index is None:
            index = self._sorted[plan.sort] = SortedItems(plan, self._by_id.values())
        return index

    # --- increments and decrements -------------------------------------------------------

    def adjust(
        self,
        endpoint: str,
        entries: Sequence[Adjust],
        *,
        decrementing: bool,
        restrict: bool,
        reason: str | None,
        rid: str,
        fault: ItemFault | None,
    ) -> Settled:
        """A bulk increment or decrement, settled entry by entry, in order, and journaled.

        The hot path of a V3 site: per entry one lookup, the usual case (tracked, enough
        stock, room below the cap) applied inline, anything else by the rule in
        :mod:`.v3_rules` (the inline test is that rule's no-refusal, no-preorder branch,
        checked against it by a property test); the journal keeps the batch compactly."""
        by_id = self._by_id
        now = self._now()
        listening = bool(self.listeners)
        targets: list[V3Item | None] = []
        befores: list[int] = []
        failed: dict[int, Refusal] = {}
        for index, entry in enumerate(entries):
            item_id = entry.inventory_item_id
            item = by_id.get(item_id) if item_id is not None else self._place(entry)
            targets.append(item)
            drawn = fault() if fault is not None else None
            if item is None:
                befores.append(0)
                failed[index] = _refused(drawn, _missing(entry), item_id)
                continue
            quantity = item.quantity
            befores.append(quantity)
            amount = entry.amount
            if drawn is not None:
                failed[index] = _refused(drawn, _INJECTED, item.id)
                continue
            if decrementing:
                if item.track and amount <= quantity:
                    item.quantity = quantity - amount
                    error = None
                else:
                    error = decrement(item, amount, preorder=entry.preorder, restrict=restrict)
            elif item.track and quantity >= 0 and quantity + amount <= MAX_QUANTITY:
                item.quantity = quantity + amount
                error = None
            else:
                error = increment(item, amount)
            if error is not None:
                failed[index] = (error, True, item.id)
                continue
            item.revision += 1  # V3Item.touch, inline
            if now > item.updated:
                item.updated = now
            item.json = None
            if listening:
                self._changed("updated", item, reason, rid)
        self.entries_applied += len(entries) - len(failed)
        record = _adjust_record(entries, targets, befores, failed, decrementing, reason)
        self._pending.append((rid, endpoint, record, self._wall_clock(), self.source))
        return Settled(targets, failed)

    def _place(self, entry: Adjust) -> V3Item | None:
        assert entry.variant_id is not None
        return self.at(entry.variant_id, entry.location_id)

    # --- updates -------------------------------------------------------------------------

    def update(self, item_id: str, change: ItemIn, reason: str | None, rid: str) -> V3Item:
        """Update Inventory Item: the sent ``revision`` must be the current one."""
        item = self.get(item_id)
        before = _stock(item)
        error = _revision_error(item, change) or self._update_one(item, change)
        if error is not None:
            raise application_error(error.status, error.code, error.description, error.data)
        record = _update_record(0, item_id, change, None, reason)
        self._journal(rid, "updateInventoryItem", [_with_stock(record, before, item)])
        self._changed("updated", item, reason, rid)
        return item

    def bulk_update(
        self, changes: Sequence[ItemIn], reason: str | None, rid: str, fault: ItemFault | None
    ) -> Settled:
        """Bulk Update Inventory Items: each entry checked and applied on its own."""
        targets: list[V3Item | None] = []
        failed: dict[int, Refusal] = {}
        journal: list[dict[str, Any]] = []
        for index, change in enumerate(changes):
            assert change.id is not None
            drawn = fault() if fault is not None else None
            item = self._by_id.get(change.id)
            targets.append(item)
            before = _stock(item) if item is not None else None
            if drawn is not None:
                error: ItemError | None = _INJECTED
            elif item is None:
                error = ItemError(
                    "NOT_FOUND",
                    f"no inventory item {change.id!r}",
                    {"inventoryItemId": change.id},
                    404,
                )
            else:
                error = _revision_error(item, change) or self._update_one(item, change)
            if error is not None:
                failed[index] = (error, drawn != "undetailed", change.id)
            elif item is not None:
                self._changed("updated", item, reason, rid)
            record = _update_record(index, change.id, change, error, reason)
            journal.append(_with_stock(record, before, item))
        self._journal(rid, "bulkUpdateInventoryItems", journal)
        return Settled(targets, failed)

    def update_by_filter(self, plan: Plan, change: ItemIn, rid: str) -> str:
        """Bulk Update Inventory Items By Filter: applied at once (no revision check); items a
        rule refuses are left as they were. Answers a job id."""
        journal: list[dict[str, Any]] = []
        for item in self._ordered(plan):
            before = _stock(item)
            error = self._update_one(item, change)
            if error is None:
                self._changed("updated", item, None, rid)
            record = _update_record(len(journal), item.id, change, error, None)
            journal.append(_with_stock(record, before, item))
        self._journal(rid, "bulkUpdateInventoryItemsByFilter", journal)
        return new_guid(self._rng)

    def _update_one(self, item: V3Item, change: ItemIn) -> ItemError | None:
        error = update(item, change)
        if error is None:
            item.touch(self._now())
            self.entries_applied += 1
        return error

    def delete(self, item_id: str, rid: str) -> None:
        """Delete Inventory Item."""
        item = self.get(item_id)
        self._changed("deleted", item, None, rid)
        del self._by_id[item_id]
        del self._by_place[(item.variant_id, item.location_id)]
        self._sorted.clear()
        record = {
            "inventoryItemId": item_id,
            "variantId": item.variant_id,
            "locationId": item.location_id,
            "productId": item.product_id,
            "quantityBefore": item.quantity if item.track else None,
        }
        self._journal(rid, "deleteInventoryItem", [record])


def _item_id(item: V3Item) -> str:
    return item.id


def _not_found(item_id: str) -> WixApiError:
    return application_error(
        404, "NOT_FOUND", f"no inventory item {item_id!r}", {"inventoryItemId": item_id}
    )


def _missing(entry: Adjust) -> ItemError:
    if entry.inventory_item_id is not None:
        text = f"no inventory item {entry.inventory_item_id!r}"
        return ItemError("NOT_FOUND", text, {"inventoryItemId": entry.inventory_item_id}, 404)
    data: dict[str, Any] = {"variantId": entry.variant_id, "locationId": entry.location_id}
    text = f"no inventory item for variant {entry.variant_id!r} at location {entry.location_id!r}"
    return ItemError("NOT_FOUND", text, data, 404)


def _revision_error(item: V3Item, change: ItemIn) -> ItemError | None:
    sent = str(change.revision)
    if sent != str(item.revision):
        text = f"revision {sent} is not the current revision {item.revision}: read the item again"
        data = {"inventoryItemId": item.id, "currentRevision": str(item.revision)}
        return ItemError("REVISION_MISMATCH", text, data, 409)
    return None


_AdjustRecord = tuple[bytes, bytes, bytes, bytes, bool, str | None, bytes, bytes]
"""A bulk adjust as journaled, in objects the garbage collector does not track (see
:mod:`.journal`): the numbers of the entries' items (-1: none), their quantities before,
the amounts and preorder flags (``journal.pack``ed; flags one byte each), whether it
decrements, its reason, then as JSON (``b""`` for none) ``[index, error code]`` of each
refused entry and ``[index, inventory item id, variant id, location id]`` as sent of each
entry naming no item. A flat tuple of atoms, as ``journal.BatchRecord``: one collection
untracks it."""

_Record = _AdjustRecord | list[dict[str, Any]]


def _adjust_record(
    entries: Sequence[Adjust],
    targets: list[V3Item | None],
    befores: list[int],
    failed: dict[int, Refusal],
    decrementing: bool,
    reason: str | None,
) -> _AdjustRecord:
    missing = [
        (index, entry.inventory_item_id, entry.variant_id, entry.location_id)
        for index, entry in ((index, entries[index]) for index in failed)
        if targets[index] is None
    ]
    flags = [entry.preorder for entry in entries] if decrementing else []
    refused = [(index, refusal[0].code) for index, refusal in failed.items()]
    return (
        pack([-1 if item is None else item.number for item in targets]),
        pack(befores),
        pack([entry.amount for entry in entries]),
        bytes(flags) if True in flags else bytes(len(flags)),
        decrementing,
        reason,
        _encode(refused) if refused else b"",
        _encode(missing) if missing else b"",
    )


def _expand(record: _Record, numbered: Sequence[V3Item]) -> list[dict[str, Any]]:
    if isinstance(record, list):
        return record
    numbers, befores, amounts, flags, decrementing, reason, refused, missing = record
    codes: dict[int, str] = dict(msgspec.json.decode(refused)) if refused else {}
    sent = {index: ids for index, *ids in msgspec.json.decode(missing)} if missing else {}
    out = []
    rows = zip(unpack(numbers), unpack(befores), unpack(amounts), strict=True)
    for index, (number, before, amount) in enumerate(rows):
        item = numbered[number] if number >= 0 else None
        code = codes.get(index)
        change = (-amount if decrementing else amount) if code is None else 0
        if item is not None:
            ids: tuple[str | None, ...] = (item.id, item.variant_id, item.location_id)
        else:
            ids = tuple(sent[index])
        entry: dict[str, Any] = {
            "originalIndex": index,
            "inventoryItemId": ids[0],
            "variantId": ids[1],
            "locationId": ids[2],
            "productId": item.product_id if item is not None else None,
            "decrementBy" if decrementing else "incrementBy": amount,
            "success": code is None,
            "change": change,
            "quantityBefore": before if item is not None else None,
            "quantityAfter": before + change if item is not None else None,
            "reason": reason,
        }
        if decrementing:
            entry["preorderRequest"] = bool(flags[index])
        if code is not None:
            entry["error"] = code
        out.append(entry)
    return out


def _refused(drawn: str | None, error: ItemError, item_id: str | None) -> Refusal:
    """An entry refused with ``error``, unless a fault was drawn for it (then the injected
    error, detailed unless the fault is ``undetailed``)."""
    if drawn is not None:
        return _INJECTED, drawn != "undetailed", item_id
    return error, True, item_id


def _stock(item: V3Item) -> int | None:
    """The quantity a conservation check follows: ``None`` while untracked."""
    return item.quantity if item.track else None


def _with_stock(record: dict[str, Any], before: int | None, item: V3Item | None) -> dict[str, Any]:
    """An update's journal entry with the tracked stock before and after it."""
    record["quantityBefore"] = before
    record["quantityAfter"] = _stock(item) if item is not None else None
    return record


def _update_record(
    index: int, item_id: str, change: ItemIn, error: ItemError | None, reason: str | None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "originalIndex": index,
        "inventoryItemId": item_id,
        "success": error is None,
        "reason": reason,
    }
    if change.revision is not None:
        record["revision"] = str(change.revision)
    if change.quantity is not None:
        record["quantity"] = change.quantity
    if change.in_stock is not None:
        record["inStock"] = change.in_stock
    if change.preorder_info is not None:
        info = change.preorder_info
        record["preorderInfo"] = {
            k: v
            for k, v in (
                ("enabled", info.enabled),
                ("message", info.message),
                ("limit", info.limit),
            )
            if v is not None
        }
    if error is not None:
        record["error"] = error.code
    return record


def check_update_shape(change: ItemIn, field: str) -> None:
    """A change sets at most one tracking method (``quantity`` or ``inStock``): else a 400."""
    if change.quantity is not None and change.in_stock is not None:
        raise validation_error([(field, "set quantity or inStock, not both (one tracking method)")])
