"""What an :class:`~wixinv_async.hub.InventoryHub` reports: each open site's stats, the totals,
and each site's counters since the hub started (every time it was open added up)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .catalog import CatalogVersion
from .client import ClientStats
from .outcomes import AdjusterStats

__all__ = [
    "HubStats",
    "HubTotals",
    "SiteCounters",
    "SiteStats",
    "add_counters",
    "site_counters",
    "summed",
]


class SiteStats(NamedTuple):
    """One open site: its catalog (``None`` until detected), its adjuster's and client's
    counters."""

    site: str
    catalog: CatalogVersion | None
    adjuster: AdjusterStats
    client: ClientStats


class HubTotals(NamedTuple):
    """Counters over every site since the hub started (closed sites included), in deltas
    unless named otherwise."""

    open_sites: int
    sites_made: int
    sites_closed: int
    submitted: int
    committed: int
    rejected: int
    in_doubt: int
    cancelled: int
    pending: int
    """Distinct keys pending now, over the open sites."""
    requests: int
    entries_sent: int
    batch_fill: float
    """Entries per request over the largest batch (0.0 before the first request)."""
    rate_limited: int
    """429 answers."""
    token_fetches: int
    app_refusals: int = 0
    """Refusals in a row of the app's own credentials (0 while they work; an API key: 0)."""


class HubStats(NamedTuple):
    """``InventoryHub.stats()``: each open site's counters, and the totals."""

    sites: Mapping[str, SiteStats]
    total: HubTotals


class SiteCounters(NamedTuple):
    """One site's counters since the hub started, over every time it was open (a site closed
    for idleness and made again goes on counting): what a metrics exporter reads. In deltas
    unless named otherwise."""

    site: str
    catalog: str
    """``V1_CATALOG`` or ``V3_CATALOG`` once it sent a request (V3 once any request went
    through V3: a site moves from V1 to V3, never back), else ``unknown``."""
    submitted: int
    committed: int
    rejected: int
    in_doubt: int
    cancelled: int
    requests: int
    entries_sent: int
    rate_limited: int
    """429 answers."""
    in_flight: int = 0
    """Requests in flight now (0 for a closed site)."""
    pending: int = 0
    """Distinct keys pending now (0 for a closed site)."""


COUNTED = ("submitted", "committed", "rejected", "in_doubt", "cancelled", "requests")
COUNTED_ALL = (*COUNTED, "entries_sent", "rate_limited")
"""The :class:`AdjusterStats` fields summed over sites, in :class:`SiteCounters`' order."""


def site_counters(site: str, stats: AdjusterStats) -> SiteCounters:
    """``stats`` of one open adjuster of ``site`` as counters."""
    by_catalog = stats.requests_by_catalog
    if by_catalog.get("V3_CATALOG"):
        catalog = "V3_CATALOG"
    elif by_catalog.get("V1_CATALOG"):
        catalog = "V1_CATALOG"
    else:
        catalog = "unknown"
    counts: dict[str, int] = {name: getattr(stats, name) for name in COUNTED_ALL}
    return SiteCounters(site, catalog, in_flight=stats.in_flight, pending=stats.pending, **counts)


def add_counters(past: SiteCounters | None, now: SiteCounters) -> SiteCounters:
    """A site's counters over two of its open spans (``past`` may be ``None``); the
    in-flight and pending counts are ``now``'s."""
    if past is None:
        return now
    catalog = now.catalog if now.catalog != "unknown" else past.catalog
    if past.catalog == "V3_CATALOG":
        catalog = "V3_CATALOG"
    sums: dict[str, int] = {n: getattr(past, n) + getattr(now, n) for n in COUNTED_ALL}
    return SiteCounters(now.site, catalog, in_flight=now.in_flight, pending=now.pending, **sums)


def summed(counters: Iterable[SiteCounters]) -> dict[str, int]:
    """The counters of many sites added up, by field name."""
    sums = dict.fromkeys(COUNTED_ALL, 0)
    for entry in counters:
        for name in COUNTED_ALL:
            sums[name] += getattr(entry, name)
    return sums
