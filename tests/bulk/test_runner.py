"""The bulk runner against the emulator: every row applied at most once across reruns."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.bulk.runner import BulkPaths, run_bulk_adjust
from wixinv_async.catalog import CatalogVersion
from wixinv_async.client import InventoryClient
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule
from wixinv_async.errors import ConfigurationError, InvalidInputError
from wixinv_async.transport import RateLimit

Key = tuple[str, str]


def _tracked_keys(emu: Emulator) -> list[Key]:
    keys = []
    for item in emu.store.items():
        if item.track_quantity:
            for variant in item.variants:
                emu.store.set_quantity(item.product_id, variant.variant_id, 5_000)  # type: ignore[arg-type]
                keys.append((str(item.product_id), variant.variant_id))
    return keys


def _write_rows(path: Path, keys: list[Key], rows: int, seed: int) -> list[tuple[int, Key, int]]:
    rng = random.Random(seed)
    written = []
    lines = ["product_id,variant_id,delta,preorder"]
    for line in range(2, rows + 2):
        key = rng.choice(keys)
        delta = rng.choice([-3, -2, -1, 1, 2, 5])
        lines.append(f"{key[0]},{key[1]},{delta},")
        written.append((line, key, delta))
    path.write_text("\n".join(lines) + "\n")
    return written


def _quantities(emu: Emulator, keys: list[Key]) -> Counter[Key]:
    return Counter({key: emu.store.quantity(*key) or 0 for key in keys})


def _client(emu: Emulator) -> InventoryClient:
    return InventoryClient(
        ApiKeyAuth(emu.api_key, site_id=emu.site_id), base_url=emu.url, rate_limit=None
    )


async def test_bulk_run_applies_rows_and_a_rerun_sends_nothing(tmp_path: Path) -> None:
    """Good rows are applied exactly once; bad rows go to the rejects file; a rerun is a no-op."""
    async with Emulator(products=40, variants_per_product=2, seed=5) as emu:
        keys = _tracked_keys(emu)
        source = tmp_path / "deltas.csv"
        rows = _write_rows(source, keys, 1_500, seed=1)
        with source.open("a") as extra:
            extra.write("nope,not-a-guid,1,\n")  # invalid row
            extra.write(f"unknown-product,{keys[0][1]},1,\n")  # valid form, NOT_FOUND on the server
        before = _quantities(emu, keys)
        paths = BulkPaths.beside(source)
        async with _client(emu) as client:
            summary = await run_bulk_adjust(client, paths)
            journal_length = len(emu.store.journal)
            rerun = await run_bulk_adjust(client, paths)
        expected = before.copy()
        for _, key, delta in rows:
            expected[key] += delta
        assert _quantities(emu, keys) == expected
        assert (summary.committed, summary.rejected, summary.invalid) == (1_500, 1, 1)
        assert summary.exit_code == 1
        assert summary.requests < 60  # coalesced and batched, not one request per row
        rejects = paths.rejects.read_text()
        assert "\n1502,variant_id" in rejects
        assert "\n1503,NOT_FOUND" in rejects
        assert len(emu.store.journal) == journal_length  # the rerun sent nothing
        assert (rerun.submitted, rerun.done_before, rerun.invalid) == (0, 1_501, 1)


async def test_in_doubt_rows_are_listed_and_never_resent(tmp_path: Path) -> None:
    """Rows whose request was reset after applying are IN_DOUBT, listed, and held back on rerun."""
    faults = FaultPlan(
        endpoints={
            "decrementInventory": FaultRule(reset_after=0.4),
            "incrementInventory": FaultRule(reset_after=0.4),
        },
        seed=11,
    )
    async with Emulator(products=40, variants_per_product=2, seed=6, faults=faults) as emu:
        keys = _tracked_keys(emu)
        source = tmp_path / "deltas.csv"
        rows = _write_rows(source, keys, 3_000, seed=2)
        before = _quantities(emu, keys)
        paths = BulkPaths.beside(source)
        async with _client(emu) as client:
            summary = await run_bulk_adjust(client, paths, max_outstanding=40)
            assert summary.in_doubt > 0
            assert summary.exit_code == 3
            emu.set_faults(None)
            journal_length = len(emu.store.journal)
            rerun = await run_bulk_adjust(client, paths)
        assert len(emu.store.journal) == journal_length
        assert rerun.held_in_doubt == summary.in_doubt
        assert rerun.exit_code == 3
        listed = paths.in_doubt.read_text().splitlines()[1:]
        assert len(listed) == summary.in_doubt
        # A reset after applying means every in-doubt row was in fact applied, exactly once.
        expected = before.copy()
        for _, key, delta in rows:
            expected[key] += delta
        assert _quantities(emu, keys) == expected


async def _one_row_twice(tmp_path: Path, faults: FaultPlan, **rerun: Any) -> tuple[Any, ...]:
    """A file of one row (+4) run with ``faults`` on, then rerun with none: both summaries and
    the variant's final quantity (5,000 before)."""
    async with Emulator(products=10, variants_per_product=1, seed=7, faults=faults) as emu:
        keys = _tracked_keys(emu)
        source = tmp_path / "deltas.csv"
        source.write_text(f"product_id,variant_id,delta\n{keys[0][0]},{keys[0][1]},4\n")
        paths = BulkPaths.beside(source)
        async with _client(emu) as client:
            first = await run_bulk_adjust(client, paths)
            emu.set_faults(None)
            second = await run_bulk_adjust(client, paths, **rerun)
        return first, second, emu.store.quantity(*keys[0])


