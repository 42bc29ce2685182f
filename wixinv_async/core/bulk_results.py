"""One result per request entry from a V3 bulk answer: applied, refused, or unknown.

A Catalog V3 bulk write answers HTTP 200 with ``results[].itemMetadata {id, originalIndex,
success, error}`` and ``bulkActionMetadata``; the official SDK hands that back unchecked. Here
each request entry gets exactly one :class:`BulkItemResult`, in request order, matched by
``originalIndex``. The verdict table (``match_results``)::

    results naming index i                       entry i
    ---------------------------------------------------------------------------------
    none (undetailed failures, a lost body, ...)  UNKNOWN   (it may have been applied)
    two or more                                   UNKNOWN   (which one is true?)
    one, success true, no error, id as expected   APPLIED
    one, success false                            REFUSED   (error.code; None if absent)
    one, anything else (success missing or not a  UNKNOWN
      bool, success true with an error, an id
      that is not the entry's)
    a result without a usable originalIndex       matches no entry (malformed; ignored)

So an entry is APPLIED only on an explicit, well-formed, unique success, and nothing is ever
matched by position. Pure code: no I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from msgspec import UNSET

from ..models_v3 import (
    BulkActionMetadata,
    BulkAdjustResponse,
    BulkAnswer,
    InventoryItemV3,
    WireBulkResult,
)

__all__ = ["BulkItemResult", "BulkItemStatus", "BulkResult", "match_results", "parse_bulk_body"]

_RESULT_DECODER: Final = msgspec.json.Decoder(WireBulkResult)
_ANSWER_DECODER: Final = msgspec.json.Decoder(BulkAnswer)
_METADATA_DECODER: Final = msgspec.json.Decoder(BulkActionMetadata)


class BulkItemStatus(enum.Enum):
    """What happened to one entry of a V3 bulk write."""

    APPLIED = "applied"
    """The server reported this entry done."""
    REFUSED = "refused"
    """The server reported this entry failed: not applied (``code`` says why)."""
    UNKNOWN = "unknown"
    """No trustworthy answer for this entry: it may or may not have been applied."""


class BulkItemResult(msgspec.Struct, frozen=True, gc=False):
    """The result of request entry ``index`` (immutable, compared and hashed by value).

    A frozen msgspec Struct rather than a frozen dataclass: a bulk answer makes one per entry,
    and a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, an
    order of magnitude dearer. It holds only decoded JSON, strings and enums, never a cycle,
    so the cycle collector need not track it (``gc=False``).

    ``inventory_item_id``: the item the server named (``itemMetadata.id``), if any. ``code``,
    ``description``, ``data``: the error of a REFUSED entry. ``item``: the updated item, when
    the request asked for ``return_entity``. ``reason``: for UNKNOWN, why no verdict could be
    drawn (``"no result"``, ``"duplicate index"``, ``"malformed result"``, ...).
    """

    index: int
    status: BulkItemStatus
    inventory_item_id: str | None = None
    code: str | None = None
    description: str | None = None
    data: Any = None
    item: InventoryItemV3 | None = None
    reason: str | None = None

    @property
    def applied(self) -> bool:
        return self.status is BulkItemStatus.APPLIED


@dataclass(frozen=True, slots=True)
class BulkResult:
    """One bulk write's results, one per request entry in request order, with the server's
    ``metadata`` (``None`` if absent or malformed) and ``request_id``."""

    results: tuple[BulkItemResult, ...]
    metadata: BulkActionMetadata | None = None
    request_id: str | None = None

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> BulkItemResult:
        return self.results[index]

    @property
    def applied(self) -> list[BulkItemResult]:
        return [r for r in self.results if r.status is BulkItemStatus.APPLIED]

    @property
    def refused(self) -> list[BulkItemResult]:
        return [r for r in self.results if r.status is BulkItemStatus.REFUSED]

    @property
    def unknown(self) -> list[BulkItemResult]:
        return [r for r in self.results if r.status is BulkItemStatus.UNKNOWN]

    @property
    def all_applied(self) -> bool:
        return all(r.status is BulkItemStatus.APPLIED for r in self.results)


def match_results(
    count: int,
    results: Sequence[WireBulkResult | None],
    *,
    expected_ids: Sequence[str | None] | None = None,
) -> tuple[BulkItemResult, ...]:
    """One result per entry ``0..count-1`` (the verdict table in the module docstring).

    ``results`` are the answer's elements (``None`` for one that did not decode);
    ``expected_ids[i]``, when given and not ``None``, is the inventory item id entry ``i``
    names: a result naming another id is not trusted."""
    ordered = _in_order(results, count, expected_ids)
    if ordered is not None:  # the usual answer: result i claims entry i, once each
        return ordered
    claims: dict[int, list[WireBulkResult]] = {}
    for result in results:
        index = _index_of(result, count)
        if index is not None:
            assert result is not None
            claims.setdefault(index, []).append(result)
    verdicts = []
    for index in range(count):
        found = claims.get(index, [])
        expected = expected_ids[index] if expected_ids is not None else None
        if not found:
            verdicts.append(BulkItemResult(index, BulkItemStatus.UNKNOWN, reason="no result"))
        elif len(found) > 1:
            verdicts.append(BulkItemResult(index, BulkItemStatus.UNKNOWN, reason="duplicate index"))
        else:
            verdicts.append(_verdict(index, found[0], expected))
    return tuple(verdicts)


def parse_bulk_body(
    count: int,
    body: bytes,
    *,
    expected_ids: Sequence[str | None] | None = None,
    request_id: str | None = None,
) -> BulkResult:
    """The :class:`BulkResult` of a 2xx bulk answer's ``body``. A body that is not a JSON
    object with a ``results`` list (empty, lost, garbled) leaves every entry UNKNOWN."""
    decoded: Sequence[WireBulkResult | None]
    try:
        whole = _ANSWER_DECODER.decode(body)  # the usual answer, decoded in one pass
    except msgspec.DecodeError:
        decoded, metadata = _lenient(body)
    else:
        decoded = whole.results if whole.results is not UNSET else []
        found = whole.bulk_action_metadata
        metadata = found if found is not UNSET else None
    matched = match_results(count, decoded, expected_ids=expected_ids)
    return BulkResult(matched, metadata, request_id)


def _lenient(body: bytes) -> tuple[list[WireBulkResult | None], BulkActionMetadata | None]:
    """An answer with a malformed part, decoded part by part: a result that does not decode
    is ``None`` (it matches no entry), metadata that does not is ``None``."""
    try:
        envelope = msgspec.json.decode(body, type=BulkAdjustResponse)
    except msgspec.DecodeError:
        envelope = BulkAdjustResponse()
    raw_results = envelope.results if envelope.results is not UNSET else []
    decoded = [_decode_one(raw) for raw in raw_results]
    metadata = None
    if envelope.bulk_action_metadata is not UNSET:
        try:
            metadata = _METADATA_DECODER.decode(envelope.bulk_action_metadata)
        except msgspec.DecodeError:
            metadata = None
    return decoded, metadata


def _decode_one(raw: msgspec.Raw) -> WireBulkResult | None:
    try:
        return _RESULT_DECODER.decode(raw)
    except msgspec.DecodeError:
        return None


def _in_order(
    results: Sequence[WireBulkResult | None],
    count: int,
    expected_ids: Sequence[str | None] | None,
) -> tuple[BulkItemResult, ...] | None:
    """The verdicts when result ``i`` is well formed enough to claim entry ``i``, for every
    entry (each entry then has exactly one claim); ``None`` when one is not. An explicit,
    well-formed success naming the expected id (or none) is APPLIED here, in the same pass;
    any other result gets :func:`_verdict`."""
    if len(results) != count:
        return None
    ids = expected_ids if expected_ids is not None else [None] * count
    verdicts: list[BulkItemResult] = []
    applied = BulkItemStatus.APPLIED
    for position, result, expected in zip(range(count), results, ids, strict=True):
        if result is None:
            return None
        meta = result.item_metadata
        if meta is UNSET:
            return None
        index = meta.original_index
        if type(index) is not int or index != position:
            return None
        if meta.success is True and meta.error is UNSET:
            named = meta.id if isinstance(meta.id, str) and meta.id else None
            if expected is None or named is None or named == expected:
                item = result.item
                # Positional (index, status, id, code, description, data, item): the cheapest
                # construction, and this is the one made per entry of a usual answer.
                verdicts.append(
                    BulkItemResult(
                        position, applied, named, None, None, None, None if item is UNSET else item
                    )
                )
                continue
        verdicts.append(_verdict(position, result, expected))
    return tuple(verdicts)


def _index_of(result: WireBulkResult | None, count: int) -> int | None:
    """The entry a result claims, or ``None`` when it claims none usable."""
    if result is None or result.item_metadata is UNSET:
        return None
    index = result.item_metadata.original_index
    if index is UNSET or isinstance(index, bool) or not 0 <= index < count:
        return None
    return index


def _verdict(index: int, result: WireBulkResult, expected_id: str | None) -> BulkItemResult:
    meta = result.item_metadata
    assert meta is not UNSET
    named = meta.id if isinstance(meta.id, str) and meta.id else None
    item = result.item if result.item is not UNSET else None
    if expected_id is not None and named is not None and named != expected_id:
        return BulkItemResult(index, BulkItemStatus.UNKNOWN, named, reason="id mismatch")
    if meta.success is True and meta.error is UNSET:
        return BulkItemResult(index, BulkItemStatus.APPLIED, named, item=item)
    if meta.success is False:
        error = meta.error
        if error is UNSET:
            return BulkItemResult(index, BulkItemStatus.REFUSED, named, item=item)
        return BulkItemResult(
            index,
            BulkItemStatus.REFUSED,
            named,
            code=(error.code or None) if error.code is not UNSET else None,
            description=error.description if error.description is not UNSET else None,
            data=error.data if error.data is not UNSET else None,
            item=item,
        )
    return BulkItemResult(index, BulkItemStatus.UNKNOWN, named, reason="malformed result")
