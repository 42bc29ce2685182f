"""``wixinv-async demo``: the main job, end to end on the embedded emulator.

1. Start the emulator in process with one Catalog V1 site and one Catalog V3 site (``--catalog
   both``, the default; or one of them), each seeded with tens of thousands of variants (on V3
   each variant is stocked at two locations).
2. Read each site whole to learn every tracked item's starting quantity (V1: per variant, with
   the parallel crawler; V3: per variant and location, by cursor).
3. On both sites at once, run many concurrent producers (a simulated order and restock stream
   with hot SKUs, plus a few deltas for products that do not exist) through one
   InventoryAdjuster per site, which finds the site's catalog itself.
4. Read each site again and check every tracked item: final = initial + exactly the committed
   deltas. One report per site.

With ``--real-site`` (and credentials) it targets a real site instead: then every increment is
matched by a decrement of the same variant, sent separately (``net_opposite_signs=False``), so
stock ends where it started and the check is the same. Other changes to the site during the run
(real orders) make that check fail, so use a test site.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..adjuster import InventoryAdjuster, Ticket
from ..catalog import CatalogVersion
from ..client import InventoryClient
from ..crawler import crawl_inventory
from ..errors import ConfigurationError, TransportError, WixInventoryError
from ..models import InventoryItem
from ..models_v3 import Sorting
from ..outcomes import OutcomeStatus
from . import EXIT_CONFIG, EXIT_IN_DOUBT, EXIT_OK, EXIT_REJECTED
from ._common import (
    REFUSED,
    ProgressLine,
    TargetConfig,
    add_output_options,
    add_target_options,
    emit_summary,
    fail,
    make_client,
    parse_rate,
    refused_credentials,
    target_from_args,
)
from ._demo_fleet import add_fleet_options, run_fleet

Key = tuple[str, str, str | None]
"""(product id, variant id, location id): the location is ``None`` on V1, which has one."""

EXAMPLES = """\
examples:
  wixinv-async demo                  # a V1 and a V3 site (4,000 products each), 200,000 deltas each
  wixinv-async demo --catalog v3 --products 2000 --deltas 20000 --json
  wixinv-async demo --site-rate-limit 200/60 --rate-limit 200/60   # feel Wix's real budget
  wixinv-async demo --sites 200      # 200 sites (V1 and V3 in turn) through one InventoryHub

exit codes: 0 verified, 1 verification failed, 2 usage error, 3 deltas left in doubt
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the main job: producers -> adjuster -> emulator, then crawl and verify",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--catalog",
        choices=("v1", "v3", "both"),
        default="both",
        help="the embedded emulator's sites: one V1, one V3, or one of each (default)",
    )
    parser.add_argument(
        "--products", type=int, help="catalog size per site [4,000; with --sites: 30]"
    )
    parser.add_argument("--variants-per-product", type=int, default=3)
    parser.add_argument(
        "--deltas", type=int, help="deltas to submit per site [200,000; with --sites: 1,000]"
    )
    parser.add_argument(
        "--producers", type=int, default=64, help="concurrent producers per site (--sites: in all)"
    )
    parser.add_argument("--hot-skus", type=float, default=1.1, help="Zipf exponent of SKU choice")
    parser.add_argument("--segments", type=int, default=8, help="crawler segments")
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="emulator latency")
    parser.add_argument(
        "--site-rate-limit", help="the emulator's per-site limit, e.g. 200/60 (default: none)"
    )
    parser.add_argument(
        "--real-site",
        action="store_true",
        help="target the site given by the site flags / WIX_* variables instead of the emulator",
    )
    parser.add_argument(
        "--i-understand-this-changes-stock",
        dest="confirmed",
        action="store_true",
        help="required with --real-site",
    )
    from ._demo_sites import add_sites_option

    add_sites_option(parser)
    add_target_options(parser)
    parser.set_defaults(rate_limit="off")
    add_output_options(parser)
    add_fleet_options(parser)
    parser.set_defaults(func=run)


DEFAULT_PRODUCTS, DEFAULT_DELTAS = 4_000, 200_000


def run(args: argparse.Namespace) -> int:
    if args.sites is not None:
        if args.fleet:
            return fail(
                "demo",
                ConfigurationError("--sites and --fleet: choose one"),
                EXIT_CONFIG,
                as_json=args.json,
            )
        from ._demo_sites import run_sites

        return run_sites(args)
    args.products = DEFAULT_PRODUCTS if args.products is None else args.products
    args.deltas = DEFAULT_DELTAS if args.deltas is None else args.deltas
    if args.fleet:
        return run_fleet(args)
    try:
        check_args(args)
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
        for site in report.sites:
            emit_summary(site.as_dict(), as_json=False)
            print()
        catalogs = ", ".join(site.catalog for site in report.sites)
        print(f"overall verification: {report.verdict} ({catalogs})")
        print(report.sites[-1].notes(args.producers))
    if report.mismatches:
        return EXIT_REJECTED
    return EXIT_IN_DOUBT if report.in_doubt else EXIT_OK


