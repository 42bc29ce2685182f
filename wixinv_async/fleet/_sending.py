"""The one request a worker makes per batch, through the hub's client of the batch's site:
a V1 site's batch as one atomic increment or decrement call, a V3 site's as one bulk call by
variant and location (a delta without a location goes to the site's default location). No
attempt of it leaves after ``not_after`` (event-loop time): the client raises
:class:`~wixinv_async.errors.LateSendError` instead."""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import UNSET

from ..catalog import CatalogVersion
from ..client import InventoryClient
from ..core.bulk_results import BulkResult
from ..models import DecrementData, IncrementData
from ..models_v3 import DecrementDataByVariantAndLocation, IncrementDataByVariantAndLocation
from .scripts import PlannedEntry

__all__ = ["send_batch"]


async def send_batch(
    client: InventoryClient,
    catalog: CatalogVersion,
    kind: str,
    entries: Sequence[PlannedEntry],
    *,
    not_after: float | None = None,
) -> BulkResult | None:
    """Send ``entries`` (all of one sign: ``kind`` ``inc`` or ``dec``); a V3 call answers
    its per-item results, a V1 call ``None`` (applied whole, or it raised)."""
    if catalog is CatalogVersion.V3_CATALOG:
        return await _send_v3(client, kind, entries, not_after)
    if kind == "inc":
        increments = [
            IncrementData(product_id=e.product_id, variant_id=e.variant_id, increment_by=e.net)
            for e in entries
        ]
        await client.increment_inventory(increments, not_after=not_after)
    else:
        decrements = [
            DecrementData(product_id=e.product_id, variant_id=e.variant_id, decrement_by=-e.net)
            for e in entries
        ]
        await client.decrement_inventory(decrements, not_after=not_after)
    return None


async def _send_v3(
    client: InventoryClient, kind: str, entries: Sequence[PlannedEntry], not_after: float | None
) -> BulkResult:
    if kind == "inc":
        increments = [
            IncrementDataByVariantAndLocation(
                variant_id=e.variant_id, location_id=e.location_id or UNSET, increment_by=e.net
            )
            for e in entries
        ]
        return await client.bulk_increment_inventory_items_by_variant_and_location(
            increments, not_after=not_after
        )
    decrements = [
        DecrementDataByVariantAndLocation(
            variant_id=e.variant_id, location_id=e.location_id or UNSET, decrement_by=-e.net
        )
        for e in entries
    ]
    return await client.bulk_decrement_inventory_items_by_variant_and_location(
        decrements, not_after=not_after
    )
