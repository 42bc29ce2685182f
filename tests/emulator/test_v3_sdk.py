"""The official Wix JavaScript SDK, run unchanged against the emulator's Catalog V3 site.

The SDK (the versions of the vendored capture) is installed once with npm into a cache
outside the checkout (``$WIXINV_NODE_CACHE`` or ``~/.cache/wixinv-async/node-v3``) and reused;
the test is skipped, saying why, where node or npm is missing or the install fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wixinv_async.emulator import Emulator

PACKAGES = {
    "@wix/sdk": "1.21.16",
    "@wix/auto_sdk_stores_inventory-items-v-3": "1.0.98",
    "@wix/auto_sdk_stores_catalog-versioning": "1.0.81",
}
SCRIPT = Path(__file__).with_name("v3_sdk_check.mjs")


def _installed(cache: Path) -> bool:
    for name, version in PACKAGES.items():
        manifest = cache / "node_modules" / name / "package.json"
        if not manifest.is_file() or json.loads(manifest.read_text())["version"] != version:
            return False
    return True


@pytest.fixture(scope="session")
def sdk_dir() -> Path:
    """The cache directory holding the pinned SDK packages (installed on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the official Wix SDK against the emulator")
    default = Path.home() / ".cache" / "wixinv-async" / "node-v3"
    cache = Path(os.environ.get("WIXINV_NODE_CACHE", default))
    if _installed(cache):
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    manifest = cache / "package.json"
    if not manifest.exists():
        manifest.write_text('{"name": "wixinv-async-sdk-cache", "private": true}\n')
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    command = ["npm", "install", "--no-audit", "--no-fund", "--save-exact", *specs]
    try:
        done = subprocess.run(command, cwd=cache, capture_output=True, text=True, timeout=300)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"npm install of the Wix SDK failed: {exc}")
    if done.returncode != 0 or not _installed(cache):
        pytest.skip(f"npm install of the Wix SDK failed: {done.stderr.strip()[-300:]}")
    return cache


async def test_official_sdk_gets_correct_answers_for_every_captured_call(sdk_dir: Path) -> None:
    """Every SDK method of the V3 capture, called by the SDK itself, gets a correct answer."""
    async with Emulator(products=200, catalog="v3", seed=3) as emu:
        process = await asyncio.create_subprocess_exec(
            "node",
            str(SCRIPT),
            str(sdk_dir),
            emu.url,
            emu.api_key,
            emu.site_id,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    checks = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    failed = [c for c in checks if not c["ok"]]
    assert process.returncode == 0 and not failed, (failed, err.decode()[-2000:])
    captured = json.loads(
        (Path(__file__).parents[1] / "wire/v3/official-sdk-v3-requests.json").read_text()
    )
    methods = {r["sdkMethod"].split("(")[0] for r in captured["requests"]}
    assert methods <= {c["check"].split("(")[0].split(" ")[0] for c in checks}
    journal = {entry.endpoint for entry in emu.journal()}
    assert {"bulkDecrementInventoryItems", "updateInventoryItem", "deleteInventoryItem"} <= journal
