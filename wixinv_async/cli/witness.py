"""``wixinv-async witness check PRODUCT_ID``: is this product set up to serve as a witness?"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..core.witness_check import WitnessCheck
from ..errors import ConfigurationError, ConnectError, InvalidInputError, WixInventoryError
from ..witness_check import DEFAULT_SLOTS, check_witness
from . import EXIT_CONFIG, EXIT_OK
from ._common import (
    REFUSED,
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

__all__ = ["register"]

EXAMPLES = f"""\
A witness resolves ambiguous failures (timeouts, resets, 5xx) of Catalog V1 requests: every
request carries +1 or -1 on one variant of a product kept for the library, and a read of it
tells whether the request was applied. The product must be tracked, hidden from the
storefront, have one variant per concurrent request (--slots, default {DEFAULT_SLOTS}, as
adjust's --max-in-flight) and quantities inside the witness's bounds (25000..75000, best at
50000). This reads the site (three requests, no write) and lists what is wrong.

examples:
  WIX_API_KEY=... WIX_SITE_ID=... wixinv-async witness check 9f1c... --slots 8
  wixinv-async adjust deltas.csv --witness 9f1c... --max-in-flight 8

exit codes: 0 the product can serve as a witness, 2 it cannot (the problems are listed) or a
usage or configuration error
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "witness",
        help="check a product kept as the witness of ambiguous failures (check)",
        description="The witness product of the adjuster (Catalog V1).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="witness_command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="check that a product can serve as the witness",
        description="Check that a product can serve as the adjuster's witness.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("product_id", metavar="PRODUCT_ID", help="the witness product's id")
    check.add_argument(
        "--slots",
        type=int,
        default=DEFAULT_SLOTS,
        help=f"concurrent requests it must serve [{DEFAULT_SLOTS}]",
    )
    add_target_options(check)
    add_output_options(check)
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    config: TargetConfig | None = None
    try:
        config = target_from_args(args)
        result = asyncio.run(_check(config, args.product_id, args.slots))
    except REFUSED as exc:
        return fail("witness check", refused_credentials(exc), EXIT_CONFIG, as_json=args.json)
    except ConnectError as exc:
        assert config is not None
        error = unreachable(config, exc)
        return fail("witness check", error, EXIT_CONFIG, as_json=args.json)
    except (ConfigurationError, InvalidInputError, WixInventoryError) as exc:
        return fail("witness check", exc, EXIT_CONFIG, as_json=args.json)
    code = EXIT_OK if result.ok else EXIT_CONFIG
    if args.json:
        problems = [
            {"code": p.code.name, "message": p.message, "variant_id": p.variant_id}
            for p in result.problems
        ]
        summary = {
            "product_id": result.product_id,
            "ok": result.ok,
            "slots": result.slots,
            "variant_ids": list(result.variant_ids),
            "visible": result.visible,
            "problems": problems,
            "exit_code": code,
        }
        emit_summary(summary, as_json=True)
    else:
        sys.stdout.write("\n".join(result.lines()) + "\n")
    return code


async def _check(config: TargetConfig, product_id: str, slots: int) -> WitnessCheck:
    await check_reachable(config)
    async with make_client(config) as client:
        return await check_witness(client, product_id, slots=slots)
