"""The client's cost per 300-entry decrement against a bare aiohttp POST, in one run.

Both loops talk to the same local server, in a subprocess so it does not share the event loop:

- ``bare``: ``session.post(url, data=<pre-encoded bytes>)`` and read the answer, nothing else;
- ``default``: ``InventoryClient.decrement_inventory(entries)`` with the entries built each
  time from (product id, variant id, amount) tuples, so model building, validation, encoding,
  the rate limiter (a budget too large to bind), the retry loop and response handling count;
- ``validate_false``: the same with ``validate=False``, the adjuster's path (its deltas
  were checked at submit): exactly the issue's list, "model building, encoding, limiter, send",
  so the difference between the two is what validating 300 entries costs in place;
- ``bare_plus_cpu``: the bare loop burning 60 µs of CPU before each POST, a calibration:
  ``bare_plus_cpu_added_us`` is what 60 µs of client CPU costs in wall time per request. With
  1 request in flight it measured 70 to 105 µs on this machine (a virtual machine whose idle
  CPUs wake slowly: the server waits idle while the client works), so there every µs the client
  spends costs more than a µs; with 4 in flight, nothing while the server is the bottleneck.

Many short rounds run the three loops back to back, in an order that rotates every round, so a
drift in the machine's speed hits all alike; each ``ratio_*`` is the median over rounds of ours /
bare measured back to back (the target is >= 0.85), with its quartiles, which say how noisy the
run was. One JSON line per server and concurrency, then a summary line. The servers:

- ``emulator``: the shipped emulator applying each decrement for real: the local server the
  issue means, and the one every other benchmark here runs against;
- ``minimal``: an aiohttp app answering ``{}`` without reading the entries. Against it the client
  process is the bottleneck at 4 in flight, so the ratio is pure client CPU per request: a
  stress reference, reported with ``ceiling``, the ratio that building and encoding the entries
  alone (work the issue counts, before any validation or sending) would leave.

    python benchmarks/bench_client.py            # ~2 min
    python benchmarks/bench_client.py --quick    # ~10 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._cpus import CLIENT_CPU, SERVER_CPU, pin  # noqa: E402
from wixinv_async.auth import ApiKeyAuth  # noqa: E402
from wixinv_async.client import InventoryClient  # noqa: E402
from wixinv_async.models import DecrementData, DecrementInventoryRequest  # noqa: E402
from wixinv_async.transport import RateLimit  # noqa: E402

BATCH = 300
PATH = "/stores/v2/inventoryItems/decrement"

MINIMAL_SERVER = """
import asyncio, sys
from aiohttp import web

async def answer(request):
    await request.read()
    return web.json_response({}, headers={"x-wix-request-id": "bench"})

async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port} KEY SITE", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

EMULATOR_SERVER = """
import asyncio
from wixinv_async.emulator import Emulator

async def main():
    async with Emulator(products=400, variants_per_product=1, seed=11, api_key="KEY") as emu:
        for item in emu.store.items():
            if item.track_quantity:
                for variant in item.variants:
                    emu.store.set_quantity(item.product_id, variant.variant_id, 99_999)
        print(f"{emu.url} {emu.api_key} {emu.site_id}", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""

TARGET_RATIO = 0.85
"""The issue's target: client throughput at least this fraction of the bare loop's."""


@contextmanager
def server(code: str) -> Iterator[tuple[str, str, str]]:
    """Run a server script in a subprocess; yield its (url, api key, site id)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    pin(SERVER_CPU, process.pid)
    try:
        assert process.stdout is not None
        url, key, site = process.stdout.readline().split()
        yield url, key, site
    finally:
        process.terminate()
        process.wait(timeout=10)


async def tracked_keys(client: InventoryClient) -> list[tuple[str, str]]:
    """(productId, variantId) of up to 300 tracked variants, read through the API."""
    keys: list[tuple[str, str]] = []
    offset = 0
    while len(keys) < BATCH:
        page = await client.query_inventory(limit=100, offset=offset)
        if not page.inventory_items:
            break
        for item in page.inventory_items:
            if item.track_quantity is True and isinstance(item.product_id, str):
                keys += [(item.product_id, v.variant_id) for v in item.variants]
        offset += 100
    return keys[:BATCH]


async def timed(loop: Callable[[], Awaitable[None]], count: int, in_flight: int = 1) -> float:
    """Requests per second of ``count`` calls of ``loop``, ``in_flight`` at a time."""

    async def worker(calls: int) -> None:
        for _ in range(calls):
            await loop()

    share, extra = divmod(count, in_flight)
    started = time.perf_counter()
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(in_flight)))
    return count / (time.perf_counter() - started)


