"""Catalog V3 query and search over HTTP: GET ``.r`` and POST, filters, sorts, keyset cursors."""

from __future__ import annotations

import random
from typing import Any

import pytest

from wixinv_async.emulator import Emulator

V3 = "/stores/v3"


async def _query(api3: Any, query: dict[str, Any]) -> dict[str, Any]:
    status, data = await api3.query_get("query", {"query": query})
    assert status == 200, data
    return data


async def _all(api3: Any, kind: str, request: dict[str, Any], limit: int = 7) -> list[Any]:
    """Every page of a query or search, following next cursors."""
    key = "query" if kind == "query" else "search"
    body = {key: {**request, "cursorPaging": {"limit": limit}}}
    seen = []
    while True:
        status, data = await api3.query_get(kind, body)
        assert status == 200, data
        seen += data["inventoryItems"]
        cursor = data["pagingMetadata"]["cursors"]["next"]
        assert data["pagingMetadata"]["hasNext"] is (cursor is not None)
        if cursor is None:
            return seen
        body = {key: {"cursorPaging": {"limit": limit, "cursor": cursor}}}


def _field(item: dict[str, Any], name: str) -> Any:
    value: Any = item
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


async def test_get_with_r_and_post_body_answer_the_same(api3: Any) -> None:
    """The SDK's GET (base64url JSON in .r) and its POST fallback are the same query."""
    query = {"filter": {"quantity": {"$gt": 3}}, "cursorPaging": {"limit": 5}}
    by_get = await _query(api3, query)
    status, by_post, _ = await api3.call("POST", f"{V3}/inventory-items/query", {"query": query})
    assert status == 200 and by_post == by_get
    assert by_get["pagingMetadata"]["count"] == 5


FILTERS = [
    (
        {"quantity": {"$gt": 100}},
        lambda i: _field(i, "quantity") is not None and i["quantity"] > 100,
    ),
    (
        {"quantity": {"$gte": 0, "$lte": 10}},
        lambda i: i.get("quantity") is not None and 0 <= i["quantity"] <= 10,
    ),
    ({"quantity": {"$lt": 5}}, lambda i: i.get("quantity") is not None and i["quantity"] < 5),
    ({"quantity": {"$ne": 0}}, lambda i: i.get("quantity") != 0),
    ({"inStock": True}, lambda i: i.get("inStock") is True),
    ({"inStock": {"$eq": False}}, lambda i: i.get("inStock") is False),
    ({"trackQuantity": False}, lambda i: i["trackQuantity"] is False),
    (
        {"$or": [{"inStock": True}, {"quantity": {"$gt": 500}}]},
        lambda i: i.get("inStock") is True or (i.get("quantity") or 0) > 500,
    ),
    (
        {"$and": [{"trackQuantity": True}, {"quantity": {"$lte": 50}}]},
        lambda i: i["trackQuantity"] and i["quantity"] <= 50,
    ),
    (
        {"availabilityStatus": {"$in": ["OUT_OF_STOCK", "PREORDER"]}},
        lambda i: i["availabilityStatus"] != "IN_STOCK",
    ),
    ({"preorderInfo.enabled": True}, lambda i: i["preorderInfo"]["enabled"]),
    ({"product.variantSku": {"$startsWith": "sku-"}}, lambda i: True),
    ({"quantity": {"$exists": False}}, lambda i: "quantity" not in i),
    ({"$not": {"trackQuantity": True}}, lambda i: not i["trackQuantity"]),
]


@pytest.mark.parametrize(("filter_", "expected"), FILTERS)
async def test_filters_match_exactly_the_items_they_describe(
    api3: Any, filter_: dict[str, Any], expected: Any
) -> None:
    """Each operator returns exactly the items the predicate picks, across pages."""
    got = await _all(api3, "query", {"filter": filter_}, limit=50)
    want = [i for i in api3.store3().items() if expected(i)]
    assert sorted(i["id"] for i in got) == sorted(i["id"] for i in want)
    assert want


@pytest.mark.parametrize(
    "field", ["id", "productId", "variantId", "locationId", "product.variantSku"]
)
async def test_equality_and_in_on_id_fields(api3: Any, field: str) -> None:
    """$eq, $in and $ne on id-like fields (and the SKU) pick by value."""
    items = api3.store3().items()
    values = sorted({_field(i, field) for i in items})[:3]
    got = await _all(api3, "query", {"filter": {field: {"$in": values}}}, limit=100)
    assert sorted(_field(i, field) for i in got) == sorted(
        _field(i, field) for i in items if _field(i, field) in values
    )
    one = await _all(api3, "query", {"filter": {field: values[0]}}, limit=100)
    assert {_field(i, field) for i in one} == {values[0]}
    rest = await _all(api3, "query", {"filter": {field: {"$ne": values[0]}}}, limit=100)
    assert len(rest) + len(one) == len(items)


