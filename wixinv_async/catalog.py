"""Which catalog a site runs (V1 or V3), how the client finds out, and when it forgets.

Wix sites run Catalog V1 or Catalog V3, never both; a site can move from V1 to V3 while it
serves traffic. ``GET /stores/v3/provision/version`` says which, but needs a catalog-read
scope an app may lack (403). The detection table (``InventoryClient.catalog_version``)::

    step                                    answer                      verdict
    ------------------------------------------------------------------------------------
    1. Get Catalog Version                  V1_CATALOG / V3_CATALOG     that (cached)
                                            STORES_NOT_INSTALLED        that (not cached)
                                            403                         go to 2
                                            anything else               raise it
    2. probe: Query Inventory Items,        2xx                         V3_CATALOG (cached)
       limit 1 (a V3 read)                  428 CATALOG_V1_SITE_...     V1_CATALOG (cached)
                                            anything else               raise it

The cache lives in the client (one client, one site). A :class:`WrongCatalogError` on any
later call (the site moved) empties it, and the next ``catalog_version()`` detects again. A
detection that was under way when the cache was emptied does not store its (stale) answer,
unless that answer is the wrong-catalog refusal itself. Wix's codes for the 428 (seen in
third-party clients of the live API; Wix documents none):

    CATALOG_V1_SITE_CALLING_CATALOG_V3_API   a V3 call on a V1 site  -> site_catalog V1
    CATALOG_V3_SITE_CALLING_CATALOG_V1_API   a V1 call on a V3 site  -> site_catalog V3
    CATALOG_V3_SITE_PROVISIONING             the site is being moved -> site_catalog None

The probe reads any wrong-catalog refusal of its V3 read as "V1 site", unless the refusal
says the site runs V3 or is being moved there (then it raises: nothing to cache yet).

Pure code: no I/O, no clock.
"""

from __future__ import annotations

import enum
from typing import Final

from .errors import PreconditionFailedError, WixInventoryError, WrongCatalogError

__all__ = [
    "PROVISIONING",
    "WRONG_CATALOG_CODES",
    "CatalogCache",
    "CatalogVersion",
    "parse_catalog_version",
    "probe_verdict",
    "wrong_catalog_error",
]


class CatalogVersion(enum.Enum):
    """The catalog a site runs, as ``GET /stores/v3/provision/version`` names it."""

    V1_CATALOG = "V1_CATALOG"
    V3_CATALOG = "V3_CATALOG"
    STORES_NOT_INSTALLED = "STORES_NOT_INSTALLED"


WRONG_CATALOG_CODES: Final[dict[str, CatalogVersion | None]] = {
    "CATALOG_V1_SITE_CALLING_CATALOG_V3_API": CatalogVersion.V1_CATALOG,
    "CATALOG_V3_SITE_CALLING_CATALOG_V1_API": CatalogVersion.V3_CATALOG,
    "CATALOG_V3_SITE_PROVISIONING": None,
}
"""The 428 codes that refuse a call because of the site's catalog, and what each says the
site runs (``None``: not settled yet)."""


PROVISIONING: Final = "CATALOG_V3_SITE_PROVISIONING"


def parse_catalog_version(value: str) -> CatalogVersion:
    """The :class:`CatalogVersion` named ``value``; a name this library does not know raises
    ValueError (the caller reports it as a malformed answer)."""
    return CatalogVersion(value)


def wrong_catalog_error(error: WixInventoryError) -> WrongCatalogError | None:
    """The :class:`WrongCatalogError` that a 428 with a wrong-catalog code stands for, or
    ``None`` for any other error."""
    if isinstance(error, WrongCatalogError):
        return error
    if not isinstance(error, PreconditionFailedError) or error.code not in WRONG_CATALOG_CODES:
        return None
    wrong = WrongCatalogError(
        error.status,
        error.message,
        code=error.code,
        field_violations=error.field_violations,
        request_id=error.request_id,
        data=error.data,
        site_catalog=WRONG_CATALOG_CODES[error.code] or _named_in(error.data),
    )
    wrong.__cause__ = error.__cause__
    return wrong


def _named_in(data: object) -> CatalogVersion | None:
    """The site's catalog as an error's ``data.catalogVersion`` names it, if it does."""
    named = data.get("catalogVersion") if isinstance(data, dict) else None
    try:
        return CatalogVersion(named) if isinstance(named, str) else None
    except ValueError:
        return None


def probe_verdict(refusal: WrongCatalogError) -> CatalogVersion | None:
    """What a wrong-catalog refusal of the probe's V3 read says the site runs: V1, or
    ``None`` when it says V3 or "being moved" (nothing settled to cache)."""
    if refusal.code == PROVISIONING or refusal.site_catalog is CatalogVersion.V3_CATALOG:
        return None
    return CatalogVersion.V1_CATALOG


class CatalogCache:
    """The catalog version of one site, known or not.

    ``generation`` counts invalidations: a detection notes it when it starts and stores its
    answer only if no invalidation happened meanwhile (:meth:`store`). Only V1 and V3 are
    kept: a site without stores may install them at any time.
    """

    __slots__ = ("generation", "version")

    def __init__(self) -> None:
        self.version: CatalogVersion | None = None
        self.generation = 0

    def store(self, version: CatalogVersion, generation: int) -> bool:
        """Keep ``version``, found by a detection that started at ``generation``; whether it
        was kept."""
        if generation != self.generation or version is CatalogVersion.STORES_NOT_INSTALLED:
            return False
        self.version = version
        return True

    def invalidate(self) -> None:
        """Forget the version (a call was refused for the wrong catalog)."""
        self.version = None
        self.generation += 1

    def __repr__(self) -> str:
        known = self.version.value if self.version is not None else "unknown"
        return f"<CatalogCache {known} generation={self.generation}>"
