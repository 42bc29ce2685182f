"""Wire conformance: every Catalog V3 call sends what the official Wix SDK sends.

The reference is ``tests/wire/v3/official-sdk-v3-requests.json`` (17 calls captured from
``@wix/auto_sdk_stores_inventory-items-v-3`` 1.0.98 and ``@wix/auto_sdk_stores_catalog-versioning``
1.0.81 on ``@wix/sdk`` 1.21.16). Compared: method, path, decoded query (``.r`` decoded as JSON),
headers and JSON body. The SDK's ``x-wix-bi-gateway`` header is its own analytics tag
(``environment=js-sdk,package-name=@wix/...``): this library does not claim to be the JS SDK,
so that one header is left out of the comparison, on purpose.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from aiohttp import web
from hypothesis import event, given, settings
from hypothesis import strategies as st

from wixinv_async import inventory_v3
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient
from wixinv_async.models_v3 import (
    DecrementDataById,
    DecrementDataByVariantAndLocation,
    IncrementDataById,
    IncrementDataByVariantAndLocation,
    Sorting,
    UpdateInventoryItem,
)
from wixinv_async.transport import HttpRequest, HttpResponse, MockTransport

CAPTURE = Path(__file__).parents[1] / "wire" / "v3" / "official-sdk-v3-requests.json"
REQUESTS: list[dict[str, Any]] = json.loads(CAPTURE.read_text())["requests"]
ID1 = "11111111-1111-1111-1111-111111111111"
ID5 = "55555555-5555-5555-5555-555555555555"
VARIANT = "22222222-2222-2222-2222-222222222222"
LOCATION = "44444444-4444-4444-4444-444444444444"
PRODUCT = "33333333-3333-3333-3333-333333333333"
LONG_IN = [f"00000000-0000-0000-0000-{n:012d}" for n in range(120)]
BI_HEADER = "x-wix-bi-gateway"

Call = Callable[[InventoryClient], Awaitable[object]]

# One call per captured request, in the capture's order.
CALLS: list[tuple[str, Call]] = [
    ("getCatalogVersion", lambda c: c.get_catalog_version()),
    (
        "bulkDecrementInventoryItems",
        lambda c: c.bulk_decrement_inventory_items(
            [
                DecrementDataById(inventory_item_id=ID1, decrement_by=2),
                DecrementDataById(inventory_item_id=ID5, decrement_by=1, preorder_request=False),
            ],
            restrict_inventory=True,
            return_entity=True,
            reason="ORDER",
        ),
    ),
    (
        "bulkDecrementInventoryItems(defaults)",
        lambda c: c.bulk_decrement_inventory_items(
            [DecrementDataById(inventory_item_id=ID1, decrement_by=1)]
        ),
    ),
    (
        "bulkIncrementInventoryItems",
        lambda c: c.bulk_increment_inventory_items(
            [IncrementDataById(inventory_item_id=ID1, increment_by=3)],
            return_entity=False,
            reason="MANUAL",
        ),
    ),
    (
        "bulkDecrementInventoryItemsByVariantAndLocation",
        lambda c: c.bulk_decrement_inventory_items_by_variant_and_location(
            [
                DecrementDataByVariantAndLocation(
                    variant_id=VARIANT, location_id=LOCATION, decrement_by=1
                )
            ],
            restrict_inventory=True,
        ),
    ),
    (
        "bulkIncrementInventoryItemsByVariantAndLocation",
        lambda c: c.bulk_increment_inventory_items_by_variant_and_location(
            [
                IncrementDataByVariantAndLocation(
                    variant_id=VARIANT, location_id=LOCATION, increment_by=1
                )
            ]
        ),
    ),
    ("getInventoryItem", lambda c: c.get_inventory_item(ID1)),
    (
        "updateInventoryItem",
        lambda c: c.update_inventory_item(ID1, revision="4", quantity=10, reason="MANUAL"),
    ),
    (
        "bulkUpdateInventoryItems",
        lambda c: c.bulk_update_inventory_items(
            [
                UpdateInventoryItem(id=ID1, revision="4", quantity=10),
                UpdateInventoryItem(id=ID5, revision="1", in_stock=False),
            ],
            return_entity=True,
        ),
    ),
    (
        "queryInventoryItems(builder)",
        lambda c: c.query_inventory_items(
            filter={"$and": [{"productId": PRODUCT}, {"quantity": {"$gt": 0}}]},
            sort=[Sorting(field_name="updatedDate", order="ASC")],
            limit=100,
        ),
    ),
    (
        "queryInventoryItems(builder, next page)",
        lambda c: c.query_inventory_items(filter={"productId": PRODUCT}, limit=100),
    ),
    (
        "queryInventoryItems(builder, next page)",
        lambda c: c.query_inventory_items(cursor="CURSOR2", limit=100),
    ),
    (
        "searchInventoryItems",
        lambda c: c.search_inventory_items(
            filter={"quantity": {"$lt": 5}, "trackQuantity": True},
            sort=[{"fieldName": "updatedDate", "order": "ASC"}],
            limit=50,
        ),
    ),
    (
        "searchInventoryItems(cursor)",
        lambda c: c.search_inventory_items(cursor="CURSOR2", limit=50),
    ),
    (
        "bulkUpdateInventoryItemsByFilter",
        lambda c: c.bulk_update_inventory_items_by_filter({"productId": PRODUCT}, in_stock=False),
    ),
    (
        "queryInventoryItems(builder, long filter -> POST fallback)",
        lambda c: c.query_inventory_items(filter={"variantId": {"$in": LONG_IN}}, limit=1000),
    ),
    ("deleteInventoryItem", lambda c: c.delete_inventory_item(ID1)),
]


def answer(request: HttpRequest) -> HttpResponse:
    """What Wix answers each call with, minimally."""
    path = request.path
    if path.endswith("/provision/version"):
        return HttpResponse.from_json(200, {"catalogVersion": "V3_CATALOG"})
    if "/bulk/" in path and not path.endswith("update-by-filter"):
        return HttpResponse.from_json(200, {"results": [], "bulkActionMetadata": {}})
    if path.endswith(("/query", "/search")):
        return HttpResponse.from_json(200, {"inventoryItems": [], "pagingMetadata": {}})
    if path.endswith("update-by-filter"):
        return HttpResponse.from_json(200, {"jobId": "j1"})
    return HttpResponse.from_json(200, {"inventoryItem": {"id": ID1, "revision": "5"}})


def decoded_query(url: str) -> dict[str, Any]:
    """The URL's query parameters, ``.r`` decoded from base64url JSON."""
    params = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    if ".r" in params:
        raw = params.pop(".r")
        params[".r"] = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    return params


