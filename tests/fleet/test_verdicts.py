"""The fleet's per-entry verdict tables (wixinv_async.fleet.verdicts): pure, no server."""

from __future__ import annotations

import pytest

from wixinv_async.catalog import CatalogVersion
from wixinv_async.core.bulk_results import BulkItemResult, BulkItemStatus, BulkResult
from wixinv_async.errors import (
    ConnectError,
    NotFoundError,
    OutcomeUnknownError,
    PreconditionFailedError,
    RateLimitedError,
    WrongCatalogError,
)
from wixinv_async.fleet.scripts import PlannedEntry
from wixinv_async.fleet.verdicts import DEFAULT_VARIANT, refusals, v1_settlement, v3_settlement

VARIANT = "00000000-0000-0000-0000-000000000001"
LOCATION = "00000000-0000-0000-0000-0000000000aa"


def entry(net: int = 1, *, variant: str = VARIANT, location: str = "") -> PlannedEntry:
    return PlannedEntry("p", variant, net, (("e", net),), location)


def wrong_catalog() -> WrongCatalogError:
    return WrongCatalogError(428, "moved", code="CATALOG_V3_SITE_CALLING_CATALOG_V1_API")


@pytest.mark.parametrize(
    ("planned", "catalog", "code"),
    [
        (entry(100_000), CatalogVersion.V1_CATALOG, "AMOUNT_ABOVE_99999"),
        (entry(location=LOCATION), CatalogVersion.V1_CATALOG, "LOCATION_NEEDS_V3"),
        (entry(location=LOCATION), CatalogVersion.V3_CATALOG, ""),
        (entry(variant=DEFAULT_VARIANT), CatalogVersion.V3_CATALOG, "DEFAULT_VARIANT_NEEDS_V3_ID"),
        (entry(variant=DEFAULT_VARIANT), CatalogVersion.V1_CATALOG, ""),
        (entry(), CatalogVersion.STORES_NOT_INSTALLED, "STORES_NOT_INSTALLED"),
    ],
)
def test_what_is_refused_before_any_request(
    planned: PlannedEntry, catalog: CatalogVersion, code: str
) -> None:
    """Entries that can never be sent to the site's catalog are refused by code, unsent."""
    assert refusals([planned], catalog) == [code]


@pytest.mark.parametrize(
    ("error", "sent", "cap_op"),
    [
        (None, [("APPLIED", "")] * 2, "double"),
        (ConnectError("refused"), [("RETURNED", "ConnectError")] * 2, ""),
        (RateLimitedError(429, "slow down"), [("RETURNED", "429")] * 2, ""),
        (wrong_catalog(), [("RETURNED", "CATALOG_V3_SITE_CALLING_CATALOG_V1_API")] * 2, ""),
        (NotFoundError(404, "no", code="NOT_FOUND"), [("RETURNED", "NOT_FOUND")] * 2, "1"),
        (OutcomeUnknownError("reset", request=None), [("IN_DOUBT", "OutcomeUnknownError")] * 2, ""),
        (TimeoutError(), [("IN_DOUBT", "TimeoutError")] * 2, ""),
    ],
)
def test_a_v1_batch_ends_whole_and_a_refusal_of_several_is_bisected(
    error: BaseException | None, sent: list[tuple[str, str]], cap_op: str
) -> None:
    """V1 is atomic: one status for every sent entry; a refusal returns them, cap halved;
    the entry refused before the request stays REJECTED whatever the answer."""
    settled = v1_settlement(["", "LOCATION_NEEDS_V3", ""], error)
    assert settled.statuses == (sent[0], ("REJECTED", "LOCATION_NEEDS_V3"), sent[1])
    assert settled.cap_op == cap_op


def test_a_v1_refusal_of_one_entry_rejects_it() -> None:
    """Bisection's end: the one entry a 428 refused is REJECTED with Wix's code."""
    error = PreconditionFailedError(428, "short", code="INSUFFICIENT_INVENTORY")
    assert v1_settlement([""], error).statuses == (("REJECTED", "INSUFFICIENT_INVENTORY"),)


def test_a_v3_answer_settles_each_entry_by_its_own_result() -> None:
    """Per item: applied, refused with Wix's code, unknown (in doubt, never resent)."""
    result = BulkResult(
        (
            BulkItemResult(0, BulkItemStatus.APPLIED),
            BulkItemResult(1, BulkItemStatus.REFUSED, code="INSUFFICIENT_INVENTORY"),
            BulkItemResult(2, BulkItemStatus.UNKNOWN, reason="no result"),
        )
    )
    settled = v3_settlement(["", "", "DEFAULT_VARIANT_NEEDS_V3_ID", ""], result, None)
    assert settled.statuses == (
        ("APPLIED", ""),
        ("REJECTED", "INSUFFICIENT_INVENTORY"),
        ("REJECTED", "DEFAULT_VARIANT_NEEDS_V3_ID"),
        ("IN_DOUBT", "ITEM_UNKNOWN"),
    )
    assert settled.code == "ITEM_UNKNOWN"  # what the in-doubt list says of the batch


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (wrong_catalog(), "RETURNED"),
        (RateLimitedError(429, "slow down"), "RETURNED"),
        (NotFoundError(404, "no", code="NOT_FOUND"), "REJECTED"),
        (OutcomeUnknownError("reset", request=None), "IN_DOUBT"),
    ],
)
def test_a_v3_request_that_failed_whole(error: BaseException, status: str) -> None:
    """A wrong-catalog 428 and unsent requests return, a refusal rejects (nothing to bisect),
    an ambiguous failure doubts every entry."""
    assert {s for s, _ in v3_settlement(["", ""], None, error).statuses} == {status}
