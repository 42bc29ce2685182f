"""``wixinv-async demo --sites N``: the main job over many sites through one InventoryHub.

1. The embedded emulator serves N sites (``--catalog both``: V1 and V3 in turn; or all of one
   catalog), each seeded small (30 products by default, V3 items at two locations) and each
   with its own app installation.
2. One :class:`~wixinv_async.hub.InventoryHub` with the emulator's app credentials: every site
   has its own token (one token request per instance), pacing and adjuster, over one HTTP pool.
3. Each site is read whole, a pool of producers submits every site's deltas interleaved
   through the hub, and each site is read again and checked item by item: final = initial +
   exactly its committed deltas. One line per site, then the totals.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..adjuster import Ticket
from ..catalog import CatalogVersion
from ..errors import ConfigurationError, WixInventoryError
from ..hub import InventoryHub
from ..outcomes import OutcomeStatus
from . import EXIT_CONFIG, EXIT_IN_DOUBT, EXIT_OK, EXIT_REJECTED
from ._common import REFUSED, emit_summary, fail, parse_rate, refused_credentials
from .demo import (
    DemoReport,
    Key,
    Report,
    Snapshot,
    check_args,
    delta_stream,
    snapshot,
    verify,
    zipf_weights,
)

__all__ = ["SitesReport", "add_sites_option", "main_job", "run_sites"]

PER_SITE_PRODUCTS = 30
PER_SITE_DELTAS = 1_000
READERS = 16
"""Sites read at once (each read is a few requests; all of them at once would only queue)."""
_HELD_OPEN = 10.0**9
"""The hub's ``idle_timeout``: no site is closed for idleness while the demo reads it."""

T = TypeVar("T")
Submitted = list[tuple[str, Key, int, Ticket]]


def add_sites_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sites",
        type=int,
        metavar="N",
        help="run on N embedded sites (V1 and V3 in turn with --catalog both) through one "
        "InventoryHub; --products and --deltas are then per site (default 30 and 1,000) and "
        "--producers in all",
    )


@dataclass
class SitesReport(DemoReport):
    """Every site's report and what the hub did for all of them."""

    seconds: float
    token_requests: int
    batch_fill: float

    def totals(self) -> dict[str, Any]:
        names = ("deltas", "committed", "in_doubt", "requests", "mismatches")
        return {name: sum(getattr(site, name) for site in self.sites) for name in names} | {
            "rejected": sum(sum(site.rejected.values()) for site in self.sites),
            "verified_variants": sum(site.checked for site in self.sites),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "verification": self.verdict,
            "catalogs": [site.catalog for site in self.sites],
            **self.totals(),
            "adjust_seconds": round(self.seconds, 3),
            "token_requests": self.token_requests,
            "batch_fill": round(self.batch_fill, 3),
            "sites": [_row(site) for site in self.sites],
        }


def _row(site: Report) -> dict[str, Any]:
    return {
        "site": site.target,
        "catalog": site.catalog,
        "deltas": site.deltas,
        "committed": site.committed,
        "rejected": sum(site.rejected.values()),
        "in_doubt": site.in_doubt,
        "requests": site.requests,
        "verified": site.checked,
        "mismatches": site.mismatches,
        "verification": "PASS" if not site.mismatches and not site.in_doubt else "FAIL",
    }


_COLUMNS = (
    "deltas", "committed", "rejected", "in_doubt", "requests", "verified", "mismatches",
)  # fmt: skip


def _table(report: SitesReport) -> list[str]:
    """One compact line per site, then the total."""
    rows = [_row(site) for site in report.sites]
    width = max(len(row["site"]) for row in rows)
    head = "  ".join(f"{name.replace('_', ' '):>10}" for name in _COLUMNS)
    lines = [f"{'site':<{width}}  {'catalog':<7}  {head}  verdict"]
    for row in rows:
        cells = "  ".join(f"{row[name]:>10}" for name in _COLUMNS)
        lines.append(
            f"{row['site']:<{width}}  {row['catalog'][:2]:<7}  {cells}  {row['verification']}"
        )
    totals = report.totals() | {"verified": report.totals()["verified_variants"]}
    cells = "  ".join(f"{totals[name]:>10}" for name in _COLUMNS)
    lines.append(f"{'total':<{width}}  {len(rows):<7}  {cells}  {report.verdict}")
    return lines


def run_sites(args: argparse.Namespace) -> int:
    try:
        _check(args)
        report = asyncio.run(_demo(args))
    except ConfigurationError as exc:
        return fail("demo", exc, EXIT_CONFIG, as_json=args.json)
    except REFUSED as exc:
        return fail("demo", refused_credentials(exc), EXIT_CONFIG, as_json=args.json)
    except WixInventoryError as exc:
        return fail("demo", exc, EXIT_REJECTED, as_json=args.json)
    if args.json:
        emit_summary(report.as_dict(), as_json=True)
    else:
        print("\n".join(_table(report)))
        print(
            f"\nadjust seconds {report.seconds:.2f}, token requests {report.token_requests}, "
            f"batch fill {report.batch_fill:.3f}"
        )
        kinds = Counter(site.catalog for site in report.sites)
        catalogs = ", ".join(f"{count} {name}" for name, count in sorted(kinds.items()))
        print(f"overall verification: {report.verdict} ({len(report.sites)} sites: {catalogs})")
    if report.mismatches:
        return EXIT_REJECTED
    return EXIT_IN_DOUBT if report.in_doubt else EXIT_OK


