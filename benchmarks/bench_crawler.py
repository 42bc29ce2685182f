"""Benchmark: the fan-out crawler's speedup over one keyset cursor, and the requests it spends.

Measures, in one run, against the emulator in a child process (the machine has 2 cores):

- ``paced``: a 5,000-item ``clustered`` catalog, 5 ms per request, the client paced at 50
  requests/s (one per 20.4 ms: the budget, not latency, bounds the crawl, as against Wix's
  200 a minute). The default crawl (``segments=8``, measured fan-out) against
  ``fanout="max"`` (every segment a cursor, the old behaviour) and ``segments=1``. Target:
  the default spends at most ``ceil(N/100) + 2`` requests.
- ``paced_slow``: the same pace with 50 ms per request (latency over two slots): the measured
  fan-out against ``segments=1`` (no target; it shows the fan-out still taken when it pays).
- ``fanout``: a 100,000-item catalog (the emulator's default, ``clustered`` numericIds) with
  ``latency_ms=50``, unpaced, read with ``segments=8`` against ``segments=1``. Targets:
  speedup >= 7x (8x is ideal) with at most 1.05x the minimum requests, ``ceil(N/100) + 2``.
- ``skewed``: a 100,000-item catalog with 80 % of the numericIds in 10 % of the range, 50 ms,
  unpaced, read with ``segments=1``, with 8 segments split statically (``adaptive=False``,
  DynamoDB-style), and with 8 adaptive segments (work stealing). Target: adaptive >= 6x over
  one cursor.

- ``v3_paced``: a Catalog V3 site of 8,032 items (1,600 products' variants at two locations),
  5 ms per request, the client paced at 50 requests/s, pages of 250: the default crawl.
  Target: at most ``ceil(N/250) + 1`` requests (the query for the highest productId the only
  extra).
- ``v3_fanout``: the same V3 site at 50 ms per request, unpaced: ``segments=8`` (productId
  ranges; measured fan-out, and ``fanout="max"``) against ``segments=1``. Targets:
  ``fanout="max"`` speedup >= 2x, and at most ``ceil(N/250) + 1 + 7`` requests (one
  partial last page per extra cursor) for both. The emulator answers one request at a time
  and spends its own CPU on each page, so that CPU, not the latency, bounds the fanned-out
  crawl here: the V1 case's 7x is not reachable on the emulator's V3 side.

Outside ``paced`` rate limiting is OFF in both the emulator and the client: those cases
measure fan-out, not the site's 200 requests/minute budget (under which a 100,000-item crawl
takes >= 5 minutes whatever the segment count). Every crawl checks that it read every item
exactly once.

The machine is shared (2 cores, other processes running), so each fanned-out crawl runs
``--rounds`` times (default 3) and the fastest counts; the one-cursor baselines (about a minute
each) and the static split run once. Every run is printed. The emulator processes requests
one at a time after their latency, so 8 concurrent requests queue for its CPU a little: the
ideal 8x is not reachable here, and 100,000 items need about 128 rounds of requests against
1,002 (two bound queries, a final re-read of the open tail).

Prints one JSON line per crawl and one per comparison. ``--quick`` uses 20,000 items (the
paced cases always 5,000).

    .venv/bin/python benchmarks/bench_crawler.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import sys
import time
from typing import Any

LATENCY_MS = 50.0
PACED_ITEMS = 5_000
PACE_PER_S = 50
V3_PRODUCTS = 1_600
V3_PAGE = 250


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# --- the emulator, in a child process ----------------------------------------------------------


async def _serve(ready: Any, stop: Any, products: int, distribution: str, latency: float) -> None:
    from wixinv_async.emulator import Emulator

    v3 = distribution == "v3"
    async with Emulator(
        products=products,
        id_distribution="clustered" if v3 else distribution,
        latency_ms=latency,
        rate_limit=None,
        seed=11,
        catalog="v3" if v3 else "v1",
        variants_per_product=3,
        locations=2 if v3 else 1,
    ) as emu:
        ids: list[Any]
        if v3:
            ids = sorted(item.id for item in emu.v3_store().records())
        else:
            ids = [int(str(item.numeric_id)) for item in emu.store.items()]
        ready.send({"url": emu.url, "api_key": emu.api_key, "site_id": emu.site_id, "ids": ids})
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)


def _server_main(ready: Any, stop: Any, products: int, distribution: str, latency: float) -> None:
    asyncio.run(_serve(ready, stop, products, distribution, latency))


class EmulatorProcess:
    """The emulator in a child process, as a context manager giving its address and ids."""

    def __init__(self, products: int, distribution: str, latency: float = LATENCY_MS) -> None:
        self.args = (products, distribution, latency)

    def __enter__(self) -> dict[str, Any]:
        ctx = multiprocessing.get_context("spawn")
        receiver, sender = ctx.Pipe(duplex=False)
        self.stop = ctx.Event()
        self.process = ctx.Process(target=_server_main, args=(sender, self.stop, *self.args))
        self.process.start()
        info: dict[str, Any] = receiver.recv()
        info["latency_ms"] = self.args[2]
        return info

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()


# --- one crawl -----------------------------------------------------------------------------------


async def _crawl(
    info: dict[str, Any], segments: int, adaptive: bool, fanout: str, pace: int | None
) -> dict[str, Any]:
    from wixinv_async.auth import ApiKeyAuth
    from wixinv_async.client import InventoryClient
    from wixinv_async.crawler import crawl_inventory_pages
    from wixinv_async.transport import RateLimit

    auth = ApiKeyAuth(info["api_key"], site_id=info["site_id"])
    seen: list[int] = []
    rate = None if pace is None else RateLimit(pace, 1.0)
    async with InventoryClient(auth, base_url=info["url"], rate_limit=rate) as client:
        await client.query_inventory(limit=1)  # open a connection outside the timing
        started = time.perf_counter()
        crawl = crawl_inventory_pages(
            client,
            segments=segments,
            adaptive=adaptive,
            fanout="max" if fanout == "max" else "auto",
        )
        async with crawl as pages:
            async for page in pages:
                seen.extend(int(str(item.numeric_id)) for item in page)
        seconds = time.perf_counter() - started
    stats = crawl.stats()
    exact = sorted(seen) == info["ids"] and len(seen) == len(set(seen))
    fewest = math.ceil(len(info["ids"]) / 100) + 2
    return {
        "segments": segments,
        "adaptive": adaptive,
        "fanout": fanout,
        "cursors": stats.cursors,
        "items": len(seen),
        "exactly_once": exact,
        "seconds": round(seconds, 3),
        "requests": stats.requests,
        "fewest_requests": fewest,
        "requests_ratio": round(stats.requests / fewest, 3),
        "steals": stats.steals,
        "segments_read": stats.segments,
        "items_per_s": round(len(seen) / seconds, 1),
    }


async def _crawl_v3(
    info: dict[str, Any], segments: int, adaptive: bool, fanout: str, pace: int | None
) -> dict[str, Any]:
    from wixinv_async.auth import ApiKeyAuth
    from wixinv_async.client import InventoryClient
    from wixinv_async.crawler import crawl_inventory
    from wixinv_async.models_v3 import InventoryItemV3
    from wixinv_async.transport import RateLimit

    auth = ApiKeyAuth(info["api_key"], site_id=info["site_id"])
    seen: list[str] = []
    rate = None if pace is None else RateLimit(pace, 1.0)
    async with InventoryClient(auth, base_url=info["url"], rate_limit=rate) as client:
        await client.catalog_version()  # detect (and connect) outside the timing
        started = time.perf_counter()
        crawl = crawl_inventory(
            client,
            segments=segments,
            v3_page_size=V3_PAGE,
            fanout="max" if fanout == "max" else "auto",
        )
        async with crawl as items:
            async for item in items:
                assert isinstance(item, InventoryItemV3)
                seen.append(str(item.id))
        seconds = time.perf_counter() - started
    stats = crawl.stats()
    exact = sorted(seen) == info["ids"] and len(seen) == len(set(seen))
    fewest = math.ceil(len(info["ids"]) / V3_PAGE)
    return {
        "catalog": "V3",
        "segments": segments,
        "fanout": fanout,
        "cursors": stats.cursors,
        "items": len(seen),
        "exactly_once": exact,
        "seconds": round(seconds, 3),
        "requests": stats.requests,
        "fewest_requests": fewest,
        "requests_ratio": round(stats.requests / fewest, 3),
        "segments_read": stats.segments,
        "items_per_s": round(len(seen) / seconds, 1),
    }


def run(
    info: dict[str, Any],
    case: str,
    segments: int,
    adaptive: bool,
    rounds: int = 1,
    *,
    fanout: str = "auto",
    pace: int | None = None,
) -> dict[str, Any]:
    """The fastest of ``rounds`` crawls (all printed); it must have read every item once."""
    results = []
    for attempt in range(rounds):
        crawl = _crawl_v3 if case.startswith("v3") else _crawl
        result = asyncio.run(crawl(info, segments, adaptive, fanout, pace))
        emit(
            bench="crawler",
            case=case,
            round=attempt + 1,
            latency_ms=info["latency_ms"],
            rate_limit="off" if pace is None else f"{pace}/1",
            **result,
        )
        results.append(result)
    best = min(results, key=lambda r: r["seconds"])
    best["exactly_once"] = all(r["exactly_once"] for r in results)
    best["requests"] = max(r["requests"] for r in results)  # the worst round counts
    best["requests_ratio"] = max(r["requests_ratio"] for r in results)
    return best


def check_requests(
    case: str, result: dict[str, Any], most_ratio: float | None, extra: int = 0
) -> bool:
    """Requests against the fewest a crawl can spend: ``ceil(N/100) + 2`` on V1,
    ``ceil(N/page)`` on V3 (plus ``extra`` allowed)."""
    fewest = result["fewest_requests"]
    ok = result["requests"] <= (fewest if most_ratio is None else most_ratio * fewest) + extra
    v3 = case.startswith("v3")
    emit(
        bench="crawler",
        case=case,
        comparison=(
            f"requests vs ceil(N/{V3_PAGE}) + {extra}" if v3 else "requests vs ceil(N/100) + 2"
        ),
        requests=result["requests"],
        fewest_requests=fewest,
        requests_ratio=result["requests_ratio"],
        target=f"<= {most_ratio or 1.0}x",
        ok=ok and result["exactly_once"],
    )
    return ok


def compare(
    case: str, name: str, base: dict[str, Any], other: dict[str, Any], target: float | None
) -> bool:
    speedup = base["seconds"] / other["seconds"]
    ok = target is None or speedup >= target
    emit(
        bench="crawler",
        case=case,
        comparison=name,
        baseline_seconds=base["seconds"],
        seconds=other["seconds"],
        speedup=round(speedup, 2),
        target=target,
        ok=ok and other["exactly_once"] and base["exactly_once"],
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 items instead of 100,000")
    parser.add_argument("--items", type=int, default=None, help="catalog size (overrides --quick)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each fanned-out crawl")
    parser.add_argument("--v3-only", action="store_true", help="only the Catalog V3 cases")
    args = parser.parse_args(argv)
    items = args.items or (20_000 if args.quick else 100_000)
    if args.v3_only:
        return 0 if _v3_cases(args.rounds) else 1
    ok = True
    with EmulatorProcess(PACED_ITEMS, "clustered", latency=5.0) as info:
        chosen = run(info, "paced", 8, True, pace=PACE_PER_S)
        fixed = run(info, "paced", 8, True, fanout="max", pace=PACE_PER_S)
        one = run(info, "paced", 1, True, pace=PACE_PER_S)
    ok &= check_requests("paced", chosen, None)
    compare("paced", "segments=8 (measured fan-out) vs segments=1", one, chosen, None)
    compare("paced", 'fanout="max" vs segments=1', one, fixed, None)
    with EmulatorProcess(PACED_ITEMS, "clustered", latency=LATENCY_MS) as info:
        chosen = run(info, "paced_slow", 8, True, pace=PACE_PER_S)
        one = run(info, "paced_slow", 1, True, pace=PACE_PER_S)
    compare("paced_slow", "segments=8 (measured fan-out) vs segments=1", one, chosen, None)
    with EmulatorProcess(items, "clustered") as info:
        one = run(info, "fanout", 1, True)
        eight = run(info, "fanout", 8, True, args.rounds)
    ok &= compare("fanout", "segments=8 vs segments=1", one, eight, 7.0)
    ok &= check_requests("fanout", eight, 1.05)
    with EmulatorProcess(items, "skewed") as info:
        one = run(info, "skewed", 1, True)
        static = run(info, "skewed", 8, False)
        adaptive = run(info, "skewed", 8, True, args.rounds)
    compare("skewed", "static segments=8 vs segments=1", one, static, None)
    ok &= compare("skewed", "adaptive segments=8 vs segments=1", one, adaptive, 6.0)
    ok &= _v3_cases(args.rounds)
    return 0 if ok else 1


def _v3_cases(rounds: int) -> bool:
    """The Catalog V3 rows: the paced default crawl's requests; fan-out at 50 ms."""
    ok = True
    with EmulatorProcess(V3_PRODUCTS, "v3", latency=5.0) as info:
        chosen = run(info, "v3_paced", 8, True, pace=PACE_PER_S)
        one = run(info, "v3_paced", 1, True, pace=PACE_PER_S)
    ok &= check_requests("v3_paced", chosen, None, extra=1)
    compare("v3_paced", "segments=8 (measured fan-out) vs segments=1", one, chosen, None)
    with EmulatorProcess(V3_PRODUCTS, "v3", latency=LATENCY_MS) as info:
        one = run(info, "v3_fanout", 1, True)
        eight = run(info, "v3_fanout", 8, True, rounds)
        most = run(info, "v3_fanout", 8, True, rounds, fanout="max")
    compare("v3_fanout", "segments=8 (measured fan-out) vs segments=1", one, eight, None)
    ok &= compare("v3_fanout", 'fanout="max" segments=8 vs segments=1', one, most, 2.0)
    ok &= check_requests("v3_fanout", eight, None, extra=1 + 7)
    ok &= check_requests("v3_fanout", most, None, extra=1 + 7)
    return ok


if __name__ == "__main__":
    sys.exit(main())
