"""Benchmark: the InventoryAdjuster, five ratios measured in one run.

1. ``ingest``: ``submit_nowait`` deltas per second against a bare dict-netting loop over the same
   deltas (target >= 0.25), and ``await submit(...)`` per delta (target >= 0.1).
2. ``requests_zipf``: requests for a hot-SKU (Zipf) stream: ours against one request per delta
   and against batching without coalescing; ours must equal the theoretical minimum.
3. ``end_to_end``: client-process CPU time (``time.process_time``) per committed variant through
   producers -> adjuster -> client -> emulator (full 300-entry batches), against a bare aiohttp
   loop posting the same pre-built 300-entry batches with the same concurrency to the same
   emulator process, in paired interleaved rounds: ``cpu_ratio`` (target <= 3.0) is best
   against best, ``cpu_ratio_median`` the median of the rounds' paired ratios. Variants per
   second are printed too, for information (``ratio``, target >= 0.8). ``ratio`` is best against best; ``ratio_median`` the median of
   the rounds' paired ratios (the machine is shared: look at both). ``python_floor`` is a
   reference, not a target: the least any Python adjuster must do per variant (a tuple key,
   dict netting, the GUID check a submit owes, one wire struct per entry) through the same
   client, so ``floor_ratio`` bounds what this design can reach.
4. ``rate_limited``: with the emulator limiting to 50 requests/s and the client paced to match,
   achieved request rate over the limit (target >= 0.97), batch fill, 429s.
5. ``memory``: tracemalloc bytes per pending key (target <= 300).

The emulator runs in a child process (the machine has 2 cores), so it does not share the event
loop with the code measured. Prints one JSON line per measurement.

    .venv/bin/python benchmarks/bench_adjuster.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._cpus import CLIENT_CPU, SERVER_CPU, pin, unpin  # noqa: E402
from wixinv_async.adjuster import InventoryAdjuster, SentBatch  # noqa: E402
from wixinv_async.auth import ApiKeyAuth  # noqa: E402
from wixinv_async.client import InventoryClient, RetryPolicy  # noqa: E402
from wixinv_async.core.planner import minimum_requests  # noqa: E402
from wixinv_async.models import DecrementData  # noqa: E402
from wixinv_async.transport import RateLimit  # noqa: E402

SERVER = """
import asyncio, json, sys
from wixinv_async.emulator import Emulator

