"""Client-side checks of what the API would refuse, so bad input fails before it is sent.

Each check raises :class:`~wixinv_async.errors.InvalidInputError` naming the field, the value
and, in a batch, the entry index.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from msgspec import UNSET

from ..errors import InvalidInputError, OffsetLimitError
from ..models import (
    MAX_BATCH,
    MAX_ID_LENGTH,
    MAX_OFFSET_ITEMS,
    MAX_PAGE_LIMIT,
    MAX_QUANTITY,
    DecrementData,
    IncrementData,
    VariantUpdate,
)
from ..settings import is_int

__all__ = [
    "all_guids",
    "all_short_ids",
    "check_amount",
    "check_batch_size",
    "check_entity_id",
    "check_entries",
    "check_entry",
    "check_page_limit",
    "check_page_offset",
    "check_variant_id",
    "check_variant_ids",
    "check_variant_updates",
    "is_guid",
]

_HEX = "[0-9a-fA-F]"
_GUID: Final = re.compile(f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}")


def is_guid(value: object) -> bool:
    """Whether ``value`` is a GUID string such as ``00000000-0000-0000-0000-000000000000``."""
    return isinstance(value, str) and _GUID.fullmatch(value) is not None


def check_entity_id(field: str, value: object, *, index: int | None = None) -> str:
    """A productId or inventoryId: a non-empty string of at most 36 characters."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(field, value, "must be a non-empty string", index=index)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(
            field, value, f"must be at most {MAX_ID_LENGTH} characters", index=index
        )
    if not value.isascii() and not _encodable(value):
        raise InvalidInputError(
            field,
            value,
            "must be Unicode text that UTF-8 can encode (no lone surrogate)",
            index=index,
        )
    return value


def _encodable(text: str) -> bool:
    """Whether ``text`` can go into a JSON body (a lone surrogate cannot: the body would fail
    to encode, after the batch had been accepted)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_variant_id(value: object, *, index: int | None = None, field: str = "variantId") -> str:
    """A variantId: a GUID."""
    if not is_guid(value):
        raise InvalidInputError(field, value, "must be a GUID", index=index)
    assert isinstance(value, str)
    return value


def check_amount(field: str, value: object, *, index: int | None = None) -> int:
    """An incrementBy or decrementBy: an int (not a bool) from 1 to 99999."""
    if not is_int(value):
        raise InvalidInputError(field, value, "must be an int", index=index)
    if not 1 <= value <= MAX_QUANTITY:
        raise InvalidInputError(field, value, f"must be from 1 to {MAX_QUANTITY}", index=index)
    return value


def check_batch_size(field: str, size: int) -> None:
    """A batch holds 1 to 300 entries."""
    if not 1 <= size <= MAX_BATCH:
        raise InvalidInputError(field, size, f"must hold 1 to {MAX_BATCH} entries")


def check_page_limit(value: object) -> int:
    """A paging.limit: an int from 1 to 100."""
    if not is_int(value) or not 1 <= value <= MAX_PAGE_LIMIT:
        raise InvalidInputError("paging.limit", value, f"must be an int from 1 to {MAX_PAGE_LIMIT}")
    return value


def check_page_offset(offset: object, limit: int) -> int:
    """An offset whose page ends within the first 10,000 items (``limit`` checked already)."""
    if not is_int(offset) or offset < 0:
        raise InvalidInputError("paging.offset", offset, "must be an int >= 0")
    if offset + limit > MAX_OFFSET_ITEMS:
        raise OffsetLimitError(
            f"paging.offset={offset} with limit={limit} reaches past the {MAX_OFFSET_ITEMS} "
            "items Wix serves by offset; crawl by numericId (crawl_inventory) instead"
        )
    return offset


def check_variant_ids(variant_ids: Sequence[str]) -> list[str]:
    """Get Inventory Variants' ``variantIds``: a list (not a string) of GUIDs."""
    if isinstance(variant_ids, str):
        raise InvalidInputError("variantIds", variant_ids, "must be a list of GUIDs")
    return [
        check_variant_id(value, index=index, field="variantIds")
        for index, value in enumerate(variant_ids)
    ]


def check_variant_updates(variants: Sequence[VariantUpdate]) -> list[VariantUpdate]:
    """Update Inventory Variants' ``variants``: VariantUpdates with GUIDs and quantities from 0
    to 99999."""
    for index, variant in enumerate(variants):
        if not isinstance(variant, VariantUpdate):
            raise InvalidInputError("variants", variant, "must be a VariantUpdate", index=index)
        check_variant_id(variant.variant_id, index=index)
        quantity = variant.quantity
        if quantity is not UNSET and (not is_int(quantity) or not 0 <= quantity <= MAX_QUANTITY):
            raise InvalidInputError(
                "quantity", quantity, f"must be an int from 0 to {MAX_QUANTITY}", index=index
            )
    return list(variants)


# --- whole batches ----------------------------------------------------------------------------


def check_entries(
    field: str,
    entries: Sequence[IncrementData] | Sequence[DecrementData],
    entry_type: type[IncrementData] | type[DecrementData],
    amount_field: str,
) -> None:
    """The checks Wix would apply to an increment or decrement batch.

    A batch-wide fast path (a few C-level scans per field) accepts the common all-valid batch;
    anything it cannot vouch for is checked entry by entry, which names the first offending
    index, field and value. This runs for every batch a caller sends, so its cost is measured
    (``benchmarks/bench_client.py``, about 55 µs for 300 entries).
    """
    if isinstance(entries, str | bytes) or not isinstance(entries, Sequence):
        raise InvalidInputError(field, entries, "must be a sequence of entries")
    check_batch_size(field, len(entries))
    if _plainly_valid(entries, entry_type):
        return
    for index, entry in enumerate(entries):
        if type(entry) is not entry_type:
            raise InvalidInputError(field, entry, f"must be a {entry_type.__name__}", index=index)
        check_entry(entry, index, amount_field)