async def test_date_filters_take_rfc3339_strings_or_date_objects(api3: Any) -> None:
    """updatedDate compares by time: strings and {"$date": ...} alike."""
    items = sorted(api3.store3().items(), key=lambda i: i["updatedDate"])
    middle = items[len(items) // 2]["updatedDate"]
    later = await _all(api3, "query", {"filter": {"updatedDate": {"$gt": middle}}}, limit=100)
    assert {i["id"] for i in later} == {i["id"] for i in items if i["updatedDate"] > middle}
    same = await _all(
        api3, "query", {"filter": {"updatedDate": {"$gt": {"$date": middle}}}}, limit=100
    )
    assert same == later


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        (
            [{"fieldName": "quantity", "order": "DESC"}],
            lambda i: (-(i.get("quantity") if "quantity" in i else -(10**9)), i["id"]),
        ),
        ([{"fieldName": "product.name"}, {"fieldName": "createdDate", "order": "DESC"}], None),
        ([{"fieldName": "updatedDate", "order": "ASC"}], lambda i: (i["updatedDate"], i["id"])),
    ],
)
async def test_sorts_order_every_page_and_ties_break_by_id(
    api3: Any, sort: list[Any], key: Any
) -> None:
    """Paging a sorted query yields every item once, in the sort order (id breaks ties)."""
    got = await _all(api3, "query", {"sort": sort}, limit=9)
    items = api3.store3().items()
    assert sorted(i["id"] for i in got) == sorted(i["id"] for i in items)
    if key is None:
        key = lambda i: (i["product"]["name"], tuple(-ord(c) for c in i["createdDate"]), i["id"])  # noqa: E731
    assert [i["id"] for i in got] == [i["id"] for i in sorted(items, key=key)]


async def test_no_sort_means_id_order(api3: Any) -> None:
    """Without a sort the order is id ascending."""
    got = await _all(api3, "query", {}, limit=1000)
    assert [i["id"] for i in got] == sorted(i["id"] for i in api3.store3().items())


async def test_prev_cursor_returns_the_previous_page(api3: Any) -> None:
    """cursors.prev of page two gives page one back; page one has no prev."""
    first = await _query(api3, {"cursorPaging": {"limit": 4}, "sort": [{"fieldName": "quantity"}]})
    assert first["pagingMetadata"]["cursors"]["prev"] is None
    cursor = first["pagingMetadata"]["cursors"]["next"]
    second = await _query(api3, {"cursorPaging": {"limit": 4, "cursor": cursor}})
    back = await _query(
        api3, {"cursorPaging": {"limit": 4, "cursor": second["pagingMetadata"]["cursors"]["prev"]}}
    )
    assert back["inventoryItems"] == first["inventoryItems"]


async def test_search_free_text_over_the_searchable_fields(api3: Any) -> None:
    """search.search.expression matches the product name, variant name or SKU, case-insensitively."""
    item = api3.store3().items()[0]
    sku = item["product"]["variantSku"]
    got = await _all(api3, "search", {"search": {"expression": sku.lower()}})
    assert [i["id"] for i in got] == [
        i["id"]
        for i in sorted(api3.store3().items(), key=lambda i: i["id"])
        if i["product"]["variantSku"] == sku
    ]
    either = {"expression": f"{sku} zzzz", "mode": "OR"}
    assert await _all(api3, "search", {"search": either}) == got
    both = {"expression": f"{sku} zzzz", "mode": "AND"}
    assert await _all(api3, "search", {"search": both}) == []


@pytest.mark.parametrize(
    ("kind", "request_", "field"),
    [
        ("query", {"query": {"cursorPaging": {"limit": 0}}}, "query.cursorPaging.limit"),
        ("query", {"query": {"cursorPaging": {"limit": 1001}}}, "query.cursorPaging.limit"),
        ("query", {"query": {"sort": [{"fieldName": "quantity"}] * 11}}, "query.sort"),
        ("query", {"query": {"sort": [{"fieldName": "id"}]}}, "query.sort[0].fieldName"),
        (
            "query",
            {"query": {"sort": [{"fieldName": "quantity", "order": "UP"}]}},
            "query.sort[0].order",
        ),
        ("query", {"query": {"filter": {"colour": "red"}}}, "query.filter.colour"),
        ("query", {"query": {"filter": {"quantity": {"$near": 3}}}}, "query.filter.quantity.$near"),
        ("query", {"query": {"filter": {"quantity": "many"}}}, "query.filter.quantity.$eq"),
        ("query", {"query": {"cursorPaging": {"cursor": "garbage"}}}, "query.cursorPaging.cursor"),
        (
            "query",
            {"query": {"cursorPaging": {"cursor": "x" * 16_001}}},
            "query.cursorPaging.cursor",
        ),
        (
            "query",
            {"query": {"paging": {"limit": 5}, "cursorPaging": {"limit": 5}}},
            "query.paging",
        ),
        ("query", {"query": {"fields": ["id"]}}, "query.fields"),
        ("search", {"search": {"aggregations": [{"name": "x"}]}}, "search.aggregations"),
        (
            "search",
            {"search": {"search": {"expression": "a", "fields": ["productId"]}}},
            "search.search.fields[0]",
        ),
    ],
)
async def test_invalid_queries_are_400_naming_the_field(
    api3: Any, kind: str, request_: dict[str, Any], field: str
) -> None:
    """Limits from the typings, unsortable or unknown fields, bad operators and cursors: 400."""
    if len(str(request_)) > 4000:  # too long for a URL: the SDK sends such a query as a POST
        status, data, _ = await api3.call("POST", f"{V3}/inventory-items/{kind}", request_)
    else:
        status, data = await api3.query_get(kind, request_)
    assert status == 400, data
    assert data["details"]["validationError"]["fieldViolations"][0]["field"] == field


