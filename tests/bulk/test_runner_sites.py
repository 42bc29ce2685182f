"""The bulk runner over many sites through an InventoryHub: V1 and V3 sites in one file, one
journal, each site's refusal its own."""

from __future__ import annotations

import csv
import random
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from wixinv_async import ApiKeyAuth, AppCredentials, InventoryHub
from wixinv_async.bulk.runner import BulkPaths, run_bulk_adjust
from wixinv_async.emulator import Emulator, SiteSpec
from wixinv_async.errors import ConfigurationError

Target = tuple[str, str, str, str | None]
"""(site, product id, variant id, location id or None): one row's item."""

UNKNOWN = "00000000-0000-4000-8000-00000000dead"
V = "00000000-0000-0000-0000-000000000000"


def stocked(emu: Emulator, site: str, at: int = 5_000) -> list[Target]:
    """Every tracked item of ``site`` set to ``at``, as row targets (V1: per variant; V3: per
    variant and location)."""
    targets: list[Target] = []
    if emu.catalog_version(site) == "V3_CATALOG":
        for item in emu.v3_store(site).records():
            if item.track:
                emu.v3_store(site).edit_quantity(item.id, quantity=at)
                targets.append((site, item.product_id, item.variant_id, item.location_id))
        return targets
    for record in emu.site(site).items():
        if record.track_quantity:
            for variant in record.variants:
                emu.site(site).set_quantity(str(record.product_id), variant.variant_id, at)
                targets.append((site, str(record.product_id), variant.variant_id, None))
    return targets


def quantity(emu: Emulator, target: Target) -> int | None:
    site, product, variant, location = target
    if location is not None:
        item = emu.v3_store(site).at(variant, location)
        return None if item is None else item.quantity
    return emu.site(site).quantity(product, variant)


def write(path: Path, rows: list[tuple[str, Target, int]]) -> None:
    """CSV rows naming each row's site by ``name`` (an instance or site id)."""
    lines = ["site,product_id,variant_id,location_id,delta"]
    lines += [f"{name},{p},{v},{loc or ''},{d}" for name, (_, p, v, loc), d in rows]
    path.write_text("\n".join(lines) + "\n")


def journal_sites(path: Path) -> dict[int, tuple[str, str | None]]:
    """Each line's state and the site its request went to (netted rows went nowhere)."""
    with closing(sqlite3.connect(path)) as db:
        return {line: (state, site) for line, state, site, code in db.execute(
            "SELECT line, state, site, code FROM lines"
        ) if code != "NETTED_TO_ZERO"}  # fmt: skip


async def test_a_file_over_v1_and_v3_sites_applies_each_row_once_and_a_revoked_site_waits(
    tmp_path: Path,
) -> None:
    """Four sites (V1, V3, V1, V3), one revoked and one unknown instance in the file: every row of
    the good sites applied once, the revoked and unknown sites' rows rejected as not applied
    (reason given, other sites unhurt); after reinstating, a rerun applies exactly those."""
    specs = [SiteSpec(catalog=c) for c in ("v1", "v3", "v1", "v3")]
    async with Emulator(
        sites=specs, products=12, variants_per_product=2, locations=2, seed=3
    ) as emu:
        instance = dict(zip(emu.sites, emu.instances, strict=True))
        targets = {site: stocked(emu, site) for site in emu.sites}
        rng = random.Random(4)
        rows = [
            (instance[site], rng.choice(targets[site]), rng.choice([-2, -1, 1, 4]))
            for _ in range(600)
            for site in [rng.choice(emu.sites)]
        ]
        rows.append((UNKNOWN, (UNKNOWN, "p", V, None), 1))
        source = tmp_path / "sites.csv"
        write(source, rows)
        revoked = emu.sites[2]
        emu.revoke(instance[revoked])
        paths = BulkPaths.beside(source)
        credentials = AppCredentials(emu.app_id, emu.app_secret)
        async with InventoryHub(credentials, base_url=emu.url) as hub:
            first = await run_bulk_adjust(None, paths, sites=lambda s: hub.site(s).client)
        emu.reinstate(instance[revoked])
        writes = {site: len(emu.journal(site)) for site in emu.sites}
        async with InventoryHub(credentials, base_url=emu.url) as hub:  # a rerun: a new process
            rerun = await run_bulk_adjust(None, paths, sites=lambda s: hub.site(s).client)

        expected: Counter[Target] = Counter({t: 5_000 for ts in targets.values() for t in ts})
        for _, target, delta in rows[:-1]:
            expected[target] += delta
        assert {t: quantity(emu, t) for t in expected} == dict(expected)
        revoked_rows = sum(1 for name, *_ in rows if name == instance[revoked])
        assert first.sites[instance[revoked]]["refused"].startswith("HTTP 401 UNAUTHENTICATED")
        refused = first.sites[instance[revoked]]["rejected"]
        assert refused and refused + first.sites[instance[revoked]]["committed"] == revoked_rows
        assert first.sites[UNKNOWN]["rejected"] == 1
        assert first.rejected == refused + 1 and first.in_doubt == 0
        good = [instance[s] for s in emu.sites if s != revoked]
        assert all(first.sites[name]["rejected"] == 0 for name in good)
        assert {first.sites[instance[s]]["catalog"] for s in emu.sites if s != revoked} == {
            "V1_CATALOG",
            "V3_CATALOG",
        }
        # The rerun sent the revoked site's rows only: the others' journals did not grow.
        assert {s: len(emu.journal(s)) for s in emu.sites if s != revoked} == {
            s: n for s, n in writes.items() if s != revoked
        }
        assert rerun.committed == refused and rerun.rejected == 1
        parts = ("committed", "rejected", "in_doubt", "done_in_earlier_runs", "in_doubt_held_back")
        for summary in (first, rerun):  # every row of a site is counted once in its line
            assert all(sum(c[p] for p in parts) == c["rows"] for c in summary.sites.values())
        assert sum(c["rows"] for c in first.sites.values()) == len(rows)
        assert rerun.done_before == len(rows) - refused - 1
        states = journal_sites(paths.journal)
        for line, (name, *_) in enumerate(rows, start=2):
            assert line not in states or states[line] == (
                ("not_applied", None) if name == UNKNOWN else ("committed", name)
            ), line


