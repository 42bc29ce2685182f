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

An entry whose ids cannot be encoded (a lone surrogate, which only ``validate=False`` lets
through) raises here as msgspec does; the caller then builds the structs, whose encoding names
the entry in an :class:`~wixinv_async.errors.InvalidInputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from ..models import DecrementData, IncrementData
from .table import Entry, Key

__all__ = ["ENCODE_ERRORS", "decrement_body", "increment_body"]

ENCODE_ERRORS: Final = (TypeError, ValueError, OverflowError, msgspec.EncodeError)
"""What encoding an entry's ids can raise."""

_ENCODER: Final = msgspec.json.Encoder()
_LIMIT: Final = 1 << 16
"""Fragments held at most (about 15 MB with their dictionaries)."""

Fragments = dict[int, dict[Key, bytes]]
"""Fragments by net, then by key."""

_DOWN: Final[Fragments] = {}
_UP: Final[Fragments] = {}
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
        if _HELD[0] >= _LIMIT:
            for held in (_DOWN, _UP):
                for by_key in held.values():
                    by_key.clear()
            _HELD[0] = 0
        fragments[entry.net][entry.key] = part
        _HELD[0] += 1
        try:
            at = parts.index(None, at + 1)
        except ValueError:
            return


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
