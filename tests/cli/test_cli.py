"""The wixinv-async command, run as a subprocess against an emulator process."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from .conftest import CLI, run_cli, write_csv

SUBCOMMANDS = ["demo", "adjust", "export", "emulator", "bench"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help_with_examples(command: str) -> None:
    """``--help`` works for every subcommand and shows examples."""
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout


def test_missing_credentials_exit_2_without_printing_secrets() -> None:
    """A half-configured target is a usage error (2) whose message leaks no secret."""
    result = run_cli("export", env={"WIX_API_KEY": "super-secret-key-123"})
    assert result.returncode == 2
    assert "--site-id" in result.stderr
    assert "super-secret-key-123" not in result.stderr + result.stdout


def test_adjust_applies_a_file_and_reports_json(emulator_process: Any, tmp_path: Path) -> None:
    """adjust applies every row once, exits 0 and prints a JSON summary."""
    emu = emulator_process("--products", "50", "--seed", "3")
    keys = emu.tracked_keys()[:40]
    before = emu.quantities()
    rows = [(p, v, d) for (p, v) in keys for d in (5, 2)]
    source = tmp_path / "in.csv"
    write_csv(source, rows)
    result = run_cli("adjust", str(source), "--json", env=emu.env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["committed"] == len(rows)
    assert summary["exit_code"] == 0
    after = emu.quantities()
    assert all(after[key] == before[key] + 7 for key in keys)  # type: ignore[operator]


def test_adjust_sends_bad_rows_to_the_rejects_file(emulator_process: Any, tmp_path: Path) -> None:
    """Bad rows and rows the server refused land in the rejects file with line, reason and the
    row itself; the rest goes on; exit 1."""
    emu = emulator_process("--products", "20", "--seed", "4")
    (product, variant) = emu.tracked_keys()[0]
    source = tmp_path / "in.csv"
    source.write_text(
        "product_id,variant_id,delta\n"
        f"{product},{variant},3\n"
        f"{product},not-a-guid,1\n"
        f"{product},{variant},0\n"
        f"ghost-product,{variant},1\n"
    )
    before = emu.quantities()[(product, variant)]
    result = run_cli("adjust", str(source), "--json", env=emu.env)
    assert result.returncode == 1
    rejects = (tmp_path / "in.csv.rejects.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in rejects[1:]] == ["3", "4", "5"]
    assert "must be a GUID" in rejects[1]
    assert "NOT_FOUND" in rejects[3]
    assert rejects[3].endswith(f',"ghost-product,{variant},1"')  # the input row itself
    assert emu.quantities()[(product, variant)] == before + 3


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_rows_python_cannot_parse_are_rejected_and_the_rest_applied(
    emulator_process: Any, tmp_path: Path, suffix: str
) -> None:
    """A 200,000-character CSV field, 100,000-deep JSON, a 5,000-digit number: each one rejected
    row with its line and reason; the good rows after them applied; summary printed; exit 1."""
    emu = emulator_process("--products", "20", "--seed", "4")
    (product, variant) = emu.tracked_keys()[0]
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        good = f"{product},{variant},1\n"
        bad = [f"{'x' * 200_000},{variant},1\n", f"{product},{variant},{'9' * 5_000}\n"]
        source.write_text("Product_ID,Variant_ID,Delta\n" + good + "".join(b + good for b in bad))
        lines, reasons = ["3", "5"], ["field larger than field limit", "delta="]
    else:
        good = f'{{"product_id": "{product}", "variant_id": "{variant}", "delta": 1}}\n'
        bad = [
            '{"delta": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
            '{"delta": ' + "9" * 5_000 + "}\n",
        ]
        source.write_text(good + "".join(b + good for b in bad))
        lines, reasons = ["2", "4"], ["nested too deeply", "4300 digits"]
    before = emu.quantities()[(product, variant)]
    result = run_cli("adjust", str(source), "--quiet", env=emu.env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "committed" in result.stdout and "invalid rows" in result.stdout
    with (tmp_path / f"in{suffix}.rejects.csv").open(newline="") as handle:
        rejects = list(csv.reader(handle))[1:]
    assert [row[0] for row in rejects] == lines
    assert all(reason in row[1] for reason, row in zip(reasons, rejects, strict=True))
    assert emu.quantities()[(product, variant)] == before + 3


def test_progress_follows_the_requests_after_every_row_is_read(
    emulator_process: Any, tmp_path: Path
) -> None:
    """At 4 requests a second the rows are all read long before they are sent: the progress
    lines keep coming, each with the requests so far (it was pushed per 2,000 rows read)."""
    emu = emulator_process("--products", "1200", "--seed", "2")
    keys = emu.tracked_keys()[:2_400]
    source = tmp_path / "in.csv"
    write_csv(source, [(p, v, 1) for p, v in keys])
    result = run_cli("adjust", str(source), "--rate-limit", "4/1", env=emu.env)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("adjust: ")]
    after_reading = {line.split(" requests ")[1].split()[0] for line in lines if " read " in line}
    assert len(after_reading) >= 2, lines  # several request counts shown while sending
    assert all(" 429s " in line for line in lines[:-1])


def test_verbose_logs_the_run_on_named_loggers_without_secrets(
    emulator_process: Any, tmp_path: Path
) -> None:
    """-v puts the library's INFO logs on stderr (-vv the journal's DEBUG too), on named
    loggers, never the API key; without it, none."""
    emu = emulator_process("--products", "20", "--seed", "4")
    # No asyncio debug mode in these CLI runs: its slow-callback warnings (more of them on a
    # loaded machine) name our modules in a task's repr, and are no log a user ever sees.
    env = {**emu.env, "PYTHONASYNCIODEBUG": ""}
    source = tmp_path / "in.csv"
    write_csv(source, [(p, v, 1) for p, v in emu.tracked_keys()[:10]])
    quiet = run_cli("adjust", str(source), "--quiet", env=env)
    assert "wixinv_async" not in quiet.stderr
    again = tmp_path / "again.csv"  # another file: a run that sends again
    again.write_text(source.read_text())
    verbose = run_cli("-v", "adjust", str(again), "--quiet", env=env)
    assert verbose.returncode == 0, verbose.stderr
    assert (
        f"INFO wixinv_async.cli: site {emu.env['WIX_BASE_URL']}, API key, pacing" in verbose.stderr
    )
    assert "INFO wixinv_async.bulk.journal: journal " in verbose.stderr
    assert "INFO wixinv_async.bulk.runner: bulk run done: 10 rows, 10 committed" in verbose.stderr
    assert "DEBUG" not in verbose.stderr
    debug = run_cli("adjust", str(source), "-vv", "--quiet", env=env)  # all done before
    assert "DEBUG wixinv_async.cli: site 127.0.0.1:" in debug.stderr
    for result in (quiet, verbose, debug):
        assert emu.env["WIX_API_KEY"] not in result.stderr + result.stdout


def test_kill_9_then_rerun_applies_nothing_twice_and_loses_nothing(
    emulator_process: Any, tmp_path: Path
) -> None:
    """kill -9 mid-run, rerun: the emulator's journal shows every row once, in-doubt rows listed."""
    emu = emulator_process("--products", "1500", "--seed", "9", "--latency-ms", "60")
    keys = emu.tracked_keys()
    rng = random.Random(7)
    rows = [(*rng.choice(keys), rng.randint(1, 4)) for _ in range(12_000)]
    source = tmp_path / "big.csv"
    write_csv(source, rows)
    before = emu.quantities()
    journal = tmp_path / "big.csv.journal"
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
    states = _line_states(journal)
    in_doubt = {line for line, (state, _) in states.items() if state in {"sent", "in_doubt"}}
    assert in_doubt  # killed right after a batch was journalled: its request was in flight
    assert rerun.returncode == 3
    assert summary["in_doubt_held_back"] == len(in_doubt)
    assert summary["done_in_earlier_runs"] > 0  # the killed run did commit some batches
    listed = (tmp_path / "big.csv.in-doubt.csv").read_text().splitlines()[1:]
    assert {int(line.split(",")[0]) for line in listed} == in_doubt

    committed: Counter[tuple[str, str]] = Counter()
    doubtful: defaultdict[int, Counter[tuple[str, str]]] = defaultdict(Counter)
    for line, (product, variant, delta) in enumerate(rows, start=2):
        state, batch = states[line]
        if state == "committed":
            committed[(product, variant)] += delta
        elif line in in_doubt:
            doubtful[batch][(product, variant)] += delta
        else:
            pytest.fail(f"line {line} ended {state}")
    applied_requests = [_entries(e) for e in emu.admin("journal")["journal"]]
    expected = committed.copy()
    for entries in doubtful.values():
        if entries in applied_requests:  # the in-doubt batch did reach the server, once
            expected.update(entries)
    after = emu.quantities()
    assert {k: after[k] - before[k] for k in before if after[k] != before[k]} == +expected  # type: ignore[operator]


