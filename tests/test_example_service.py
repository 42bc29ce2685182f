"""The README's service example, run against the emulator."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "service.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_service", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_paid_order_decrements_stock(
    wix_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two orders decrement the emulator's stock; an unknown product is reported, not fatal."""
    monkeypatch.setenv("WIX_API_KEY", wix_emulator.api_key)
    monkeypatch.setenv("WIX_SITE_ID", wix_emulator.site_id)
    monkeypatch.setenv("WIX_BASE_URL", wix_emulator.url)
    item = next(i for i in wix_emulator.store.items() if i.track_quantity)
    variant = item.variants[0].variant_id
    wix_emulator.store.set_quantity(item.product_id, variant, 10)
    line = {"productId": item.product_id, "variantId": variant, "quantity": 2}
    async with TestClient(TestServer(_load_example().make_app())) as http:
        first = await (await http.post("/orders/paid", json={"lineItems": [line]})).json()
        ghost = {**line, "productId": "no-such-product"}
        second = await (await http.post("/orders/paid", json={"lineItems": [line, ghost]})).json()
    assert first == {"ok": True, "problems": []}
    assert second == {"ok": False, "problems": ["NOT_FOUND"]}
    assert wix_emulator.store.quantity(item.product_id, variant) == 6
