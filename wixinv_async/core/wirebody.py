"""A V1 batch's request body written straight from the table's entries, with no event loop.

The body of ``decrement_inventory`` is ``{"decrementData":[e1,e2,...]}``, and each ``e`` is
what msgspec writes for that entry's :class:`~wixinv_async.models.DecrementData` (the same for
increments). So a body is the join of per-entry fragments, and the fragment of an entry
depends only on its key and its net: a key's fragment for a net, once encoded from its wire
struct, is remembered and reused by every later batch that sends that key with that net. The
body is then byte for byte what encoding the request struct writes (the wire tests compare
them), without a struct per entry.

Fragments are shared by every writer of the process (a stream's keys and nets recur: most
entries at full budget carry a net of one or two) and start over when ``_LIMIT`` are held, as
the table's key caches do. A key no cache holds costs what a struct and its encoding cost.

A Catalog V3 bulk body is written the same way (:func:`bulk_entries`): ``decrementData`` or
``incrementData`` of per-entry fragments, by variant and location or by inventory item id;
:func:`~wixinv_async.inventory_v3.bulk_adjust_body` wraps them with the request's options.
Only entries sent by their own key's variant id are held (a variant learnt from a SKU search
may change: it is encoded afresh each time).

An entry whose ids cannot be encoded (a lone surrogate, which only ``validate=False`` lets
through) raises here as msgspec does; the caller then builds the structs, whose encoding names
the entry in an :class:`~wixinv_async.errors.InvalidInputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import msgspec
from msgspec import UNSET

from ..models import DecrementData, IncrementData
from ..models_v3 import (
    DecrementDataById,
    DecrementDataByVariantAndLocation,
    IncrementDataById,
    IncrementDataByVariantAndLocation,
)
from .table import Entry, Key, key_location

__all__ = ["ENCODE_ERRORS", "bulk_entries", "decrement_body", "increment_body"]

ENCODE_ERRORS: Final = (TypeError, ValueError, OverflowError, msgspec.EncodeError)
"""What encoding an entry's ids can raise."""

_ENCODER: Final = msgspec.json.Encoder()
_LIMIT: Final = 1 << 16
"""Fragments held at most (about 15 MB with their dictionaries)."""

Fragments = dict[int, dict[Key, bytes]]
"""Fragments by net, then by key."""

_DOWN: Final[Fragments] = {}
_UP: Final[Fragments] = {}
_V3_DOWN: Final[Fragments] = {}
"""V3 decrements by variant and location (the key's own variant)."""
_V3_UP: Final[Fragments] = {}
_V3_DOWN_ID: Final[Fragments] = {}
_V3_UP_ID: Final[Fragments] = {}
_ALL: Final = (_DOWN, _UP, _V3_DOWN, _V3_UP, _V3_DOWN_ID, _V3_UP_ID)
_HELD = [0]


def decrement_body(entries: Sequence[Entry], extra: DecrementData | None = None) -> bytes:
    """The body of a decrement batch of ``entries`` (all with a negative net), and ``extra``
    last (a witness entry)."""
    return _body(b'{"decrementData":[', _DOWN, _decrement_fragment, entries, extra)


def increment_body(entries: Sequence[Entry], extra: IncrementData | None = None) -> bytes:
    """The body of an increment batch of ``entries`` (all with a positive net), and ``extra``
    last (a witness entry)."""
    return _body(b'{"incrementData":[', _UP, _increment_fragment, entries, extra)


def _body(
    head: bytes,
    fragments: Fragments,
    encode: Callable[[Key, int], bytes],
    entries: Sequence[Entry],
    extra: DecrementData | IncrementData | None,
) -> bytes:
    try:
        parts = [fragments[e.net].get(e.key) for e in entries]
    except KeyError:  # a net no batch had yet
        for entry in entries:
            fragments.setdefault(entry.net, {})
        parts = [fragments[e.net].get(e.key) for e in entries]
    if None in parts:
        _fill(parts, fragments, encode, entries)
    if extra is not None:
        parts.append(_ENCODER.encode(extra))
    return head + b",".join(parts) + b"]}"  # type: ignore[arg-type]  # no None is left


def _fill(
    parts: list[bytes | None],
    fragments: Fragments,
    encode: Callable[[Key, int], bytes],
    entries: Sequence[Entry],
) -> None:
    """Encode the fragments not held yet (``None`` in ``parts``), and hold them."""
    at = parts.index(None)
    while True:
        entry = entries[at]
        part = parts[at] = encode(entry.key, entry.net)
        _hold(fragments, entry, part)
        try:
            at = parts.index(None, at + 1)
        except ValueError:
            return


def _hold(fragments: Fragments, entry: Entry, part: bytes) -> None:
    """Hold ``part`` as ``entry``'s fragment; every store starts over at ``_LIMIT`` held."""
    if _HELD[0] >= _LIMIT:
        for held in _ALL:
            for by_key in held.values():
                by_key.clear()
        _HELD[0] = 0
    fragments[entry.net][entry.key] = part
    _HELD[0] += 1