def expected_query(captured: dict[str, Any]) -> dict[str, Any]:
    params = dict(captured.get("query") or {})
    if "decodedQueryParamR" in captured:
        params[".r"] = captured["decodedQueryParamR"]
    return params


def test_every_captured_call_has_a_counterpart() -> None:
    """The table covers the capture one to one, in its order."""
    assert [name for name, _ in CALLS] == [r["sdkMethod"] for r in REQUESTS]
    assert len(REQUESTS) == 17


@pytest.mark.parametrize("position", range(len(CALLS)), ids=[name for name, _ in CALLS])
async def test_request_matches_the_official_sdk(position: int) -> None:
    """Method, path, decoded query (``.r`` included), headers and body equal the SDK's."""
    expected = REQUESTS[position]
    transport = MockTransport(answer)
    async with InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"), transport=transport, rate_limit=None
    ) as client:
        await CALLS[position][1](client)
    [request] = transport.requests
    assert request.method == expected["method"]
    assert request.path == expected["path"]
    assert urlsplit(request.url).netloc == "www.wixapis.com"
    assert decoded_query(request.url) == expected_query(expected)
    headers = {k: v for k, v in expected["headers"].items() if k != BI_HEADER}
    assert dict(request.headers) == headers
    if expected["body"] is None:
        assert request.body == b""
    else:
        assert request.json() == expected["body"]


def test_r_is_unpadded_base64url_of_the_compact_json() -> None:
    """``.r`` is the SDK's encoding, byte for byte, for the search capture."""
    expected = REQUESTS[12]["query"][".r"]
    call = inventory_v3.search_items(
        filter={"quantity": {"$lt": 5}, "trackQuantity": True},
        sort=[Sorting(field_name="updatedDate", order="ASC")],
        limit=50,
    )
    assert call.path.endswith("?.r=" + expected)
    assert "=" not in expected and "+" not in expected and "/" not in expected


