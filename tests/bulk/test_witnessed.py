"""The bulk runner with a witness: marks journalled, rows on the wire at a crash resolved by
reading the witness, rows on the witness product rejected; against the emulator over HTTP."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from wixinv_async import IncrementData, Witness, WitnessMark
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.bulk.journal import Journal, input_fingerprint
from wixinv_async.bulk.runner import BulkPaths, run_bulk_adjust
from wixinv_async.client import InventoryClient
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule

Key = tuple[str, str]
SLOTS = 4


def _client(emu: Emulator) -> InventoryClient:
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    return InventoryClient(auth, base_url=emu.url, rate_limit=None)


def _setup(emu: Emulator) -> tuple[Witness, list[Key]]:
    made = emu.store.add_product(variants=SLOTS, quantity=50_000, visible=False)
    assert made.product_id is not None
    witness = Witness(made.product_id, [v.variant_id for v in made.variants], settle=0.0)
    keys = [
        (str(item.product_id), v.variant_id)
        for item in emu.store.items()
        if item.track_quantity and item.product_id != made.product_id
        for v in item.variants
    ]
    return witness, keys


def _states(journal: Path) -> dict[int, tuple[str, str | None]]:
    with contextlib.closing(sqlite3.connect(journal)) as db:
        return {line: (state, code) for line, state, code in db.execute(
            "SELECT line, state, code FROM lines")}  # fmt: skip


def _applied(emu: Emulator, skip: str, since: int = 0) -> Counter[Key]:
    """Per key, what the emulator's journal applied (the witness product left out)."""
    total: Counter[Key] = Counter()
    for record in emu.store.journal[since:]:
        sign = {"incrementInventory": 1, "decrementInventory": -1}.get(record.endpoint)
        for entry in record.entries if sign else ():
            if entry["productId"] != skip:
                amount = entry.get("incrementBy") or entry.get("decrementBy")
                total[(entry["productId"], entry["variantId"])] += sign * amount  # type: ignore[operator]
    return total


async def test_a_witnessed_run_journals_every_request_and_rejects_witness_rows(
    tmp_path: Path,
) -> None:
    """Every request sent has its witness mark journalled; a row on the witness product is a
    rejected row naming the field and value; every other row is applied once."""
    async with Emulator(products=60, variants_per_product=2, seed=21) as emu:
        witness, keys = _setup(emu)
        source = tmp_path / "in.csv"
        rows = [(k, d) for k in keys for d in (3, -1)]
        lines = [f"{p},{v},{d}" for (p, v), d in rows]
        lines.insert(5, f"{witness.product_id},{witness.variant_ids[0]},-7")
        source.write_text("product_id,variant_id,delta\n" + "\n".join(lines) + "\n")
        paths = BulkPaths.beside(source)
        options = {"max_in_flight": SLOTS, "max_batch": 20, "net_opposite_signs": False}
        async with _client(emu) as client:
            summary = await run_bulk_adjust(
                client, paths, witness=witness, adjuster_options=options
            )
        assert (summary.committed, summary.rejected) == (len(rows), 1)
        assert "INVALID_ROW: productId=" in paths.rejects.read_text()
        assert _applied(emu, witness.product_id) == Counter(dict.fromkeys(keys, 2))
        with contextlib.closing(sqlite3.connect(paths.journal)) as db:
            batches = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
            marks = db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT variant_id) FROM witness_sends"
            ).fetchone()
        assert batches == summary.requests and marks[0] == batches and marks[1] > 1


@pytest.mark.parametrize(
    ("fate", "state", "code"),
    [
        ("applied", "committed", "COMMITTED_BY_WITNESS"),
        ("never_sent", "committed", None),
        ("witness_edited", "in_doubt", "OUTCOME_UNKNOWN"),
        ("maybe_applied", "in_doubt", "OUTCOME_UNKNOWN"),
    ],
)
async def test_a_rerun_resolves_rows_left_on_the_wire_by_reading_the_witness(
    tmp_path: Path, fate: str, state: str, code: str | None
) -> None:
    """A crash left a journalled request's rows ``sent``: applied -> committed by witness (not
    resent); never sent -> NOT_APPLIED, sent once now (committed); the witness moved by
    someone else, or an earlier ambiguous send -> in doubt, listed, never resent."""
    async with Emulator(products=30, variants_per_product=1, seed=22) as emu:
        witness, keys = _setup(emu)
        keys = keys[:10]
        source = tmp_path / "in.csv"
        body = "\n".join(f"{p},{v},2" for p, v in keys)
        source.write_text("product_id,variant_id,delta\n" + body + "\n")
        paths = BulkPaths.beside(source)
        slot = witness.variant_ids[1]
        journal = Journal(paths.journal, fingerprint=input_fingerprint(source))
        mark = WitnessMark(witness.product_id, slot, 1, 50_000, ())
        lines = range(2, 2 + len(keys))
        journal.record_sent(
            1, "increment", lines, witness=mark, maybe_applied=fate == "maybe_applied"
        )
        journal.close()
        async with _client(emu) as client:
            if fate in ("applied", "maybe_applied"):  # the request reached the server
                entries = [
                    IncrementData(product_id=p, variant_id=v, increment_by=2) for p, v in keys
                ]
                entries.append(
                    IncrementData(product_id=witness.product_id, variant_id=slot, increment_by=1)
                )
                await client.increment_inventory(entries)
            if fate == "witness_edited":
                emu.edit_quantity(witness.product_id, slot, delta=3)
            before = len(emu.store.journal)
            summary = await run_bulk_adjust(client, paths, witness=witness)
        states = _states(paths.journal)
        assert {states[line] for line in lines} == {(state, code)}
        resolved = {"applied": "committed", "never_sent": "not_applied"}.get(fate, "in_doubt")
        assert summary.resolved_by_witness == {resolved: len(keys)}
        resent = _applied(emu, witness.product_id, before)
        assert resent == (Counter(dict.fromkeys(keys, 2)) if fate == "never_sent" else Counter())
        assert _applied(emu, witness.product_id) == (
            Counter() if fate == "witness_edited" else Counter(dict.fromkeys(keys, 2))
        )
        if state == "in_doubt":
            listed = paths.in_doubt.read_text().splitlines()[1:]
            assert sorted(int(row.split(",")[0]) for row in listed) == list(lines)
            assert summary.exit_code == 3


async def test_a_witness_that_cannot_be_read_stops_the_rerun_before_sending(
    tmp_path: Path,
) -> None:
    """Rows left on the wire, the witness read refused (503 to the last attempt): a
    ConfigurationError, nothing sent, the rows still ``sent`` for the next try."""
    async with Emulator(products=10, variants_per_product=1, seed=23) as emu:
        witness, keys = _setup(emu)
        source = tmp_path / "in.csv"
        source.write_text(f"product_id,variant_id,delta\n{keys[0][0]},{keys[0][1]},1\n")
        paths = BulkPaths.beside(source)
        journal = Journal(paths.journal, fingerprint=input_fingerprint(source))
        mark = WitnessMark(witness.product_id, witness.variant_ids[0], 1, 50_000, ())
        journal.record_sent(1, "increment", [2], witness=mark)
        journal.close()
        emu.set_faults(FaultPlan(endpoints={"getInventoryVariants": FaultRule(error_503=1.0)}))
        async with _client(emu) as client:
            with pytest.raises(ValueError, match="cannot read the witness"):
                await run_bulk_adjust(client, paths, witness=witness)
        assert emu.store.journal == [] and _states(paths.journal)[2] == ("sent", None)