def _decrement_fragment(key: Key, net: int) -> bytes:
    """What msgspec writes for the entry (``preorderRequest`` from the key)."""
    if key[1] is None:
        data = DecrementData(
            product_id=key[0], variant_id=key[2], decrement_by=-net, preorder_request=key[3]
        )
    else:
        data = DecrementData(
            inventory_id=key[1], variant_id=key[2], decrement_by=-net, preorder_request=key[3]
        )
    return _ENCODER.encode(data)


def _increment_fragment(key: Key, net: int) -> bytes:
    """What msgspec writes for the entry (an absent id left to its ``UNSET`` default)."""
    if key[1] is None:
        data = IncrementData(product_id=key[0], variant_id=key[2], increment_by=net)
    else:
        data = IncrementData(inventory_id=key[1], variant_id=key[2], increment_by=net)
    return _ENCODER.encode(data)


# --- Catalog V3 bulk entries --------------------------------------------------------------


def bulk_entries(
    group: Sequence[tuple[Entry, str]],
    *,
    decrement: bool,
    check: Callable[[object, int], None],
    own: bool = False,
) -> bytes:
    """The joined entries of a V3 bulk body (what goes between ``[`` and ``]``): by variant
    and location when the variants are non-empty (the writer's group: each entry with the
    variant it goes out for), else by inventory item id. ``check(struct, index)`` is called on
    every entry not held yet and may raise (a held fragment was checked, or its ids were the
    table's, when it was first encoded). ``own``: the caller
    knows every variant is its key's own (the comparison is skipped)."""
    by_variant = bool(group[0][1])
    if by_variant:
        fragments = _V3_DOWN if decrement else _V3_UP
        encode = _v3_variant_decrement if decrement else _v3_variant_increment
    else:
        fragments = _V3_DOWN_ID if decrement else _V3_UP_ID
        encode = _v3_id_decrement if decrement else _v3_id_increment
    own = own or not by_variant  # an id names the key's own item
    try:
        parts = _held_v3(fragments, group, own)
    except KeyError:  # a net no batch had yet
        for entry, _ in group:
            fragments.setdefault(entry.net, {})
        parts = _held_v3(fragments, group, own)
    if None in parts:
        _fill_v3(parts, fragments, group, encode, check, by_variant=by_variant)
    return b",".join(parts)  # type: ignore[arg-type]  # no None is left


def _held_v3(
    fragments: Fragments, group: Sequence[tuple[Entry, str]], own: bool
) -> list[bytes | None]:
    """The held fragment of each entry, ``None`` where there is none or the entry goes out
    for another variant than its key's (``own``: none does, so nothing is compared)."""
    if own:
        return [fragments[e.net].get(e.key) for e, _ in group]
    return [fragments[e.net].get(e.key) if v == e.key[2] else None for e, v in group]


_V3Struct = (
    DecrementDataById
    | IncrementDataById
    | DecrementDataByVariantAndLocation
    | IncrementDataByVariantAndLocation
)


def _fill_v3(
    parts: list[bytes | None],
    fragments: Fragments,
    group: Sequence[tuple[Entry, str]],
    encode: Callable[[Entry, str], _V3Struct],
    check: Callable[[object, int], None],
    *,
    by_variant: bool,
) -> None:
    """Encode the fragments not held yet; hold those of entries sent by their own ids."""
    for at, part in enumerate(parts):
        if part is not None:
            continue
        entry, variant = group[at]
        data = encode(entry, variant)
        check(data, at)
        own = by_variant and variant == entry.key[2]
        part = parts[at] = _ENCODER.encode(data)
        if own or not by_variant:
            _hold(fragments, entry, part)


def _v3_location(key: Key) -> str | object:
    location = key_location(key)
    return UNSET if location is None else location


def _v3_variant_decrement(entry: Entry, variant: str) -> _V3Struct:
    key = entry.key
    return DecrementDataByVariantAndLocation(
        variant_id=variant,
        location_id=_v3_location(key),  # type: ignore[arg-type]
        decrement_by=-entry.net,
        preorder_request=True if key[3] is True else UNSET,
    )


def _v3_variant_increment(entry: Entry, variant: str) -> _V3Struct:
    return IncrementDataByVariantAndLocation(
        variant_id=variant,
        location_id=_v3_location(entry.key),  # type: ignore[arg-type]
        increment_by=entry.net,
    )


def _v3_id_decrement(entry: Entry, variant: str) -> _V3Struct:
    key = entry.key
    return DecrementDataById(
        inventory_item_id=key[1],
        decrement_by=-entry.net,
        preorder_request=True if key[3] is True else UNSET,
    )


def _v3_id_increment(entry: Entry, variant: str) -> _V3Struct:
    return IncrementDataById(inventory_item_id=entry.key[1], increment_by=entry.net)
