"""``adjust --witness``: kill -9 at random points, rerun: every row resolved, none applied twice.

The emulator process (60 ms per call) and its journal are the truth. Each trial writes a new
file, starts ``adjust --witness``, kills it with SIGKILL once a random number of batches is
journalled (plus a random pause), and reruns it to the end. The rerun must resolve the rows of
the requests that were on the wire by reading the witness (none held in doubt), and the
emulator must have applied each row's delta exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .conftest import CLI, run_cli, write_csv

TRIALS = 3
FLAGS = ("--rate-limit", "off", "--max-in-flight", "4", "--witness-settle", "0.3")


def _applied(journal: list[dict[str, Any]], skip: str) -> Counter[tuple[str, str]]:
    total: Counter[tuple[str, str]] = Counter()
    for record in journal:
        sign = {"incrementInventory": 1, "decrementInventory": -1}.get(record["endpoint"])
        for entry in record["entries"] if sign else ():
            if entry["productId"] != skip:
                amount = entry.get("incrementBy") or entry.get("decrementBy")
                total[(entry["productId"], entry["variantId"])] += sign * amount  # type: ignore[operator]
    return total


def _wait_for_batches(journal: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    """Poll the running process's journal until it counts ``count`` batches (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("the adjust run finished before it could be killed")
        try:
            with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
                if db.execute("SELECT COUNT(*) FROM batches").fetchone()[0] >= count:
                    return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.005)
    pytest.fail(f"the journal never counted {count} batches")


def test_kill_9_at_random_points_then_rerun_resolves_by_witness(
    emulator_process: Any, tmp_path: Path
) -> None:
    """A few kill -9 trials at random points: each rerun resolves the rows left on the wire by
    reading the witness (none in doubt), and the emulator applied every row exactly once."""
    emu = emulator_process("--products", "1500", "--seed", "18", "--latency-ms", "60")
    made = emu.admin("products", "POST", {"variants": 4, "quantity": 50_000, "visible": False})
    witness = made["productId"]
    keys = emu.tracked_keys()
    keys = [k for k in keys if k[0] != witness]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIX_")} | emu.env
    resolved: Counter[str] = Counter()
    for trial in range(TRIALS):
        seed = 1800 + trial
        rng = random.Random(seed)
        rows = [(*rng.choice(keys), rng.randint(1, 4)) for _ in range(6_000)]
        source = tmp_path / f"trial{trial}.csv"
        write_csv(source, rows)
        since = len(emu.admin("journal")["journal"])
        first = subprocess.Popen(  # noqa: S603
            [*CLI, "adjust", str(source), "--quiet", "--witness", witness, *FLAGS],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_batches(source.with_name(source.name + ".journal"), rng.randint(1, 8), first)
        time.sleep(rng.uniform(0, 0.1))
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        rerun = run_cli("adjust", str(source), "--json", "--witness", witness, *FLAGS, env=emu.env)
        assert rerun.returncode == 0, f"seed {seed}: {rerun.stderr}"
        summary = json.loads(rerun.stdout)
        assert summary["in_doubt"] == summary["in_doubt_held_back"] == 0, f"seed {seed}"
        assert summary["journal"] == {"committed": len(rows)}, f"seed {seed}"
        resolved.update(summary["resolved_by_witness"])
        expected: Counter[tuple[str, str]] = Counter()
        for product, variant, delta in rows:
            expected[(product, variant)] += delta
        journal = emu.admin(f"journal?since={since}")["journal"]
        assert _applied(journal, witness) == expected, f"seed {seed}: a row applied twice or lost"
    assert sum(resolved.values()) > 0, "no trial left a request on the wire to resolve"
