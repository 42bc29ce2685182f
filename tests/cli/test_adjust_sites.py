"""``wixinv-async adjust`` on a file naming many sites (V1 and V3), run through the hub against
a many-site emulator process, as a user runs it."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import CLI, run_cli

Key = tuple[str, ...]
"""A row's item as the emulator's journal names it: (product id, variant id) on V1, (item id,)
on V3."""


@dataclass
class Sites:
    """An emulator process serving many sites, with its OAuth app's credentials."""

    url: str
    api_key: str
    app: dict[str, str]
    """WIX_APP_ID and WIX_APP_SECRET."""
    pairs: list[dict[str, str]]  # {"siteId", "instanceId"}

    def admin(self, path: str, method: str = "GET") -> Any:
        data = b"" if method == "POST" else None
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return json.loads(response.read() or b"null")

    def state(self, site: str) -> dict[str, Any]:
        return dict(self.admin(f"state?site={site}"))

    def quantities(self, site: str) -> dict[Key, int]:
        state = self.state(site)
        if state["catalogVersion"] == "V3_CATALOG":
            return {
                (i["id"],): i["quantity"] for i in state["inventoryItems"] if i["trackQuantity"]
            }
        return {
            (item["productId"], v["variantId"]): v["quantity"]
            for item in state["inventoryItems"]
            if item["trackQuantity"]
            for v in item["variants"]
        }

    def journal(self, site: str) -> list[Counter[Key]]:
        """What each write the site applied asked for, by item."""
        return [_asked(e) for e in self.admin(f"journal?site={site}")["journal"] if e["entries"]]


def _asked(entry: dict[str, Any]) -> Counter[Key]:
    sign = -1 if "decrement" in entry["endpoint"].lower() else 1
    asked: Counter[Key] = Counter()
    for item in entry["entries"]:
        amount = item.get("incrementBy") or item.get("decrementBy")
        key = (item["inventoryItemId"],) if "inventoryItemId" in item else (
            item["productId"], item["variantId"]
        )  # fmt: skip
        asked[key] += sign * amount
    return asked


def start_sites(*args: str) -> tuple[subprocess.Popen[str], Sites]:
    """``wixinv-async emulator --sites ...`` in a child process, its banner read for the URL,
    the API key and the OAuth app's id and secret."""
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "wixinv_async", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    env: dict[str, str] = {}
    app: dict[str, str] = {}
    for line in process.stdout:
        if found := re.search(r"app id (\S+), app secret (\S+),", line):
            app = {"WIX_APP_ID": found[1], "WIX_APP_SECRET": found[2]}
        if line.startswith("export WIX_"):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            env[name] = value
            if name == "WIX_SITE_ID":
                sites = Sites(env["WIX_BASE_URL"], env["WIX_API_KEY"], app, [])
                sites.pairs = sites.admin("sites")["sites"]
                return process, sites
    process.kill()
    raise RuntimeError("the emulator did not start")


@pytest.fixture
def many_sites() -> Any:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Sites:
        process, sites = start_sites(*args)
        started.append(process)
        return sites

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


HEADER = "site,product_id,variant_id,location_id,delta"


def targets(sites: Sites, site: str) -> list[tuple[str, Key]]:
    """(the CSV columns after the site, the item's key) for each tracked item of ``site``."""
    state = sites.state(site)
    if state["catalogVersion"] == "V3_CATALOG":
        return [
            (f"{i['productId']},{i['variantId']},{i['locationId']}", (i["id"],))
            for i in state["inventoryItems"]
            if i["trackQuantity"]
        ]
    return [
        (f"{item['productId']},{v['variantId']},", (item["productId"], v["variantId"]))
        for item in state["inventoryItems"]
        if item["trackQuantity"]
        for v in item["variants"]
    ]


UNKNOWN = "00000000-0000-4000-8000-00000000dead"


