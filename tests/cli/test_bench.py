"""The bench command: runs benchmark scripts out of process and writes JSON and markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wixinv_async.cli.bench import markdown_table, ratio_points, summary_text, target_checks

from .conftest import run_cli

FAKE_BENCH = """
import json, sys
quick = "--quick" in sys.argv
print("warming up")
print(json.dumps({"name": "speedup_8_vs_1", "speedup": 7.5, "target": 7.0, "quick": quick}))
print(json.dumps({"name": "throughput", "per_s": 1234.5}))
"""


def test_bench_runs_scripts_and_writes_results(tmp_path: Path) -> None:
    """Each bench_*.py runs as its own process; its JSON lines land in results.json and .md."""
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "bench_fake.py").write_text(FAKE_BENCH)
    (folder / "bench_broken.py").write_text("raise SystemExit(3)\n")
    out = tmp_path / "out"
    result = run_cli("bench", "--quick", "--benchmarks", str(folder), "-o", str(out))
    assert result.returncode == 1  # the broken one is reported as a failure
    assert "bench_broken" in result.stderr
    records = json.loads((out / "results.json").read_text())
    assert records == [
        {
            "benchmark": "bench_fake",
            "name": "speedup_8_vs_1",
            "speedup": 7.5,
            "target": 7.0,
            "quick": True,
        },
        {"benchmark": "bench_fake", "name": "throughput", "per_s": 1234.5},
    ]
    assert "| name | speedup | target | quick | per_s |" in (out / "results.md").read_text()


def test_bench_only_filters_by_name(tmp_path: Path) -> None:
    """--only runs just the matching scripts; no match is a usage error."""
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "bench_fake.py").write_text(FAKE_BENCH)
    result = run_cli("bench", "--only", "nothing", "--benchmarks", str(folder), "-o", str(tmp_path))
    assert result.returncode == 2


def test_markdown_table_and_ratio_points() -> None:
    """Results become one table per benchmark, and ratio fields become chart points."""
    records = [
        {"benchmark": "bench_a", "name": "x", "ratio": 0.9, "target": 0.85},
        {"benchmark": "bench_b", "name": "y", "seconds": 1.0},
    ]
    table = markdown_table(records)
    assert "### bench_a" in table
    assert "| x | 0.9 | 0.85 |" in table
    assert ratio_points(records) == [("a: x", 0.9, 0.85)]


def test_every_missed_target_is_reported_the_same_way() -> None:
    """Lower bounds (ratio, speedup, ratio_X) and upper bounds (bytes per key) are checked alike;
    the summary counts them and lists each miss in one form."""
    records = [
        {"benchmark": "bench_a", "name": "x", "ratio": 0.9, "target": 0.85},
        {"benchmark": "bench_a", "name": "y", "speedup": 6.5, "target": 7.0},
        {"benchmark": "bench_b", "server": "s", "ratio_fast": 0.8, "target_fast": 0.85},
        {"benchmark": "bench_c", "bench": "memory", "bytes_per_key": 310.0, "target": 300},
        {"benchmark": "bench_c", "bench": "memory2", "bytes_per_key": 228.0, "target": 300},
        {"benchmark": "bench_d", "name": "no target", "seconds": 1.0},
    ]
    assert summary_text(records, ["bench_e"]).splitlines() == [
        "targets: 2 met, 3 missed",
        "  MISSED: a: y 6.5 (target >= 7)",
        "  MISSED: b: s (fast) 0.8 (target >= 0.85)",
        "  MISSED: c: memory (bytes_per_key) 310 (target <= 300)",
        "scripts that failed: bench_e",
    ]


def test_bench_prints_the_summary(tmp_path: Path) -> None:
    """After a run, the command prints how many targets were met and the misses."""
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "bench_fake.py").write_text(FAKE_BENCH)
    result = run_cli("bench", "--benchmarks", str(folder), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "targets: 1 met, 0 missed" in result.stdout


@pytest.mark.parametrize(("cpu_ratio", "verdict"), [(2.9, "met"), (3.0, "met"), (3.4, "MISSED")])
def test_the_adjusters_cpu_ratio_is_checked_against_its_target(
    cpu_ratio: float, verdict: str
) -> None:
    """The end-to-end row's cpu_ratio is an upper bound (target_cpu, 3.0): met at or below it."""
    row = {
        "benchmark": "bench_adjuster",
        "bench": "end_to_end",
        "cpu_ratio": cpu_ratio,
        "cpu_ratio_median": cpu_ratio + 0.1,
        "target_cpu": 3.0,
        "ratio": 0.9,
        "target": 0.8,
    }
    cpu_check = f"{verdict}: adjuster: end_to_end (cpu_ratio) {cpu_ratio:g} (target <= 3)"
    assert [str(check) for check in target_checks([row])] == [
        "met: adjuster: end_to_end 0.9 (target >= 0.8)",
        cpu_check,
    ]
    missed = [] if verdict == "met" else [f"  {cpu_check}"]
    assert summary_text([row]).splitlines() == [
        f"targets: {2 - len(missed)} met, {len(missed)} missed",
        *missed,
    ]