async def test_retry_in_doubt_resends_held_rows(tmp_path: Path) -> None:
    """--retry-in-doubt resends rows held in doubt (at-least-once, by the user's choice)."""
    faults = FaultPlan(endpoints={"incrementInventory": FaultRule(error_504=1.0)}, seed=3)
    first, second, quantity = await _one_row_twice(tmp_path, faults, retry_in_doubt=True)
    assert first.in_doubt == 1
    assert (second.committed, second.exit_code) == (1, 0)
    assert quantity == 5_008  # applied by both runs: what was asked for


async def test_rows_refused_for_the_whole_request_are_sent_again_on_rerun(tmp_path: Path) -> None:
    """Rows a request lost whole (429 until giving up) were never applied: a rerun sends them."""
    faults = FaultPlan(endpoints={"*": FaultRule(rate_limited=1.0)}, seed=3, retry_after=0)
    first, second, quantity = await _one_row_twice(tmp_path, faults)
    assert (first.rejected, first.exit_code) == (1, 1)
    assert (second.committed, second.done_before, second.exit_code) == (1, 0, 0)
    assert quantity == 5_004


async def test_wrong_credentials_stop_the_run_and_a_rerun_applies_every_row(
    tmp_path: Path,
) -> None:
    """A 401 is a configuration error: the run stops, and no row is journalled as rejected."""
    async with Emulator(products=10, variants_per_product=1, seed=7) as emu:
        keys = _tracked_keys(emu)
        source = tmp_path / "deltas.csv"
        rows = _write_rows(source, keys, 500, seed=4)
        before = _quantities(emu, keys)
        paths = BulkPaths.beside(source)
        wrong = InventoryClient(
            ApiKeyAuth("wrong-key", site_id=emu.site_id), base_url=emu.url, rate_limit=None
        )
        async with wrong:
            with pytest.raises(ConfigurationError, match="UNAUTHENTICATED"):
                await run_bulk_adjust(wrong, paths, adjuster_options={"linger": 0.001})
        async with _client(emu) as client:
            rerun = await run_bulk_adjust(client, paths)
        expected = before.copy()
        for _, key, delta in rows:
            expected[key] += delta
        assert _quantities(emu, keys) == expected
        assert (rerun.committed, rerun.exit_code) == (500, 0)