def test_a_many_site_file_with_app_credentials_applies_each_site_and_isolates_a_revoked_one(
    many_sites: Any, tmp_path: Path
) -> None:
    """Six sites (V1 and V3 in turn) named by instance id, one installation revoked, one unknown
    instance: every other site moves by exactly its rows, the revoked and unknown sites' rows
    are rejected as not applied with the reason, one summary line per site; exit 1."""
    sites = many_sites("--sites", "6", "--catalog", "mixed", "--products", "30", "--locations", "2")
    by_site = {p["siteId"]: targets(sites, p["siteId"]) for p in sites.pairs}
    revoked = sites.pairs[3]
    sites.admin(f"revoke?instance={revoked['instanceId']}", "POST")
    before = {site: sites.quantities(site) for site in by_site}
    rng = random.Random(3)
    lines, moved = [HEADER], defaultdict(Counter)
    for _ in range(1_200):
        pair = rng.choice(sites.pairs)
        columns, key = rng.choice(by_site[pair["siteId"]])
        delta = rng.randint(1, 5)
        lines.append(f"{pair['instanceId']},{columns},{delta}")
        moved[pair["siteId"]][key] += delta
    lines.append(f"{UNKNOWN},{by_site[sites.pairs[0]['siteId']][0][0]},1")
    source = tmp_path / "sites.csv"
    source.write_text("\n".join(lines) + "\n")
    env = {"WIX_BASE_URL": sites.url, **sites.app}

    result = run_cli("adjust", str(source), "--json", env=env)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    for pair in sites.pairs:
        site, counts = pair["siteId"], summary["sites"][pair["instanceId"]]
        after = sites.quantities(site)
        if pair is revoked:
            assert after == before[site]
            assert counts["refused"].startswith("HTTP 401 UNAUTHENTICATED: the app instance")
            assert counts["rejected"] == counts["rows"] and counts["committed"] == 0
        else:
            assert Counter(after) - Counter(before[site]) == +moved[site]
            assert counts["committed"] == counts["rows"] and counts["refused"] is None
    assert {
        summary["sites"][p["instanceId"]]["catalog"] for p in sites.pairs if p is not revoked
    } == {
        "V1_CATALOG",
        "V3_CATALOG",
    }
    assert summary["sites"][UNKNOWN]["rejected"] == 1
    rejects = (tmp_path / "sites.csv.rejects.csv").read_text()
    assert f"unknown instance '{UNKNOWN}'" in rejects
    assert "was revoked" in rejects and "a rerun sends it again" in rejects

    sites.admin(f"reinstate?instance={revoked['instanceId']}", "POST")
    rerun = run_cli("adjust", str(source), env=env)  # text: one line per site
    assert rerun.returncode == 1, rerun.stderr  # the unknown instance's row again
    assert Counter(sites.quantities(revoked["siteId"])) - Counter(before[revoked["siteId"]]) == (
        +moved[revoked["siteId"]]
    )
    site_lines = [line for line in rerun.stdout.splitlines() if line.startswith("site ")]
    assert len(site_lines) == 7
    assert re.search(
        rf"^site {revoked['instanceId']} +V\d_CATALOG +rows \d+, committed [1-9]",
        rerun.stdout,
        re.M,
    )


def test_a_one_site_file_still_needs_one_site_and_a_many_site_file_needs_reaching_credentials(
    tmp_path: Path,
) -> None:
    """Without a site column WIX_SITE_ID is required as always; with one, an API key alone or an
    app id and secret alone will do, an instance id alone is refused naming what is missing, and
    so is --witness (it serves one site)."""
    plain = tmp_path / "one.csv"
    plain.write_text("product_id,variant_id,delta\np,00000000-0000-0000-0000-000000000000,1\n")
    named = tmp_path / "many.csv"
    named.write_text(f"{HEADER}\ns1,p,00000000-0000-0000-0000-000000000000,,1\n")
    one = run_cli("adjust", str(plain), env={"WIX_API_KEY": "k"})
    assert one.returncode == 2 and "--site-id" in one.stderr
    many = run_cli("adjust", str(named), env={"WIX_INSTANCE_ID": "i"})
    assert many.returncode == 2 and "names sites needs --api-key" in many.stderr
    witnessed = run_cli("adjust", str(named), "--witness", "p", env={"WIX_API_KEY": "k"})
    assert witnessed.returncode == 2 and "--witness serves one site" in witnessed.stderr
    dead = {"WIX_API_KEY": "k", "WIX_BASE_URL": "http://127.0.0.1:9"}
    reached = run_cli("adjust", str(named), env=dead)  # credentials accepted; the port is dead
    assert reached.returncode == 2 and "cannot reach 127.0.0.1:9" in reached.stderr