async def test_a_cursor_sent_with_a_filter_or_to_the_other_call_is_refused(api3: Any) -> None:
    """A cursor carries its query: with a filter, or given to search, it is a 400."""
    first = await _query(api3, {"cursorPaging": {"limit": 2}})
    cursor = first["pagingMetadata"]["cursors"]["next"]
    status, _ = await api3.query_get(
        "query", {"query": {"cursorPaging": {"cursor": cursor}, "filter": {"inStock": True}}}
    )
    assert status == 400
    status, _ = await api3.query_get("search", {"search": {"cursorPaging": {"cursor": cursor}}})
    assert status == 400


async def test_offset_paging(api3: Any) -> None:
    """paging {limit, offset} slices the ordered matches."""
    everything = await _all(api3, "query", {}, limit=1000)
    data = await _query(api3, {"paging": {"limit": 5, "offset": 10}})
    assert data["inventoryItems"] == everything[10:15]


@pytest.mark.slow
async def test_paging_25000_items_while_they_change_reads_each_exactly_once(v3_api_of: Any) -> None:
    """A 25,000-item crawl by createdDate, with bulk decrements, updates and new stock between
    pages, sees every item exactly once (keyset cursors on the sort key and id)."""
    seed = 25
    rng = random.Random(seed)
    async with Emulator(products=25_000, variants_per_product=1, seed=seed, catalog="v3") as emu:
        api = v3_api_of(emu)
        store = emu.v3_store()
        ids = [i.id for i in store.records()]
        tracked = [i.id for i in store.records() if i.track]
        body: dict[str, Any] = {
            "query": {"sort": [{"fieldName": "createdDate"}], "cursorPaging": {"limit": 1000}}
        }
        seen: list[str] = []
        while True:
            status, data = await api.query_get("query", body)
            assert status == 200, data
            seen += [i["id"] for i in data["inventoryItems"]]
            changes = [{"inventoryItemId": i, "incrementBy": 1} for i in rng.sample(tracked, 300)]
            await api.bulk("increment", {"incrementData": changes})
            item = store.find(rng.choice(tracked))
            change = {"inventoryItem": {"revision": str(item.revision), "inStock": True}}
            status, _, _ = await api.call("PATCH", f"{V3}/inventory-items/{item.id}", change)
            assert status == 200
            cursor = data["pagingMetadata"]["cursors"]["next"]
            if cursor is None:
                break
            body = {"query": {"cursorPaging": {"limit": 1000, "cursor": cursor}}}
        assert len(seen) == len(set(seen)) == 25_000, f"seed {seed}"
        assert set(seen) == set(ids)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({".r": "!!!"}, ".r"),
        ({".r": "e30", "limit": "5"}, "limit"),
        ({".r": "bm90IGpzb24"}, ".r"),
    ],
)
async def test_a_malformed_get_query_is_400(api3: Any, params: dict[str, str], field: str) -> None:
    """.r that is not base64url JSON, or a parameter beside it: 400 naming it."""
    async with api3.session.get(
        f"{api3.emu.url}{V3}/inventory-items/query", params=params, headers=api3.headers
    ) as response:
        assert response.status == 400
        data = await response.json()
    assert data["details"]["validationError"]["fieldViolations"][0]["field"] == field


async def test_get_item_query_parameter_must_match_the_path(api3: Any) -> None:
    """The SDK also sends ?inventoryItemId=; one that differs from the path is a 400."""
    item = api3.tracked3()
    url = f"{api3.emu.url}{V3}/inventory-items/{item['id']}"
    async with api3.session.get(
        url, params={"inventoryItemId": item["id"]}, headers=api3.headers
    ) as r:
        assert r.status == 200
    other = "22222222-2222-2222-2222-222222222222"
    async with api3.session.get(url, params={"inventoryItemId": other}, headers=api3.headers) as r:
        assert r.status == 400
