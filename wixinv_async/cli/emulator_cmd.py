"""``wixinv-async emulator``: serve the Wix Inventory emulator until interrupted.

Prints the URL and the (emulator-only) credentials when ready, also as ``export WIX_...``
lines that the other subcommands read, and how clients pace against it (they keep to Wix's
200/60 unless told ``--rate-limit off``: a fast local emulator then looks slow), then serves
until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
from typing import TYPE_CHECKING, TextIO

from . import EXIT_CONFIG, EXIT_OK

if TYPE_CHECKING:
    from ..emulator import Emulator

__all__ = ["register", "run"]

EXAMPLES = """\
examples:
  wixinv-async emulator                                  # 100 products, port 8765
  wixinv-async emulator --products 100000 --seed 7 --rate-limit 200/60
  wixinv-async emulator --port 0 --faults faults.json    # any free port, injected faults
  wixinv-async emulator --catalog v3 --locations 2       # a Catalog V3 site, two locations
  wixinv-async emulator --sites 500 --catalog mixed --rate-limit 200/60
                                        # 500 sites, V1 and V3 in turn, 200 per 60 s each

faults.json: {"seed": 1, "stall_seconds": 30, "retry_after": 1,
              "late_seconds": 2, "late_jitter": 1,
              "endpoints": {"*": {"latency_ms": 20, "jitter_ms": 10},
                            "decrementInventory": {"reset_after": 0.05, "error_503": 0.05,
                                                   "late_504": 0.02}}}
kinds: rate_limited error_500 error_503 reset_before error_502 error_504 reset_after stall_after
       late_504 late_reset late_stall (answer 504 / reset / stall WITHOUT applying, then apply
       late_seconds + [0, late_jitter] s after that answer, journaled with source "late")
per entry of a V3 bulk call: item_error item_undetailed
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="serve a local Wix Inventory emulator (seeded catalog, rate limits, faults)",
        description=(
            "Serve a local Wix Inventory emulator until interrupted. It prints its URL and its "
            "own test credentials (also as export WIX_... lines) when ready."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind [127.0.0.1]")
    add("--port", type=int, default=8765, help="port; 0 picks a free one [8765]")
    add("--products", type=int, default=100, help="products in the seeded catalog [100]")
    add(
        "--variants-per-product", type=int, default=3, help="variants of multi-variant products [3]"
    )
    add("--seed", type=int, default=0, help="catalog seed: same seed, same catalog [0]")
    add("--api-key", help="API key to accept [random]")
    add("--site-id", help="site id of the default site [derived from the seed]")
    add(
        "--sites",
        type=int,
        default=1,
        help="sites served, each with its own id, app instance, catalog, rate window, "
        "faults and journal; listed by GET /_emulator/sites [1]",
    )
    add("--extra-sites", type=int, default=0, help="older spelling: sites beyond the first [0]")
    add(
        "--make-sites",
        action="store_true",
        help="seed every site's catalog before serving (default: each on its first use)",
    )
    add("--rate-limit", help="requests per rolling period per site, e.g. 200/60 [off]")
    add("--retry-after", choices=("on", "off"), default="on", help="send Retry-After with 429 [on]")
    add("--latency-ms", type=float, default=0.0, help="latency added to every call [0]")
    add("--faults", metavar="FILE", help="JSON fault plan (see below)")
    add("--token-lifetime", type=float, default=14_400, help="OAuth token lifetime, s [14400]")
    add(
        "--catalog",
        choices=("v1", "v3", "mixed"),
        default="v1",
        help="the catalog every site runs: v1, v3, or mixed (V1 and V3 in turn, the first "
        "site V1); migrate with POST /_emulator/migrate [v1]",
    )
    add("--locations", type=int, default=1, help="stores locations of a V3 site [1]")
    add(
        "--version-scope",
        choices=("on", "off"),
        default="on",
        help="off: the catalog version call answers 403 (credentials without the read scope) [on]",
    )
    add(
        "--id-distribution",
        choices=("clustered", "uniform", "skewed"),
        default="clustered",
        help="how numericIds spread [clustered]",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Serve until interrupted; 0 after a clean stop, 2 for bad settings."""
    from ..emulator import Emulator, FaultPlan

    try:
        faults = FaultPlan.from_file(args.faults) if args.faults else None
        emulator = Emulator(
            products=args.products,
            variants_per_product=args.variants_per_product,
            seed=args.seed,
            api_key=args.api_key,
            site_id=args.site_id,
            sites=args.sites,
            extra_sites=args.extra_sites,
            rate_limit=args.rate_limit,
            retry_after=args.retry_after == "on",
            latency_ms=args.latency_ms,
            faults=faults,
            token_lifetime=args.token_lifetime,
            id_distribution=args.id_distribution,
            catalog=args.catalog,
            locations=args.locations,
            version_scope=args.version_scope == "on",
            host=args.host,
            port=args.port,
        )
    except (OSError, ValueError) as exc:  # ConfigurationError is a ValueError
        print(f"wixinv-async emulator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.make_sites:
        emulator.make_sites()
    # A dedicated server process: the seeded catalog lives for good, so keep it out of the
    # garbage collector's scans (the library never does this to a user's process).
    gc.freeze()
    try:
        asyncio.run(_serve(emulator, out, args.rate_limit))
    except OSError as exc:  # e.g. the port is taken
        print(f"wixinv-async emulator: cannot serve: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


async def _serve(emulator: Emulator, out: TextIO, rate_limit: str | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with emulator:
        _announce(emulator, out, rate_limit)
        await stop.wait()
    print("emulator stopped", file=out, flush=True)


def _announce(emu: Emulator, out: TextIO, rate_limit: str | None = None) -> None:
    """The URL, credentials (the emulator's own, not secrets of a real site) and pacing."""
    others = emu.sites[1:]
    sites = ", ".join(others) if len(others) <= 3 else f"{len(others)}, see /_emulator/sites"
    sites = sites or "none"
    version = emu.catalog_version()
    size = (
        f"{len(emu.v3_store())} V3 inventory items"
        if version == "V3_CATALOG"
        else (f"{len(emu.store)} products")
    )
    lines = [
        f"Wix Inventory emulator on {emu.url} ({version}, {size}; Ctrl-C to stop)",
        f"  api key      {emu.api_key}",
        f"  site id      {emu.site_id}   (extra sites: {sites})",
        f"  OAuth        app id {emu.app_id}, app secret {emu.app_secret},",
        f"               instance id {emu.instance_id}",
        f"  admin        {emu.url}/_emulator/state | journal | stats | reset | faults | migrate",
        "               | sites | revoke | reinstate | edit   (?site=ID picks a site)",
        *_pacing(rate_limit),
        "",
        f"export WIX_BASE_URL={emu.url}",
        f"export WIX_API_KEY={emu.api_key}",
        f"export WIX_SITE_ID={emu.site_id}",
    ]
    print("\n".join(lines), file=out, flush=True)


def _pacing(rate_limit: str | None) -> list[str]:
    """Why a run against this emulator may seem slow: the clients' own pacing, not ours."""
    served = (
        "no rate limit"
        if rate_limit in (None, "off")
        else f"limits each site to {rate_limit} (requests/seconds)"
    )
    return [
        "  pacing       wixinv-async clients (adjust, export, fleet) pace themselves at",
        "               Wix's 200/60 per site unless told --rate-limit off (in code:",
        f"               rate_limit=None); this emulator: {served}",
    ]
