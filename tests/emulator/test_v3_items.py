"""Catalog V3 single-item calls over HTTP: get, update with revision, bulk update, update by
filter, delete, and two writers racing on one item."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

V3 = "/stores/v3"
MISSING = "11111111-1111-1111-1111-111111111111"


async def _patch(api3: Any, item_id: str, item: dict[str, Any], **extra: Any) -> tuple[int, Any]:
    status, data, _ = await api3.call(
        "PATCH", f"{V3}/inventory-items/{item_id}", {"inventoryItem": item, **extra}
    )
    return status, data


async def test_get_answers_the_item_404_unknown_400_malformed(api3: Any) -> None:
    """GET by id: the item as the store holds it; unknown id 404 NOT_FOUND; not a GUID 400."""
    item = api3.tracked3()
    status, data = await api3.get(item["id"])
    assert (status, data) == (200, {"inventoryItem": item})
    status, data = await api3.get(MISSING)
    assert status == 404 and data["details"]["applicationError"]["code"] == "NOT_FOUND"
    status, data = await api3.get("nope")
    assert status == 400
    assert data["details"]["validationError"]["fieldViolations"][0]["field"] == "inventoryItemId"


async def test_update_with_the_current_revision_applies_and_bumps_it(api3: Any) -> None:
    """PATCH with the revision read: applied, revision + 1, updatedDate moves, reason journaled."""
    item = api3.tracked3()
    change = {"id": item["id"], "revision": item["revision"], "quantity": 10}
    status, data = await _patch(api3, item["id"], change, reason="MANUAL")
    assert status == 200, data
    shown = data["inventoryItem"]
    assert (shown["quantity"], shown["revision"]) == (10, str(int(item["revision"]) + 1))
    assert shown["updatedDate"] > item["updatedDate"]
    (entry,) = api3.emu.journal()
    assert entry.endpoint == "updateInventoryItem"
    assert entry.entries[0]["reason"] == "MANUAL" and entry.entries[0]["quantity"] == 10
    assert (entry.entries[0]["quantityBefore"], entry.entries[0]["quantityAfter"]) == (
        item["quantity"],
        10,
    )


async def test_update_with_a_stale_revision_is_409_and_changes_nothing(api3: Any) -> None:
    """A revision that is not the current one: 409 REVISION_MISMATCH with the current one."""
    item = api3.tracked3()
    first = {"revision": item["revision"], "quantity": 7}
    assert (await _patch(api3, item["id"], first))[0] == 200
    status, data = await _patch(api3, item["id"], {"revision": item["revision"], "quantity": 8})
    assert status == 409
    error = data["details"]["applicationError"]
    assert error["code"] == "REVISION_MISMATCH"
    assert error["data"]["currentRevision"] == str(int(item["revision"]) + 1)
    assert api3.store3().find(item["id"]).quantity == 7


@pytest.mark.parametrize(
    ("change", "status", "code_or_field"),
    [
        ({"quantity": 1}, 400, "inventoryItem.revision"),
        ({"revision": "1", "quantity": 1, "inStock": True}, 400, "inventoryItem"),
        ({"revision": "1", "quantity": 100_000}, 400, "inventoryItem.quantity"),
        (
            {"revision": "1", "quantity": -1},
            428,
            "REQUESTED_QUANTITY_MUST_BE_NON_NEGATIVE_DECREASING",
        ),
        ({"revision": "1", "productId": "other"}, 400, "IMMUTABLE_FIELD"),
        ({"revision": "1", "id": MISSING}, 400, "inventoryItem.id"),
        ({"revision": "1", "colour": "red"}, 400, "inventoryItem.colour"),
        (
            {"revision": "1", "preorderInfo": {"message": ""}},
            400,
            "inventoryItem.preorderInfo.message",
        ),
    ],
)
async def test_update_refusals(
    api3: Any, change: dict[str, Any], status: int, code_or_field: str
) -> None:
    """Missing revision, both tracking methods, out-of-range values, immutable or unknown fields:
    each refused with its status, naming the field or the code; nothing changes."""
    item = api3.tracked3()
    before = api3.store3().items()
    got, data = await _patch(api3, item["id"], change)
    assert got == status, data
    details = data["details"]
    if "validationError" in details:
        assert details["validationError"]["fieldViolations"][0]["field"] == code_or_field
    else:
        assert details["applicationError"]["code"] == code_or_field
    assert api3.store3().items() == before


async def test_update_switches_the_tracking_method(api3: Any) -> None:
    """inStock switches a tracked item to tracking by status; quantity switches it back."""
    item = api3.tracked3()
    _, data = await _patch(api3, item["id"], {"revision": item["revision"], "inStock": True})
    shown = data["inventoryItem"]
    assert shown["trackQuantity"] is False and shown["inStock"] is True and "quantity" not in shown
    _, data = await _patch(api3, item["id"], {"revision": shown["revision"], "quantity": 3})
    assert data["inventoryItem"]["trackQuantity"] is True
    assert data["inventoryItem"]["quantity"] == 3


async def test_preorder_limit_on_an_untracked_item_is_a_preorder_validation_error(
    api3: Any,
) -> None:
    """preorderInfo.limit is supported only for tracked items: 428 PRE_ORDER_VALIDATION."""
    item = api3.untracked3()
    change = {"revision": item["revision"], "preorderInfo": {"enabled": True, "limit": 5}}
    status, data = await _patch(api3, item["id"], change)
    assert status == 428 and data["details"]["applicationError"]["code"] == "PRE_ORDER_VALIDATION"
    enable = {"revision": item["revision"], "preorderInfo": {"enabled": True, "message": "Soon"}}
    status, data = await _patch(api3, item["id"], enable)
    assert status == 200 and data["inventoryItem"]["preorderInfo"] == {
        "enabled": True,
        "message": "Soon",
    }


async def test_two_concurrent_writers_lose_no_update(api3: Any) -> None:
    """Two read-modify-write loops adding to one item: conflicts are 409s, retried after a fresh
    read, and the final quantity holds every addition."""
    item = api3.tracked3()
    conflicts = 0

    async def add(times: int) -> None:
        nonlocal conflicts
        for _ in range(times):
            while True:
                _, read = await api3.get(item["id"])
                now = read["inventoryItem"]
                change = {"revision": now["revision"], "quantity": now["quantity"] + 1}
                status, _ = await _patch(api3, item["id"], change)
                if status == 200:
                    break
                assert status == 409
                conflicts += 1

    await asyncio.gather(add(15), add(15))
    final = api3.store3().find(item["id"])
    assert final.quantity == item["quantity"] + 30
    assert final.revision == int(item["revision"]) + 30
    assert conflicts > 0


async def test_bulk_update_settles_each_entry(api3: Any) -> None:
    """Bulk update: a good entry applied, a stale revision and an unknown id refused per item."""
    good, stale = api3.tracked3(), api3.untracked3()
    body = {
        "inventoryItems": [
            {"inventoryItem": {"id": good["id"], "revision": good["revision"], "quantity": 4}},
            {"inventoryItem": {"id": stale["id"], "revision": "999", "inStock": False}},
            {"inventoryItem": {"id": MISSING, "revision": "1", "quantity": 1}},
        ],
        "returnEntity": True,
    }
    data = await api3.bulk("update", body)
    meta = [r["itemMetadata"] for r in data["results"]]
    assert [m["success"] for m in meta] == [True, False, False]
    assert [m.get("error", {}).get("code") for m in meta[1:]] == ["REVISION_MISMATCH", "NOT_FOUND"]
    assert data["results"][0]["item"]["quantity"] == 4
    assert api3.store3().find(stale["id"]).in_stock == stale["inStock"]
    missing = {"inventoryItems": [{"inventoryItem": {"id": good["id"], "quantity": 1}}]}
    refused = await api3.bulk("update", missing, expect=400)
    field = refused["details"]["validationError"]["fieldViolations"][0]["field"]
    assert field == "inventoryItems[0].inventoryItem.revision"


async def test_update_by_filter_changes_every_match_and_answers_a_job_id(api3: Any) -> None:
    """update-by-filter applies to every matching item at once, each revision + 1."""
    item = api3.tracked3()
    matches = [i for i in api3.store3().items() if i["productId"] == item["productId"]]
    body = {"filter": {"productId": item["productId"]}, "inventoryItem": {"inStock": False}}
    data = await api3.bulk("update-by-filter", body)
    assert len(data["jobId"]) == 36
    for before in matches:
        after = api3.store3().find(before["id"])
        assert after.track is False and after.in_stock is False
        assert after.revision == int(before["revision"]) + 1
    bad = await api3.bulk(
        "update-by-filter", {"filter": {"colour": "red"}, "inventoryItem": {}}, expect=400
    )
    assert bad["details"]["validationError"]["fieldViolations"][0]["field"] == "filter.colour"


async def test_delete_removes_the_item_from_every_lookup(api3: Any) -> None:
    """DELETE: {} then 404 for get, update and by-variant-and-location entries."""
    item = api3.tracked3()
    status, data, _ = await api3.call("DELETE", f"{V3}/inventory-items/{item['id']}")
    assert (status, data) == (200, {})
    assert (await api3.get(item["id"]))[0] == 404
    status, _, _ = await api3.call("DELETE", f"{V3}/inventory-items/{item['id']}")
    assert status == 404
    entry = {"variantId": item["variantId"], "decrementBy": 1}
    data = await api3.bulk("decrement-by-variant-and-location", {"decrementData": [entry]})
    assert data["results"][0]["itemMetadata"]["error"]["code"] == "NOT_FOUND"


async def test_a_preorder_limit_below_the_counter_is_refused_in_a_bulk_update(api3: Any) -> None:
    """After preordering below zero, a limit under the counter fails PRE_ORDER_VALIDATION."""
    item = api3.tracked3()
    enable = {"revision": item["revision"], "preorderInfo": {"enabled": True, "limit": 10}}
    assert (await _patch(api3, item["id"], enable))[0] == 200
    entry = {
        "inventoryItemId": item["id"],
        "decrementBy": item["quantity"] + 4,
        "preorderRequest": True,
    }
    await api3.bulk("decrement", {"decrementData": [entry]})
    revision = str(api3.store3().find(item["id"]).revision)
    change = {"id": item["id"], "revision": revision, "preorderInfo": {"limit": 3}}
    result = await api3.bulk("update", {"inventoryItems": [{"inventoryItem": change}]})
    meta = result["results"][0]["itemMetadata"]
    assert meta["error"]["code"] == "PRE_ORDER_VALIDATION"
    assert meta["error"]["data"] == {"limit": 3, "counter": 4}
    assert api3.store3().find(item["id"]).preorder_limit == 10
