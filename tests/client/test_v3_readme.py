"""The README's Catalog V3 snippet, as printed, run against a V3 emulator site."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from wixinv_async import ApiKeyAuth, InventoryClient
from wixinv_async.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository (tests/client/..)
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _snippet() -> str:
    [block] = [
        b
        for b in re.findall(r"^```python\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
        if "catalog_version()" in b
    ]
    return block


async def test_readme_v3_snippet_decrements_and_sets(capsys: pytest.CaptureFixture[str]) -> None:
    """It decrements by 2, reports the entry APPLIED, then adds 5 with the revision."""
    code = "async def snippet(client, item_id):\n" + textwrap.indent(_snippet(), "    ")
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md:v3", "exec"), namespace)  # noqa: S102 - our own README
    async with Emulator(catalog="v3", products=5, seed=1) as emu:
        item = next(
            i for i in emu.v3_store().items() if i.get("trackQuantity") and i["quantity"] >= 2
        )
        auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
        async with InventoryClient(auth, base_url=emu.url, rate_limit=None) as client:
            await namespace["snippet"](client, item["id"])
        after = emu.v3_store().find(item["id"])
    assert after is not None and after.quantity == item["quantity"] + 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "0 APPLIED None"
    assert lines[1].split() == [str(item["quantity"] + 3), str(int(item["revision"]) + 2)]
