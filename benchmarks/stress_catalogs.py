"""The full-size V3 stress proof: 64 producers x 10,000 random deltas each, faults on.

Two runs, checked by the same code as ``tests/adjuster/test_v3_stress.py`` (which keeps a
scaled version): ``tests/adjuster/stress_harness.py``.

1. ``v3_site``: a V3 emulator (2 locations) with 429s, 5xx before applying, resets and stalls
   after applying; hot targets, unknown variants and an unknown SKU, decrements past zero,
   some deltas by SKU, some at the second location.
2. ``migration``: the same on a V1 site migrated to V3 halfway (by deltas submitted).

Each prints one JSON line: time, tickets by outcome, rejection codes, entries committed, in
doubt and in doubt but applied, requests by catalog, and ``checked: true`` once the proof
held (every ticket has an outcome; quantities = initial + exactly the journaled changes; the
journal holds every committed entry once and otherwise only in-doubt ones). A failed check
prints the failure and exits 1. Not a ``bench_*`` script: ``wixinv-async bench`` does not
run it (a full run takes minutes).

    .venv/bin/python benchmarks/stress_catalogs.py [--quick] [--only v3|migration]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.adjuster.stress_harness import (  # noqa: E402
    Size,
    StressFailure,
    run_migration,
    run_v3_site,
)

FULL = Size(producers=64, each=10_000)
QUICK = Size(producers=64, each=1_000)


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 deltas per producer")
    parser.add_argument("--only", choices=("v3", "migration"), help="run one of the two")
    options = parser.parse_args()
    size = QUICK if options.quick else FULL
    runs = {"v3": ("v3_site", run_v3_site), "migration": ("migration", run_migration)}
    failed = False
    for name, (label, run) in runs.items():
        if options.only not in (None, name):
            continue
        cpu = time.process_time()
        try:
            result = await run(size)
        except StressFailure as exc:
            emit(bench=label, checked=False, failure=str(exc))
            failed = True
            continue
        emit(
            bench=label,
            checked=True,
            producers=size.producers,
            deltas_each=size.each,
            max_batch=size.max_batch,
            max_in_flight=size.max_in_flight,
            cpu_seconds=round(time.process_time() - cpu, 1),
            **result.figures(),
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
