"""``wixinv-async demo --sites N``: the main job over many V1 and V3 sites through one hub."""

from __future__ import annotations

import argparse
import json
import re

from wixinv_async import AppCredentials, InventoryHub
from wixinv_async.cli._demo_sites import main_job
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule, SiteSpec

from .conftest import run_cli


def test_demo_over_many_sites_verifies_every_one() -> None:
    """--sites 12: six V1 and six V3 sites, each verified item by item, one token request per
    installation, the totals the sum of the sites."""
    result = run_cli(
        "demo", "--sites", "12", "--products", "10", "--deltas", "400", "--producers", "8", "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verification"] == "PASS"
    assert report["catalogs"] == ["V1_CATALOG", "V3_CATALOG"] * 6
    assert report["token_requests"] == 12
    sites = report["sites"]
    assert len({site["site"] for site in sites}) == 12
    assert all(site["verification"] == "PASS" and site["deltas"] == 400 for site in sites)
    assert all(site["verified"] > 0 and site["requests"] > 0 for site in sites)
    for name in ("deltas", "committed", "rejected", "in_doubt", "requests", "mismatches"):
        assert report[name] == sum(site[name] for site in sites), name
    assert report["verified_variants"] == sum(site["verified"] for site in sites)


def test_demo_over_many_sites_prints_a_line_per_site_and_the_total() -> None:
    """The text report: a header, one line per site, a total line, the overall verdict."""
    result = run_cli("demo", "--sites", "3", "--catalog", "v3", "--products", "5", "--deltas", "50")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["site", "catalog", "deltas"]
    assert [line.split()[1] for line in lines[1:4]] == ["V3"] * 3
    assert re.match(r"total +3 +150 ", lines[4])
    assert "overall verification: PASS (3 sites: 3 V3_CATALOG)" in result.stdout


def test_demo_sites_refuses_what_it_cannot_do() -> None:
    """--sites 0 and --sites with --real-site are usage errors (exit 2) naming the flag."""
    zero = run_cli("demo", "--sites", "0")
    assert zero.returncode == 2 and "--sites must be at least 1" in zero.stderr
    real = run_cli("demo", "--sites", "2", "--real-site", "--i-understand-this-changes-stock")
    assert real.returncode == 2 and "drop --real-site" in real.stderr


async def test_a_site_whose_writes_are_lost_fails_its_own_check_only() -> None:
    """One of four sites answers every write with a reset after applying it: its deltas are
    in doubt and its check fails, the other sites (V1 and V3) still verify."""
    lost = FaultRule(reset_after=1.0)
    lossy = FaultPlan({"incrementInventory": lost, "decrementInventory": lost}, seed=1)
    specs = [SiteSpec(faults=lossy if i == 2 else None) for i in range(4)]
    async with (
        Emulator(sites=specs, catalog="mixed", locations=2, products=6, seed=2) as emu,
        InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url, timeout=5.0
        ) as hub,
    ):
        args = argparse.Namespace(segments=2, producers=4, seed=3, deltas=120, hot_skus=1.1)
        report = await main_job(hub, emu.instances, args)
    verdicts = [(site.catalog, site.in_doubt > 0, site.mismatches > 0) for site in report.sites]
    assert verdicts[2] == ("V1_CATALOG", True, True)  # applied, yet not counted as committed
    assert [v for i, v in enumerate(verdicts) if i != 2] == [
        ("V1_CATALOG", False, False),
        ("V3_CATALOG", False, False),
        ("V3_CATALOG", False, False),
    ]
    assert report.verdict == "FAIL"