def check_args(args: argparse.Namespace) -> None:
    for name in ("products", "variants_per_product", "deltas", "producers", "segments"):
        if getattr(args, name) < 1:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be at least 1")
    parse_rate(args.rate_limit)  # before the emulator is seeded: a bad value fails at once
    if args.real_site and not args.confirmed:
        raise ConfigurationError(
            "--real-site changes stock on a live site: add --i-understand-this-changes-stock"
        )


@dataclass
class Report:
    """What the demo measured on one site."""

    target: str
    catalog: str = ""
    variants: int = 0
    tracked_variants: int = 0
    deltas: int = 0
    committed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    in_doubt: int = 0
    requests: int = 0
    entries: int = 0
    """Distinct entries the deltas merged into (each sent once unless bisected or resent)."""
    entries_sent: int = 0
    batch_fill: float = 0.0
    seconds: float = 0.0
    latency_p50: float | None = None
    latency_p99: float | None = None
    crawl_requests: int = 0
    crawl_seconds: float = 0.0
    checked: int = 0
    mismatches: int = 0
    example_mismatch: str = ""

    def as_dict(self) -> dict[str, Any]:
        seconds = max(self.seconds, 1e-9)
        verdict = "PASS" if not self.mismatches and not self.in_doubt else "FAIL"
        return {
            "target": self.target,
            "catalog": self.catalog,
            "variants": self.variants,
            "tracked_variants": self.tracked_variants,
            "deltas": self.deltas,
            "committed": self.committed,
            "rejected": dict(self.rejected),
            "in_doubt": self.in_doubt,
            "requests": self.requests,
            "coalescing_ratio": round(self.deltas / max(self.entries, 1), 2),
            "deltas_per_request": round(self.deltas / max(self.requests, 1), 1),
            "batch_fill": round(self.batch_fill, 3),
            "throughput_deltas_per_s": round(self.deltas / seconds),
            "throughput_variants_per_s": round(self.entries / seconds),
            "latency_p50_ms": _ms(self.latency_p50),
            "latency_p99_ms": _ms(self.latency_p99),
            "adjust_seconds": round(self.seconds, 3),
            "crawl_requests": self.crawl_requests,
            "crawl_seconds": round(self.crawl_seconds, 3),
            "verified_variants": self.checked,
            "mismatches": self.mismatches,
            "verification": verdict + (f" ({self.example_mismatch})" if self.mismatches else ""),
        }

    def notes(self, producers: int) -> str:
        """What the report's less obvious figures mean, with this run's numbers."""
        return NOTES.format(
            deltas=self.deltas,
            entries=max(self.entries, 1),
            producers=producers,
            seconds=self.seconds,
            ratio=self.deltas / max(self.entries, 1),
        )


NOTES = """
what the figures mean:
  coalescing ratio   deltas per entry sent ({deltas} / {entries} = {ratio:.2f}): deltas for one
                     variant that wait together become one entry (+5 and -3 are one +2)
  deltas per request deltas each request carried, on average
  batch fill         entries per request out of the 300 a Wix request takes, on average
  latency p50, p99   from a delta's submit to its outcome. All {deltas} deltas were queued at
                     once by {producers} producers, so most waited behind the batches ahead of
                     them: the median is near half the run ({seconds:.2f} s), not one round trip
  throughput         deltas (or distinct variants) settled per second of the adjust phase
  verification       crawled quantities = initial + exactly the committed deltas, every variant"""


