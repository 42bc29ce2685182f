"""``wixinv-async witness check``, run as a subprocess against an emulator process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import run_cli, write_csv


def test_witness_check_passes_a_hidden_tracked_product(emulator_process: Any) -> None:
    """A product made for it (POST /_emulator/products, hidden): exit 0, one line saying ok."""
    emu = emulator_process("--products", "5")
    made = emu.admin("products", "POST", {"variants": 4, "quantity": 50_000, "visible": False})
    result = run_cli("witness", "check", made["productId"], "--slots", "4", env=emu.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"witness product {made['productId']}: ok (4 variants for 4 slots)\n"


def test_witness_check_lists_every_problem_and_exits_2(emulator_process: Any) -> None:
    """Visible, too few variants, quantity 0: exit 2 and one plain line per problem; --json
    gives the same problems by code."""
    emu = emulator_process("--products", "5")
    made = emu.admin("products", "POST", {"variants": 2, "quantity": 0})
    args = ("witness", "check", made["productId"], "--slots", "8")
    result = run_cli(*args, env=emu.env)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[0] == f"witness product {made['productId']}: 4 problem(s)"
    codes = [line.split(":")[0].strip() for line in lines[1:]]
    assert codes == [
        "VISIBLE",
        "TOO_FEW_VARIANTS",
        "QUANTITY_OUT_OF_BOUNDS",
        "QUANTITY_OUT_OF_BOUNDS",
    ]
    as_json = json.loads(run_cli(*args, "--json", env=emu.env).stdout)
    assert as_json["ok"] is False and as_json["exit_code"] == 2
    assert [p["code"] for p in as_json["problems"]] == codes


def test_witness_check_of_an_unknown_product_exits_2(emulator_process: Any) -> None:
    """No such product: PRODUCT_MISSING, exit 2; a refused credential is exit 2 too."""
    emu = emulator_process("--products", "5")
    result = run_cli("witness", "check", "no-such-product", env=emu.env)
    assert result.returncode == 2 and "PRODUCT_MISSING" in result.stdout
    refused = run_cli("witness", "check", "p", env=emu.env | {"WIX_API_KEY": "wrong"})
    assert refused.returncode == 2 and "refused the credentials" in refused.stderr


def test_witness_help_has_examples() -> None:
    """``witness --help`` and ``witness check --help`` work and show examples."""
    for args in (("witness", "--help"), ("witness", "check", "--help")):
        result = run_cli(*args)
        assert result.returncode == 0 and "examples:" in result.stdout


def test_adjust_with_a_witness_rejects_its_rows_and_applies_the_rest(
    emulator_process: Any, tmp_path: Path
) -> None:
    """adjust --witness: a row on the witness product is a rejected row (exit 1, the run goes
    on), the other rows are applied once; a witness that cannot serve is exit 2, nothing sent."""
    emu = emulator_process("--products", "20", "--seed", "5")
    made = emu.admin("products", "POST", {"variants": 4, "quantity": 50_000, "visible": False})
    keys = emu.tracked_keys()[:10]
    before = emu.quantities()
    source = tmp_path / "in.csv"
    write_csv(
        source, [*[(p, v, 2) for p, v in keys], (made["productId"], made["variantIds"][0], 5)]
    )
    flags = ("--rate-limit", "off", "--json", "--witness-settle", "0.1")
    result = run_cli("adjust", str(source), "--witness", made["productId"], *flags, env=emu.env)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["committed"], summary["rejected"]) == (len(keys), 1)
    assert "INVALID_ROW: productId=" in (tmp_path / "in.csv.rejects.csv").read_text()
    after = emu.quantities()
    assert all(after[k] == before[k] + 2 for k in keys)  # type: ignore[operator]
    visible = emu.admin("products", "POST", {"variants": 4, "quantity": 50_000})
    other = tmp_path / "other.csv"
    write_csv(other, [(p, v, 1) for p, v in keys])
    journal = len(emu.admin("journal")["journal"])
    refused = run_cli("adjust", str(other), "--witness", visible["productId"], *flags, env=emu.env)
    assert refused.returncode == 2 and "VISIBLE" in refused.stderr
    assert len(emu.admin("journal")["journal"]) == journal