def test_get_turns_into_post_past_4000_characters_of_query() -> None:
    """A query whose ``.r=...`` is at most 4000 characters is a GET; one character longer
    it is a POST of the same JSON to the same path (the SDK's ``buildRESTDescriptor``)."""

    def call_for(text: str) -> inventory_v3.V3Call:
        return inventory_v3.query_items(filter={"productId": text}, limit=10)

    text = "x"
    while call_for(text + "x").method == "GET":
        text += "x"
    longest_get, shortest_post = call_for(text), call_for(text + "x")
    assert longest_get.method == "GET"
    assert len(longest_get.path.split("?", 1)[1]) <= inventory_v3.MAX_QUERY_STRING
    assert shortest_post.method == "POST" and "?" not in shortest_post.path
    assert shortest_post.path == longest_get.path.split("?", 1)[0]
    assert msgspec.json.decode(shortest_post.body) == {
        "query": {"filter": {"productId": text + "x"}, "cursorPaging": {"limit": 10}}
    }
    r_of_post = base64.urlsafe_b64encode(shortest_post.body).rstrip(b"=")
    assert len(".r=") + len(r_of_post) > inventory_v3.MAX_QUERY_STRING


async def test_over_aiohttp_a_get_carries_no_body_and_no_content_type() -> None:
    """Over real HTTP the V3 reads go out as the SDK's: no body, no Content-Type, the ``.r``
    parameter intact; the writes carry their JSON with ``Content-Type: application/json``."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(
            (request.method, str(request.rel_url), dict(request.headers), await request.read())
        )
        if request.path.endswith("/query"):
            return web.json_response({"inventoryItems": []})
        return web.json_response({"results": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        auth = ApiKeyAuth("KEY", site_id="SITE")
        async with InventoryClient(auth, base_url=f"http://127.0.0.1:{port}", rate_limit=None) as c:
            await c.query_inventory_items(filter={"productId": PRODUCT}, limit=100)
            await c.bulk_decrement_inventory_items(
                [DecrementDataById(inventory_item_id=ID1, decrement_by=1)]
            )
    finally:
        await runner.cleanup()
    (get_method, get_url, get_headers, get_body), (post_method, _, post_headers, post_body) = seen
    assert get_method == "GET" and get_body == b""
    assert "Content-Type" not in get_headers and "Content-Length" not in get_headers
    assert get_url == "/stores/v3/inventory-items/query?.r=" + REQUESTS[10]["query"][".r"]
    assert get_headers["Authorization"] == "KEY" and get_headers["wix-site-id"] == "SITE"
    assert post_method == "POST" and post_headers["Content-Type"] == "application/json"
    assert msgspec.json.decode(post_body) == REQUESTS[2]["body"]


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.text(max_size=20)
    | st.integers(100, 800).map(lambda n: 'aé"/' * n),  # long: crosses the threshold
    lambda inner: (
        st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(
    filter=st.dictionaries(st.text(min_size=1, max_size=10), _json_values, max_size=6),
    limit=st.integers(1, 1000),
    search=st.booleans(),
)
def test_any_query_travels_whole_by_get_or_post(
    filter: dict[str, Any], limit: int, search: bool
) -> None:
    """For any filter: a GET exactly when ``.r=...`` fits in 4000 characters, and the server
    decodes the same request either way (``.r`` or the POST body)."""
    build = inventory_v3.search_items if search else inventory_v3.query_items
    call = build(filter=filter, limit=limit)
    verb = "search" if search else "query"
    expected = {verb: {"filter": filter, "cursorPaging": {"limit": limit}}}
    body = msgspec.json.encode(expected)
    fits = len(".r=" + base64.urlsafe_b64encode(body).rstrip(b"=").decode()) <= 4000
    event(call.method)  # both are drawn (--hypothesis-show-statistics)
    if call.method == "GET":
        assert fits and call.body == b""
        assert decoded_query("https://x" + call.path) == {".r": expected}
    else:
        assert not fits and call.method == "POST" and msgspec.json.decode(call.body) == expected
