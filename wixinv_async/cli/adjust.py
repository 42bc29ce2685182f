"""``wixinv-async adjust FILE``: apply a file of stock deltas, crash-safely."""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..adjuster import Witness
from ..bulk.rows import detect_format, names_sites
from ..bulk.runner import (
    BulkPaths,
    BulkProgress,
    BulkSummary,
    LaneTotals,
    count_lines,
    run_bulk_adjust,
)
from ..core.witness_check import WitnessProblemCode
from ..errors import ConfigurationError, ConnectError, InvalidInputError, WixInventoryError
from ..witness_check import check_witness
from . import EXIT_CONFIG
from ._common import (
    ProgressLine,
    TargetConfig,
    add_output_options,
    add_target_options,
    check_reachable,
    emit_summary,
    fail,
    make_client,
    plain,
    target_from_args,
    unreachable,
)

if TYPE_CHECKING:
    from ..client import InventoryClient
    from ..hub import InventoryHub

EXAMPLES = """\
The file is CSV with a header, or JSON Lines (.jsonl), one delta per row:
  product_id,variant_id,delta,preorder
  9f1c...,00000000-0000-0000-0000-000000000000,-2,false
On a Catalog V3 site a row may also name a location_id (default: the site's default location),
or give a sku instead of product_id and variant_id; inventory_id (with variant_id) is then a V3
inventory item id. The site's catalog is detected, also when it migrates during the run.

A journal next to the file records each batch before it is sent and each row's outcome after.
Run the same command again after a crash (even kill -9): committed and rejected rows are
skipped, rows in doubt are never re-sent unless --retry-in-doubt is given, and the rest (never
sent, or refused whole for no fault of the row, e.g. a 429 to the last attempt) is sent. Bad
rows go to FILE.rejects.csv with their line number and reason; rows in doubt are listed in
FILE.in-doubt.csv for reconciliation.

Many sites in one file: a site column (CSV header, or a site key on the first JSON Lines row)
names each row's site, and the run goes through one InventoryHub (one HTTP pool, each site its
own token, pacing and adjuster). With WIX_API_KEY a site is a site id; with WIX_APP_ID and
WIX_APP_SECRET it is an app instance id. WIX_SITE_ID / WIX_INSTANCE_ID, if set, is the site of
rows whose site cell is empty. A site that refuses the credentials (a revoked installation, a
site the key cannot reach) has its rows rejected as not applied (a rerun sends them again);
the other sites go on. The summary ends with one line per site.

--witness PRODUCT_ID (Catalog V1): every request carries +1 or -1 on one variant of a product
kept for the library (tracked, hidden, one variant per --max-in-flight; see `wixinv-async
witness check`). After an ambiguous failure (timeout, reset, 5xx) a read of it tells whether
the request was applied: its rows are then committed, or not applied (sent again by the next
run) instead of in doubt. Journalled: a rerun after a crash resolves the rows of requests that
were on the wire the same way, after waiting --witness-settle seconds. Rows on the witness
product itself are rejected.

examples:
  WIX_API_KEY=... WIX_SITE_ID=... wixinv-async adjust deltas.csv
  wixinv-async adjust deltas.jsonl --base-url http://127.0.0.1:8765 --api-key K --site-id S --json
  WIX_APP_ID=... WIX_APP_SECRET=... wixinv-async adjust many-sites.csv   # site,product_id,...
  wixinv-async adjust deltas.csv --witness 9f1c... --max-in-flight 8

exit codes: 0 all committed, 1 some rows rejected, 2 usage or configuration error, 3 rows in doubt,
130 interrupted (Ctrl-C: every outcome known is journalled; run the same command to resume)
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "adjust",
        help="apply a CSV or JSON Lines file of stock deltas, crash-safely",
        description="Apply a file of per-variant stock deltas through the coalescing adjuster.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, help="CSV or JSON Lines file of deltas")
    parser.add_argument("--journal", type=Path, help="journal path (default FILE.journal)")
    parser.add_argument(
        "--retry-in-doubt",
        action="store_true",
        help="re-send rows an earlier run left in doubt (they may then be applied twice)",
    )
    parser.add_argument("--max-in-flight", type=int, default=4, help="concurrent requests")
    parser.add_argument("--linger", type=float, default=0.05, help="seconds a batch may wait")
    parser.add_argument(
        "--witness",
        metavar="PRODUCT_ID",
        help="resolve ambiguous failures by this witness product's variants (Catalog V1)",
    )
    parser.add_argument(
        "--witness-settle",
        type=float,
        default=10.0,
        help="seconds to wait after an ambiguous failure (or a crash) before reading the "
        "witness [10]",
    )
    add_target_options(parser)
    add_output_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        if not args.file.is_file():
            raise ConfigurationError(f"no such file: {args.file}")
        with args.file.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as head:
            many = names_sites(head, detect_format(args.file))
        if many and args.witness:
            raise ConfigurationError("--witness serves one site: not a file naming sites")
        config = target_from_args(args, many_sites=many)
        summary = asyncio.run(_adjust(args, config, many))
    except (ConfigurationError, InvalidInputError, OSError) as exc:
        # OSError: the input, the journal or a report file cannot be opened
        return fail("adjust", exc, EXIT_CONFIG, as_json=args.json)
    report = summary.as_dict()
    if args.json:
        emit_summary(report, as_json=True)
    else:
        sites = report.pop("sites", {})
        emit_summary(report, as_json=False)
        _print_sites(sites)
    return summary.exit_code


def _print_sites(sites: dict[str, dict[str, object]]) -> None:
    """One line per site: its id, catalog and counts (and why it refused, if it did)."""
    if not sites:
        return
    width = max(len(site) for site in sites)
    for site, counts in sites.items():
        catalog = str(counts.pop("catalog") or "-")
        refused = counts.pop("refused")
        text = ", ".join(f"{name.replace('_', ' ')} {plain(n)}" for name, n in counts.items())
        line = f"site {site:<{width}}  {catalog:<10}  {text}"
        sys.stdout.write(line + (f", refused {refused}" if refused else "") + "\n")


PROGRESS_SECONDS = 0.5

_RECOVERABLE = frozenset({WitnessProblemCode.QUANTITY_OUT_OF_BOUNDS})
"""Witness problems a run copes with (the adjuster re-centres the witness itself)."""


async def _witness(client: InventoryClient, args: argparse.Namespace) -> Witness:
    """The --witness product, checked (all its variants are slots); ConfigurationError, with
    the problems, when it cannot serve."""
    try:
        check = await check_witness(client, args.witness, slots=args.max_in_flight)
    except InvalidInputError:
        raise
    except WixInventoryError as exc:
        raise ConfigurationError(f"--witness {args.witness}: cannot read it: {exc}") from None
    blocking = [p for p in check.problems if p.code not in _RECOVERABLE]
    if blocking:
        problems = "; ".join(f"{p.code.name}: {p.message}" for p in blocking)
        raise ConfigurationError(f"--witness {args.witness} cannot serve: {problems}")
    try:
        return Witness(args.witness, check.variant_ids, settle=args.witness_settle)
    except ConfigurationError as exc:
        raise ConfigurationError(f"--witness-settle={args.witness_settle!r}: {exc}") from None


def _show(bar: ProgressLine, progress: BulkProgress, totals: Callable[[], LaneTotals]) -> None:
    """Rows settled out of the file's, and what is behind them: rows read and submitted,
    requests, 429 answers, rows rejected and in doubt."""
    stats = totals()
    settled = stats.committed + stats.rejected + stats.in_doubt + stats.cancelled
    bar.update(
        progress.invalid
        + progress.done_before
        + progress.held_in_doubt
        + progress.refused
        + settled,
        read=progress.rows,
        submitted=progress.submitted,
        requests=stats.requests,
        **{"429s": stats.rate_limited},
        rejected=stats.rejected + progress.invalid + progress.refused,
        in_doubt=stats.in_doubt + progress.held_in_doubt,
    )


async def _adjust(args: argparse.Namespace, config: TargetConfig, many: bool) -> BulkSummary:
    paths = BulkPaths.beside(args.file, args.journal)
    total = count_lines(args.file)
    bar = ProgressLine("adjust", total=total, quiet=args.quiet or args.json)

    watched: list[tuple[BulkProgress, Callable[[], LaneTotals]]] = []

    def show(progress: BulkProgress, totals: Callable[[], LaneTotals]) -> None:
        if not watched:
            watched.append((progress, totals))
        _show(bar, progress, totals)

    async def tick() -> None:
        """Reading can wait long on back-pressure while requests go out: the display follows
        the adjuster's stats on a timer, not the rows read."""
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            if watched:
                _show(bar, *watched[0])

    if total:  # something to send (an empty file runs without the site)
        await check_reachable(config)
    ticker = asyncio.create_task(tick())
    run = functools.partial(
        run_bulk_adjust,
        paths=paths,
        retry_in_doubt=args.retry_in_doubt,
        adjuster_options={"max_in_flight": args.max_in_flight, "linger": args.linger},
        on_progress=show,
        probe=lambda: check_reachable(config),
    )
    try:
        if many:
            async with _hub(config) as hub:
                default = config.site_id if config.api_key else config.instance_id
                summary = await run(
                    None, sites=lambda site: hub.site(site).client, default_site=default
                )
        else:
            async with make_client(config) as client:  # the journal records its site too
                witness = await _witness(client, args) if args.witness else None
                default = config.site_id if config.api_key else config.instance_id
                summary = await run(client, default_site=default, witness=witness)
    except ConnectError as exc:  # the host went away mid-run: exit 2 with its address
        raise unreachable(config, exc) from None
    finally:
        ticker.cancel()
    bar.close(summary.rows, requests=summary.requests)
    return summary


_HELD_OPEN = 10.0**9
"""``idle_timeout`` of the run's hub: the run keeps its own adjusters on the hub's site clients
(the hub's adjusters take no journal hooks), so the hub must never close a site for
idleness under them; the run ends by closing them, then the hub."""


def _hub(config: TargetConfig) -> InventoryHub:
    """The hub of a run over many sites: one HTTP pool, each site its own token and pacing
    (``--rate-limit off``: none)."""
    from ..auth import ApiKeyAuth, AppCredentials
    from ..hub import InventoryHub
    from ..transport import RateLimit

    auth: ApiKeyAuth | AppCredentials
    if config.api_key is not None:
        auth = ApiKeyAuth(config.api_key)
    else:
        assert config.app_id is not None and config.app_secret is not None
        auth = AppCredentials(config.app_id, config.app_secret)
    rate = RateLimit(*config.rate_limit) if config.rate_limit else None
    return InventoryHub(
        auth,
        base_url=config.base_url,
        rate_limit=rate,
        idle_timeout=_HELD_OPEN,
        max_sites=MAX_SITES,
    )


MAX_SITES = 1_000_000
"""Open sites a run's hub allows: every site of the file stays open until the run ends."""