@pytest.mark.parametrize("bad_rows", [False, True])
async def test_a_run_resumed_after_the_disk_filled_up_applies_every_row_exactly_once(
    tmp_path: Path, bad_rows: bool
) -> None:
    """The journal hits a full disk mid-run (a size cap): the run stops with a configuration
    error, sending nothing it cannot journal, yet the outcomes of what it sent reach the journal
    (its reserve): the rerun holds nothing in doubt and sends the rest, each row applied once.
    With rows for a product that is gone, bisected parts that could not be journalled leave
    their rows not applied (sent again), not in doubt."""
    async with Emulator(products=40, variants_per_product=2, seed=5) as emu:
        keys = _tracked_keys(emu)
        source = tmp_path / "deltas.csv"
        rows = _write_rows(source, keys, 3_000, seed=8)
        if bad_rows:
            lines = source.read_text().splitlines()
            for line in range(50, len(lines), 97):
                lines[line] = f"gone,{keys[0][1]},1,"
            source.write_text("\n".join(lines) + "\n")
            rows = [row for row in rows if (row[0] - 1 - 50) % 97 != 0 or row[0] - 1 < 50]
        before = _quantities(emu, keys)
        paths = BulkPaths.beside(source)
        options = {"max_batch": 25, "linger": 0.001}
        async with _client(emu) as client:
            with pytest.raises(ConfigurationError, match="cannot write the journal"):
                await run_bulk_adjust(client, paths, adjuster_options=options, journal_max_pages=10)
            rerun = await run_bulk_adjust(client, paths, adjuster_options=options)
        assert rerun.committed > 0  # the first run stopped part-way
        assert rerun.held_in_doubt == 0  # every outcome the first run knew reached the journal
        expected = before.copy()
        for _, key, delta in rows:
            expected[key] += delta
        assert _quantities(emu, keys) == expected
        assert rerun.done_before + rerun.committed + rerun.rejected == 3_000


async def test_a_run_stopped_by_a_bad_header_lets_the_fixed_file_run(tmp_path: Path) -> None:
    """A bad header sends nothing; the journal it left follows the fixed file, which applies."""
    async with Emulator(products=10, variants_per_product=1, seed=7) as emu:
        (product, variant), *_ = _tracked_keys(emu)
        source = tmp_path / "deltas.csv"
        source.write_text(f"product,variant_id,delta\n{product},{variant},4\n")
        paths = BulkPaths.beside(source)
        async with _client(emu) as client:
            with pytest.raises(InvalidInputError, match="missing column"):
                await run_bulk_adjust(client, paths)
            source.write_text(f"product_id,variant_id,delta\n{product},{variant},4\n")
            summary = await run_bulk_adjust(client, paths)
        assert (summary.committed, summary.exit_code) == (1, 0)
        assert emu.store.quantity(product, variant) == 5_004


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
async def test_a_file_saved_with_a_byte_order_mark_reads_whole(tmp_path: Path, suffix: str) -> None:
    """Excel's UTF-8 BOM and Windows line endings: the header and the first row still parse."""
    async with Emulator(products=10, variants_per_product=1, seed=7) as emu:
        (product, variant), *_ = _tracked_keys(emu)
        source = tmp_path / f"deltas{suffix}"
        if suffix == ".csv":
            text = f"product_id,variant_id,delta\r\n{product},{variant},4\r\n"
        else:
            text = f'{{"product_id":"{product}","variant_id":"{variant}","delta":4}}\r\n'
        source.write_bytes(b"\xef\xbb\xbf" + text.encode())
        async with _client(emu) as client:
            summary = await run_bulk_adjust(client, BulkPaths.beside(source))
        assert (summary.committed, summary.invalid, summary.exit_code) == (1, 0, 0)
        assert emu.store.quantity(product, variant) == 5_004


