"""The Catalog V3 writer: one bulk call per batch, one outcome per entry from its answer.

A V3 bulk increment or decrement answers HTTP 200 with a result per entry
(:mod:`~wixinv_async.core.bulk_results`), so a bad entry costs no extra request and there is no
bisection: APPLIED entries are COMMITTED, REFUSED ones REJECTED with Wix's code (``NOT_FOUND``,
``INSUFFICIENT_INVENTORY``, ...), UNKNOWN ones IN_DOUBT (code ``ITEM_UNKNOWN``) and never
resent. A whole-request failure follows the V1 table (:func:`~wixinv_async.core.failures
.verdict`): 429, 503 and unsent requests are resent within the policy; an ambiguous failure is
IN_DOUBT, never resent (whatever ``on_ambiguous`` says: a V3 call has no idempotency key); a 400
or 404 refusal of the whole request is REJECTED for every entry (nothing to bisect).

Entries go out by variant and location (a V1 key's variant id, at its ``location_id`` or the
default location) or by inventory item id (``inventory_id=``): a batch holding both is two
requests. SKUs and V1 default variants are looked up first (:mod:`~wixinv_async.core.resolve`:
one search per 100 of them, cached); an unknown one is REJECTED (``SKU_NOT_FOUND``,
``SKU_AMBIGUOUS``, ``NOT_FOUND``, ``DEFAULT_VARIANT_AMBIGUOUS``) without a request.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Final

from msgspec import UNSET

from ..client import InventoryClient
from ..core.bulk_results import BulkItemStatus, BulkResult
from ..core.failures import Bisect, outcome_for, verdict
from ..core.resolve import Resolutions, needs_resolution
from ..core.table import Entry, Key, key_location
from ..core.wirebody import ENCODE_ERRORS, bulk_entries
from ..errors import InvalidInputError, WixInventoryError
from ..inventory_v3 import V3Call, bulk_adjust_body, check_adjust_entry
from ..models import DEFAULT_VARIANT_ID
from ..models_v3 import (
    DecrementDataById,
    DecrementDataByVariantAndLocation,
    IncrementDataById,
    IncrementDataByVariantAndLocation,
    InventoryItemV3,
)
from ..outcomes import Outcome, OutcomeStatus
from ..settings import BatchPolicy
from ._delivery import Delivery
from ._ledger import ReportError

__all__ = ["BulkWriter"]

logger = logging.getLogger("wixinv_async.adjuster")

_COMMITTED: Final = Outcome(OutcomeStatus.COMMITTED)
_SEARCH_CHUNK: Final = 100
"""SKUs or product ids per search (an ``$in`` list)."""
_PAGE: Final = 1000


class _OnSendFailed(Exception):
    """The ``on_send`` hook raised (its error is the cause): the request was not sent."""


class BulkWriter:
    """The Catalog V3 writer (see the module doc)."""

    def __init__(
        self,
        client: InventoryClient,
        *,
        policy: BatchPolicy,
        restrict_inventory: bool,
        reason: str | None,
        report_error: ReportError,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._policy = policy
        self._restrict = restrict_inventory
        self._reason = reason
        self._report_error = report_error
        self._rng = rng or random.Random()
        self.resolutions = Resolutions()
        self._429_base = client.stats().rate_limited

    def __repr__(self) -> str:
        return f"<BulkWriter {self._client!r} restrict_inventory={self._restrict}>"

    def rate_limited(self) -> int:
        return self._client.stats().rate_limited - self._429_base

    async def write(self, entries: list[Entry], delivery: Delivery) -> None:
        delivery.use_catalog("V3_CATALOG")
        default = DEFAULT_VARIANT_ID
        plain = [
            (e, k[2])
            for e in entries
            if e.outcome is None and (k := e.key)[1] is None and len(k) < 6 and k[2] != default
        ]
        if plain and len(plain) == len(entries):  # all by their own (checked) variants: no lookup
            await self._send(delivery, plain, delivery.batch_id, True)
            return
        await self._resolve(entries, delivery)
        by_id: list[Entry] = []
        by_variant: list[tuple[Entry, str]] = []
        resolved = False  # a variant id learnt from the server, not checked at submit
        for entry in entries:
            if entry.outcome is not None:
                continue
            key = entry.key
            if key[1] is not None:
                by_id.append(entry)
                continue
            if len(key) < 6 and key[2] != DEFAULT_VARIANT_ID:  # no SKU: its own variant id
                by_variant.append((entry, key[2]))
                continue
            found = self.resolutions.variant(key)
            if isinstance(found, str):
                refused = Outcome(OutcomeStatus.REJECTED, found, _MISSES[found])
                delivery.settle(delivery.batch_id, [entry], refused)
            else:
                resolved = resolved or found[0] != entry.key[2]
                by_variant.append((entry, found[0]))
        first = True
        # The table checked every variant and location id it was given (GUIDs): only ids it
        # did not check are checked again (a by-id entry's V3 item id must be a GUID too).
        for group, checked in ((by_variant, not resolved), ([(e, "") for e in by_id], False)):
            if group:
                rid = delivery.batch_id if first else delivery.new_request_id()
                first = False
                await self._send(delivery, group, rid, checked)

    # --- looking variants up ---------------------------------------------------------------

    async def _resolve(self, entries: list[Entry], delivery: Delivery) -> None:
        """Learn what the batch's SKUs and V1 default variants are; a failed search rejects
        the entries that needed it (nothing was sent for them)."""
        # Only a key with a SKU (longer than 5) or a V1 default variant can need it.
        maybe = [k for e in entries if len(k := e.key) > 5 or k[2] == DEFAULT_VARIANT_ID]
        wanted = [key for key in maybe if needs_resolution(key)]
        resolutions = self.resolutions
        if wanted:
            skus, products = resolutions.missing(wanted)
            try:
                for i in range(0, len(skus), _SEARCH_CHUNK):
                    chunk = skus[i : i + _SEARCH_CHUNK]
                    found = await self._search(delivery, "product.variantSku", chunk)
                    resolutions.learn_skus(chunk, found)
                for i in range(0, len(products), _SEARCH_CHUNK):
                    chunk = products[i : i + _SEARCH_CHUNK]
                    found = await self._search(delivery, "productId", chunk)
                    resolutions.learn_products(chunk, found)
            except Exception as exc:
                if not isinstance(exc, WixInventoryError):
                    self._report_error("unexpected error from a SKU search", exc)
                failed = outcome_for(OutcomeStatus.REJECTED, exc, "LOOKUP_FAILED", retriable=True)
                unresolved = [e for e in entries if needs_resolution(e.key)]
                delivery.settle(delivery.batch_id, unresolved, failed)

    async def _search(
        self, delivery: Delivery, field: str, values: list[str]
    ) -> list[InventoryItemV3]:
        delivery.searched()
        items: list[InventoryItemV3] = []
        query = {field: {"$in": values}}
        async for item in self._client.search_all_inventory_items(filter=query, limit=_PAGE):
            items.append(item)
        return items

    # --- sending -------------------------------------------------------------------------

    async def _send(
        self, delivery: Delivery, group: list[tuple[Entry, str]], rid: int, checked: bool
    ) -> None:
        """One bulk request of these entries (by variant, or by id when the variant is ``""``),
        resent only while provably not applied; every entry settled."""
        entries = [entry for entry, _ in group]
        send = 0
        while True:
            send += 1
            try:
                result = await self._call(delivery, group, entries, rid, send, checked)
            except _OnSendFailed as exc:
                cause = exc.__cause__ or exc
                failed = outcome_for(
                    OutcomeStatus.REJECTED, cause, "ON_SEND_FAILED", retriable=True
                )
                delivery.settle(rid, entries, failed)
                return
            except Exception as exc:
                if not isinstance(exc, WixInventoryError):
                    self._report_error("unexpected error from the client: in doubt", exc)
                then = verdict(
                    exc,
                    send,
                    size=len(entries),
                    policy=self._policy,
                    retry_ambiguous=False,
                    rng=self._rng,
                )
                if isinstance(then, Bisect):
                    then = outcome_for(OutcomeStatus.REJECTED, exc, "REFUSED")
                if isinstance(then, Outcome):
                    delivery.settle(rid, entries, then)
                    return
                logger.info(
                    "request %d failed (%s), send %d: resending in %.2f s",
                    rid,
                    type(exc).__name__,
                    send,
                    then.delay,
                )
                await asyncio.sleep(then.delay)
                continue
            self._settle(delivery, rid, entries, result)
            return

    def _settle(
        self, delivery: Delivery, rid: int, entries: list[Entry], result: BulkResult
    ) -> None:
        request_id = result.request_id
        results = result.results
        delivery.item_results(entries, results)
        done = (
            _COMMITTED if request_id is None else Outcome(_COMMITTED.status, None, None, request_id)
        )
        applied = BulkItemStatus.APPLIED
        if all(item.status is applied for item in results):  # the usual answer: one settle
            delivery.settle(rid, entries, done)
            return
        committed: list[Entry] = []
        doubts: list[Entry] = []
        for entry, item in zip(entries, results, strict=True):
            if item.status is applied:
                committed.append(entry)
            elif item.status is BulkItemStatus.REFUSED:
                refused = Outcome(
                    OutcomeStatus.REJECTED, item.code or "REFUSED", item.description, request_id
                )
                delivery.settle(rid, [entry], refused)
            else:
                doubts.append(entry)
        if committed:
            delivery.settle(rid, committed, done)
        if doubts:
            logger.warning("request %d: %d entries without a result", rid, len(doubts))
            unknown = Outcome(
                OutcomeStatus.IN_DOUBT, "ITEM_UNKNOWN", "no trustworthy result", request_id
            )
            delivery.settle(rid, doubts, unknown)

    async def _call(
        self,
        delivery: Delivery,
        group: list[tuple[Entry, str]],
        entries: list[Entry],
        rid: int,
        send: int,
        checked: bool,
    ) -> BulkResult:
        try:
            await delivery.on_wire(entries, rid, None, send)
        except Exception as exc:
            raise _OnSendFailed("on_send failed") from exc
        client, increment = self._client, delivery.kind == "increment"
        reason = self._reason
        try:
            call = self._bulk_call(group, checked, decrement=not increment)
            if call is not None:
                expected = [None] * len(group) if group[0][1] else [e.key[1] for e in entries]
                return await client.send_bulk_call(call, expected)
            if group[0][1]:
                if increment:
                    return await client.bulk_increment_inventory_items_by_variant_and_location(
                        _increments_by_variant(group),
                        reason=reason,  # type: ignore[arg-type]
                        validate=not checked,
                    )
                return await client.bulk_decrement_inventory_items_by_variant_and_location(
                    _decrements_by_variant(group),
                    restrict_inventory=self._restrict,
                    reason=reason,  # type: ignore[arg-type]
                    validate=not checked,
                )
            if increment:
                return await client.bulk_increment_inventory_items(
                    _increments_by_id(entries),
                    reason=reason,  # type: ignore[arg-type]
                    validate=not checked,
                )
            return await client.bulk_decrement_inventory_items(
                _decrements_by_id(entries),
                restrict_inventory=self._restrict,
                reason=reason,  # type: ignore[arg-type]
                validate=not checked,
            )
        finally:
            delivery.answered()

    def _bulk_call(
        self, group: list[tuple[Entry, str]], checked: bool, *, decrement: bool
    ) -> V3Call | None:
        """The request written from held fragments (:mod:`~wixinv_async.core.wirebody`), or
        ``None`` when an entry is refused or cannot be encoded: then the structs are built
        and encoded, and their call raises the error that names the entry."""
        check = _no_check if checked else check_adjust_entry
        try:
            # Checked by-variant entries all go out by their keys' own variants.
            entries = bulk_entries(group, decrement=decrement, check=check, own=checked)
            return bulk_adjust_body(
                entries,
                len(group),
                decrement=decrement,
                by_variant=bool(group[0][1]),
                restrict_inventory=self._restrict if decrement else None,
                reason=self._reason,
            )
        except (*ENCODE_ERRORS, InvalidInputError):
            return None


def _no_check(entry: object, index: int) -> None:
    """The table checked every id of the group: nothing is left to check."""


_MISSES: Final = {
    "SKU_NOT_FOUND": "no V3 inventory item has this SKU",
    "SKU_AMBIGUOUS": "several variants have this SKU",
    "NOT_FOUND": "the product has no V3 inventory item",
    "DEFAULT_VARIANT_AMBIGUOUS": "the product has several variants: name one",
}


def _location(key: Key) -> str | object:
    """The key's location id, ``UNSET`` for the default location (a key of 5 elements or
    fewer names none: :func:`~wixinv_async.core.table.key_location`)."""
    if len(key) < 6:
        return UNSET
    location = key_location(key)
    return UNSET if location is None else location


def _increments_by_variant(
    group: Sequence[tuple[Entry, str]],
) -> list[IncrementDataByVariantAndLocation]:
    return [
        IncrementDataByVariantAndLocation(
            variant_id=variant,
            location_id=UNSET if len(entry.key) < 6 else _location(entry.key),  # type: ignore[arg-type]
            increment_by=entry.net,
        )
        for entry, variant in group
    ]


def _decrements_by_variant(
    group: Sequence[tuple[Entry, str]],
) -> list[DecrementDataByVariantAndLocation]:
    return [
        DecrementDataByVariantAndLocation(
            variant_id=variant,
            location_id=UNSET if len(entry.key) < 6 else _location(entry.key),  # type: ignore[arg-type]
            decrement_by=-entry.net,
            preorder_request=True if entry.key[3] is True else UNSET,
        )
        for entry, variant in group
    ]


def _increments_by_id(entries: Sequence[Entry]) -> list[IncrementDataById]:
    return [IncrementDataById(inventory_item_id=e.key[1], increment_by=e.net) for e in entries]


def _decrements_by_id(entries: Sequence[Entry]) -> list[DecrementDataById]:
    return [
        DecrementDataById(
            inventory_item_id=e.key[1],
            decrement_by=-e.net,
            preorder_request=True if e.key[3] is True else UNSET,
        )
        for e in entries
    ]
