"""``wixinv-async export``: crawl the whole catalog to JSON Lines or CSV."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import msgspec

from ..catalog import CatalogVersion
from ..crawler import AnyInventoryItem, crawl_inventory
from ..errors import (
    BadRequestError,
    ConfigurationError,
    ConnectError,
    WixInventoryError,
    WrongCatalogError,
)
from ..models import InventoryItem
from ..models_v3 import InventoryItemV3
from . import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK, EXIT_REJECTED
from ._common import (
    REFUSED,
    ProgressLine,
    TargetConfig,
    add_output_options,
    add_target_options,
    check_reachable,
    emit_summary,
    fail,
    make_client,
    refused_credentials,
    target_from_args,
    unreachable,
)

CSV_COLUMNS_V3 = (
    "inventory_item_id",
    "product_id",
    "variant_id",
    "location_id",
    "sku",
    "track_quantity",
    "quantity",
    "in_stock",
    "availability_status",
    "preorder_enabled",
    "product_name",
    "variant_name",
    "revision",
    "updated_date",
)
"""Columns of a Catalog V3 export: one row per item (a variant at a location).
``location_id`` and ``sku`` are the names ``wixinv-async adjust`` reads."""

CSV_COLUMNS = (
    "numeric_id",
    "inventory_id",
    "product_id",
    "track_quantity",
    "variant_id",
    "quantity",
    "in_stock",
    "available_for_preorder",
    "last_updated",
)

EXAMPLES = """\
examples:
  wixinv-async export -o inventory.jsonl
  wixinv-async export --format csv --segments 16 -o inventory.csv
  wixinv-async export --filter '{"trackQuantity": {"$eq": true}}' > tracked.jsonl

JSON Lines holds one inventory item per line, in the wire format. CSV holds one row per variant
(Catalog V1: numeric_id, inventory_id, product_id, ...) or per variant and location (Catalog
V3: inventory_item_id, product_id, variant_id, location_id, sku, ...). The site's catalog is
detected; the summary says which was read. The crawl reads numericId (V1) or productId (V3)
ranges concurrently, so it is not limited to 10,000 items. A site that moves to the other
catalog during the export stops it (exit code 1): run it again.
--json prints the summary on stdout, or on stderr when the data itself goes to stdout.

exit codes: 0 done, 1 the crawl failed (server or network), 2 usage or configuration error
(credentials the site refuses with 401/403, a site that cannot be reached and a --filter the
site refuses included), 130 interrupted (Ctrl-C)
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="crawl the whole catalog's inventory to JSON Lines or CSV",
        description="Crawl every inventory item with the fan-out keyset crawler.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-o", "--output", type=Path, help="output file (default: stdout)")
    parser.add_argument("--format", choices=("jsonl", "csv"), help="default: from the file name")
    parser.add_argument("--segments", type=int, default=8, help="concurrent cursors")
    parser.add_argument(
        "--filter", help="a query filter as JSON, in the language of the site's catalog"
    )
    add_target_options(parser)
    add_output_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = target_from_args(args)
        query_filter = _parse_filter(args.filter)
        fmt = args.format or ("csv" if args.output and args.output.suffix == ".csv" else "jsonl")
        summary = asyncio.run(_export(args, config, query_filter, fmt))
    except ConfigurationError as exc:
        return fail("export", exc, EXIT_CONFIG, as_json=args.json, out=_summary_stream(args))
    except REFUSED as exc:
        error = refused_credentials(exc)
        return fail("export", error, EXIT_CONFIG, as_json=args.json, out=_summary_stream(args))
    except ConnectError as exc:
        error = unreachable(config, exc)
        return fail("export", error, EXIT_CONFIG, as_json=args.json, out=_summary_stream(args))
    except BadRequestError as exc:
        if args.filter is None:  # not the user's filter: a failed crawl
            return fail("export", exc, EXIT_REJECTED, as_json=args.json, out=_summary_stream(args))
        error = ConfigurationError(f"--filter {args.filter}: the site refused it: {_why(exc)}")
        return fail("export", error, EXIT_CONFIG, as_json=args.json, out=_summary_stream(args))
    except WrongCatalogError as exc:
        moved = f"the site moved to another catalog during the export ({exc}); run it again"
        return fail("export", moved, EXIT_REJECTED, as_json=args.json, out=_summary_stream(args))
    except WixInventoryError as exc:
        return fail("export", exc, EXIT_REJECTED, as_json=args.json, out=_summary_stream(args))
    except KeyboardInterrupt:
        stream = _summary_stream(args)
        return fail("export", "interrupted", EXIT_INTERRUPTED, as_json=args.json, out=stream)
    if args.json or args.output is not None:
        emit_summary(summary, as_json=args.json, out=_summary_stream(args))
    return EXIT_OK


