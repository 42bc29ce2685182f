"""``wixinv-async adjust FILE``: apply a file of stock deltas, crash-safely."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from ..adjuster import Witness
from ..bulk.runner import BulkPaths, BulkProgress, BulkSummary, count_lines, run_bulk_adjust
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
    target_from_args,
    unreachable,
)

if TYPE_CHECKING:
    from ..adjuster import InventoryAdjuster
    from ..client import InventoryClient

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
        config = target_from_args(args)
        if not args.file.is_file():
            raise ConfigurationError(f"no such file: {args.file}")
        summary = asyncio.run(_adjust(args, config))
    except (ConfigurationError, InvalidInputError, OSError) as exc:
        # OSError: the input, the journal or a report file cannot be opened
        return fail("adjust", exc, EXIT_CONFIG, as_json=args.json)
    emit_summary(summary.as_dict(), as_json=args.json)
    return summary.exit_code


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


def _show(bar: ProgressLine, progress: BulkProgress, adjuster: InventoryAdjuster) -> None:
    """Rows settled out of the file's, and what is behind them: rows read and submitted,
    requests, 429 answers, rows rejected and in doubt."""
    stats = adjuster.stats()
    settled = stats.committed + stats.rejected + stats.in_doubt + stats.cancelled
    bar.update(
        progress.invalid + progress.done_before + progress.held_in_doubt + settled,
        read=progress.rows,
        submitted=progress.submitted,
        requests=stats.requests,
        **{"429s": stats.rate_limited},
        rejected=stats.rejected + progress.invalid,
        in_doubt=stats.in_doubt + progress.held_in_doubt,
    )


async def _adjust(args: argparse.Namespace, config: TargetConfig) -> BulkSummary:
    paths = BulkPaths.beside(args.file, args.journal)
    total = count_lines(args.file)
    bar = ProgressLine("adjust", total=total, quiet=args.quiet or args.json)

    watched: list[tuple[BulkProgress, InventoryAdjuster]] = []

    def show(progress: BulkProgress, adjuster: InventoryAdjuster) -> None:
        if not watched:
            watched.append((progress, adjuster))
        _show(bar, progress, adjuster)

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
    try:
        async with make_client(config) as client:
            witness = await _witness(client, args) if args.witness else None
            summary = await run_bulk_adjust(
                client,
                paths,
                retry_in_doubt=args.retry_in_doubt,
                adjuster_options={"max_in_flight": args.max_in_flight, "linger": args.linger},
                on_progress=show,
                witness=witness,
                probe=lambda: check_reachable(config),
            )
    except ConnectError as exc:  # the site went away mid-run: exit 2 with its address
        raise unreachable(config, exc) from None
    finally:
        ticker.cancel()
    bar.close(summary.rows, requests=summary.requests)
    return summary