async def test_rows_naming_no_site_go_to_the_default_site_and_with_none_are_rejected(
    tmp_path: Path,
) -> None:
    """With an API key, an empty site cell means default_site; with no default such a row is
    rejected naming the field, and a site the key cannot reach is refused (403) alone."""
    async with Emulator(sites=2, catalog=["v1", "v3"], products=6, locations=1, seed=5) as emu:
        first, second = emu.sites
        one, two = stocked(emu, first)[0], stocked(emu, second)[0]
        source = tmp_path / "default.csv"
        write(source, [("", one, 3), (second, two, 2), (UNKNOWN, one, 1)])
        paths = BulkPaths.beside(source)
        async with InventoryHub(ApiKeyAuth(emu.api_key), base_url=emu.url) as hub:
            summary = await run_bulk_adjust(
                None, paths, sites=lambda s: hub.site(s).client, default_site=first
            )
            assert (quantity(emu, one), quantity(emu, two)) == (5_003, 5_002)
            assert summary.sites[UNKNOWN]["refused"].startswith("HTTP 403 FORBIDDEN")
            assert list(summary.sites) == [first, second, UNKNOWN]
            again = tmp_path / "nodefault.csv"
            write(again, [("", one, 3), (second, two, 2)])
            other = await run_bulk_adjust(
                None, BulkPaths.beside(again), sites=lambda s: hub.site(s).client
            )
        assert (other.invalid, other.rejected, other.committed) == (0, 1, 1)
        with (tmp_path / "nodefault.csv.rejects.csv").open(newline="") as handle:
            [_, (line, reason, _)] = list(csv.reader(handle))
        assert line == "2" and reason.startswith("NO_SITE: site='': empty, and the run has no")
        assert journal_sites(tmp_path / "nodefault.csv.journal")[2] == ("not_applied", None)


async def test_a_rerun_whose_default_site_changed_is_refused_before_sending_there(
    tmp_path: Path,
) -> None:
    """A one-site file run for site A, then rerun with site B as the default: the journal knows
    its rows went to A, so the run stops naming both sites and sends B nothing."""
    async with Emulator(sites=2, products=6, seed=7) as emu:
        first, second = emu.sites
        target = stocked(emu, first)[0]
        stocked(emu, second)
        source = tmp_path / "one.csv"
        source.write_text(f"product_id,variant_id,delta\n{target[1]},{target[2]},2\n")
        paths = BulkPaths.beside(source)
        async with InventoryHub(ApiKeyAuth(emu.api_key), base_url=emu.url) as hub:
            done = await run_bulk_adjust(hub.site(first).client, paths, default_site=first)
            assert done.committed == 1
            with pytest.raises(ConfigurationError, match=f"line 2 as committed on site {first}"):
                await run_bulk_adjust(hub.site(second).client, paths, default_site=second)
        assert emu.journal(second) == [] and quantity(emu, target) == 5_002


async def test_wrong_app_credentials_stop_a_run_over_many_sites_with_nothing_applied(
    tmp_path: Path,
) -> None:
    """A wrong app secret refuses the app on every site: a run over many sites stops at once
    (no token request per site), applies nothing, and a rerun with the right secret applies
    every row once."""
    async with Emulator(sites=[SiteSpec(catalog=c) for c in ("v1", "v3") * 4], seed=8) as emu:
        instance = dict(zip(emu.sites, emu.instances, strict=True))
        targets = {site: stocked(emu, site) for site in emu.sites}
        rows = [(instance[s], targets[s][n % 3], -1) for n in range(40) for s in emu.sites]
        source = tmp_path / "sites.csv"
        write(source, rows)
        paths = BulkPaths.beside(source)
        writes = {site: len(emu.journal(site)) for site in emu.sites}
        wrong = AppCredentials(emu.app_id, "not-the-secret")
        async with InventoryHub(wrong, base_url=emu.url) as hub:
            with pytest.raises(ConfigurationError, match="the app refused the credentials"):
                await run_bulk_adjust(None, paths, sites=lambda s: hub.site(s).client)
        assert emu.stats()["requests"]["oauthToken"] == {"401": 1}
        assert {site: len(emu.journal(site)) for site in emu.sites} == writes
        right = AppCredentials(emu.app_id, emu.app_secret)
        async with InventoryHub(right, base_url=emu.url) as hub:
            rerun = await run_bulk_adjust(None, paths, sites=lambda s: hub.site(s).client)
        assert rerun.committed == len(rows) and rerun.in_doubt == 0
        expected: Counter[Target] = Counter({t: 5_000 for ts in targets.values() for t in ts})
        for _, target, delta in rows:
            expected[target] += delta
        assert {t: quantity(emu, t) for t in expected} == dict(expected)
