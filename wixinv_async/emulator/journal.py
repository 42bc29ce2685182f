"""Compact journal records of applied batches, expanded to wire dicts only when read.

A long benchmark applies thousands of 300-entry batches; keeping each request body (about
33 kB) made the process grow by hundreds of megabytes and cost more time in page faults than
the batch itself. A record instead keeps the applied variants' numbers in the store's index
and the amounts as packed 64-bit integers, and one byte per preorder flag, all in ``bytes``: a
few kB, and nothing the garbage collector tracks (an ``array`` is tracked; a tuple of bytes is
not), so it never walks a record (a list of 300 variants kept
per batch made each young-generation collection walk hundreds of thousands of old objects,
and a full collection of a 300-site emulator stalled it for over a second). Entries are
rebuilt in the wire form, normalized (``productId``, ``variantId``, the amount, and
``preorderRequest`` for decrements); a batch naming any entry by ``inventoryId`` keeps its
raw body instead, so the journal still shows exactly which id was sent.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence
from typing import Any, Final, cast

import msgspec

from .items import Variant
from .requests import DecrementEntry, IncrementEntry

__all__ = ["BatchRecord", "Record", "expand", "pack", "record_batch", "unpack"]

_FIELD: Final = {"decrementInventory": "decrementData", "incrementInventory": "incrementData"}
_AMOUNT_NAME: Final = {"decrementInventory": "decrementBy", "incrementInventory": "incrementBy"}


BatchRecord = tuple[bytes, bytes, bytes]
"""One applied increment or decrement batch, compactly: (numbers, amounts, preorder flags);
entry ``i`` changed variant number ``unpack(numbers)[i]`` (``Index.variants``) by
``unpack(amounts)[i]``. A plain tuple: the collector stops tracking a tuple of untracked
objects, but never a NamedTuple."""


Record = BatchRecord | bytes | Sequence[Any]
"""A batch record, a raw request body, or entries to convert with ``msgspec.to_builtins``."""


def record_batch(
    endpoint: str,
    applied: Sequence[Variant],
    entries: Sequence[DecrementEntry | IncrementEntry],
    raw: bytes | None,
) -> Record:
    """The journal record of an applied batch."""
    count = len(entries)
    if [entry.inventory_id for entry in entries].count(None) != count:
        return raw if raw is not None else list(entries)
    if endpoint == "decrementInventory":
        decrements = cast("Sequence[DecrementEntry]", entries)
        amounts = [entry.decrement_by for entry in decrements]
        flags = [entry.preorder_request for entry in decrements]
        preorder = bytes(flags) if True in flags else bytes(count)
    else:
        amounts = [entry.increment_by for entry in cast("Sequence[IncrementEntry]", entries)]
        preorder = b""
    return pack([variant.number for variant in applied]), pack(amounts), preorder


def pack(numbers: Sequence[int]) -> bytes:
    """64-bit integers as ``bytes`` (which the garbage collector does not track), in the
    layout :func:`unpack` reads."""
    return struct.pack(f"{len(numbers)}q", *numbers)


def unpack(packed: bytes) -> array[int]:
    array_ = array("q")
    array_.frombytes(packed)
    return array_


def expand(endpoint: str, record: Record, variants: Sequence[Variant]) -> list[dict[str, Any]]:
    """The entries of a record, as wire dicts (``variants``: the store's, by number)."""
    if isinstance(record, tuple):
        return _expand_batch(endpoint, record, variants)
    if isinstance(record, bytes):
        decoded: list[dict[str, Any]] = msgspec.json.decode(record)[_FIELD[endpoint]]
        return decoded
    converted: list[dict[str, Any]] = msgspec.to_builtins(record)
    return converted


def _expand_batch(
    endpoint: str, record: BatchRecord, variants: Sequence[Variant]
) -> list[dict[str, Any]]:
    name = _AMOUNT_NAME[endpoint]
    out = []
    numbers, amounts, preorder = record
    pairs = zip(unpack(numbers), unpack(amounts), strict=True)
    for index, (number, amount) in enumerate(pairs):
        variant = variants[number]
        assert variant.item is not None
        entry: dict[str, Any] = {
            "productId": variant.item.product_id,
            "variantId": variant.variant_id,
            name: amount,
        }
        if preorder:
            entry["preorderRequest"] = bool(preorder[index])
        out.append(entry)
    return out
