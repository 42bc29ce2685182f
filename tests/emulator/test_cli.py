"""The ``wixinv-async emulator`` command: serves, announces itself, stops cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from wixinv_async.cli import build_parser


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    return process.returncode, out


async def test_serves_until_interrupted_and_prints_credentials(
    emulator_process: Any, tmp_path: Path
) -> None:
    """The command prints URL and credentials, serves the API with them, stops on Ctrl-C."""
    plan = tmp_path / "faults.json"
    plan.write_text(json.dumps({"endpoints": {"queryInventory": {"error_503": 1.0}}}))
    emulator = emulator_process(
        "--products", "12", "--seed", "3", "--api-key", "k1", "--faults", str(plan)
    )
    process, env = emulator.process, emulator.env
    try:
        assert env["WIX_API_KEY"] == "k1"
        headers = {"Authorization": env["WIX_API_KEY"], "wix-site-id": env["WIX_SITE_ID"]}
        async with aiohttp.ClientSession() as session:
            async with session.get(env["WIX_BASE_URL"] + "/_emulator/state") as state:
                assert len((await state.json())["inventoryItems"]) == 12
            async with session.post(
                env["WIX_BASE_URL"] + "/stores-reader/v2/inventoryItems/query",
                json={},
                headers=headers,
            ) as r:
                assert r.status == 503
    finally:
        code, out = stop(process)
    assert code == 0
    assert "emulator stopped" in out


def test_parser_accepts_every_flag_of_the_issue() -> None:
    """Every documented flag parses into the settings the emulator takes."""
    args = build_parser().parse_args(
        [
            "emulator",
            "--host",
            "::1",
            "--port",
            "9000",
            "--products",
            "5",
            "--variants-per-product",
            "2",
            "--seed",
            "4",
            "--api-key",
            "K",
            "--site-id",
            "S",
            "--rate-limit",
            "200/60",
            "--retry-after",
            "off",
            "--latency-ms",
            "3",
            "--faults",
            "f.json",
        ]
    )
    assert (args.host, args.port, args.products, args.variants_per_product, args.seed) == (
        "::1",
        9000,
        5,
        2,
        4,
    )
    assert (
        args.api_key,
        args.site_id,
        args.rate_limit,
        args.retry_after,
        args.latency_ms,
        args.faults,
    ) == (
        "K",
        "S",
        "200/60",
        "off",
        3.0,
        "f.json",
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--rate-limit", "lots"],
        ["--faults", "/no/such/file.json"],
        ["--products", "-1"],
        ["--catalog", "v3", "--locations", "0"],
    ],
)
def test_bad_settings_exit_2_with_a_message(args: list[str]) -> None:
    """Bad settings end with exit code 2 and say what was wrong, before serving."""
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "wixinv_async", "emulator", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "wixinv-async emulator:" in result.stderr


async def test_catalog_v3_serves_a_v3_site(emulator_process: Any) -> None:
    """--catalog v3 --locations 2: the version call says V3, V3 reads answer at two locations,
    V1 calls are 428, and the admin state shows the V3 items."""
    emulator = emulator_process("--products", "6", "--catalog", "v3", "--locations", "2")
    process, env = emulator.process, emulator.env
    try:
        headers = {"Authorization": env["WIX_API_KEY"], "wix-site-id": env["WIX_SITE_ID"]}
        base = env["WIX_BASE_URL"]
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.get(base + "/stores/v3/provision/version") as r:
                assert await r.json() == {"catalogVersion": "V3_CATALOG"}
            async with session.get(base + "/stores/v3/inventory-items/query") as r:
                items = (await r.json())["inventoryItems"]
                assert len({i["locationId"] for i in items}) == 2
            async with session.post(base + "/stores/v2/inventoryItems/decrement", json={}) as r:
                assert r.status == 428
        state = emulator.admin("state")
        assert state["catalogVersion"] == "V3_CATALOG"
        assert len(state["inventoryItems"]) == len(items)
    finally:
        code, _ = stop(process)
    assert code == 0


def test_version_scope_off_parses() -> None:
    """--version-scope off and --catalog parse into the emulator's settings."""
    args = build_parser().parse_args(["emulator", "--catalog", "v3", "--version-scope", "off"])
    assert (args.catalog, args.version_scope, args.locations) == ("v3", "off", 1)


async def test_many_sites_mixed_catalogs_with_their_own_windows(emulator_process: Any) -> None:
    """--sites 4 --catalog mixed --rate-limit 2/60 --make-sites: four sites listed and made,
    V1 and V3 in turn, each with its own window of 2 (the first site at its limit leaves the
    second its budget)."""
    emulator = emulator_process(
        "--products",
        "3",
        "--sites",
        "4",
        "--catalog",
        "mixed",
        "--rate-limit",
        "2/60",
        "--make-sites",
    )
    process, env = emulator.process, emulator.env
    try:
        sites = [s["siteId"] for s in emulator.admin("sites")["sites"]]
        assert len(sites) == 4 and sites[0] == env["WIX_SITE_ID"]
        assert list(emulator.admin("stats")["sites"]) == sites  # --make-sites: all made
        async with aiohttp.ClientSession() as session:
            versions, statuses = [], []
            for site in sites:
                headers = {"Authorization": env["WIX_API_KEY"], "wix-site-id": site}
                url = env["WIX_BASE_URL"] + "/stores/v3/provision/version"
                async with session.get(url, headers=headers) as r:
                    versions.append((await r.json())["catalogVersion"])
            for site in (sites[0], sites[0], sites[1]):
                headers = {"Authorization": env["WIX_API_KEY"], "wix-site-id": site}
                url = env["WIX_BASE_URL"] + "/stores/v3/provision/version"
                async with session.get(url, headers=headers) as r:
                    statuses.append(r.status)
        assert versions == ["V1_CATALOG", "V3_CATALOG"] * 2
        assert statuses == [200, 429, 200]
    finally:
        code, _ = stop(process)
    assert code == 0
