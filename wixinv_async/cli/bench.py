"""``wixinv-async bench``: run the ``benchmarks/`` suite and write its results.

Each ``benchmarks/bench_*.py`` runs in its own process and prints JSON lines; this command
collects them into ``results.json``, a markdown table (``results.md``) and, when matplotlib is
installed, a chart of every ratio against its target (``ratios.png``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import EXIT_CONFIG, EXIT_OK, EXIT_REJECTED

RATIO_FIELDS = ("ratio", "speedup")

EXAMPLES = """\
examples:
  wixinv-async bench --quick                 # a small run of every benchmark (about a minute)
  wixinv-async bench --only crawler -o out/  # the full crawler benchmark

Run it from a checkout of the repository (the benchmarks are not installed with the package).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run the benchmark suite; write JSON, a markdown table and a chart",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only", action="append", default=[], help="run only benchmarks whose name has this"
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("bench-results"))
    parser.add_argument("--benchmarks", type=Path, help="the benchmarks folder (default: found)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = args.benchmarks or _find_benchmarks()
    if folder is None or not folder.is_dir():
        print("wixinv-async bench: no benchmarks/ folder; run from the repository", file=sys.stderr)
        return EXIT_CONFIG
    scripts = [
        p for p in sorted(folder.glob("bench_*.py")) if not args.only or _wanted(p, args.only)
    ]
    if not scripts:
        print(f"wixinv-async bench: no benchmark matches {args.only}", file=sys.stderr)
        return EXIT_CONFIG
    records: list[dict[str, Any]] = []
    failed = []
    for script in scripts:
        found, ok = _run_script(script, quick=args.quick)
        records += found
        if not ok:
            failed.append(script.stem)
    _write(args.output, records)
    print(f"wrote {args.output}/results.json and results.md ({len(records)} results)")
    print(summary_text(records, failed))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK


def _find_benchmarks() -> Path | None:
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / "benchmarks").is_dir():
            return base / "benchmarks"
    return None


def _wanted(script: Path, only: Sequence[str]) -> bool:
    return any(name in script.stem for name in only)


def _run_script(script: Path, *, quick: bool) -> tuple[list[dict[str, Any]], bool]:
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    print(f"running {script.name}{' --quick' if quick else ''} ...", flush=True)
    started = time.monotonic()
    completed = subprocess.run(  # noqa: S603 - our own scripts, with our interpreter
        command, capture_output=True, text=True, check=False, cwd=script.parent.parent
    )
    records = []
    for line in completed.stdout.splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            records.append({"benchmark": script.stem, **record})
    seconds = time.monotonic() - started
    print(f"  {len(records)} results in {seconds:.1f}s (exit {completed.returncode})", flush=True)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr[-2000:])
    return records, completed.returncode == 0


def _write(folder: Path, records: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    (folder / "results.md").write_text(markdown_table(records))
    _chart(folder / "ratios.png", records)


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """One table per benchmark script, one row per result, one column per field."""
    out: list[str] = []
    by_bench: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_bench.setdefault(record["benchmark"], []).append(record)
    for bench, rows in by_bench.items():
        columns = [c for c in dict.fromkeys(k for r in rows for k in r) if c != "benchmark"]
        out.append(f"### {bench}\n")
        out.append("| " + " | ".join(columns) + " |")
        out.append("|" + "---|" * len(columns))
        for row in rows:
            out.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def ratio_points(records: Sequence[dict[str, Any]]) -> list[tuple[str, float, float | None]]:
    """(label, measured ratio, target) for every result that reports a ratio: a ``ratio`` or
    ``speedup`` field (target in ``target``), or ``ratio_X`` with its target in ``target_X``."""
    points = []
    for record in records:
        label = _label(record)
        for name, value in record.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if name in RATIO_FIELDS:
                points.append((label, float(value), _number(record.get("target"))))
            elif name.startswith("ratio_") and f"target_{name[6:]}" in record:
                target = _number(record[f"target_{name[6:]}"])
                points.append((f"{label} ({name[6:]})", float(value), target))
    return points


AT_MOST_FIELDS = {"bytes_per_key": "target", "in_doubt_left": "target", "cpu_ratio": "target_cpu"}
"""Measures whose target is an upper bound, each with the field holding its target (every
other ratio's is a lower one); ``cpu_ratio`` is the adjuster's CPU per variant against the bare
aiohttp loop's (issue 12: at most 3.0)."""


class TargetCheck(NamedTuple):
    """One measured value against its target."""

    label: str
    measured: float
    target: float
    at_most: bool

    @property
    def met(self) -> bool:
        return self.measured <= self.target if self.at_most else self.measured >= self.target

    def __str__(self) -> str:
        bound = "<=" if self.at_most else ">="
        verdict = "met" if self.met else "MISSED"
        return f"{verdict}: {self.label} {self.measured:.4g} (target {bound} {self.target:g})"


def target_checks(records: Sequence[dict[str, Any]]) -> list[TargetCheck]:
    """Every result that has a target, ratios (see :func:`ratio_points`) and upper bounds alike."""
    checks = [
        TargetCheck(label, value, target, at_most=False)
        for label, value, target in ratio_points(records)
        if target is not None
    ]
    for record in records:
        for name, target_field in AT_MOST_FIELDS.items():
            value, target = _number(record.get(name)), _number(record.get(target_field))
            if target is not None and value is not None:
                checks.append(TargetCheck(f"{_label(record)} ({name})", value, target, True))
    return checks


def summary_text(records: Sequence[dict[str, Any]], failed: Sequence[str] = ()) -> str:
    """A few lines: how many targets were met, each missed one in the same form, failed scripts."""
    checks = target_checks(records)
    missed = [check for check in checks if not check.met]
    lines = [f"targets: {len(checks) - len(missed)} met, {len(missed)} missed"]
    lines += [f"  {check}" for check in missed]
    if failed:
        lines.append(f"scripts that failed: {', '.join(failed)}")
    return "\n".join(lines)


_LABEL_FIELDS = ("bench", "case", "comparison", "name", "server")


def _label(record: dict[str, Any]) -> str:
    parts = [str(record[k]) for k in _LABEL_FIELDS if k in record]
    if "in_flight" in record:
        parts.append(f"in_flight={record['in_flight']}")
    return f"{record['benchmark'].removeprefix('bench_')}: {' '.join(parts)}"


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _chart(path: Path, records: Sequence[dict[str, Any]]) -> None:
    points = ratio_points(records)
    if not points:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (pip install matplotlib for ratios.png)")
        return
    positions = list(range(len(points)))
    fig, ax = plt.subplots(figsize=(12, 0.5 * len(points) + 1.5))
    ax.barh(positions, [p[1] for p in points], color="#4c72b0")
    ax.set_yticks(positions, [p[0] for p in points], fontsize=8)
    for index, (_, value, target) in enumerate(points):
        ax.text(value, index, f" {value:.3g}", va="center", fontsize=8)
        if target is not None:
            ax.plot([target, target], [index - 0.4, index + 0.4], color="#c44e52", linewidth=2)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("measured ratio, log scale (red bar: target)")
    fig.suptitle("wixinv_async benchmarks: ratios measured side by side in one run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
