"""Which catalog a site runs (V1 or V3), the 428 that guards each, and the V1 -> V3 migration.

A site starts as its seeded catalog says: ``v1`` serves the V1 store, ``v3`` a V3 store
seeded from the same V1 catalog (every variant at the default location, and with extra
locations, at each of those too). :func:`migrate` moves a V1 site to V3 at once (no await:
a request is served wholly before it or wholly after it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Final

from ._errors import WixApiError, application_error
from .catalog import new_guid
from .store import JournalEntry, SiteStore
from .v3_items import V3Item, from_v1
from .v3_store import V3Store

__all__ = [
    "CATALOGS",
    "V1_CATALOG",
    "V3_CATALOG",
    "WRONG_CATALOG",
    "location_ids",
    "migrate",
    "seed_v3",
    "wrong_catalog",
]

CATALOGS: Final = ("v1", "v3")
V1_CATALOG: Final = "V1_CATALOG"
V3_CATALOG: Final = "V3_CATALOG"
WRONG_CATALOG: Final = {
    V1_CATALOG: "CATALOG_V1_SITE_CALLING_CATALOG_V3_API",
    V3_CATALOG: "CATALOG_V3_SITE_CALLING_CATALOG_V1_API",
}
"""The ``applicationError.code`` of the 428 a call of the other catalog's API gets, by the
catalog the site runs: the codes the live API answers (Wix documents none; they are the ones
third-party clients of the real API test for)."""


def wrong_catalog(site_version: str, api_version: str) -> WixApiError:
    """428: this site runs ``site_version``; the call belongs to ``api_version``'s API."""
    text = f"this site runs {site_version}: a {api_version} API call cannot serve it"
    data = {"catalogVersion": site_version, "requiredCatalogVersion": api_version}
    return application_error(428, WRONG_CATALOG[site_version], text, data)


def location_ids(seed: int, count: int) -> list[str]:
    """The site's location ids, the default location first (seeded)."""
    rng = random.Random(seed ^ 0x10CA)
    return [new_guid(rng) for _ in range(count)]


def seed_v3(store: SiteStore, seed: int, locations: Sequence[str]) -> V3Store:
    """A V3 store seeded from ``store``'s V1 catalog, with stock at every location."""
    rng = random.Random(seed ^ 0x0333)
    items = from_v1(store.records(), rng, locations=locations, extra_stock=True)
    return V3Store(
        site_id=store.site_id,
        items=items,
        locations=locations,
        seed=seed,
        listeners=store.v3_listeners,
    )


def migrate(store: SiteStore, seed: int, locations: Sequence[str], at: float) -> V3Store:
    """The V3 store of a V1 site that moves to V3 now: its current variants at the default
    location. Journaled in the new store as one ``migrateToV3`` entry (request id ``""``) with
    one entry per item."""
    rng = random.Random(seed ^ 0x0333)
    items = from_v1(store.records(), rng, locations=locations, extra_stock=False)
    v3 = V3Store(
        site_id=store.site_id,
        items=items,
        locations=locations,
        seed=seed,
        listeners=store.v3_listeners,
    )
    v3.journal.append(JournalEntry("", "migrateToV3", [_migrated(item) for item in items], at))
    return v3


def _migrated(item: V3Item) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "inventoryItemId": item.id,
        "productId": item.product_id,
        "variantId": item.variant_id,
        "locationId": item.location_id,
        "trackQuantity": item.track,
        "preorderInfo": item.preorder_wire(),
    }
    if item.v1_variant_id is not None:
        entry["v1VariantId"] = item.v1_variant_id
    if item.track:
        entry["quantity"] = item.quantity
    else:
        entry["inStock"] = item.in_stock
    return entry
