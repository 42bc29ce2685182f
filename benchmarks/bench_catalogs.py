"""Benchmark: requests on Catalog V1 against Catalog V3, counted over real HTTP.

1. ``bad_entries``: one stream (distinct keys, so each is one entry) with a share of bad
   entries (half unknown variants: ``NOT_FOUND``; half decrements of items at 0:
   ``INSUFFICIENT_INVENTORY``), sent three ways to three emulators built alike: V1 with the
   emulator's hints (its errors name the offending entry: one more request per bad entry), V1
   without hints (a proxy transport strips ``applicationError.data``, as a server that does
   not name the entry: bisection), and V3 (the same site migrated first; per-item results).
   ``per_bad_*`` is (requests - the stream's minimum) / bad entries; V3 must spend none:
   ``ratio_minimum_v3`` (minimum / V3 requests, target >= 1: met only at the minimum).
2. ``requests_zipf_v3``: bench_adjuster's hot-SKU (Zipf) stream on a V3 site, a third of the
   keys at its second location: write requests against the theoretical minimum
   (``ceil(increments / 300) + ceil(decrements / 300)`` over the distinct (variant, location)
   nets), ``ratio_minimum`` target >= 1 (met only at the minimum). The same stream arriving
   over time (linger and full triggers) is printed for information.

Request counts do not depend on speed (every stream is submitted whole, then flushed), so the
emulator runs in this process. Prints one JSON line per measurement.

    .venv/bin/python benchmarks/bench_catalogs.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wixinv_async.adjuster import InventoryAdjuster  # noqa: E402
from wixinv_async.auth import ApiKeyAuth  # noqa: E402
from wixinv_async.client import InventoryClient  # noqa: E402
from wixinv_async.emulator import Emulator  # noqa: E402
from wixinv_async.transport import AiohttpTransport, HttpRequest, HttpResponse  # noqa: E402

DEFAULT_VARIANT = "00000000-0000-0000-0000-000000000000"
MAX_BATCH = 300
Delta = tuple[str, str, int, dict[str, Any]]
"""product id, variant id, delta, submit keywords."""


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class Counting:
    """A transport counting HTTP requests; ``hints=False`` strips ``applicationError.data``
    from refusals, so no error names its entry (the adjuster must bisect)."""

    def __init__(self, *, hints: bool = True) -> None:
        self._inner = AiohttpTransport(timeout=30.0)
        self._hints = hints
        self.requests = 0

    async def handle_request(self, request: HttpRequest) -> HttpResponse:
        self.requests += 1
        response = await self._inner.handle_request(request)
        if self._hints or response.status < 400 or not response.body:
            return response
        body = msgspec.json.decode(response.body)
        error = (body.get("details") or {}).get("applicationError")
        if isinstance(error, dict) and "data" in error:
            error["data"] = {}
        return HttpResponse(response.status, msgspec.json.encode(body), response.headers)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def send_all(
    emu: Emulator, deltas: list[Delta], transport: Counting
) -> tuple[int, dict[str, int]]:
    """Submit every delta, flush, close: (write requests, outcomes by status)."""
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    client = InventoryClient(auth, base_url=emu.url, rate_limit=None, transport=transport)
    statuses: dict[str, int] = {}
    async with client, InventoryAdjuster(client, linger=3600, max_pending=10**7) as adj:
        tickets = [adj.submit_nowait(p, v, d, **kw) for p, v, d, kw in deltas]
        await adj.flush()
        for ticket in tickets:
            name = (await ticket).status.name
            statuses[name] = statuses.get(name, 0) + 1
    await transport.aclose()
    return adj.stats().requests, statuses


def minimum(nets: dict[Any, int]) -> int:
    """The fewest requests that carry these distinct keys' nets (one request per 300)."""
    ups = sum(1 for net in nets.values() if net > 0)
    downs = sum(1 for net in nets.values() if net < 0)
    return math.ceil(ups / MAX_BATCH) + math.ceil(downs / MAX_BATCH)


# --- 1. requests per bad entry, V1 against V3 -----------------------------------------------


def v1_site(products: int) -> Emulator:
    return Emulator(products=products, variants_per_product=3, seed=5, api_key="KEY")


def tracked_variants(emu: Emulator) -> list[tuple[str, str]]:
    return [
        (item.product_id, variant.variant_id)
        for item in emu.store.items()
        if item.track_quantity
        for variant in item.variants
        if variant.variant_id != DEFAULT_VARIANT
    ]


