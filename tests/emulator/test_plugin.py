"""The shipped pytest plugin: the wix_emulator fixtures, as a user's test suite sees them."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from wixinv_async.emulator import Emulator


@pytest.fixture
def wix_emulator_settings() -> dict[str, Any]:
    """These tests override the settings fixture, as a user's conftest would."""
    return {"products": 7, "variants_per_product": 1, "seed": 3}


async def test_wix_emulator_fixture_serves_with_the_overridden_settings(
    wix_emulator: Emulator,
) -> None:
    """The fixture gives a running emulator built from wix_emulator_settings."""
    assert len(wix_emulator.store) == 7
    async with (
        aiohttp.ClientSession() as session,
        session.get(wix_emulator.url + "/_emulator/stats") as response,
    ):
        assert response.status == 200


async def test_factory_starts_emulators_with_custom_settings(wix_emulator_factory: Any) -> None:
    """The factory starts as many emulators as asked, each with its own settings."""
    first = await wix_emulator_factory(products=2)
    second = await wix_emulator_factory(products=5, extra_sites=1)
    assert (len(first.store), len(second.store), len(second.sites)) == (2, 5, 2)
    assert first.url != second.url


async def test_wix_emulator_v3_fixture_serves_catalog_v3(wix_emulator_v3: Emulator) -> None:
    """wix_emulator_v3 runs the same settings on Catalog V3: one item per variant."""
    assert wix_emulator_v3.catalog_version() == "V3_CATALOG"
    assert len(wix_emulator_v3.v3_store()) == 7
    headers = {"Authorization": wix_emulator_v3.api_key, "wix-site-id": wix_emulator_v3.site_id}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(wix_emulator_v3.url + "/stores/v3/provision/version") as response,
    ):
        assert await response.json() == {"catalogVersion": "V3_CATALOG"}


def test_plugin_import_adds_nothing_heavy() -> None:
    """In a pytest run, importing the plugin adds no module but itself (no server code)."""
    code = (
        "import sys, pytest, pytest_asyncio, wixinv_async; before = set(sys.modules); "
        "import wixinv_async.testing; "
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603
    assert out.stdout.strip() == "['wixinv_async.testing']"


async def test_factory_serves_many_sites(wix_emulator_factory: Any) -> None:
    """The factory passes sites= and catalog="mixed" through to the emulator."""
    emulator = await wix_emulator_factory(products=2, sites=4, catalog="mixed")
    versions = [emulator.catalog_version(s) for s in emulator.sites]
    assert versions == ["V1_CATALOG", "V3_CATALOG", "V1_CATALOG", "V3_CATALOG"]
