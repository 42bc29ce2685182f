"""Fixtures for the emulator tests: a small emulator and a bare aiohttp client over loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from wixinv_async.emulator import Emulator
from wixinv_async.emulator.v3_store import V3Store
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


V3 = "/stores/v3"


class V3Api(Api):
    """The bare client, with helpers for the Catalog V3 calls."""

    async def bulk(self, path: str, body: dict[str, Any], *, expect: int = 200) -> dict[str, Any]:
        """POST a V3 bulk call under /stores/v3/bulk/inventory-items/; checks the status."""
        status, data, _ = await self.call("POST", f"{V3}/bulk/inventory-items/{path}", body)
        assert status == expect, data
        return data

    async def get(self, item_id: str) -> tuple[int, dict[str, Any]]:
        status, data, _ = await self.call("GET", f"{V3}/inventory-items/{item_id}")
        return status, data

    async def query_get(self, kind: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """GET query or search with the request in ``.r`` (base64url JSON), as the SDK does."""
        encoded = base64.urlsafe_b64encode(json.dumps(request).encode()).decode().rstrip("=")
        async with self.session.get(
            f"{self.emu.url}{V3}/inventory-items/{kind}",
            params={".r": encoded},
            headers=self.headers,
        ) as response:
            return response.status, await response.json()

    def store3(self) -> V3Store:
        return self.emu.v3_store()

    def tracked3(self, minimum: int = 5) -> dict[str, Any]:
        """A tracked V3 item at the default location with more than ``minimum`` in stock."""
        store = self.store3()
        for item in store.items():
            if (
                item["trackQuantity"]
                and item["quantity"] > minimum
                and not item["preorderInfo"]["enabled"]
                and item["locationId"] == store.default_location
            ):
                return item
        raise AssertionError("no tracked item with stock")

    def untracked3(self) -> dict[str, Any]:
        for item in self.store3().items():
            if not item["trackQuantity"]:
                return item
        raise AssertionError("no untracked item")


@pytest.fixture
async def emu3() -> AsyncIterator[Emulator]:
    """A running V3 emulator: 40 products of 3 variants at 2 locations, seed 1."""
    async with Emulator(
        products=40, variants_per_product=3, seed=1, catalog="v3", locations=2
    ) as e:
        yield e


@pytest.fixture
async def api3(emu3: Emulator) -> AsyncIterator[V3Api]:
    """A bare client for ``emu3``."""
    async with aiohttp.ClientSession() as session:
        yield V3Api(emu3, session)


@pytest.fixture
async def v3_api_of() -> AsyncIterator[Callable[[Emulator], V3Api]]:
    """``v3_api_of(emu)``: a V3 client of any emulator the test starts (one shared session)."""
    async with aiohttp.ClientSession() as session:
        yield lambda emu: V3Api(emu, session)
