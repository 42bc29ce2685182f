"""How a begun batch ends, entry by entry: the fleet's verdict tables, as pure code.

A worker sends a V1 site's batch as one atomic increment or decrement call and a V3 site's as
one bulk call by variant and location (per-item answers). Before any request some entries are
refused outright (:func:`refusals`), and after it every entry gets one
``(status, code)`` (:class:`~wixinv_async.fleet.scripts.EntryVerdicts`), settled by the finish
script. Statuses: APPLIED, REJECTED (final, not applied), IN_DOUBT (maybe applied: never sent
again), RETURNED (provably not applied: back to the accumulator, to net and go again).

Refused before any request (REJECTED, no request)::

    |net| above 99,999                               AMOUNT_ABOVE_99999
    a location on a V1 site                          LOCATION_NEEDS_V3
    V1's shared default variant id on a V3 site      DEFAULT_VARIANT_NEEDS_V3_ID
    a site without stores                            STORES_NOT_INSTALLED

The request's answer (``whole`` is :func:`~wixinv_async.fleet.shards.verdict_for`)::

    answer                                V1 batch (atomic)          V3 bulk call
    -----------------------------------------------------------------------------------------
    200                                   every entry APPLIED        per item: APPLIED /
                                          (the cap doubles back)     REJECTED (Wix's code) /
                                                                     IN_DOUBT (ITEM_UNKNOWN)
    wrong-catalog 428 (the site moved)    RETURNED, catalog re-detected (the call was refused
                                          whole: provably not applied)
    whole RETURNED (429, 503, unsent)     RETURNED                   RETURNED
    not sent past its deadline (LATE)     RETURNED                   RETURNED
    whole REFUSED (400, 404, other 428)   1 entry: REJECTED; more:   REJECTED (V3 has no
                                          RETURNED, cap halved       atomic batch to bisect)
    whole IN_DOUBT (timeout, reset, 5xx)  IN_DOUBT                   IN_DOUBT

No I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from ..catalog import CatalogVersion
from ..core.bulk_results import BulkItemStatus, BulkResult
from ..errors import ApiError, LateSendError, WrongCatalogError
from .scripts import EntryVerdicts, PlannedEntry
from .shards import MAX_BATCH, Verdict, verdict_for

__all__ = [
    "DEFAULT_VARIANT",
    "LATE",
    "error_code",
    "refusals",
    "v1_settlement",
    "v3_settlement",
    "wrong_catalog",
]

DEFAULT_VARIANT: Final = "00000000-0000-0000-0000-000000000000"
_MAX_AMOUNT: Final = 99_999
LATE: Final = "LATE"
"""The code of a batch not sent because its send deadline had passed (a stall, a retry's
wait): its entries RETURNED."""

Statuses = list[tuple[str, str]]


def refusals(entries: Sequence[PlannedEntry], catalog: CatalogVersion) -> list[str]:
    """Per entry, the code it is refused with before any request, or ``""`` to send it."""
    codes = []
    for entry in entries:
        if catalog is CatalogVersion.STORES_NOT_INSTALLED:
            codes.append("STORES_NOT_INSTALLED")
        elif abs(entry.net) > _MAX_AMOUNT:
            codes.append("AMOUNT_ABOVE_99999")
        elif catalog is CatalogVersion.V1_CATALOG and entry.location_id:
            codes.append("LOCATION_NEEDS_V3")
        elif catalog is CatalogVersion.V3_CATALOG and entry.variant_id == DEFAULT_VARIANT:
            codes.append("DEFAULT_VARIANT_NEEDS_V3_ID")
        else:
            codes.append("")
    return codes


def error_code(error: BaseException | None) -> str:
    """What an outcome record says of a failed request: Wix's code, else the status or the
    error's type."""
    if error is None:
        return ""
    if isinstance(error, LateSendError):
        return LATE
    if isinstance(error, ApiError):
        return error.code or str(error.status)
    return type(error).__name__


def wrong_catalog(error: BaseException | None) -> bool:
    """Whether the request was refused because the site runs the other catalog."""
    return isinstance(error, WrongCatalogError)


def _merge(codes: Sequence[str], sent: Statuses) -> tuple[tuple[str, str], ...]:
    """The refused entries' REJECTED statuses and, in order, the sent entries' ``sent``."""
    rest = iter(sent)
    return tuple(("REJECTED", code) if code else next(rest) for code in codes)


def _whole(error: BaseException, count: int) -> tuple[Statuses, str]:
    """Every sent entry's status after a whole-request failure that is not a refusal, and
    the code; ``("", "")`` marks a refusal for the caller to decide."""
    code = error_code(error)
    if wrong_catalog(error):
        return [("RETURNED", code)] * count, code
    verdict = verdict_for(error)
    if verdict is Verdict.RETURNED:
        return [("RETURNED", code)] * count, code
    if verdict is Verdict.IN_DOUBT:
        return [("IN_DOUBT", code)] * count, code
    return [], code  # REFUSED


def v1_settlement(codes: Sequence[str], error: BaseException | None) -> EntryVerdicts:
    """A V1 batch's end: ``codes`` from :func:`refusals`; ``error`` what the one atomic call
    raised (``None``: applied). A refusal of several entries returns them and halves the
    site's cap (bisection); of one entry, rejects it."""
    count = sum(1 for code in codes if not code)
    if count == 0:
        return EntryVerdicts(_merge(codes, []))
    if error is None:
        return EntryVerdicts(_merge(codes, [("APPLIED", "")] * count), cap_op="double")
    sent, code = _whole(error, count)
    if sent:
        return EntryVerdicts(_merge(codes, sent), code=code)
    if count == 1:
        return EntryVerdicts(_merge(codes, [("REJECTED", code)]), code=code)
    half = str(max(1, math.ceil(count / 2)))
    return EntryVerdicts(_merge(codes, [("RETURNED", code)] * count), cap_op=half, code=code)


def v3_settlement(
    codes: Sequence[str], result: BulkResult | None, error: BaseException | None
) -> EntryVerdicts:
    """A V3 batch's end: ``codes`` from :func:`refusals`; ``result`` the bulk answer (one
    result per sent entry, in order) or ``error`` what the call raised."""
    count = sum(1 for code in codes if not code)
    reset = str(MAX_BATCH)  # V3 is not bisected: a cap left by V1 days goes
    if count == 0:
        return EntryVerdicts(_merge(codes, []))
    if error is not None:
        sent, code = _whole(error, count)
        if not sent:
            sent = [("REJECTED", code)] * count
        return EntryVerdicts(_merge(codes, sent), cap_op=reset, code=code)
    assert result is not None and len(result) == count
    per_item: Statuses = []
    for item in result.results:
        if item.status is BulkItemStatus.APPLIED:
            per_item.append(("APPLIED", ""))
        elif item.status is BulkItemStatus.REFUSED:
            per_item.append(("REJECTED", item.code or "REFUSED"))
        else:
            per_item.append(("IN_DOUBT", "ITEM_UNKNOWN"))
    doubt = "ITEM_UNKNOWN" if ("IN_DOUBT", "ITEM_UNKNOWN") in per_item else ""
    return EntryVerdicts(_merge(codes, per_item), cap_op=reset, code=doubt)
