"""``wixinv-async adjust`` and ``demo`` on Catalog V3 sites, as a user runs them."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from .conftest import CLI, run_cli


def _v3_items(emu: Any) -> list[dict[str, Any]]:
    state = emu.admin("state")
    assert state["catalogVersion"] == "V3_CATALOG"
    return list(state["inventoryItems"])


def _v3_quantities(emu: Any) -> dict[str, int | None]:
    return {item["id"]: item.get("quantity") for item in _v3_items(emu)}


def _wait_for_batches(journal: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("the adjust run finished before it could be killed")
        if journal.exists():
            try:
                with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
                    done = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= count:
                return
        time.sleep(0.01)
    pytest.fail("no batches were journalled")


def _requested(journal_entry: dict[str, Any]) -> Counter[str]:
    """What one V3 write asked for, by item id (whether or not each entry applied)."""
    sign = -1 if "decrement" in journal_entry["endpoint"].lower() else 1
    asked: Counter[str] = Counter()
    for entry in journal_entry["entries"]:
        amount = entry.get("incrementBy") or entry.get("decrementBy")
        asked[entry["inventoryItemId"]] += sign * amount
    return asked


def test_kill_9_then_rerun_on_v3_applies_nothing_twice(
    emulator_process: Any, tmp_path: Path
) -> None:
    """kill -9 mid-run on a V3 site, rerun: the emulator's journal shows every row once, and
    the rows in doubt are exactly those of requests that were on the wire."""
    emu = emulator_process(
        "--catalog", "v3", "--locations", "2", "--products", "800", "--seed", "5",
        "--latency-ms", "60",
    )  # fmt: skip
    items = [item for item in _v3_items(emu) if item["trackQuantity"]]
    rng = random.Random(11)
    rows = []
    for _ in range(10_000):
        item = rng.choice(items)
        rows.append((item, rng.randint(1, 4)))  # increments: every entry applies when sent
    source = tmp_path / "v3.csv"
    body = [
        f"{item['productId']},,{item['variantId']},{item['locationId']},{delta}"
        if index % 2
        else f",{item['id']},{item['variantId']},,{delta}"
        for index, (item, delta) in enumerate(rows)
    ]
    source.write_text("product_id,inventory_id,variant_id,location_id,delta\n" + "\n".join(body))
    before = _v3_quantities(emu)
    journal = tmp_path / "v3.csv.journal"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIX_")} | emu.env
    first = subprocess.Popen(  # noqa: S603
        [*CLI, "adjust", str(source), "--quiet", "--max-in-flight", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_batches(journal, 3, first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    rerun = run_cli("adjust", str(source), "--json", env=emu.env)
    summary = json.loads(rerun.stdout)
    with sqlite3.connect(journal) as db:
        states = {line: (state, batch) for line, state, batch in db.execute(
            "SELECT line, state, batch FROM lines"
        )}  # fmt: skip
    in_doubt = {line for line, (state, _) in states.items() if state in {"sent", "in_doubt"}}
    assert in_doubt  # killed right after a batch was journalled: its request was in flight
    assert rerun.returncode == 3, rerun.stderr
    assert summary["in_doubt_held_back"] == len(in_doubt)
    assert summary["done_in_earlier_runs"] > 0
    listed = (tmp_path / "v3.csv.in-doubt.csv").read_text().splitlines()[1:]
    assert {int(line.split(",")[0]) for line in listed} == in_doubt

    committed: Counter[str] = Counter()
    doubtful: defaultdict[int, Counter[str]] = defaultdict(Counter)
    for line, (item, delta) in enumerate(rows, start=2):
        state, batch = states[line]
        if state == "committed":
            committed[item["id"]] += delta
        elif line in in_doubt:
            doubtful[batch][item["id"]] += delta
        else:
            pytest.fail(f"line {line} ended {state}")
    writes = [_requested(e) for e in emu.admin("journal")["journal"] if e["entries"]]
    expected = committed.copy()
    for asked in doubtful.values():
        if asked in writes:  # the in-doubt request did reach the server, once
            expected.update(asked)
    after = _v3_quantities(emu)
    moved = {i: after[i] - before[i] for i in before if after[i] != before[i]}  # type: ignore[operator]
    assert moved == +expected


def test_demo_verifies_a_v1_and_a_v3_site_side_by_side() -> None:
    """demo (default --catalog both) verifies both sites item by item, one report per site."""
    result = run_cli("demo", "--products", "300", "--deltas", "6000", "--producers", "8", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verification"] == "PASS"
    assert report["catalogs"] == ["V1_CATALOG", "V3_CATALOG"]
    v1, v3 = report["sites"]
    for site in (v1, v3):
        assert site["verification"] == "PASS"
        assert site["deltas"] == 6000
        assert site["mismatches"] == 0
    assert v3["verified_variants"] > v1["verified_variants"]  # V3: per variant and location
    assert report["verified_variants"] == v1["verified_variants"] + v3["verified_variants"]
    assert report["deltas"] == 12_000


@pytest.mark.parametrize("catalog", ["v1", "v3"])
def test_demo_runs_on_one_catalog(catalog: str) -> None:
    """--catalog v1 or v3 runs the one site and reports its catalog; text mode prints its report."""
    result = run_cli("demo", "--catalog", catalog, "--products", "100", "--deltas", "2000")
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^catalog +{catalog.upper()}_CATALOG$", result.stdout, re.MULTILINE)
    assert f"overall verification: PASS ({catalog.upper()}_CATALOG)" in result.stdout