def bad_stream(keys: list[tuple[str, str]], share: float, seed: int) -> tuple[list[Delta], int]:
    """One delta per key; ``share`` of them bad: (deltas, bad entries). The first keys are
    the ones to hold 0 units (see :func:`prepare`)."""
    rng = random.Random(seed)
    bad = max(2, round(len(keys) * share))
    empty, good = keys[: bad // 2], keys[bad // 2 :]
    deltas: list[Delta] = [(p, v, -rng.randint(1, 5), {}) for p, v in empty]
    for n in range(bad - bad // 2):  # unknown variants of real products
        product = good[n][0]
        deltas.append((product, f"33333333-3333-3333-3333-{n:012d}", rng.choice((-2, 3)), {}))
    deltas += [(p, v, rng.choice((-3, -1, 1, 2)), {}) for p, v in good[: len(keys) - bad]]
    rng.shuffle(deltas)
    return deltas, bad


def prepare(emu: Emulator, keys: list[tuple[str, str]], empty: int) -> None:
    for n, (product, variant) in enumerate(keys):
        emu.store.set_quantity(product, variant, 0 if n < empty else 50_000)


async def bench_bad_entries(quick: bool) -> None:
    products = 1_000 if quick else 4_000
    for share in (0.001, 0.01, 0.05):
        counts: dict[str, int] = {}
        rejected: dict[str, int] = {}
        bad = 0
        nets: dict[Any, int] = {}
        for way in ("v1_hints", "v1_bisect", "v3"):
            async with v1_site(products) as emu:
                keys = tracked_variants(emu)
                deltas, bad = bad_stream(keys, share, seed=11)
                prepare(emu, keys, bad // 2)
                if way == "v3":
                    emu.migrate_to_v3()
                transport = Counting(hints=way != "v1_bisect")
                counts[way], statuses = await send_all(emu, deltas, transport)
                counts[f"http_{way}"] = transport.requests
                rejected[way] = statuses.get("REJECTED", 0)
                nets = {(p, v): d for p, v, d, _ in deltas}
        least = minimum(nets)
        assert len(set(rejected.values())) == 1, rejected  # the same entries refused each way
        emit(
            bench="bad_entries",
            case=f"bad={share:.1%}",
            entries=len(nets),
            bad_entries=bad,
            rejected=rejected["v3"],
            theoretical_minimum=least,
            requests_v1_hints=counts["v1_hints"],
            requests_v1_bisect=counts["v1_bisect"],
            requests_v3=counts["v3"],
            http_requests_v3=counts["http_v3"],
            per_bad_v1_hints=round((counts["v1_hints"] - least) / bad, 3),
            per_bad_v1_bisect=round((counts["v1_bisect"] - least) / bad, 3),
            per_bad_v3=round((counts["v3"] - least) / bad, 3),
            ratio_minimum_v3=round(least / counts["v3"], 4),
            target_minimum_v3=1.0,
        )


# --- 2. the V3 Zipf stream at the minimum ---------------------------------------------------


def zipf_stream(
    places: list[tuple[str, str | None]], count: int, s: float, seed: int
) -> list[Delta]:
    rng = random.Random(seed)
    weights = [1 / (rank**s) for rank in range(1, len(places) + 1)]
    picks = rng.choices(range(len(places)), weights=weights, k=count)
    out: list[Delta] = []
    for i in picks:
        variant, location = places[i]
        kwargs = {"location_id": location} if location is not None else {}
        out.append(("p", variant, rng.choice((-3, -1, -1, -1, 2, 5)), kwargs))
    return out


async def stream_over_time(emu: Emulator, deltas: list[Delta]) -> int:
    """Write requests for the stream arriving 1,000 deltas per millisecond, linger 50 ms."""
    transport = Counting()
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    client = InventoryClient(auth, base_url=emu.url, rate_limit=None, transport=transport)
    async with client, InventoryAdjuster(client, linger=0.05, max_pending=10**7) as adj:
        for n, (p, v, d, kw) in enumerate(deltas):
            adj.submit_nowait(p, v, d, **kw)
            if n % 1000 == 999:
                await asyncio.sleep(0.001)
    await transport.aclose()
    return adj.stats().requests


async def bench_zipf_v3(quick: bool) -> None:
    keys = 20_000
    count = 50_000 if quick else 300_000
    products = math.ceil(keys / 4)  # 3 variants at 2 locations: 6 items a product
    async with Emulator(
        products=products, variants_per_product=3, seed=2, api_key="KEY", catalog="v3", locations=2
    ) as emu:
        store = emu.v3_store()
        second = store.locations[1]
        places: list[tuple[str, str | None]] = []
        for record in store.records():
            if record.track is not True:
                continue
            store.edit_quantity(record.id, quantity=90_000)
            if record.location_id == store.default_location:
                places.append((record.variant_id, None))
            elif len(places) % 3 == 0:
                places.append((record.variant_id, second))
        random.Random(2).shuffle(places)
        places = places[:keys]
        deltas = zipf_stream(places, count, 1.1, seed=2)
        nets: dict[Any, int] = {}
        for _, variant, delta, kwargs in deltas:
            place = (variant, kwargs.get("location_id"))
            nets[place] = nets.get(place, 0) + delta
        least = minimum(nets)
        ours, statuses = await send_all(emu, deltas, Counting())
        streaming = await stream_over_time(emu, deltas)
    emit(
        bench="requests_zipf_v3",
        deltas=len(deltas),
        distinct_keys=len(nets),
        at_second_location=sum(1 for _, location in nets if location is not None),
        naive_requests=len(deltas),
        theoretical_minimum=least,
        ours=ours,
        ours_equals_minimum=ours == least,
        committed=statuses.get("COMMITTED", 0),
        ratio_vs_naive=round(ours / len(deltas), 5),
        ratio_minimum=round(least / ours, 4),
        target_minimum=1.0,
        ours_streaming_1k_per_ms=streaming,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run for development")
    parser.add_argument("--only", help="run one benchmark: bad, zipf")
    options = parser.parse_args()
    benches: dict[str, Callable[[bool], Any]] = {"bad": bench_bad_entries, "zipf": bench_zipf_v3}
    for name, bench in benches.items():
        if options.only in (None, name):
            await bench(options.quick)


if __name__ == "__main__":
    asyncio.run(main())