def check_entry(entry: IncrementData | DecrementData, index: int, amount_field: str) -> None:
    """One increment or decrement entry; the error names ``index``."""
    product_id, inventory_id = entry.product_id, entry.inventory_id
    if (product_id is UNSET) == (inventory_id is UNSET):
        raise InvalidInputError(
            "productId", product_id, "give exactly one of productId and inventoryId", index=index
        )
    if product_id is not UNSET:
        check_entity_id("productId", product_id, index=index)
    else:
        check_entity_id("inventoryId", inventory_id, index=index)
    check_variant_id(entry.variant_id, index=index)
    amount = entry.increment_by if isinstance(entry, IncrementData) else entry.decrement_by
    check_amount(amount_field, amount, index=index)
    if isinstance(entry, DecrementData) and not isinstance(entry.preorder_request, bool):
        raise InvalidInputError(
            "preorderRequest", entry.preorder_request, "must be a bool", index=index
        )


_INT_ONLY: Final = {int}
_BOOL_ONLY: Final = {bool}


def _plainly_valid(entries: Sequence[Any], entry_type: type) -> bool:
    """Whether every entry is certainly valid: all of ``entry_type``, all by productId or all
    by inventoryId, ids of 1 to 36 characters, GUID variant ids, amounts from 1 to 99999.
    ``False`` means "check entry by entry", not "invalid". Type checks are C-level scans
    (``str.join`` refuses non-strings; ``set(map(type, ...))`` tells ``bool`` from ``int``)."""
    if set(map(type, entries)) != {entry_type} or not _ids_valid(entries):
        return False
    if not all_guids([entry.variant_id for entry in entries]):
        return False
    amounts: list[int]
    if entry_type is DecrementData:
        amounts = [entry.decrement_by for entry in entries]
        # Nearly every entry says False: only the others need their type looked at.
        flags = [flag for entry in entries if (flag := entry.preorder_request) is not False]
        if flags and set(map(type, flags)) != _BOOL_ONLY:
            return False
    else:
        amounts = [entry.increment_by for entry in entries]
    if set(map(type, amounts)) != _INT_ONLY:
        return False
    return min(amounts) >= 1 and max(amounts) <= MAX_QUANTITY


def _ids_valid(entries: Sequence[Any]) -> bool:
    """Whether every entry names its item by a valid productId, or every one by a valid
    inventoryId (``count`` finds ``UNSET`` by identity, at C speed)."""
    product_ids = [entry.product_id for entry in entries]
    if all_short_ids(product_ids):
        return [entry.inventory_id for entry in entries].count(UNSET) == len(entries)
    if product_ids.count(UNSET) == len(entries):
        return all_short_ids([entry.inventory_id for entry in entries])
    return False


def all_short_ids(values: list[Any]) -> bool:
    """Whether every value is a string of 1 to 36 characters (a productId or inventoryId).

    Ids of one length (Wix's are GUIDs) are proved in three C-level scans instead of a ``len``
    per value: joined by newlines, ``n`` ids of width ``w`` make ``(w + 1) * n - 1`` characters
    with exactly ``n - 1`` newlines, all at offsets ``w, 2w + 1, ...``, which leaves no room for
    a newline inside an id or an id of another width.
    """
    if not values:
        return True
    try:
        joined = "\n".join(values)  # refuses anything but strings, at C speed
    except TypeError:
        return False
    if not joined.isascii() and not _encodable(joined):
        return False
    count, width = len(values), len(values[0])
    if (
        0 < width <= MAX_ID_LENGTH
        and len(joined) == (width + 1) * count - 1
        and joined.count("\n") == count - 1
        and joined[width :: width + 1] == "\n" * (count - 1)
    ):
        return True
    return "" not in values and max(map(len, values)) <= MAX_ID_LENGTH


_HEX_DIGITS: Final = b"0123456789abcdefABCDEF"
_GUID_DASHES: Final = (8, 13, 18, 23)


def all_guids(values: list[Any]) -> bool:
    """Whether every value is a GUID string, in a few C-level scans instead of one regex match
    per value (about 5 times faster).

    Joined by newlines, ``n`` GUIDs make ``37 * n - 1`` ASCII characters with a ``-`` at
    offsets 8, 13, 18 and 23 and a newline at offset 36 of every 37, and, once the hex digits
    are deleted, exactly ``n`` times ``----`` and ``n - 1`` newlines remain: so no other dash or
    newline, and every other character is a hex digit. Conversely any value that is no GUID
    breaks one of these.
    """
    count = len(values)
    if not count:
        return True
    try:
        joined = "\n".join(values)
    except TypeError:  # not all strings
        return False
    if len(joined) != 37 * count - 1 or not joined.isascii():
        return False
    raw = joined.encode()
    dashes = b"-" * count
    if any(raw[offset::37] != dashes for offset in _GUID_DASHES):
        return False
    if raw[36::37] != b"\n" * (count - 1):
        return False
    return raw.translate(None, _HEX_DIGITS) == (b"----\n" * count)[:-1]
