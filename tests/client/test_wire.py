"""Wire conformance: the five calls send what the official Wix SDK sends."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
from aiohttp import web

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient
from wixinv_async.models import DEFAULT_VARIANT_ID as V0
from wixinv_async.models import (
    DecrementData,
    DecrementInventoryRequest,
    IncrementData,
    VariantUpdate,
)
from wixinv_async.transport import HttpRequest, HttpResponse, MockTransport

Call = Callable[[InventoryClient], Awaitable[object]]

CALLS: dict[str, Call] = {
    "queryInventory": lambda c: c.query_inventory(
        filter={"numericId": {"$gt": 5}}, sort=[{"numericId": "asc"}], limit=100, offset=0
    ),
    "getInventoryVariants": lambda c: c.get_inventory_variants(inventory_id="i1", variant_ids=[V0]),
    "updateInventoryVariants": lambda c: c.update_inventory_variants(
        "p1", [VariantUpdate(variant_id=V0, quantity=5)], track_quantity=True
    ),
    "incrementInventory": lambda c: c.increment_inventory(
        [IncrementData(product_id="p1", variant_id=V0, increment_by=2)]
    ),
    "decrementInventory": lambda c: c.decrement_inventory(
        [DecrementData(inventory_id="i1", variant_id=V0, decrement_by=1)]
    ),
}


def answer(request: HttpRequest) -> HttpResponse:
    """What Wix answers each call with, minimally."""
    if request.path.endswith("/query"):
        return HttpResponse.from_json(200, {"inventoryItems": [], "totalResults": 0})
    if request.path.endswith("/getVariants"):
        return HttpResponse.from_json(200, {"inventoryItem": {"id": "i1", "variants": []}})
    return HttpResponse.from_json(200, {})


@pytest.mark.parametrize("sdk_method", sorted(CALLS))
async def test_request_matches_the_official_sdk(
    sdk_method: str, sdk_requests: dict[str, dict[str, Any]]
) -> None:
    """Method, path, auth headers and parsed JSON body equal the SDK's capture."""
    expected = sdk_requests[sdk_method]
    transport = MockTransport(answer)
    async with InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"), transport=transport, rate_limit=None
    ) as client:
        await CALLS[sdk_method](client)
    [request] = transport.requests
    assert request.method == expected["method"]
    assert request.url == "https://www.wixapis.com" + expected["path"]
    assert dict(request.headers) == expected["headers"]
    assert request.json() == expected["body"]


@pytest.mark.parametrize("odd", ["a/b", "../decrement", "x?y#z", "50%"])
async def test_ids_in_paths_stay_one_segment(odd: str) -> None:
    """An id with /, ?, # or % is percent-encoded: the call cannot land on another path."""
    transport = MockTransport(answer)
    async with InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"), transport=transport, rate_limit=None
    ) as client:
        await client.get_inventory_variants(inventory_id=odd)
        await client.update_inventory_variants(odd, [], track_quantity=True)
    reader, writer = (request.url for request in transport.requests)
    encoded = quote(odd, safe="")
    assert "/" not in encoded and reader.endswith(f"/inventoryItems/{encoded}/getVariants")
    assert writer.endswith(f"/inventoryItems/product/{encoded}")


async def test_filter_and_sort_travel_as_json_strings(sdk_requests: dict[str, Any]) -> None:
    """filter and sort are strings inside the body, which decode to what the caller gave."""
    transport = MockTransport(answer)
    async with InventoryClient(
        ApiKeyAuth("KEY", "SITE"), transport=transport, rate_limit=None
    ) as c:
        await c.query_inventory(filter={"productId": {"$hasSome": ["a", "b"]}}, sort=[])
    query = transport.requests[0].json()["query"]
    assert isinstance(query["filter"], str)
    assert isinstance(query["sort"], str)
    assert msgspec.json.decode(query["filter"]) == {"productId": {"$hasSome": ["a", "b"]}}
    assert msgspec.json.decode(query["sort"]) == []


async def test_aiohttp_sends_the_same_bytes_and_headers(sdk_requests: dict[str, Any]) -> None:
    """Over aiohttp to a real server the decrement arrives with the SDK's headers and body."""
    expected = sdk_requests["decrementInventory"]
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.headers), await request.read()))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        auth = ApiKeyAuth(expected["headers"]["Authorization"], site_id="SITE")
        async with InventoryClient(auth, base_url=f"http://127.0.0.1:{port}", rate_limit=None) as c:
            await CALLS["decrementInventory"](c)
    finally:
        await runner.cleanup()
    [(path, headers, body)] = seen
    assert path == expected["path"]
    assert msgspec.json.decode(body) == expected["body"]
    assert {k: headers[k] for k in expected["headers"]} == expected["headers"]


async def test_concurrent_batches_each_send_their_own_body() -> None:
    """Batches encoded while others are still in flight keep their own bytes, whatever their
    sizes (the client reuses one encoding buffer)."""
    release = asyncio.Event()

    async def slow_answer(request: HttpRequest) -> HttpResponse:
        if len(transport.requests) == len(batches):  # all four are in flight: answer them
            release.set()
        await release.wait()
        return HttpResponse.from_json(200, {})

    transport = MockTransport(slow_answer)
    sizes = [300, 1, 120, 7]
    batches = [
        [DecrementData(product_id=f"p{n}-{i}", variant_id=V0, decrement_by=i + 1) for i in range(n)]
        for n in sizes
    ]
    async with InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"), transport=transport, rate_limit=None
    ) as client:
        await asyncio.gather(*(client.decrement_inventory(batch) for batch in batches))
    sent = [request.json()["decrementData"] for request in transport.requests]
    assert sorted(sent, key=len) == sorted(
        ([msgspec.to_builtins(entry) for entry in batch] for batch in batches), key=len
    )


def test_threads_encoding_on_one_client_never_share_bytes() -> None:
    """Two threads encoding batches on one client at once (each could run its own event loop)
    never get each other's bytes, with the interpreter switching threads as often as it can."""
    client = InventoryClient(ApiKeyAuth("KEY", site_id="SITE"), transport=MockTransport(answer))
    requests = [
        DecrementInventoryRequest(
            decrement_data=[
                DecrementData(product_id=f"t{t}", variant_id=V0, decrement_by=i + 1)
                for i in range(300)
            ]
        )
        for t in range(2)
    ]
    expected = [msgspec.json.encode(request) for request in requests]
    wrong = [0, 0]

    def encode_many(t: int) -> None:
        for _ in range(3000):
            wrong[t] += client._encode_batch(requests[t]) != expected[t]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=encode_many, args=(t,)) for t in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == [0, 0]