async def measure(
    name: str, code: str, rounds: int, per_round: int, in_flight: int
) -> dict[str, Any]:
    with server(code) as (url, key, site):
        auth = ApiKeyAuth(key, site_id=site)
        limit = RateLimit(1_000_000, 1.0)  # active, never binding
        async with (
            aiohttp.ClientSession() as session,
            InventoryClient(auth, base_url=url, rate_limit=limit) as client,
        ):
            if name == "emulator":
                keys = await tracked_keys(client)
            else:
                keys = [(f"product-{i:05d}", str(uuid.UUID(int=i))) for i in range(BATCH)]
            rows = [(product, variant, 1) for product, variant in keys]
            entries = [
                DecrementData(product_id=p, variant_id=v, decrement_by=n) for p, v, n in rows
            ]
            body = msgspec_encode(DecrementInventoryRequest(decrement_data=entries))
            headers = {
                "Content-Type": "application/json",
                "Authorization": key,
                "wix-site-id": site,
            }

            async def bare() -> None:
                async with session.post(url + PATH, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status

            def client_loop(validate: bool) -> Callable[[], Awaitable[None]]:
                async def send() -> None:
                    batch = [
                        DecrementData(product_id=p, variant_id=v, decrement_by=n)
                        for p, v, n in rows
                    ]
                    await client.decrement_inventory(batch, validate=validate)

                return send

            async def bare_with_cpu() -> None:
                spin(SPIN_US)
                await bare()

            loops = {
                "bare": bare,
                "default": client_loop(validate=True),
                "validate_false": client_loop(validate=False),
                "bare_plus_cpu": bare_with_cpu,
            }
            for loop in loops.values():  # warm up every path and the connections
                await timed(loop, per_round, in_flight)
            rates: dict[str, list[float]] = {loop_name: [] for loop_name in loops}
            for round_ in range(rounds):
                # The order rotates every round: a drift in the machine's speed hits all alike.
                order = list(loops)
                shift = round_ % len(order)
                for loop_name in order[shift:] + order[:shift]:
                    rates[loop_name].append(await timed(loops[loop_name], per_round, in_flight))
    result: dict[str, Any] = {
        "bench": "client_decrement_300",
        "server": name,
        "entries_per_request": len(rows),
        "in_flight": in_flight,
        "rounds": rounds,
        "requests_per_round": per_round,
        "bare_us_per_request": round(1e6 / statistics.median(rates["bare"]), 1),
    }
    spun = [mine / bare for mine, bare in zip(rates["bare_plus_cpu"], rates["bare"], strict=True)]
    result["bare_plus_cpu_us"] = SPIN_US
    result["bare_plus_cpu_added_us"] = round(
        1e6 / statistics.median(rates["bare_plus_cpu"]) - 1e6 / statistics.median(rates["bare"]), 1
    )
    result["bare_plus_cpu_ratio"] = round(statistics.median(spun), 3)
    for ours in ("default", "validate_false"):
        ratios = [mine / bare for mine, bare in zip(rates[ours], rates["bare"], strict=True)]
        result[f"us_per_request_{ours}"] = round(1e6 / statistics.median(rates[ours]), 1)
        result[f"ratio_{ours}"] = round(statistics.median(ratios), 3)
        result[f"target_{ours}"] = TARGET_RATIO
        result[f"quartiles_{ours}"] = [round(q, 3) for q in statistics.quantiles(ratios)]
    return result


SPIN_US = 60
"""CPU time the reference loop burns before each bare POST (about the client's overhead)."""


def spin(microseconds: float) -> None:
    """Keep the CPU busy for ``microseconds``, as client code would."""
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def breakdown(repeat: int) -> dict[str, Any]:
    """In-process cost of each client step for one 300-entry batch (best of ``repeat``)."""
    import timeit

    from wixinv_async.core import validation

    rows = [(f"product-{i:05d}", str(uuid.UUID(int=i)), 1) for i in range(BATCH)]
    entries = [DecrementData(product_id=p, variant_id=v, decrement_by=n) for p, v, n in rows]

    def best(step: Callable[[], object]) -> float:
        return round(min(timeit.repeat(step, number=200, repeat=repeat)) / 200 * 1e6, 1)

    check = validation.check_entries
    client = InventoryClient(ApiKeyAuth("KEY", site_id="SITE"), base_url="http://127.0.0.1")
    return {
        "bench": "client_decrement_300_breakdown_us",
        "build_entries": best(
            lambda: [DecrementData(product_id=p, variant_id=v, decrement_by=n) for p, v, n in rows]
        ),
        "validate": best(lambda: check("decrementData", entries, DecrementData, "decrementBy")),
        "encode": best(
            lambda: client._encode_batch(DecrementInventoryRequest(decrement_data=entries))
        ),
    }


def msgspec_encode(value: Any) -> bytes:
    import msgspec

    return msgspec.json.encode(value)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run for development")
    parser.add_argument("--server", choices=["minimal", "emulator", "both"], default="both")
    parser.add_argument(
        "--in-flight",
        type=int,
        nargs="+",
        default=[1, 4],
        help="concurrent requests: 1 = strictly sequential, 4 = the adjuster's default",
    )
    options = parser.parse_args()
    pin(CLIENT_CPU)
    rounds, per_round = (6, 50) if options.quick else (40, 100)
    servers = {"minimal": MINIMAL_SERVER, "emulator": EMULATOR_SERVER}
    chosen = list(servers) if options.server == "both" else [options.server]
    steps = breakdown(3 if options.quick else 10)
    print(json.dumps(steps), flush=True)
    unavoidable_us = steps["build_entries"] + steps["encode"]
    results = []
    for name in chosen:
        for in_flight in options.in_flight:
            result = await measure(name, servers[name], rounds, per_round, in_flight)
            bare_us = result["bare_us_per_request"]
            result["ceiling"] = round(bare_us / (bare_us + unavoidable_us), 3)
            results.append(result)
            print(json.dumps(result), flush=True)
    on_emulator = [r for r in results if r["server"] == "emulator"]
    summary = {
        "bench": "client_decrement_300_summary",
        "target_ratio": TARGET_RATIO,
        "ratios": {
            f"{r['server']}/in_flight={r['in_flight']}/{ours}": r[f"ratio_{ours}"]
            for r in results
            for ours in ("default", "validate_false")
        },
        "meets_target_on_emulator": bool(on_emulator)
        and all(r["ratio_default"] >= TARGET_RATIO for r in on_emulator),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