def _why(error: BadRequestError) -> str:
    """What the site said of a refused query, each reason once (its message often repeats
    the field violation it lists)."""
    reasons = [f"{v.field}: {v.description}" for v in error.field_violations if v.description]
    reasons = list(dict.fromkeys(reasons or [error.message or str(error)]))
    return "; ".join(reasons)


def _summary_stream(args: argparse.Namespace) -> TextIO:
    """stdout carries the data when there is no --output: the summary must not join it."""
    return sys.stdout if args.json and args.output is not None else sys.stderr


def _parse_filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"--filter is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError("--filter must be a JSON object")
    return value


async def _export(
    args: argparse.Namespace, config: TargetConfig, query_filter: dict[str, Any] | None, fmt: str
) -> dict[str, Any]:
    started = time.monotonic()
    await check_reachable(config)  # before the output file is created
    quiet = args.quiet or args.json or args.output is None
    bar = ProgressLine("export", total=None, quiet=quiet)
    out: TextIO = args.output.open("w", encoding="utf-8", newline="") if args.output else sys.stdout
    writer = _JsonlWriter(out) if fmt == "jsonl" else _CsvWriter(out)
    items = 0
    try:
        async with (
            make_client(config) as client,
            crawl_inventory(client, filter=query_filter, segments=args.segments) as crawl,
        ):
            async for item in crawl:
                writer.write(item)
                items += 1
                bar.update(items, requests=crawl.stats().requests)
            stats = crawl.stats()
            writer.finish(stats.catalog)
    finally:
        if args.output:
            out.close()
    bar.close(items, requests=stats.requests)
    return {
        "catalog": _catalog_name(stats.catalog),
        "items": items,
        "requests": stats.requests,
        "segments": stats.segments,
        "steals": stats.steals,
        "seconds": round(time.monotonic() - started, 3),
        "output": str(args.output) if args.output else "-",
    }


def _catalog_name(catalog: CatalogVersion | None) -> str:
    """``V1`` or ``V3`` (or Wix's name for anything else, such as no stores installed)."""
    names = {CatalogVersion.V1_CATALOG: "V1", CatalogVersion.V3_CATALOG: "V3"}
    return "-" if catalog is None else names.get(catalog, catalog.value)


class _JsonlWriter:
    """One item per line in the wire format (camelCase), whichever catalog it comes from."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._encoder = msgspec.json.Encoder()

    def write(self, item: AnyInventoryItem) -> None:
        self._out.write(self._encoder.encode(item).decode())
        self._out.write("\n")

    def finish(self, catalog: CatalogVersion | None) -> None:
        """Nothing to add at the end."""


class _CsvWriter:
    """Rows of the catalog's columns; the header is written with the first item (the
    catalog is known then), or at the end of an empty export."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out)
        self._header: tuple[str, ...] | None = None

    def write(self, item: AnyInventoryItem) -> None:
        if isinstance(item, InventoryItemV3):
            self._start(CSV_COLUMNS_V3)
            self._writer.writerow(_v3_row(item))
            return
        self._start(CSV_COLUMNS)
        self._writer.writerows(_v1_rows(item))

    def finish(self, catalog: CatalogVersion | None) -> None:
        self._start(CSV_COLUMNS_V3 if catalog is CatalogVersion.V3_CATALOG else CSV_COLUMNS)

    def _start(self, columns: tuple[str, ...]) -> None:
        if self._header is None:
            self._header = columns
            self._writer.writerow(columns)
        elif self._header is not columns:  # unreachable: the crawl raises before it mixes
            raise RuntimeError("items of both catalogs in one export")


def _v1_rows(item: InventoryItem) -> list[list[str]]:
    return [
        [
            _cell(item.numeric_id),
            _cell(item.id),
            _cell(item.product_id),
            _cell(item.track_quantity),
            variant.variant_id,
            _cell(variant.quantity),
            _cell(variant.in_stock),
            _cell(variant.available_for_preorder),
            _cell(item.last_updated),
        ]
        for variant in item.variants
    ]


def _v3_row(item: InventoryItemV3) -> list[str]:
    product = item.product if item.product is not msgspec.UNSET else None
    preorder = item.preorder_info if item.preorder_info is not msgspec.UNSET else None
    return [
        _cell(item.id),
        _cell(item.product_id),
        _cell(item.variant_id),
        _cell(item.location_id),
        _cell(product.variant_sku if product else None),
        _cell(item.track_quantity),
        _cell(item.quantity),
        _cell(item.in_stock),
        _cell(item.availability_status),
        _cell(preorder.enabled if preorder else None),
        _cell(product.name if product else None),
        _cell(product.variant_name if product else None),
        _cell(item.revision),
        _cell(item.updated_date),
    ]


def _cell(value: object) -> str:
    if value is msgspec.UNSET or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