def _check(args: argparse.Namespace) -> None:
    if args.sites < 1:
        raise ConfigurationError("--sites must be at least 1")
    if args.real_site:
        raise ConfigurationError("--sites runs on the embedded emulator: drop --real-site")
    args.products = PER_SITE_PRODUCTS if args.products is None else args.products
    args.deltas = PER_SITE_DELTAS if args.deltas is None else args.deltas
    check_args(args)


_CATALOGS = {"v1": "v1", "v3": "v3", "both": "mixed"}


async def _demo(args: argparse.Namespace) -> SitesReport:
    from ..auth import AppCredentials
    from ..emulator import Emulator
    from ..transport import RateLimit

    rate = parse_rate(args.rate_limit)
    async with (
        Emulator(
            sites=args.sites,
            catalog=_CATALOGS[args.catalog],
            locations=2,
            products=args.products,
            variants_per_product=args.variants_per_product,
            seed=args.seed,
            latency_ms=args.latency_ms,
            rate_limit=args.site_rate_limit,
        ) as emu,
        InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(*rate) if rate else None,
            idle_timeout=_HELD_OPEN,
            max_sites=args.sites,
            max_in_flight=args.max_in_flight,
        ) as hub,
    ):
        return await main_job(hub, emu.instances, args)


async def main_job(hub: InventoryHub, sites: list[str], args: argparse.Namespace) -> SitesReport:
    reports = {site: Report(target=site) for site in sites}
    initial = dict(
        zip(sites, await _each(sites, lambda s: _read(hub, s, reports[s], args)), strict=True)
    )
    stream = _stream(initial, args)
    started = time.monotonic()
    shares = [stream[i :: args.producers] for i in range(args.producers)]
    submitted = await asyncio.gather(*(_producer(hub, share) for share in shares))
    await hub.flush()
    seconds = time.monotonic() - started
    stats = hub.stats()
    for site, report in reports.items():
        adjuster = stats.sites[site].adjuster
        report.requests = adjuster.requests
        report.seconds = seconds
    committed = _committed(submitted, reports)
    finals = await _each(sites, lambda s: _read(hub, s, reports[s], args))
    for site, final in zip(sites, finals, strict=True):
        verify(initial[site], final, committed[site], reports[site])
    return SitesReport(
        list(reports.values()), seconds, stats.total.token_fetches, stats.total.batch_fill
    )


async def _each(sites: Sequence[str], read: Callable[[str], Awaitable[T]]) -> list[T]:
    """``read`` every site, ``READERS`` at a time, results in the order of ``sites``."""
    gate = asyncio.Semaphore(READERS)

    async def one(site: str) -> T:
        async with gate:
            return await read(site)

    return await asyncio.gather(*(one(site) for site in sites))


async def _read(hub: InventoryHub, site: str, report: Report, args: argparse.Namespace) -> Snapshot:
    handle = hub.site(site)
    catalog = await handle.catalog_version()
    report.catalog = catalog.value
    found = await snapshot(
        handle.client, catalog is CatalogVersion.V3_CATALOG, args.segments, report
    )
    if not report.variants:
        report.variants = len(found.all_keys)
        report.tracked_variants = len(found.tracked)
    return found


def _stream(initial: dict[str, Snapshot], args: argparse.Namespace) -> list[tuple[str, Key, int]]:
    """Every site's deltas (the demo's order and restock stream, drawn per site from the seed
    and the site's place), interleaved: site after site, delta after delta."""
    per_site = []
    for index, (site, found) in enumerate(initial.items()):
        keys = found.tracked
        if not keys:
            raise ConfigurationError(f"site {site}: the catalog has no tracked variants to adjust")
        rng = random.Random(args.seed * 1_000_003 + index)
        rng.shuffle(keys)
        deltas = delta_stream(keys, args.deltas, rng, zipf_weights(len(keys), args.hot_skus))
        per_site.append([(site, key, delta) for key, delta in deltas])
    return [entry for column in zip(*per_site, strict=True) for entry in column]


async def _producer(hub: InventoryHub, share: Sequence[tuple[str, Key, int]]) -> Submitted:
    tickets: Submitted = []
    for index, (site, key, delta) in enumerate(share):
        product, variant, location = key
        ticket = await hub.submit(site, product, variant, delta, location_id=location)
        tickets.append((site, key, delta, ticket))
        if index % 64 == 0:
            await asyncio.sleep(0)
    return tickets


def _committed(
    submitted: Sequence[Submitted], reports: dict[str, Report]
) -> dict[str, Counter[Key]]:
    committed: dict[str, Counter[Key]] = {site: Counter() for site in reports}
    for tickets in submitted:
        for site, key, delta, ticket in tickets:
            outcome = ticket.outcome
            assert outcome is not None, "flush() resolves every ticket"
            report = reports[site]
            report.deltas += 1
            if outcome.status is OutcomeStatus.COMMITTED:
                report.committed += 1
                committed[site][key] += delta
            elif outcome.status is OutcomeStatus.REJECTED:
                report.rejected[outcome.code or "REJECTED"] += 1
            else:
                report.in_doubt += 1
    return committed
