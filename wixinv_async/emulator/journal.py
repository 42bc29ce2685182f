"""Compact journal records of applied batches, expanded to wire dicts only when read.

A long benchmark applies thousands of 300-entry batches; keeping each request body (about
33 kB) made the process grow by hundreds of megabytes and cost more time in page faults than
the batch itself. A record instead keeps the applied variants (the list the batch already
built), the amounts as a packed array and one byte per preorder flag: a few kB. Entries are
rebuilt in the wire form, normalized (``productId``, ``variantId``, the amount, and
``preorderRequest`` for decrements); a batch naming any entry by ``inventoryId`` keeps its
raw body instead, so the journal still shows exactly which id was sent.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import msgspec

from .items import Variant
from .requests import DecrementEntry, IncrementEntry

__all__ = ["BatchRecord", "Record", "expand", "record_batch"]

_AMOUNT: Final = {
    "decrementInventory": operator.attrgetter("decrement_by"),
    "incrementInventory": operator.attrgetter("increment_by"),
}
_FIELD: Final = {"decrementInventory": "decrementData", "incrementInventory": "incrementData"}
_AMOUNT_NAME: Final = {"decrementInventory": "decrementBy", "incrementInventory": "incrementBy"}
_INVENTORY_ID: Final = operator.attrgetter("inventory_id")
_PREORDER: Final = operator.attrgetter("preorder_request")


class BatchRecord(NamedTuple):
    """One applied increment or decrement batch, compactly."""

    variants: Sequence[Variant]
    amounts: array[int]
    preorder: bytes


Record = BatchRecord | bytes | Sequence[Any]
"""A batch record, a raw request body, or entries to convert with ``msgspec.to_builtins``."""


def record_batch(
    endpoint: str,
    applied: Sequence[Variant],
    entries: Sequence[DecrementEntry | IncrementEntry],
    raw: bytes | None,
) -> Record:
    """The journal record of an applied batch."""
    if any(map(_INVENTORY_ID, entries)):
        return raw if raw is not None else list(entries)
    amounts = array("q", map(_AMOUNT[endpoint], entries))
    preorder = bytes(map(_PREORDER, entries)) if endpoint == "decrementInventory" else b""
    return BatchRecord(applied, amounts, preorder)


def expand(endpoint: str, record: Record) -> list[dict[str, Any]]:
    """The entries of a record, as wire dicts."""
    if isinstance(record, BatchRecord):
        return _expand_batch(endpoint, record)
    if isinstance(record, bytes):
        decoded: list[dict[str, Any]] = msgspec.json.decode(record)[_FIELD[endpoint]]
        return decoded
    converted: list[dict[str, Any]] = msgspec.to_builtins(record)
    return converted


def _expand_batch(endpoint: str, record: BatchRecord) -> list[dict[str, Any]]:
    name = _AMOUNT_NAME[endpoint]
    out = []
    for index, (variant, amount) in enumerate(zip(record.variants, record.amounts, strict=True)):
        assert variant.item is not None
        entry: dict[str, Any] = {
            "productId": variant.item.product_id,
            "variantId": variant.variant_id,
            name: amount,
        }
        if record.preorder:
            entry["preorderRequest"] = bool(record.preorder[index])
        out.append(entry)
    return out
