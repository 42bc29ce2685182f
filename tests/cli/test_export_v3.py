"""``wixinv-async export`` of Catalog V3 sites, against an emulator process over HTTP."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from wixinv_async.cli.export import CSV_COLUMNS_V3

from .conftest import CLI


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from .conftest import run_cli

    return run_cli(*args, env=env)


def test_export_of_a_v3_site_reads_past_10000_items_and_names_the_catalog(
    emulator_process: Any, tmp_path: Path
) -> None:
    """JSON Lines: every V3 item (per variant and location) once, past the offset limit,
    in the wire format; the summary says the catalog read was V3."""
    emu = emulator_process(
        "--catalog", "v3", "--products", "2100", "--variants-per-product", "3", "--locations", "2"
    )
    output = tmp_path / "items.jsonl"
    result = _run("export", "-o", str(output), "--json", "--rate-limit", "off", env=emu.env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    state = emu.admin("state")
    assert state["catalogVersion"] == "V3_CATALOG"
    assert sorted(item["id"] for item in lines) == sorted(i["id"] for i in state["inventoryItems"])
    assert len(lines) > 10_000
    assert all("locationId" in item and "variantId" in item for item in lines)
    summary = json.loads(result.stdout)
    assert summary["catalog"] == "V3" and summary["items"] == len(lines)


def test_export_csv_of_a_v3_site_has_location_and_sku_columns(
    emulator_process: Any, tmp_path: Path
) -> None:
    """CSV: the V3 header, one row per item with its location and SKU, a V3 filter applied;
    the plain summary names the catalog."""
    emu = emulator_process("--catalog", "v3", "--products", "40", "--locations", "2")
    state = emu.admin("state")["inventoryItems"]
    location = state[0]["locationId"]
    output = tmp_path / "items.csv"
    result = _run(
        "export",
        "-o",
        str(output),
        "--rate-limit",
        "off",
        "--quiet",
        "--filter",
        json.dumps({"locationId": {"$eq": location}}),
        env=emu.env,
    )
    assert result.returncode == 0, result.stderr
    with output.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS_V3
    got = {row[0]: dict(zip(CSV_COLUMNS_V3, row, strict=True)) for row in rows[1:]}
    want = {i["id"]: i for i in state if i["locationId"] == location}
    assert set(got) == set(want)
    for item_id, row in got.items():
        assert row["location_id"] == location
        assert row["sku"] == want[item_id]["product"]["variantSku"]
        assert row["variant_id"] == want[item_id]["variantId"]
        assert row["quantity"] == str(want[item_id].get("quantity", ""))
    assert re.search(r"^catalog +V3$", result.stderr, re.MULTILINE), result.stderr


def test_export_csv_of_an_empty_v3_result_writes_the_v3_header(
    emulator_process: Any, tmp_path: Path
) -> None:
    """A filter matching nothing still writes the header of the catalog read."""
    emu = emulator_process("--catalog", "v3", "--products", "5")
    output = tmp_path / "none.csv"
    nothing = json.dumps({"quantity": {"$gt": 10**9}})
    result = _run(
        "export", "-o", str(output), "--rate-limit", "off", "--filter", nothing, env=emu.env
    )
    assert result.returncode == 0, result.stderr
    assert output.read_text().splitlines() == [",".join(CSV_COLUMNS_V3)]


def test_export_stops_when_the_site_migrates_mid_crawl(
    emulator_process: Any, tmp_path: Path
) -> None:
    """A V1 export whose site moves to V3 after its first item exits 1 saying so; the file
    holds V1 items only, and a second export reads the V3 catalog."""
    emu = emulator_process("--products", "3000", "--variants-per-product", "1")
    output = tmp_path / "items.jsonl"
    args = ["export", "-o", str(output), "--rate-limit", "4/1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIX_")} | emu.env
    process = subprocess.Popen(  # noqa: S603
        [*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    for line in process.stderr:  # the progress line is printed with the first item written
        if line.startswith("export: "):
            break
    emu.admin("migrate", method="POST")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert "moved to another catalog during the export" in stderr
    written = [json.loads(line) for line in output.read_text().splitlines() if line.strip()]
    assert 0 < len(written) < 3000 and all("variants" in item for item in written)
    again = _run("export", "-o", str(output), "--json", "--rate-limit", "off", env=emu.env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["catalog"] == "V3"