async def main():
    products, rate = int(sys.argv[1]), (sys.argv[2] if sys.argv[2] != "-" else None)
    async with Emulator(products=products, variants_per_product=3, seed=3, api_key="KEY",
                        rate_limit=rate) as emu:
        keys = []
        for item in emu.store.items():
            if item.track_quantity:
                for variant in item.variants:
                    emu.store.set_quantity(item.product_id, variant.variant_id, 90_000)
                    keys.append([item.product_id, variant.variant_id])
        with open(sys.argv[3], "w") as out:
            json.dump(keys, out)
        print(f"{emu.url} {emu.api_key} {emu.site_id}", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""
VARIANT = "00000000-0000-0000-0000-{:012d}"


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


@contextmanager
def emulator(
    products: int, rate: str | None = None, *, pinned: bool = True
) -> Iterator[tuple[str, str, str, list[Any]]]:
    """An emulator in a child process: (url, api key, site id, tracked keys). ``pinned``: on
    its own CPU, for the throughput ratios. The rate benchmark leaves both processes to the
    scheduler, as a deployed service would be: pinned, 3 of 5 full runs got one 429 (a stall
    bunching requests past the emulator's strict one-second window, whose 1 s pause costs 14 %
    of the 8 s rate); unpinned, none in 6."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        keys_file = Path(tmp) / "keys.json"
        process = subprocess.Popen(  # noqa: S603 - our interpreter, our script
            [sys.executable, "-c", SERVER, str(products), rate or "-", str(keys_file)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        if pinned:
            pin(SERVER_CPU, process.pid)
        try:
            assert process.stdout is not None
            url, key, site = process.stdout.readline().split()
            yield url, key, site, json.loads(keys_file.read_text())
        finally:
            process.terminate()
            process.wait(timeout=10)


class Counting:
    """A client that applies nothing and counts requests (for the request-count benchmarks)."""

    def __init__(self) -> None:
        self.requests = 0

    async def increment_inventory(self, entries: Any) -> None:
        self.requests += 1

    async def decrement_inventory(self, entries: Any) -> None:
        self.requests += 1


# --- 1. ingest ----------------------------------------------------------------------------


def stream(count: int, keys: int, seed: int) -> list[tuple[str, str, int]]:
    rng = random.Random(seed)
    products = [f"prod-{i // 3}" for i in range(keys)]
    variants = [VARIANT.format(i % 3) for i in range(keys)]
    out = []
    for _ in range(count):
        i = rng.randrange(keys)
        out.append((products[i], variants[i], rng.choice((-2, -1, -1, 1, 3))))
    return out


def bare_netting(deltas: list[tuple[str, str, int]]) -> float:
    table: dict[tuple[str, str], int] = {}
    get = table.get
    started = time.perf_counter()
    for product, variant, delta in deltas:
        key = (product, variant)
        table[key] = get(key, 0) + delta
    return len(deltas) / (time.perf_counter() - started)


async def ours_nowait(deltas: list[tuple[str, str, int]]) -> float:
    adj = InventoryAdjuster(Counting(), linger=3600, max_pending=10**7)
    submit = adj.submit_nowait
    async with adj:
        started = time.perf_counter()
        for product, variant, delta in deltas:
            submit(product, variant, delta)
        rate = len(deltas) / (time.perf_counter() - started)
        await adj.close(abort=True)
    return rate


async def ours_awaited(deltas: list[tuple[str, str, int]]) -> float:
    adj = InventoryAdjuster(Counting(), linger=3600, max_pending=10**7)
    submit = adj.submit
    async with adj:
        started = time.perf_counter()
        for product, variant, delta in deltas:
            await submit(product, variant, delta)
        rate = len(deltas) / (time.perf_counter() - started)
        await adj.close(abort=True)
    return rate


async def bench_ingest(quick: bool) -> None:
    deltas = stream(100_000 if quick else 300_000, 3_000, seed=1)
    best: dict[str, float] = {"bare": 0.0, "nowait": 0.0, "awaited": 0.0}
    for _ in range(5 if quick else 9):  # best of n, interleaved: the machine is shared
        best["bare"] = max(best["bare"], bare_netting(deltas))
        best["nowait"] = max(best["nowait"], await ours_nowait(deltas))
        best["awaited"] = max(best["awaited"], await ours_awaited(deltas))
    emit(
        bench="ingest",
        deltas_per_run=len(deltas),
        keys=3_000,
        bare_dict_per_s=round(best["bare"]),
        submit_nowait_per_s=round(best["nowait"]),
        await_submit_per_s=round(best["awaited"]),
        ratio_nowait=round(best["nowait"] / best["bare"], 3),
        ratio_awaited=round(best["awaited"] / best["bare"], 3),
        target_nowait=0.25,
        target_awaited=0.1,
    )


# --- 2. request efficiency on a Zipf stream ------------------------------------------------


def zipf_stream(count: int, keys: int, s: float, seed: int) -> list[tuple[str, str, int]]:
    rng = random.Random(seed)
    weights = [1 / (rank**s) for rank in range(1, keys + 1)]
    picks = rng.choices(range(keys), weights=weights, k=count)
    return [
        (f"prod-{i // 3}", VARIANT.format(i % 3), rng.choice((-3, -1, -1, -1, 2, 5))) for i in picks
    ]


async def bench_requests(quick: bool) -> None:
    deltas = zipf_stream(50_000 if quick else 300_000, 20_000, 1.1, seed=2)
    nets: dict[tuple[Any, ...], int] = {}
    for product, variant, delta in deltas:
        key = (product, None, variant, False)
        nets[key] = nets.get(key, 0) + delta
    minimum = minimum_requests(nets.items(), 300)
    ups = sum(1 for *_, d in deltas if d > 0)
    no_coalescing = math.ceil(ups / 300) + math.ceil((len(deltas) - ups) / 300)
    client = Counting()
    async with InventoryAdjuster(client, linger=3600, max_pending=10**7) as adj:
        for product, variant, delta in deltas:
            adj.submit_nowait(product, variant, delta)
        await adj.flush()
    streaming = Counting()  # the same stream arriving over time: linger and full triggers
    async with InventoryAdjuster(streaming, linger=0.05) as adj:
        for n, (product, variant, delta) in enumerate(deltas):
            adj.submit_nowait(product, variant, delta)
            if n % 1000 == 999:
                await asyncio.sleep(0.001)
    emit(
        bench="requests_zipf",
        deltas=len(deltas),
        distinct_keys=len(nets),
        naive_requests=len(deltas),
        batching_without_coalescing=no_coalescing,
        theoretical_minimum=minimum,
        ours=client.requests,
        ours_equals_minimum=client.requests == minimum,
        ratio_vs_naive=round(client.requests / len(deltas), 5),
        ratio_vs_no_coalescing=round(client.requests / no_coalescing, 4),
        ours_streaming_1k_per_ms=streaming.requests,
    )


# --- 3. end to end against the emulator -----------------------------------------------------


async def bench_end_to_end(quick: bool) -> None:
    products = 8_000 if quick else 30_000
    with emulator(products) as (url, api_key, site, keys):
        rounds = 5 if quick else 9
        headers = {
            "Authorization": api_key,
            "wix-site-id": site,
            "Content-Type": "application/json",
        }
        batches = [
            msgspec.json.encode(
                {
                    "decrementData": [
                        {"productId": p, "variantId": v, "decrementBy": 1, "preorderRequest": False}
                        for p, v in keys[i : i + 300]
                    ]
                }
            )
            for i in range(0, len(keys) - len(keys) % 300, 300)
        ]
        variants = len(batches) * 300
        runs: dict[str, list[float]] = {"bare": [], "ours": [], "floor": []}
        cpu: dict[str, list[float]] = {"bare": [], "ours": [], "floor": []}
        auth = ApiKeyAuth(api_key, site_id=site)
        async with (
            aiohttp.ClientSession() as session,
            InventoryClient(auth, base_url=url, rate_limit=None) as client,
        ):
            await ours_loop(client, keys[:300])  # warm both connection pools
            await bare_loop(session, url, headers, batches[:4])
            for _ in range(rounds):  # interleaved, so a busy moment hits all three alike
                for name, run in (
                    ("bare", lambda: bare_loop(session, url, headers, batches)),
                    ("ours", lambda: ours_loop(client, keys[:variants])),
                    ("floor", lambda: floor_loop(client, keys[:variants])),
                ):
                    cpu_before = time.process_time()
                    runs[name].append(await run())
                    cpu[name].append((time.process_time() - cpu_before) / variants * 1e6)
        best = {name: max(rates) for name, rates in runs.items()}
        least = {name: min(times) for name, times in cpu.items()}
        emit(
            bench="end_to_end",
            variants_per_round=variants,
            rounds=rounds,
            cpu_us_per_variant_bare=round(least["bare"], 3),
            cpu_us_per_variant_ours=round(least["ours"], 3),
            cpu_us_per_variant_floor=round(least["floor"], 3),
            cpu_ratio=round(least["ours"] / least["bare"], 3),
            cpu_ratio_median=paired_median(cpu["ours"], cpu["bare"]),
            target_cpu=3.0,
            bare_aiohttp_variants_per_s=round(best["bare"]),
            ours_variants_per_s=round(best["ours"]),
            ratio=round(best["ours"] / best["bare"], 3),
            ratio_median=paired_median(runs["ours"], runs["bare"]),
            target=0.8,
            python_floor_variants_per_s=round(best["floor"]),
            floor_ratio=round(best["floor"] / best["bare"], 3),
            floor_ratio_median=paired_median(runs["floor"], runs["bare"]),
            concurrency=4,
        )


def paired_median(ours: list[float], bare: list[float]) -> float:
    """The median over rounds of ours / bare measured side by side."""
    return round(statistics.median(a / b for a, b in zip(ours, bare, strict=True)), 3)


async def bare_loop(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], batches: list[bytes]
) -> float:
    """Post pre-built batches with 4 workers; variants per second."""
    queue = list(reversed(batches))

    async def worker() -> None:
        while queue:
            body = queue.pop()
            async with session.post(
                url + "/stores/v2/inventoryItems/decrement", data=body, headers=headers
            ) as response:
                await response.read()
                assert response.status == 200, response.status

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(4)))
    return len(batches) * 300 / (time.perf_counter() - started)


async def ours_loop(client: InventoryClient, keys: list[Any]) -> float:
    """One delta per variant through the adjuster, until every one has its outcome."""
    started = time.perf_counter()
    async with InventoryAdjuster(client, linger=0.005, max_in_flight=4) as adj:
        for n, (product, variant) in enumerate(keys):
            adj.submit_nowait(product, variant, -1)
            if n % 300 == 299:
                await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    assert adj.stats().committed == len(keys), adj.stats()
    return len(keys) / elapsed


async def floor_loop(client: InventoryClient, keys: list[Any]) -> float:
    """The reference floor: a dict netting one delta per variant after the GUID check a submit
    owes, handed over 300 keys at a time as wire entries, 4 requests in flight. No tickets,
    outcomes, busy keys, linger or stats: what no Python adjuster can do without."""
    guid = re.compile("[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}").fullmatch
    slots = asyncio.Semaphore(4)
    sending: list[asyncio.Task[None]] = []

    async def send(nets: dict[tuple[Any, ...], int]) -> None:
        async with slots:
            entries = [
                DecrementData(product_id=key[0], variant_id=key[2], decrement_by=-net)
                for key, net in nets.items()
            ]
            await client.decrement_inventory(entries, validate=False)

    started = time.perf_counter()
    nets: dict[tuple[Any, ...], int] = {}
    for n, (product, variant) in enumerate(keys):
        if guid(variant) is None:
            raise ValueError(variant)
        key = (product, None, variant, False)
        nets[key] = nets.get(key, 0) - 1
        if len(nets) == 300:
            sending.append(asyncio.create_task(send(nets)))
            nets = {}
        if n % 300 == 299:
            await asyncio.sleep(0)
    if nets:
        sending.append(asyncio.create_task(send(nets)))
    await asyncio.gather(*sending)
    return len(keys) / (time.perf_counter() - started)


# --- 4. under a rate limit -------------------------------------------------------------------


async def bench_rate_limited(quick: bool) -> None:
    limit, seconds = 50, (3.0 if quick else 8.0)
    unpin()  # see emulator(): pacing is measured with both processes left to the scheduler
    with emulator(6_000, f"{limit}/1", pinned=False) as (url, api_key, site, keys):
        auth = ApiKeyAuth(api_key, site_id=site)
        bare = await bare_client_rate(url, auth, keys, limit, seconds)
        sends: list[float] = []

        async def on_send(batch: SentBatch) -> None:
            sends.append(time.perf_counter())

        async with InventoryClient(
            auth, base_url=url, rate_limit=RateLimit(limit, 1.0), retry=RetryPolicy(seed=1)
        ) as client:
            adj = InventoryAdjuster(client, linger=0.05, max_in_flight=4, on_send=on_send)
            rng = random.Random(4)
            async with adj:
                deadline = time.perf_counter() + seconds
                while time.perf_counter() < deadline:  # ~30,000 deltas/s over ~12,000 variants
                    for _ in range(300):
                        product, variant = keys[rng.randrange(len(keys))]
                        adj.submit_nowait(product, variant, rng.choice((-1, 1)))
                    await asyncio.sleep(0.01)
                running = adj.stats()
                await adj.close(abort=True)
        achieved = steady_rate(sends)
        emit(
            bench="rate_limited",
            limit_per_s=limit,
            seconds=seconds,
            achieved_per_s=round(achieved, 2),
            ratio=round(achieved / limit, 4),
            target=0.97,
            bare_client_per_s=round(bare, 2),
            ratio_vs_bare_client=round(achieved / bare, 4),
            batch_fill=round(running.batch_fill, 4),
            rate_limited_429s=adj.stats().rate_limited,
            requests=adj.stats().requests,
        )


def steady_rate(times: list[float]) -> float:
    """Requests per second after the first second (the limiter's start is not steady)."""
    steady = [t for t in times if t >= times[0] + 1.0]
    return (len(steady) - 1) / (steady[-1] - steady[0])


async def bare_client_rate(
    url: str, auth: ApiKeyAuth, keys: list[Any], limit: int, seconds: float
) -> float:
    """The client alone, 4 workers posting one pre-built 300-entry batch: the pacing ceiling."""
    batch = [DecrementData(product_id=p, variant_id=v, decrement_by=1) for p, v in keys[:300]]
    done: list[float] = []
    async with InventoryClient(auth, base_url=url, rate_limit=RateLimit(limit, 1.0)) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await client.decrement_inventory(batch)
                done.append(time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(4)))
    await asyncio.sleep(1.0)  # let the emulator's rolling window empty before the next run
    return steady_rate(done)


# --- 5. memory per pending key ---------------------------------------------------------------


async def bench_memory(quick: bool) -> None:
    count = 20_000 if quick else 100_000
    products = [f"prod-{i:08d}" for i in range(count)]
    variant = VARIANT.format(0)
    adj = InventoryAdjuster(Counting(), linger=3600, max_pending=10**7)
    async with adj:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for product in products:
            adj.submit_nowait(product, variant, -1)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        await adj.close(abort=True)
    emit(
        bench="memory",
        pending_keys=count,
        bytes_per_key=round((after - before) / count, 1),
        target=300,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run for development")
    parser.add_argument("--only", help="run one benchmark: ingest, requests, e2e, rate, memory")
    options = parser.parse_args()
    pin(CLIENT_CPU)
    benches = {
        "ingest": bench_ingest,
        "requests": bench_requests,
        "e2e": bench_end_to_end,
        "rate": bench_rate_limited,
        "memory": bench_memory,
    }
    for name, bench in benches.items():
        if options.only in (None, name):
            await bench(options.quick)


if __name__ == "__main__":
    asyncio.run(main())
