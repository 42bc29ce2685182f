"""The bulk runner on Catalog V3 sites, and on a site that migrates from V1 to V3 mid-run."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.bulk.journal import Journal, input_fingerprint
from wixinv_async.bulk.runner import BulkPaths, BulkProgress, run_bulk_adjust
from wixinv_async.client import InventoryClient
from wixinv_async.emulator import Emulator
from wixinv_async.emulator.v3_items import V3Item


def _client(emu: Emulator) -> InventoryClient:
    return InventoryClient(
        ApiKeyAuth(emu.api_key, site_id=emu.site_id), base_url=emu.url, rate_limit=None
    )


def _stocked_v3(emu: Emulator) -> list[V3Item]:
    """The V3 site's tracked items, each set to 5,000 (so decrements never reach zero)."""
    store = emu.v3_store()
    items = [item for item in store.records() if item.track]
    for item in items:
        store.edit_quantity(item.id, quantity=5_000)
    return items


def _row(item: V3Item, default_location: str, kind: str, delta: int) -> str:
    """A CSV row naming ``item`` one of the ways a V3 row can."""
    location = "" if item.location_id == default_location else item.location_id
    if kind == "variant":
        return f"{item.product_id},,,{item.variant_id},{location},{delta}"
    if kind == "inventory_id":
        return f",{item.id},,{item.variant_id},,{delta}"
    return f",,{item.variant_sku},,{location},{delta}"


def _nonzero(counts: Counter[str]) -> dict[str, int]:
    return {key: count for key, count in counts.items() if count}


HEADER = "product_id,inventory_id,sku,variant_id,location_id,delta"


async def test_a_v3_file_applies_each_row_once_with_per_row_outcomes(tmp_path: Path) -> None:
    """Rows by variant (at either location), by item id and by SKU are applied once each; bad
    rows are rejected from V3's per-item results alone; a rerun sends nothing."""
    async with Emulator(
        products=30, variants_per_product=2, seed=4, catalog="v3", locations=2
    ) as emu:
        items = _stocked_v3(emu)
        default = emu.v3_store().default_location
        rng = random.Random(3)
        lines, targets = [HEADER], {}
        for line in range(2, 1_202):
            item = rng.choice(items)
            delta = rng.choice([-3, -2, -1, 1, 4])
            lines.append(_row(item, default, rng.choice(["variant", "inventory_id", "sku"]), delta))
            targets[line] = (item.id, delta)
        unknown = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        lines.append(f"{items[0].product_id},,,{unknown},,-1")  # line 1202: no such variant
        lines.append(f",,{items[1].variant_sku},,,-6000")  # line 1203: past zero
        source = tmp_path / "v3.csv"
        source.write_text("\n".join(lines) + "\n")
        store = emu.v3_store()
        before = {item.id: item.quantity for item in items}
        paths = BulkPaths.beside(source)
        async with _client(emu) as client:
            summary = await run_bulk_adjust(client, paths)
            writes = len(store.journal)
            rerun = await run_bulk_adjust(client, paths)
        with closing(Journal(paths.journal, fingerprint=input_fingerprint(source))) as journal:
            states = {state.line: state for state in journal.states()}
        assert (states[1202].state, states[1202].code) == ("rejected", "NOT_FOUND")
        assert (states[1203].state, states[1203].code) == ("rejected", "INSUFFICIENT_INVENTORY")
        # Rows of one SKU wait together as one entry (+1 and -6000 are one -5999): the entry
        # is refused, and so are its rows; every other row commits.
        expected: Counter[str] = Counter()
        for line, (item_id, delta) in targets.items():
            if states[line].state == "committed":
                expected[item_id] += delta
            else:
                assert (states[line].state, states[line].code) == states[1203][1:3]
        after = {item.id: store.find(item.id).quantity for item in items}  # type: ignore[union-attr]
        assert {i: after[i] - before[i] for i in after if after[i] != before[i]} == _nonzero(
            expected
        )
        assert summary.committed + summary.rejected == 1_202
        assert summary.rejected == len(states) - summary.journal_counts["committed"]
        assert summary.in_doubt == 0
        assert summary.batches_by_catalog.keys() == {"V3_CATALOG"}
        assert len(store.journal) == writes  # the rerun sent nothing
        assert (rerun.submitted, rerun.done_before) == (0, 1_202)


def _v3_item_of(emu: Emulator, product_id: str, variant_id: str) -> V3Item:
    """The migrated item of a V1 variant at the default location."""
    store = emu.v3_store()
    for item in store.records():
        same = variant_id in (item.variant_id, item.v1_variant_id)
        if item.product_id == product_id and same and item.location_id == store.default_location:
            return item
    raise AssertionError(f"no V3 item for {product_id}/{variant_id}")


async def test_a_site_migrating_mid_run_applies_every_row_once(tmp_path: Path) -> None:
    """The site moves to V3 (the emulator's admin call) while rows are in flight: rows sent
    before go to V1, rows after to V3, those refused by V1's 428 are re-sent once to V3, and
    every quantity ends at its start plus exactly the rows committed."""
    async with Emulator(products=40, variants_per_product=2, seed=6, latency_ms=5) as emu:
        keys = []
        for record in emu.store.items():
            if record.track_quantity:
                for variant in record.variants:
                    emu.store.set_quantity(record.product_id, variant.variant_id, 5_000)  # type: ignore[arg-type]
                    keys.append((str(record.product_id), variant.variant_id))
        rng = random.Random(8)
        rows = [(rng.choice(keys), rng.choice([-2, -1, 1, 3])) for _ in range(3_000)]
        source = tmp_path / "migrating.csv"
        text = "\n".join(f"{p},{v},{d}" for (p, v), d in rows)
        source.write_text("product_id,variant_id,delta\n" + text + "\n")
        migration: list[asyncio.Task[Any]] = []

        async def migrate() -> Any:
            url = f"{emu.url}/_emulator/migrate"
            async with aiohttp.ClientSession() as http, http.post(url) as answer:
                assert answer.status == 200
                return await answer.json()

        def halfway(progress: BulkProgress, _: object) -> None:
            if progress.rows >= 1_500 and not migration:
                migration.append(asyncio.get_running_loop().create_task(migrate()))

        paths = BulkPaths.beside(source)
        async with _client(emu) as client:
            summary = await run_bulk_adjust(
                client,
                paths,
                max_outstanding=200,  # reading waits for outcomes: half the rows settle on V1
                adjuster_options={"max_in_flight": 2},
                on_progress=halfway,
                progress_every=100,
            )
        assert (await migration[0])["catalogVersion"] == "V3_CATALOG"
        assert (summary.committed, summary.rejected, summary.in_doubt) == (3_000, 0, 0)
        assert summary.batches_by_catalog.keys() == {"V1_CATALOG", "V3_CATALOG"}
        v1_writes = [e for e in emu.site(emu.site_id).journal if e.entries]
        assert v1_writes  # some rows did reach V1 before the move
        expected = Counter(dict.fromkeys(keys, 5_000))
        for key, delta in rows:
            expected[key] += delta
        final = {key: _v3_item_of(emu, *key).quantity for key in keys}
        assert final == dict(expected)