class _StuckIncrements:
    """A writer whose increments answer only once released; decrements commit at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def increment_inventory(self, entries: object) -> None:
        await self.release.wait()

    async def decrement_inventory(self, entries: object) -> None:
        return None


async def test_rows_netted_to_zero_are_journalled_together_or_not_at_all(tmp_path: Path) -> None:
    """+2 and -2 netted to nothing: a crash must never leave one committed and the other unsent
    (the rerun would apply the -2 alone)."""
    v = "00000000-0000-0000-0000-000000000000"
    source = tmp_path / "deltas.csv"
    source.write_text(
        "product_id,variant_id,delta\n"
        f"p1,{v},2\n"  # line 2
        f"p2,{v},1\n"  # line 3: its request never answers
        f"p1,{v},-2\n"  # line 4: nets line 2 to zero
        + "".join(f"p3,{v},-1\n" for _ in range(6))  # lines 5..10: decrements that commit
    )
    paths = BulkPaths.beside(source)
    writer = _StuckIncrements()
    run = asyncio.create_task(
        run_bulk_adjust(writer, paths, max_outstanding=4, adjuster_options={"linger": 0.001})
    )
    try:
        states: dict[int, str] = {}
        for _ in range(200):  # what a kill -9 would leave: the journal's durable state
            await asyncio.sleep(0.01)
            if paths.journal.exists():
                with contextlib.closing(sqlite3.connect(paths.journal)) as db:
                    states = dict(db.execute("SELECT line, state FROM lines").fetchall())
            if states.get(6) == "committed":
                break
        assert states.get(6) == "committed"
        assert states.get(2) == states.get(4)
    finally:
        writer.release.set()
        summary = await run
    with contextlib.closing(sqlite3.connect(paths.journal)) as db:
        lines = db.execute("SELECT line FROM lines WHERE state='committed'").fetchall()
    assert sorted(line for (line,) in lines) == list(range(2, 11))  # once all settled: both
    assert summary.exit_code == 0


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
async def test_a_row_that_is_not_utf8_is_rejected_and_the_rest_applied(
    tmp_path: Path, suffix: str
) -> None:
    """A Latin-1 byte deep in the file: that row goes to the rejects file, no crash, rest sent."""
    async with Emulator(products=10, variants_per_product=1, seed=7) as emu:
        (product, variant), *_ = _tracked_keys(emu)
        source = tmp_path / f"deltas{suffix}"
        if suffix == ".csv":
            head, row, bad = "product_id,variant_id,delta\n", f"{product},{variant},1\n", "caf\xe9"
            body = head + row * 500 + f"{bad},{variant},1\n" + row * 10
        else:
            row = f'{{"product_id":"{product}","variant_id":"{variant}","delta":1}}\n'
            body = row * 500 + f'{{"product_id":"caf\xe9","variant_id":"{variant}","delta":1}}\n'
            body += row * 10
        source.write_bytes(body.encode("latin-1"))
        paths = BulkPaths.beside(source)
        async with _client(emu) as client:
            summary = await run_bulk_adjust(client, paths)
        assert (summary.committed, summary.invalid, summary.exit_code) == (510, 1, 1)
        assert emu.store.quantity(product, variant) == 5_510
        line, column = (502, 4) if suffix == ".csv" else (501, 19)
        rejects = paths.rejects.read_text(encoding="utf-8")
        assert f"\n{line},not UTF-8 text: byte 0xE9 at column {column};" in rejects
        assert "caf\\xe9" in rejects


async def test_a_json_row_escaping_a_lone_surrogate_is_rejected(tmp_path: Path) -> None:
    """ "\\ud800" is valid JSON but no text: that row is rejected, its batch-mates still applied."""
    async with Emulator(products=10, variants_per_product=1, seed=7) as emu:
        (product, variant), *_ = _tracked_keys(emu)
        source = tmp_path / "deltas.jsonl"
        row = f'{{"product_id":"{product}","variant_id":"{variant}","delta":1}}\n'
        bad = f'{{"product_id":"p\\ud800","variant_id":"{variant}","delta":1}}\n'
        source.write_text(row + bad + row)
        paths = BulkPaths.beside(source)
        async with _client(emu) as client:
            summary = await run_bulk_adjust(client, paths)
        assert (summary.committed, summary.invalid, summary.exit_code) == (2, 1, 1)
        assert emu.store.quantity(product, variant) == 5_002
        assert "\n2,product_id" in paths.rejects.read_text(encoding="utf-8")


def _journalled(journal: Path) -> Counter[str]:
    """Line states in the journal file, read through a connection of our own (as a rerun
    after kill -9 would see them)."""
    with contextlib.closing(sqlite3.connect(journal)) as db:
        rows = db.execute("SELECT state, COUNT(*) FROM lines GROUP BY state").fetchall()
    return Counter({str(state): int(count) for state, count in rows})


async def test_rows_are_journalled_sent_only_once_their_request_is_on_the_wire(
    tmp_path: Path,
) -> None:
    """A paced client with four batches planned: one goes out, three wait for pacing slots.
    The journal says "sent" for the rows of the request the emulator received, not for the
    rows still waiting (a kill -9 now would hold back only those really sent)."""
    async with Emulator(products=40, variants_per_product=1, seed=5) as emu:
        keys = _tracked_keys(emu)[:40]
        source = tmp_path / "deltas.csv"
        lines = ["product_id,variant_id,delta"] + [f"{p},{v},-1" for p, v in keys]
        source.write_text("\n".join(lines) + "\n")
        paths = BulkPaths.beside(source)
        client = InventoryClient(
            ApiKeyAuth(emu.api_key, site_id=emu.site_id),
            base_url=emu.url,
            rate_limit=RateLimit(1, 3600.0),  # one slot now, the next in an hour
        )
        async with client:
            # The site's catalog is given: detecting it would take the one pacing slot.
            options = {"max_batch": 10, "linger": 0, "catalog": CatalogVersion.V1_CATALOG}
            run = asyncio.create_task(run_bulk_adjust(client, paths, adjuster_options=options))
            for _ in range(1000):  # until the first request has been applied
                if emu.store.journal:
                    break
                await asyncio.sleep(0.005)
            for _ in range(50):  # let the other three batches reach their pacing wait
                await asyncio.sleep(0)
            states = _journalled(paths.journal)
            applied = sum(len(entry.entries) for entry in emu.store.journal)
            assert len(emu.store.journal) == 1 and applied == 10
            assert states["sent"] + states["committed"] == 10, states
            run.cancel()  # Ctrl-C: the batches waiting for a slot were never sent
            with contextlib.suppress(asyncio.CancelledError):
                await run
    assert _journalled(paths.journal)["committed"] == 10


async def test_a_row_the_adjuster_refuses_at_submit_is_rejected_for_good(tmp_path: Path) -> None:
    """A row naming a location on a V1 site is rejected, journalled, applied nowhere and not
    resent."""
    async with Emulator(products=10, variants_per_product=1, seed=3) as emu:
        keys = _tracked_keys(emu)
        source = tmp_path / "deltas.csv"
        location = "0f0f0f0f-1111-2222-3333-444444444444"
        source.write_text(
            "product_id,variant_id,delta,location_id\n"
            f"{keys[0][0]},{keys[0][1]},-2,\n"
            f"{keys[1][0]},{keys[1][1]},-2,{location}\n"
        )
        before = _quantities(emu, keys)
        paths = BulkPaths.beside(source)
        async with _client(emu) as client:
            summary = await run_bulk_adjust(client, paths)
            rerun = await run_bulk_adjust(client, paths)
        after = _quantities(emu, keys)
        assert (after[keys[0]], after[keys[1]]) == (before[keys[0]] - 2, before[keys[1]])
        assert (summary.committed, summary.rejected, summary.exit_code) == (1, 1, 1)
        assert summary.journal_counts == {"committed": 1, "rejected": 1}
        # Refused at submit once the site is known to run V1, else by the router at send.
        [refused] = [r for r in paths.rejects.read_text().splitlines() if r.startswith("3,")]
        assert "location_id=" in refused or "LOCATION_NEEDS_V3" in refused
        assert (rerun.submitted, rerun.done_before, rerun.exit_code) == (0, 2, 1)