_BUSY = (
    "SELECT (SELECT COUNT(*) FROM batches) >= 12 "
    "AND EXISTS (SELECT 1 FROM lines WHERE state = 'committed')"
)
"""Requests have settled, and (eight in flight at most: four sites, two each) more went out."""


def _wait_until_busy(journal: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("the adjust run finished before it could be killed")
        if journal.exists():
            try:
                with closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
                    busy = db.execute(_BUSY).fetchone()[0]
            except sqlite3.OperationalError:
                busy = 0
            if busy:
                return
        time.sleep(0.01)
    pytest.fail("no batches were journalled")


def test_kill_9_then_rerun_over_many_sites_applies_nothing_twice(
    many_sites: Any, tmp_path: Path
) -> None:
    """kill -9 mid-run over four sites (V1 and V3) by API key, rerun: each site's own journal
    shows every row applied once, and the rows in doubt (listed, with their site) are those of
    requests that were on the wire."""
    sites = many_sites(
        "--sites", "4", "--catalog", "mixed", "--products", "400", "--locations", "2",
        "--latency-ms", "60", "--seed", "6",
    )  # fmt: skip
    by_site = {p["siteId"]: targets(sites, p["siteId"]) for p in sites.pairs}
    before = {site: sites.quantities(site) for site in by_site}
    rng = random.Random(9)
    rows: list[tuple[str, Key, int]] = []
    lines = [HEADER]
    for _ in range(12_000):
        site = rng.choice(list(by_site))
        columns, key = rng.choice(by_site[site])
        delta = rng.randint(1, 4)  # increments: every entry applies when sent
        rows.append((site, key, delta))
        lines.append(f"{site},{columns},{delta}")
    source = tmp_path / "sites.csv"
    source.write_text("\n".join(lines) + "\n")
    journal = tmp_path / "sites.csv.journal"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIX_")}
    env |= {"WIX_BASE_URL": sites.url, "WIX_API_KEY": sites.api_key}
    first = subprocess.Popen(  # noqa: S603
        [*CLI, "adjust", str(source), "--quiet", "--max-in-flight", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_until_busy(journal, first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    rerun = run_cli("adjust", str(source), "--json", env=env)
    assert rerun.returncode == 3, rerun.stderr
    summary = json.loads(rerun.stdout)
    with closing(sqlite3.connect(journal)) as db:
        states = {
            line: (state, batch, site)
            for line, state, batch, site in db.execute("SELECT line, state, batch, site FROM lines")
        }
    in_doubt = {line for line, (state, *_) in states.items() if state in {"sent", "in_doubt"}}
    assert in_doubt  # killed right after a batch was journalled: its request was in flight
    assert summary["in_doubt_held_back"] == len(in_doubt)
    assert summary["done_in_earlier_runs"] > 0
    assert sum(s["in_doubt_held_back"] for s in summary["sites"].values()) == len(in_doubt)
    listed = (tmp_path / "sites.csv.in-doubt.csv").read_text().splitlines()[1:]
    assert {(int(row.split(",")[0]), row.split(",")[-1]) for row in listed} == {
        (line, rows[line - 2][0]) for line in in_doubt
    }

    committed: dict[str, Counter[Key]] = defaultdict(Counter)
    doubtful: dict[tuple[str, int], Counter[Key]] = defaultdict(Counter)
    for line, (site, key, delta) in enumerate(rows, start=2):
        state, batch, journalled_site = states[line]
        if state == "committed":
            committed[site][key] += delta
        elif line in in_doubt:
            assert journalled_site == site  # the journal says where the request went
            doubtful[(site, batch)][key] += delta
        else:
            pytest.fail(f"line {line} ended {state}")
    for site in by_site:
        expected = committed[site].copy()
        applied = sites.journal(site)
        for (where, _), asked in doubtful.items():
            if where == site and asked in applied:  # the in-doubt request reached it, once
                expected.update(asked)
        moved = Counter(sites.quantities(site))
        moved.subtract(before[site])
        assert +moved == +expected, site
