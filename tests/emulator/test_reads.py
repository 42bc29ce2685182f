"""Query Inventory and Get Inventory Variants over HTTP: the query language and the 10k limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wixinv_async.emulator import Emulator

READ_PREFIXES = ["/stores-reader/v2/inventoryItems", "/stores/v2/inventoryItems"]


def nids(data: dict[str, Any]) -> list[int]:
    return [int(item["numericId"]) for item in data["inventoryItems"]]


@pytest.mark.parametrize("prefix", READ_PREFIXES)
async def test_query_pages_in_numeric_id_order_under_both_prefixes(api: Any, prefix: str) -> None:
    """A query without sort pages through items in numericId order, with metadata and total."""
    status, data = await api.query({"paging": {"limit": 10, "offset": 5}}, prefix)
    assert status == 200
    every = [int(i.numeric_id) for i in api.emu.store.items()]
    assert nids(data) == every[5:15]
    assert data["metadata"] == {"items": 10, "offset": 5}
    assert data["totalResults"] == 40


async def test_empty_body_query_returns_the_first_100(api: Any) -> None:
    """A query with no paging returns up to 100 items (all 40 here)."""
    status, data, _ = await api.call("POST", READ_PREFIXES[0] + "/query", None)
    assert status == 200
    assert len(data["inventoryItems"]) == 40


async def test_items_are_in_wire_format(api: Any) -> None:
    """Items carry the Wix fields: externalId equals productId, numericId a 16-digit string."""
    _, data = await api.query({"paging": {"limit": 1}})
    item = data["inventoryItems"][0]
    assert set(item) == {
        "id",
        "externalId",
        "productId",
        "trackQuantity",
        "variants",
        "lastUpdated",
        "numericId",
        "preorderInfo",
    }
    assert item["externalId"] == item["productId"]
    assert len(item["numericId"]) == 16 and item["numericId"].isdigit()
    assert item["lastUpdated"].endswith("Z")


async def test_keyset_crawl_by_numeric_id_sees_every_item_once(api: Any) -> None:
    """Crawling numericId $gt the last seen value, sorted asc, yields every item exactly once."""
    seen: list[int] = []
    last = 0
    while True:
        filter_ = json.dumps({"numericId": {"$gt": last}})
        _, data = await api.query(
            {"paging": {"limit": 7}, "filter": filter_, "sort": '[{"numericId":"asc"}]'}
        )
        if not data["inventoryItems"]:
            break
        seen.extend(nids(data))
        last = seen[-1]
    assert seen == [int(i.numeric_id) for i in api.emu.store.items()]


@pytest.mark.parametrize(
    ("make_filter", "expected"),
    [
        (lambda ids: {"numericId": {"$gte": ids[3], "$lt": ids[6]}}, lambda ids: ids[3:6]),
        (lambda ids: {"numericId": {"$lte": ids[2]}}, lambda ids: ids[:3]),
        (lambda ids: {"numericId": ids[4]}, lambda ids: ids[4:5]),
        (lambda ids: {"numericId": {"$eq": str(ids[4])}}, lambda ids: ids[4:5]),
        (lambda ids: {"numericId": {"$ne": ids[0]}}, lambda ids: ids[1:]),
        (lambda ids: {"numericId": {"$in": [ids[1], ids[9]]}}, lambda ids: [ids[1], ids[9]]),
        (lambda ids: {"numericId": {"$hasSome": [ids[2]]}}, lambda ids: [ids[2]]),
        (
            lambda ids: {"$or": [{"numericId": ids[0]}, {"numericId": ids[5]}]},
            lambda ids: [ids[0], ids[5]],
        ),
        (
            lambda ids: {"$and": [{"numericId": {"$gt": ids[1]}}, {"numericId": {"$lt": ids[4]}}]},
            lambda ids: ids[2:4],
        ),
        (lambda ids: {"numericId": {"$gt": ids[-1]}}, lambda ids: []),
    ],
)
async def test_numeric_id_operators(api: Any, make_filter: Any, expected: Any) -> None:
    """Every operator on numericId selects exactly the expected items."""
    ids = [int(i.numeric_id) for i in api.emu.store.items()]
    _, data = await api.query({"filter": json.dumps(make_filter(ids))})
    assert nids(data) == expected(ids)
    assert data["totalResults"] == len(expected(ids))


async def test_filter_by_product_ids_and_external_id_and_id(api: Any) -> None:
    """productId $in, externalId $eq and id $eq select the named items."""
    items = api.emu.store.items()
    for filter_, wanted in [
        ({"productId": {"$in": [items[3].product_id, items[7].product_id]}}, [items[3], items[7]]),
        ({"productId": {"$hasSome": [items[1].product_id]}}, [items[1]]),
        ({"externalId": items[5].product_id}, [items[5]]),
        ({"id": {"$eq": items[6].id}}, [items[6]]),
    ]:
        _, data = await api.query({"filter": json.dumps(filter_)})
        assert [i["id"] for i in data["inventoryItems"]] == [w.id for w in wanted]


async def test_filter_by_track_quantity(api: Any) -> None:
    """trackQuantity false selects the untracked items only."""
    _, data = await api.query({"filter": '{"trackQuantity": false}'})
    expected = [i.id for i in api.emu.store.items() if not i.track_quantity]
    assert expected
    assert [i["id"] for i in data["inventoryItems"]] == expected


async def test_last_updated_filter_and_sort(api: Any) -> None:
    """lastUpdated $gt a time returns the items changed after it, newest first when sorted desc."""
    items = api.emu.store.items()
    cut = max(i.last_updated for i in items)
    touched = api.emu.store.add_product()
    api.emu.store.set_quantity(items[2].product_id, items[2].variants[0].variant_id, 5)
    status, data = await api.query(
        {"filter": json.dumps({"lastUpdated": {"$gt": cut}}), "sort": '[{"lastUpdated":"desc"}]'}
    )
    assert status == 200
    assert [i["id"] for i in data["inventoryItems"]] == [items[2].id, touched.id]


async def test_sort_numeric_id_desc(api: Any) -> None:
    """sort numericId desc pages from the highest numericId down."""
    ids = [int(i.numeric_id) for i in api.emu.store.items()]
    _, data = await api.query(
        {"paging": {"limit": 5, "offset": 2}, "sort": '[{"numericId":"desc"}]'}
    )
    assert nids(data) == sorted(ids, reverse=True)[2:7]


async def test_sort_desc_with_residual_filter(api: Any) -> None:
    """A non-range filter combined with a descending sort keeps both."""
    _, data = await api.query(
        {"filter": '{"trackQuantity": true}', "sort": '[{"numericId":"desc"}]'}
    )
    expected = [int(i.numeric_id) for i in api.emu.store.items() if i.track_quantity][::-1]
    assert nids(data) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"paging": {"limit": 101}}, "query.paging.limit"),
        ({"paging": {"limit": 0}}, "query.paging.limit"),
        ({"paging": {"offset": -1}}, "query.paging.offset"),
        ({"filter": {"numericId": 1}}, "query.filter"),
        ({"filter": "{not json"}, "query.filter"),
        ({"filter": '{"numericId": {"$regex": "1"}}'}, "query.filter"),
        ({"filter": '{"$not": {"numericId": 1}}'}, "query.filter"),
        ({"filter": '{"price": 1}'}, "query.filter"),
        ({"filter": '{"numericId": {"$gt": "abc"}}'}, "query.filter"),
        ({"filter": '{"lastUpdated": {"$gt": "yesterday"}}'}, "query.filter"),
        ({"filter": '{"numericId": {"$gt": "1\u00b2"}}'}, "query.filter"),  # superscript 2
        ({"filter": '{"numericId": {"$gt": "\u0663"}}'}, "query.filter"),  # Arabic-Indic 3
        ({"filter": '{"trackQuantity": {"$gt": true}}'}, "query.filter"),
        ({"filter": '{"productId": {"$in": "p"}}'}, "query.filter"),
        ({"filter": "[1]"}, "query.filter"),
        ({"sort": [{"numericId": "asc"}]}, "query.sort"),
        ({"sort": "[{"}, "query.sort"),
        ({"sort": '[{"productId": "asc"}]'}, "query.sort"),
        ({"sort": '[{"numericId": "up"}]'}, "query.sort"),
        ({"paging": {"limit": 10}, "fields": ["x"]}, "query.fields"),
    ],
)
async def test_bad_queries_are_400_naming_the_field(
    api: Any, query: dict[str, Any], field: str
) -> None:
    """Bad limits, filters and sorts get 400 with a fieldViolation on the offending field."""
    status, data = await api.query(query)
    assert status == 400
    assert data["details"]["validationError"]["fieldViolations"][0]["field"] == field


async def test_offset_past_10000_is_refused_with_crawl_advice() -> None:
    """offset + limit beyond 10,000 is a 400 saying to crawl by numericId; exactly 10,000 works."""
    async with Emulator(products=10_050, variants_per_product=1, seed=2) as emu:
        import aiohttp

        headers = {"Authorization": emu.api_key, "wix-site-id": emu.site_id}
        url = emu.url + READ_PREFIXES[0] + "/query"
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(
                url, json={"query": {"paging": {"limit": 100, "offset": 9_900}}}
            ) as ok:
                assert ok.status == 200
                assert len((await ok.json())["inventoryItems"]) == 100
            async with session.post(
                url, json={"query": {"paging": {"limit": 100, "offset": 9_901}}}
            ) as refused:
                body = await refused.json()
    assert refused.status == 400
    assert "numericId" in body["message"]
    assert (
        body["details"]["validationError"]["fieldViolations"][0]["field"] == "query.paging.offset"
    )


# --- Get Inventory Variants ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", READ_PREFIXES)
async def test_get_variants_by_inventory_id(api: Any, prefix: str) -> None:
    """getVariants returns the item with all its variants, under both prefixes."""
    item = api.emu.store.items()[0]
    status, data, _ = await api.call(
        "POST", f"{prefix}/{item.id}/getVariants", {"inventoryId": item.id}
    )
    assert status == 200
    assert data["inventoryItem"]["id"] == item.id
    assert len(data["inventoryItem"]["variants"]) == len(item.variants)


async def test_get_variants_filters_variant_ids(api: Any) -> None:
    """variantIds keeps only the variants named; unknown ones are left out."""
    item = next(i for i in api.emu.store.items() if len(i.variants) > 1)
    wanted = [item.variants[1].variant_id, "11111111-2222-4333-8444-555555555555"]
    _, data, _ = await api.call(
        "POST",
        f"{READ_PREFIXES[0]}/{item.id}/getVariants",
        {"inventoryId": item.id, "variantIds": wanted},
    )
    assert [v["variantId"] for v in data["inventoryItem"]["variants"]] == wanted[:1]


async def test_get_variants_by_product_id(api: Any) -> None:
    """A productId in the body looks the item up by product."""
    item = api.emu.store.items()[4]
    _, data, _ = await api.call(
        "POST", f"{READ_PREFIXES[0]}/{item.product_id}/getVariants", {"productId": item.product_id}
    )
    assert data["inventoryItem"]["productId"] == item.product_id


@pytest.mark.parametrize(
    ("path_id", "body", "status"),
    [
        ("unknown", {}, 404),
        ("x" * 37, {}, 400),
        ("ID", {"inventoryId": "other"}, 400),
        ("ID", {"variantIds": ["bad"]}, 400),
        ("ID", {"variantIds": "bad"}, 400),
    ],
)
async def test_get_variants_errors(
    api: Any, path_id: str, body: dict[str, Any], status: int
) -> None:
    """Unknown items are 404; long ids, mismatched ids and bad variant ids are 400."""
    item_id = api.emu.store.items()[0].id
    path_id = item_id if path_id == "ID" else path_id
    got, data, _ = await api.call("POST", f"{READ_PREFIXES[0]}/{path_id}/getVariants", body)
    assert got == status
    assert data["message"]