@dataclass
class DemoReport:
    """Every site's report; the figures a caller checks first summed over the sites."""

    sites: list[Report]

    @property
    def mismatches(self) -> int:
        return sum(site.mismatches for site in self.sites)

    @property
    def in_doubt(self) -> int:
        return sum(site.in_doubt for site in self.sites)

    @property
    def verdict(self) -> str:
        return "PASS" if not self.mismatches and not self.in_doubt else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        """Totals at the top (``verification`` is PASS only when every site passed), then
        ``sites``: one report per site."""
        total = {
            name: sum(getattr(site, name) for site in self.sites)
            for name in ("deltas", "committed", "in_doubt", "requests", "mismatches")
        }
        return {
            "verification": self.verdict,
            "catalogs": [site.catalog for site in self.sites],
            **total,
            "verified_variants": sum(site.checked for site in self.sites),
            "sites": [site.as_dict() for site in self.sites],
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


async def _demo(args: argparse.Namespace) -> DemoReport:
    async with _targets(args) as targets:
        several = len(targets) > 1
        reports = await asyncio.gather(
            *(_site_demo(config, label, args, several) for config, label in targets)
        )
        return DemoReport(list(reports))


async def _site_demo(
    config: TargetConfig, label: str, args: argparse.Namespace, several: bool
) -> Report:
    """The main job on one site: read it, adjust it, read it again, verify."""
    report = Report(target=label)
    async with make_client(config) as client:
        catalog = await client.catalog_version()
        report.catalog = catalog.value
        v3 = catalog is CatalogVersion.V3_CATALOG
        initial = await snapshot(client, v3, args.segments, report)
        report.variants = len(initial.all_keys)
        report.tracked_variants = len(initial.tracked)
        if not initial.tracked:
            raise ConfigurationError(f"{label}: the catalog has no tracked variants to adjust")
        bar_label = f"adjust {catalog.value}" if several else "adjust"
        committed = await _produce(client, args, initial, report, bar_label)
        final = await snapshot(client, v3, args.segments, report)
    verify(initial, final, committed, report)
    return report


_CATALOGS = {"v1": ["v1"], "v3": ["v3"], "both": ["v1", "v3"]}


@contextlib.asynccontextmanager
async def _targets(args: argparse.Namespace) -> AsyncIterator[list[tuple[TargetConfig, str]]]:
    if args.real_site:
        config = target_from_args(args)
        yield [(config, config.base_url)]
        return
    from ..emulator import Emulator

    catalogs = _CATALOGS[args.catalog]
    async with Emulator(
        sites=len(catalogs),
        catalog=catalogs,
        locations=2,  # V3 sites stock every variant at a second location too
        products=args.products,
        variants_per_product=args.variants_per_product,
        seed=args.seed,
        latency_ms=args.latency_ms,
        rate_limit=args.site_rate_limit,
    ) as emu:
        yield [
            (
                TargetConfig(
                    base_url=emu.url,
                    api_key=emu.api_key,
                    site_id=site_id,
                    rate_limit=parse_rate(args.rate_limit),
                ),
                f"embedded emulator at {emu.url}, site {site_id}",
            )
            for site_id in emu.sites
        ]


@dataclass
class Snapshot:
    quantities: dict[Key, int]
    """Tracked variants' quantities."""
    all_keys: set[Key]

    @property
    def tracked(self) -> list[Key]:
        return sorted(self.quantities)


async def snapshot(client: InventoryClient, v3: bool, segments: int, report: Report) -> Snapshot:
    """Every item of the site, its crawl's requests and seconds added to ``report``."""
    started = time.monotonic()
    before = client.stats().requests
    snapshot = await (_snapshot_v3(client) if v3 else _snapshot_v1(client, segments))
    report.crawl_requests += client.stats().requests - before
    report.crawl_seconds += time.monotonic() - started
    return snapshot


async def _snapshot_v1(client: InventoryClient, segments: int) -> Snapshot:
    quantities: dict[Key, int] = {}
    keys: set[Key] = set()
    async with crawl_inventory(client, segments=segments) as crawl:
        async for item in crawl:
            if not isinstance(item, InventoryItem):  # the site moved to V3 while it was read
                raise TransportError("the V1 site changed catalog while the demo read it")
            for variant in item.variants:
                key = (str(item.product_id), variant.variant_id, None)
                keys.add(key)
                if item.track_quantity is True and isinstance(variant.quantity, int):
                    quantities[key] = variant.quantity
    return Snapshot(quantities, keys)


V3_PAGE = 1_000
"""Items per V3 query page (the most Wix serves): a V3 read follows one cursor."""


async def _snapshot_v3(client: InventoryClient) -> Snapshot:
    """Every V3 item, one per variant and location, read by cursor, in ``productId`` order
    (not the default order by update time: nothing writes while the demo reads, but a
    quantity's change would move an item in that order)."""
    quantities: dict[Key, int] = {}
    keys: set[Key] = set()
    order = [Sorting(field_name="productId", order="ASC")]
    async for item in client.query_all_inventory_items(sort=order, limit=V3_PAGE):
        key = (str(item.product_id), str(item.variant_id), str(item.location_id))
        keys.add(key)
        if item.track_quantity is True and isinstance(item.quantity, int):
            quantities[key] = item.quantity
    return Snapshot(quantities, keys)


def zipf_weights(count: int, exponent: float) -> list[float]:
    """Cumulative weights of ranks 1..count under a Zipf law: a few SKUs get most orders."""
    total = 0.0
    cumulative = []
    for rank in range(1, count + 1):
        total += 1.0 / rank**exponent
        cumulative.append(total)
    return cumulative


def delta_stream(
    keys: Sequence[Key], count: int, rng: random.Random, cumulative: Sequence[float]
) -> list[tuple[Key, int]]:
    """``count`` deltas: orders (-1 to -3) four times as often as restocks (+5 to +20), on
    SKUs drawn by ``cumulative`` weights; about one in 5,000 names a product that does not
    exist."""
    picks = rng.choices(keys, cum_weights=cumulative, k=count)
    stream: list[tuple[Key, int]] = []
    for key in picks:
        if rng.random() < 0.0002:
            key = _missing(key, rng)
        delta = -rng.randint(1, 3) if rng.random() < 0.8 else rng.randint(5, 20)
        stream.append((key, delta))
    return stream


def _missing(key: Key, rng: random.Random) -> Key:
    """A key for a product that does not exist: on V3 (whose variant ids are unique: a write
    names the variant, not the product) a variant that does not exist either."""
    product = f"no-such-product-{rng.randrange(10**6)}"
    if key[2] is None:
        return (product, key[1], None)
    return (product, str(uuid.UUID(int=rng.getrandbits(128), version=4)), key[2])


def balanced_stream(keys: Sequence[Key], count: int, rng: random.Random) -> list[tuple[Key, int]]:
    """For a real site: +n then -n on the same variant, so stock ends where it began."""
    stream: list[tuple[Key, int]] = []
    for _ in range(max(count // 2, 1)):
        key = rng.choice(keys)
        amount = rng.randint(1, 3)
        stream += [(key, amount), (key, -amount)]
    return stream


async def _produce(
    client: InventoryClient,
    args: argparse.Namespace,
    initial: Snapshot,
    report: Report,
    bar_label: str,
) -> Counter[Key]:
    rng = random.Random(args.seed)
    keys = initial.tracked
    rng.shuffle(keys)  # hotness independent of catalog order
    if args.real_site:
        stream = balanced_stream(keys, args.deltas, rng)
    else:
        stream = delta_stream(keys, args.deltas, rng, zipf_weights(len(keys), args.hot_skus))
    shares = [stream[i :: args.producers] for i in range(args.producers)]
    bar = ProgressLine(bar_label, total=len(stream), quiet=args.quiet or args.json)
    started = time.monotonic()
    async with InventoryAdjuster(
        client, max_in_flight=args.max_in_flight, net_opposite_signs=not args.real_site
    ) as adjuster:
        watcher = asyncio.create_task(_watch(adjuster, bar))
        try:
            submitted = await asyncio.gather(*(_producer(adjuster, share) for share in shares))
            await adjuster.flush()
        finally:
            watcher.cancel()
        stats = adjuster.stats()
    report.seconds = time.monotonic() - started
    bar.close(len(stream), requests=stats.requests)
    report.deltas = len(stream)
    report.requests = stats.requests
    report.entries = stats.submitted - stats.coalesced
    report.entries_sent = stats.entries_sent
    report.batch_fill = stats.batch_fill
    report.latency_p50, report.latency_p99 = stats.latency_p50, stats.latency_p99
    return _committed(submitted, report)


async def _watch(adjuster: InventoryAdjuster, bar: ProgressLine) -> None:
    while True:
        await asyncio.sleep(0.2)
        stats = adjuster.stats()
        bar.update(
            stats.committed + stats.rejected + stats.in_doubt,
            requests=stats.requests,
            in_doubt=stats.in_doubt,
        )


async def _producer(
    adjuster: InventoryAdjuster, share: Sequence[tuple[Key, int]]
) -> list[tuple[Key, int, Ticket]]:
    """One producer: submits its deltas as they come, yielding to the others between them."""
    tickets = []
    for index, (key, delta) in enumerate(share):
        product, variant, location = key
        ticket = await adjuster.submit(product, variant, delta, location_id=location)
        tickets.append((key, delta, ticket))
        if index % 64 == 0:
            await asyncio.sleep(0)
    return tickets


def _committed(
    submitted: Sequence[Sequence[tuple[Key, int, Ticket]]], report: Report
) -> Counter[Key]:
    committed: Counter[Key] = Counter()
    for tickets in submitted:
        for key, delta, ticket in tickets:
            outcome = ticket.outcome
            assert outcome is not None, "flush() resolves every ticket"
            if outcome.status is OutcomeStatus.COMMITTED:
                report.committed += 1
                committed[key] += delta
            elif outcome.status is OutcomeStatus.REJECTED:
                report.rejected[outcome.code or "REJECTED"] += 1
            else:
                report.in_doubt += 1
    return committed


def verify(initial: Snapshot, final: Snapshot, committed: Counter[Key], report: Report) -> None:
    """Every tracked variant: final == initial + committed deltas, and nothing else moved."""
    for key, start in initial.quantities.items():
        report.checked += 1
        expected = start + committed.get(key, 0)
        actual = final.quantities.get(key)
        if actual != expected:
            report.mismatches += 1
            if not report.example_mismatch:
                where = "/".join(part for part in key if part is not None)
                report.example_mismatch = f"{where}: expected {expected}, found {actual}"
    strays = set(committed) - set(initial.quantities)
    report.mismatches += len(strays)
