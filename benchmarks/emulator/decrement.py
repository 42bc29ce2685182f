"""``decrement300``: 300-entry Decrement Inventory requests against the emulator and against
bare aiohttp handlers (msgspec, and aiohttp's ``request.json()``), rounds alternating the
servers."""

from __future__ import annotations

import asyncio

import msgspec

from benchmarks.emulator.load import fire
from benchmarks.emulator.servers import DECREMENT, PRODUCTS, SEED, Server, emit

__all__ = ["bench_decrement"]


def _decrement_bodies(count: int) -> list[bytes]:
    """300-entry bodies (each sent twice) walking cyclically over the tracked variants of the
    emulator's seeded catalog, with enough stock that none runs out: every request succeeds.
    Both servers get these same bodies."""
    from wixinv_async.emulator import SiteStore

    catalog = SiteStore(site_id="-", instance_id="-", products=PRODUCTS, seed=SEED).items()
    stock = [
        (v.quantity, item.product_id, v.variant_id)
        for item in catalog
        if item.track_quantity
        for v in item.variants
    ]
    threshold = 1
    while True:
        keys = [(p, v) for q, p, v in stock if isinstance(q, int) and q >= threshold]
        uses = 2 * -(-count * 300 // len(keys))  # each of the two passes walks the cycle
        if uses <= threshold:
            break
        threshold = uses
    bodies = []
    for n in range(count):
        entries = [
            {"productId": p, "variantId": v, "decrementBy": 1, "preorderRequest": False}
            for p, v in (keys[(n * 300 + j) % len(keys)] for j in range(300))
        ]
        bodies.append(msgspec.json.encode({"decrementData": entries}))
    return bodies


def bench_decrement(requests: int, concurrency: int, rounds: int) -> None:
    rates: dict[str, list[float]] = {"bare": [], "emulator": [], "bare_json": []}
    cpu: dict[str, list[float]] = {kind: [] for kind in rates}
    bodies = _decrement_bodies(requests)
    for _ in range(rounds):
        for kind in rates:
            with Server(kind) as info:
                seconds, statuses, used = asyncio.run(
                    fire(info["url"] + DECREMENT, info["headers"], bodies, concurrency, info["pid"])
                )
            rates[kind].append(requests / seconds)
            if used:
                cpu[kind].append(used / requests)
            emit(
                bench="decrement300",
                server=kind,
                requests=requests,
                seconds=round(seconds, 3),
                rps=round(requests / seconds, 1),
                server_cpu_us_per_request=round(used / requests * 1e6, 1) if used else None,
                statuses=statuses,
            )
    _emit_ratios(rates, cpu)


def _emit_ratios(rates: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    best = {kind: max(values) for kind, values in rates.items()}
    pairs = sorted(e / b for b, e in zip(rates["bare"], rates["emulator"], strict=True))
    ratio = best["emulator"] / best["bare"]
    cheapest = {kind: min(values) for kind, values in cpu.items() if values}
    emit(
        bench="decrement300",
        name="300-entry decrements: emulator / bare aiohttp handler",
        ratio=round(ratio, 3),
        ratio_median_of_rounds=round(pairs[len(pairs) // 2], 3),
        ratio_by_server_cpu=(
            round(cheapest["bare"] / cheapest["emulator"], 3) if len(cheapest) == 3 else None
        ),
        target=0.5,
        ok=ratio >= 0.5,
        best_rps={kind: round(rate, 1) for kind, rate in best.items()},
    )
    emit(
        bench="decrement300",
        name="300-entry decrements: emulator / aiohttp handler doing request.json()",
        ratio=round(best["emulator"] / best["bare_json"], 3),
    )