_SENT_BATCHES = "SELECT COUNT(*) FROM batches"
_COMMITTED_LINES = "SELECT COUNT(*) FROM lines WHERE state = 'committed'"


def _wait_for_batches(journal: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    _wait_for_journal(journal, _SENT_BATCHES, count, process)


def _wait_for_journal(
    journal: Path, query: str, count: int, process: subprocess.Popen[bytes]
) -> None:
    """Poll the running process's journal until ``query`` counts ``count`` (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("the adjust run finished before it could be killed")
        if journal.exists():
            try:
                with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
                    done = db.execute(query).fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= count:
                return
        time.sleep(0.01)
    pytest.fail(f"the journal never counted {count} for {query!r}")


def _line_states(journal: Path) -> dict[int, tuple[str, int | None]]:
    with sqlite3.connect(journal) as db:
        return {
            line: (state, batch)
            for line, state, batch in db.execute("SELECT line, state, batch FROM lines")
        }


def _entries(journal_entry: dict[str, Any]) -> Counter[tuple[str, str]]:
    sign = -1 if journal_entry["endpoint"] == "decrementInventory" else 1
    entries: Counter[tuple[str, str]] = Counter()
    for entry in journal_entry["entries"]:
        amount = entry.get("incrementBy") or entry.get("decrementBy")
        entries[(entry["productId"], entry["variantId"])] += sign * amount
    return entries


def test_export_reads_past_10000_items(emulator_process: Any, tmp_path: Path) -> None:
    """export crawls every item of a catalog larger than the offset limit, once each."""
    emu = emulator_process("--products", "10500", "--variants-per-product", "1", "--seed", "2")
    output = tmp_path / "items.jsonl"
    result = run_cli(
        "export", "-o", str(output), "--json", "--segments", "4", "--rate-limit", "off", env=emu.env
    )
    assert result.returncode == 0, result.stderr
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 10_500
    assert json.loads(result.stdout)["items"] == 10_500


def test_export_csv_has_one_row_per_variant(emulator_process: Any, tmp_path: Path) -> None:
    """CSV export writes a header and one row per variant, with a user filter applied."""
    emu = emulator_process("--products", "60", "--seed", "5")
    tracked = {p for p, _ in emu.tracked_keys()}
    output = tmp_path / "items.csv"
    result = run_cli(
        "export",
        "-o",
        str(output),
        "--rate-limit",
        "off",
        "--filter",
        '{"trackQuantity": {"$eq": true}}',
        env=emu.env,
    )
    assert result.returncode == 0, result.stderr
    lines = output.read_text().splitlines()
    assert lines[0].startswith("numeric_id,inventory_id,product_id,track_quantity,variant_id")
    assert {line.split(",")[2] for line in lines[1:]} == tracked
    assert len(lines) - 1 == len(emu.tracked_keys())


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_to_stdout_keeps_the_json_summary_out_of_the_data(
    emulator_process: Any, fmt: str
) -> None:
    """With the data on stdout, --json puts the summary on stderr: stdout stays pure data."""
    emu = emulator_process("--products", "30", "--seed", "5")
    result = run_cli("export", "--format", fmt, "--json", "--rate-limit", "off", env=emu.env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if fmt == "jsonl":
        assert all("variants" in json.loads(line) for line in lines)
        assert len(lines) == 30
    else:
        assert all(line.count(",") == 8 for line in lines)
    assert json.loads(result.stderr.splitlines()[-1])["items"] == 30


@pytest.mark.parametrize(
    ("query_filter", "reason"),
    [
        ('{"x": 1}', "unknown field 'x'"),
        ('{"numericId": {"$gt": "abc"}}', "numericId.$gt: bad value 'abc'"),
    ],
)
def test_export_with_a_filter_the_site_refuses_is_a_usage_error_said_once(
    emulator_process: Any, tmp_path: Path, query_filter: str, reason: str
) -> None:
    """A --filter the site answers 400 to: exit 2 (a usage error), its reason printed once."""
    emu = emulator_process("--products", "5", "--seed", "1")
    output = tmp_path / "out.jsonl"
    result = run_cli("export", "-o", str(output), "--filter", query_filter, env=emu.env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count(reason) == 1
    assert result.stderr.startswith(f"wixinv-async export: --filter {query_filter}: ")


def test_demo_verifies_at_a_small_size() -> None:
    """The main job runs end to end on the embedded emulator and its verification passes."""
    result = run_cli(
        "demo", "--catalog", "v1", "--products", "400", "--deltas", "8000", "--producers", "16",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verification"] == "PASS"
    assert report["verified_variants"] > 500
    assert report["deltas"] == 8000
    assert report["requests"] < 8000 / 10  # coalescing and batching at work


def test_demo_text_report_explains_its_figures() -> None:
    """Without --json the report is followed by what coalescing ratio, batch fill and the
    latencies mean (why p50 is near half the run when every delta is queued at once)."""
    result = run_cli("demo", "--products", "100", "--deltas", "2000", "--producers", "4")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("what the figures mean:")[1]
    assert "deltas per entry sent (2000 / " in notes
    assert "All 2000 deltas were queued at" in notes and "4 producers" in notes
    assert "batch fill" in notes


def test_demo_real_site_needs_the_explicit_flag() -> None:
    """--real-site without the confirmation flag refuses to run (exit 2)."""
    result = run_cli("demo", "--real-site", env={"WIX_API_KEY": "k", "WIX_SITE_ID": "s"})
    assert result.returncode == 2
    assert "--i-understand-this-changes-stock" in result.stderr


def test_demo_real_site_mode_leaves_stock_unchanged(emulator_process: Any) -> None:
    """The real-site workload (tried on an emulator process) ends with stock where it began."""
    emu = emulator_process("--products", "300", "--seed", "8")
    before = emu.quantities()
    result = run_cli(
        "demo",
        "--real-site",
        "--i-understand-this-changes-stock",
        "--deltas",
        "2000",
        "--json",
        env=emu.env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verification"] == "PASS"
    assert emu.quantities() == before


@pytest.mark.parametrize("command", ["export", "demo"])
def test_a_refused_credential_is_a_configuration_error(emulator_process: Any, command: str) -> None:
    """A 401 from the site exits 2 (configuration), as adjust does, and never shows the key."""
    emu = emulator_process("--products", "5")
    env = {**emu.env, "WIX_API_KEY": "wrong-key-456"}
    args = ["-o", os.devnull] if command == "export" else ["--real-site", "--products", "1"]
    if command == "demo":
        args.append("--i-understand-this-changes-stock")
    result = run_cli(command, *args, "--json", "--quiet", env=env)
    assert result.returncode == 2, result.stderr
    assert "credentials" in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["exit_code"] == 2
    assert "wrong-key-456" not in result.stderr + result.stdout


def test_ctrl_c_exits_130_with_the_journal_kept(emulator_process: Any, tmp_path: Path) -> None:
    """SIGINT mid-run: exit 130 (documented), no traceback, one JSON object; a rerun finishes."""
    emu = emulator_process("--products", "1500", "--seed", "9")
    keys = emu.tracked_keys()
    rng = random.Random(5)
    source = tmp_path / "big.csv"
    rows = [(*keys[i % len(keys)], rng.randint(1, 4)) for i in range(6_000)]
    write_csv(source, rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIX_")} | emu.env
    # 1,500 distinct keys need at least 5 requests of 300. Paced at two per 60 s (the catalog
    # detection, then the first batch 30 s later), the run is still waiting for its third slot
    # when the signal comes: it cannot finish first.
    first = subprocess.Popen(  # noqa: S603
        [*CLI, "adjust", str(source), "--json", "--rate-limit", "2/60", "--linger", "0.001"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for_journal(tmp_path / "big.csv.journal", _COMMITTED_LINES, 1, first)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert b"Traceback" not in err
    assert json.loads(out.splitlines()[-1])["exit_code"] == 130
    rerun = run_cli("adjust", str(source), "--json", "--rate-limit", "off", env=emu.env)
    assert rerun.returncode in {0, 3}, rerun.stderr
    assert json.loads(rerun.stdout)["done_in_earlier_runs"] > 0


def test_a_second_run_is_refused_even_with_the_files_beside_the_journal_deleted(
    emulator_process: Any, tmp_path: Path
) -> None:
    """Deleting what looks like a lock while a run holds the journal lets no second run in."""
    emu = emulator_process("--products", "1500", "--seed", "9", "--latency-ms", "60")
    keys = emu.tracked_keys()
    source = tmp_path / "big.csv"
    write_csv(source, [(*keys[i % len(keys)], 1) for i in range(6_000)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIX_")} | emu.env
    first = subprocess.Popen(  # noqa: S603 - at 2 requests a second: still running for a while
        [*CLI, "adjust", str(source), "--quiet", "--rate-limit", "2/1", "--linger", "0.001"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_batches(tmp_path / "big.csv.journal", 1, first)
        for path in tmp_path.glob("big.csv.journal.*"):
            path.unlink()
        second = run_cli("adjust", str(source), "--quiet", env=emu.env)
        assert second.returncode == 2, second.stderr
        assert "in use by another run" in second.stderr
    finally:
        first.kill()
        first.wait()


def test_help_documents_every_exit_code() -> None:
    """130 (interrupted) is documented beside 0-3, in the command's and adjust's --help."""
    for args in (["--help"], ["adjust", "--help"]):
        text = run_cli(*args).stdout
        assert all(f"{code} " in text for code in (0, 1, 2, 3, 130)), args
