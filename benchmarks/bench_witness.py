"""Benchmark: what the witness resolves, and what it costs, on one faulted stream.

The same stream (producers submitting hot-SKU deltas, a few bad entries) goes through the
adjuster three times against the same seeded fault plan (429s, 503s, and about 4.5 % of
requests hit by an ambiguous fault: 500, 504, resets and stalls after applying, and late
applies that land 10 to 30 ms after their ambiguous answer):

1. ``without_witness``: the baseline; ``in_doubt`` entries and deltas left to reconcile.
2. ``with_witness``: the same with ``Witness(settle=0.15)``; ``in_doubt_left`` (target 0: the
   settle delay covers the emulator's late applies), what it resolved (COMMITTED_BY_WITNESS,
   NOT_APPLIED), late applies, and its cost: ``reads`` and ``updates`` per write request.
3. ``with_witness_retry``: ``on_ambiguous="retry"``: NOT_APPLIED requests resent;
   ``applied_not_committed`` (entries applied more often than reported COMMITTED, from the
   emulator's journal: a double, or a NOT_APPLIED that landed) must be 0, as in run 2.
4. ``recentring``: a drifting stream (nine decrements in ten, as orders are) with tight bounds,
   so the witness is re-centred: requests that carried the re-centring step, update calls.

Every run checks the emulator's journal against the outcomes: an entry is applied exactly once
if COMMITTED, never if NOT_APPLIED. The emulator runs in this process: the figures are counts
(entries, requests), not timings, and its late-apply timers must share the adjuster's loop.

    .venv/bin/python benchmarks/bench_witness.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wixinv_async import (  # noqa: E402
    ApiKeyAuth,
    BatchReport,
    InventoryAdjuster,
    InventoryClient,
    OutcomeStatus,
    RetryPolicy,
    Witness,
)
from wixinv_async.core.witness import Bounds  # noqa: E402
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule  # noqa: E402

SEED, SLOTS, SETTLE = 1818, 8, 0.15
Key = tuple[str, str]
Applied = Counter[tuple[Key, int]]

FAULTS = FaultRule(
    rate_limited=0.02,
    error_503=0.02,
    error_500=0.01,
    reset_after=0.01,
    error_504=0.005,
    stall_after=0.005,
    late_504=0.005,
    late_reset=0.005,
    late_stall=0.005,
)
"""4.5 % of requests ambiguous (500, reset or stall after applying, 504, late applies)."""


def _plan() -> FaultPlan:
    return FaultPlan(
        endpoints={"incrementInventory": FAULTS, "decrementInventory": FAULTS},
        seed=SEED,
        stall_seconds=5,
        retry_after=0,
        late_seconds=0.01,
        late_jitter=0.02,
    )


def _stream(keys: list[Key], producers: int, each: int, down: float) -> list[list[tuple[Key, int]]]:
    """Per producer, its deltas: hot SKUs (a Zipf-like pick), ``down`` of them decrements."""
    rng = random.Random(SEED)
    weights = [1 / (rank + 1) for rank in range(len(keys))]
    out = []
    for _ in range(producers):
        picks = rng.choices(keys, weights, k=each)
        out.append(
            [(k, -rng.randint(1, 3) if rng.random() < down else rng.randint(1, 3)) for k in picks]
        )
    return out


async def _run(
    emu: Emulator,
    stream: list[list[tuple[Key, int]]],
    witness: Witness | None,
    *,
    on_ambiguous: str = "report",
    max_batch: int,
) -> dict[str, Any]:
    for key in {k for deltas in stream for k, _ in deltas if k[0] != "no-such-product"}:
        emu.store.set_quantity(*key, 50_000)
    since = len(emu.store.journal)
    if witness is not None:
        for vid in witness.variant_ids:
            emu.store.set_quantity(witness.product_id, vid, witness.bounds.centre)
    emu.set_faults(_plan())
    retry = RetryPolicy(max_attempts=10, base_delay=0.001, max_delay=0.01, seed=SEED)
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    client = InventoryClient(auth, base_url=emu.url, rate_limit=None, timeout=0.3, retry=retry)
    reports: list[BatchReport] = []
    started = time.monotonic()
    async with (
        client,
        InventoryAdjuster(
            client,
            linger=0.01,
            max_batch=max_batch,
            max_in_flight=SLOTS,
            on_batch=reports.append,
            on_ambiguous=on_ambiguous,  # type: ignore[arg-type]
            witness=witness,
        ) as adj,
    ):
        await asyncio.gather(*(_produce(adj, deltas) for deltas in stream))
        await adj.flush()
        await emu.wait_late_applies()
        late = await adj.verify_witness() if witness is not None else []
    emu.set_faults(None)
    figures = _figures(emu, adj, reports, witness, since, time.monotonic() - started)
    return figures | ({"late_found_after": len(late)} if witness is not None else {})


async def _produce(adj: InventoryAdjuster, deltas: list[tuple[Key, int]]) -> None:
    for (product, variant), delta in deltas:
        await adj.submit(product, variant, delta)
        await asyncio.sleep(0.002)


def _figures(
    emu: Emulator,
    adj: InventoryAdjuster,
    reports: list[BatchReport],
    witness: Witness | None,
    since: int,
    seconds: float,
) -> dict[str, Any]:
    skip = witness.product_id if witness is not None else None
    applied = _journal(emu, since, skip)
    committed: Applied = Counter()
    codes: Counter[str] = Counter()
    for report in reports:
        for entry, outcome in zip(report.entries, report.outcomes, strict=True):
            codes[f"{outcome.status.name}:{outcome.code}"] += 1
            if outcome.status is OutcomeStatus.COMMITTED and outcome.code != "APPLIED_LATE":
                committed[((entry.key.product_id, entry.key.variant_id), entry.amount)] += 1
    stats = adj.stats()
    doubts = adj.in_doubt()
    figures: dict[str, Any] = {
        "deltas": stats.submitted,
        "in_doubt_left": len(doubts),
        "in_doubt_deltas": stats.in_doubt,
        "in_doubt_fraction": round(stats.in_doubt / max(stats.submitted, 1), 4),
        "write_requests": stats.requests,
        # Applied and not reported COMMITTED: in-doubt entries that landed (no witness), or
        # entries applied twice or reported NOT_APPLIED yet applied (must be 0 with a witness).
        "applied_not_committed": sum((applied - committed).values()),
        "committed_not_applied": sum((committed - applied).values()),
        "codes": dict(codes),
        "seconds": round(seconds, 2),
    }
    if witness is not None and stats.witness is not None:
        w = stats.witness
        figures |= {
            "resolved_committed": w.committed,
            "resolved_not_applied": w.not_applied,
            "unresolved": w.unresolved,
            "late_applies": w.late_applies,
            "anomalies": w.anomalies,
            "reads": w.reads,
            "updates": w.updates,
            "recentred": w.recentred,
            "reads_per_write": round(w.reads / max(stats.requests, 1), 4),
            "extra_requests_ratio": round((w.reads + w.updates) / max(stats.requests, 1), 4),
        }
    return figures


def _journal(emu: Emulator, since: int, skip: str | None) -> Applied:
    applied: Applied = Counter()
    for record in emu.store.journal[since:]:
        sign = {"incrementInventory": 1, "decrementInventory": -1}.get(record.endpoint)
        for entry in record.entries if sign else ():
            if entry["productId"] != skip:
                amount = entry.get("incrementBy") or entry.get("decrementBy")
                applied[((entry["productId"], entry["variantId"]), sign * amount)] += 1  # type: ignore[operator]
    return applied


async def main(quick: bool) -> None:
    producers, each, max_batch = (16, 100, 20) if quick else (64, 300, 50)
    async with Emulator(products=1000, variants_per_product=3, seed=7) as emu:
        made = emu.store.add_product(variants=SLOTS, quantity=50_000, visible=False)
        assert made.product_id is not None
        ids = [v.variant_id for v in made.variants]
        keys = [
            (str(item.product_id), v.variant_id)
            for item in emu.store.items()
            if item.track_quantity and item.product_id != made.product_id
            for v in item.variants
        ]
        untracked = next(i for i in emu.store.items() if i.track_quantity is False)
        keys.insert(20, ("no-such-product", keys[0][1]))  # bad entries, drawn now and then
        keys.insert(40, (str(untracked.product_id), untracked.variants[0].variant_id))
        stream = _stream(keys, producers, each, down=0.5)
        witness = Witness(made.product_id, ids, settle=SETTLE)
        common = {"producers": producers, "max_batch": max_batch, "quick": quick}
        base = await _run(emu, stream, None, max_batch=max_batch)
        _emit("without_witness", base | common)
        seen = await _run(emu, stream, witness, max_batch=max_batch)
        seen["in_doubt_resolved_ratio"] = round(
            1 - seen["in_doubt_deltas"] / max(base["in_doubt_deltas"], 1), 4
        )
        _emit("with_witness", seen | common | {"target": 0})
        retry = await _run(emu, stream, witness, on_ambiguous="retry", max_batch=max_batch)
        _emit("with_witness_retry", retry | common | {"target": 0})
        tight = Bounds(low=49_998, centre=50_000, high=50_002, hard_low=49_996, hard_high=50_004)
        drifting = _stream(keys, producers, each, down=0.9)
        recentre = Witness(made.product_id, ids, settle=SETTLE, bounds=tight)
        _emit("recentring", await _run(emu, drifting, recentre, max_batch=max_batch) | common)


def _emit(name: str, record: dict[str, Any]) -> None:
    print(json.dumps({"name": name, **record}, sort_keys=True), flush=True)


if __name__ == "__main__":
    logging.getLogger("wixinv_async").setLevel(logging.CRITICAL)  # counted, not logged
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 producers x 100 deltas")
    asyncio.run(main(parser.parse_args().quick))
