"""Fixtures for the emulator tests: a small emulator and a bare aiohttp client over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from wixinv_async.emulator import Emulator
from wixinv_async.models import PreorderInfo

READ = "/stores-reader/v2/inventoryItems"
WRITE = "/stores/v2/inventoryItems"


class Api:
    """A bare aiohttp client that speaks to the emulator with its API key."""

    def __init__(self, emu: Emulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session
        self.headers = {"Authorization": emu.api_key, "wix-site-id": emu.site_id}

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
        """Send ``body`` as JSON; returns (status, decoded JSON body or {}, response)."""
        async with self.session.request(
            method,
            self.emu.url + path,
            json=body,
            headers=self.headers if headers is None else headers,
        ) as response:
            text = await response.text()
            data = await response.json() if text else {}
            return response.status, data, response

    async def decrement(self, entries: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        status, data, _ = await self.call("POST", f"{WRITE}/decrement", {"decrementData": entries})
        return status, data

    async def increment(self, entries: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        status, data, _ = await self.call("POST", f"{WRITE}/increment", {"incrementData": entries})
        return status, data

    def tracked(self, *, preorder: bool | None = None) -> tuple[str, str, str]:
        """(productId, inventoryId, variantId) of a tracked variant with more than 5 in stock."""
        for item in self.emu.store.items():
            enabled = (
                isinstance(item.preorder_info, PreorderInfo) and item.preorder_info.enabled is True
            )
            if item.track_quantity and (preorder is None or enabled == preorder):
                for variant in item.variants:
                    if isinstance(variant.quantity, int) and variant.quantity > 5:
                        return str(item.product_id), str(item.id), variant.variant_id
        raise AssertionError("no tracked variant with stock")

    def untracked(self) -> tuple[str, str]:
        """(productId, variantId) of an untracked variant."""
        for item in self.emu.store.items():
            if item.track_quantity is False:
                return str(item.product_id), item.variants[0].variant_id
        raise AssertionError("no untracked item")

    async def query(self, query: dict[str, Any], prefix: str = READ) -> tuple[int, dict[str, Any]]:
        status, data, _ = await self.call("POST", f"{prefix}/query", {"query": query})
        return status, data


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A running emulator with 40 products of 3 variants, seed 1."""
    async with Emulator(products=40, variants_per_product=3, seed=1) as emulator:
        yield emulator


@pytest.fixture
async def api(emu: Emulator) -> AsyncIterator[Api]:
    """A bare client for ``emu``."""
    async with aiohttp.ClientSession() as session:
        yield Api(emu, session)
