"""Catalog V3 bulk increments and decrements over HTTP: per-item results, limits, preorder."""

from __future__ import annotations

from typing import Any

import pytest

from wixinv_async.emulator import Emulator, FaultPlan, FaultRule

MISSING = "11111111-1111-1111-1111-111111111111"


def _by_id(api3: Any) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in api3.store3().items()}


def _meta(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [result["itemMetadata"] for result in data["results"]]


async def test_per_item_failures_apply_the_good_entries_only(api3: Any) -> None:
    """One batch: good entries applied, bad ones refused with their codes, nothing else changed."""
    good, untracked = api3.tracked3(), api3.untracked3()
    before = _by_id(api3)
    entries = [
        {"inventoryItemId": good["id"], "decrementBy": 2},
        {"inventoryItemId": MISSING, "decrementBy": 1},
        {"inventoryItemId": untracked["id"], "decrementBy": 1},
        {"inventoryItemId": good["id"], "decrementBy": good["quantity"]},
        {"inventoryItemId": good["id"], "decrementBy": 1},
    ]
    data = await api3.bulk("decrement", {"decrementData": entries})
    meta = _meta(data)
    assert [m["success"] for m in meta] == [True, False, False, False, True]
    assert [m["originalIndex"] for m in meta] == [0, 1, 2, 3, 4]
    assert [m.get("error", {}).get("code") for m in meta] == [
        None,
        "NOT_FOUND",
        "INVENTORY_QUANTITY_NOT_TRACKED",
        "INSUFFICIENT_INVENTORY",
        None,
    ]
    assert data["bulkActionMetadata"] == {
        "totalSuccesses": 2,
        "totalFailures": 3,
        "undetailedFailures": 0,
    }
    after = _by_id(api3)
    assert after[good["id"]]["quantity"] == good["quantity"] - 3
    assert after[good["id"]]["revision"] == str(int(good["revision"]) + 2)
    changed = {i for i in after if after[i] != before[i]}
    assert changed == {good["id"]}


async def test_increment_results_carry_the_item_only_with_return_entity(api3: Any) -> None:
    """returnEntity true puts the updated item in each success; false (default) leaves it out."""
    item = api3.tracked3()
    entry = {"inventoryItemId": item["id"], "incrementBy": 4}
    plain = await api3.bulk("increment", {"incrementData": [entry]})
    assert "item" not in plain["results"][0]
    full = await api3.bulk("increment", {"incrementData": [entry], "returnEntity": True})
    assert full["results"][0]["item"]["quantity"] == item["quantity"] + 8
    assert full["results"][0]["itemMetadata"]["id"] == item["id"]


@pytest.mark.parametrize(
    ("restrict", "code"), [(None, "INSUFFICIENT_INVENTORY"), (True, "INSUFFICIENT_INVENTORY")]
)
async def test_restrict_inventory_true_or_absent_refuses_negative_stock(
    api3: Any, restrict: bool | None, code: str
) -> None:
    """A decrement past the stock is refused unless restrictInventory is false."""
    item = api3.tracked3()
    body: dict[str, Any] = {
        "decrementData": [{"inventoryItemId": item["id"], "decrementBy": item["quantity"] + 1}]
    }
    if restrict is not None:
        body["restrictInventory"] = restrict
    for path in ("decrement", "decrement-by-variant-and-location"):
        if path != "decrement":
            body["decrementData"] = [
                {"variantId": item["variantId"], "decrementBy": item["quantity"] + 1}
            ]
        meta = _meta(await api3.bulk(path, body))[0]
        assert meta["error"]["code"] == code
        assert meta["error"]["data"]["quantity"] == item["quantity"]
    assert api3.store3().find(item["id"]).quantity == item["quantity"]


async def test_restrict_inventory_false_allows_negative_stock_down_to_the_minimum(
    api3: Any,
) -> None:
    """restrictInventory false: the stock may go negative, but not below -99999."""
    item = api3.tracked3()
    q = item["quantity"]
    body = {
        "decrementData": [{"inventoryItemId": item["id"], "decrementBy": q + 5}],
        "restrictInventory": False,
        "returnEntity": True,
    }
    data = await api3.bulk("decrement", body)
    assert data["results"][0]["item"]["quantity"] == -5
    assert data["results"][0]["item"]["availabilityStatus"] == "OUT_OF_STOCK"
    body["decrementData"] = [{"inventoryItemId": item["id"], "decrementBy": 99_995}]
    meta = _meta(await api3.bulk("decrement", body))[0]
    assert meta["error"]["code"] == "MIN_QUANTITY_LIMIT_REACHED"
    assert api3.store3().find(item["id"]).quantity == -5


async def test_increment_past_99999_is_refused_per_item(api3: Any) -> None:
    """An increment that would pass 99999 fails with MAX_QUANTITY_LIMIT_REACHED; others apply."""
    item = api3.tracked3()
    other = next(i for i in api3.store3().items() if i["trackQuantity"] and i["id"] != item["id"])
    entries = [
        {"inventoryItemId": item["id"], "incrementBy": 99_999},
        {"inventoryItemId": other["id"], "incrementBy": 1},
    ]
    meta = _meta(await api3.bulk("increment", {"incrementData": entries}))
    assert meta[0]["error"]["code"] == "MAX_QUANTITY_LIMIT_REACHED"
    assert meta[1]["success"] is True


async def test_preorder_decrement_counts_into_the_preorder_counter(v3_api_of: Any) -> None:
    """A preorder decrement past zero uses the preorder capacity; beyond it, it is refused;
    restocking settles the counter."""
    async with Emulator(products=60, seed=4, catalog="v3") as emu:
        store = emu.v3_store()
        item = next(i for i in store.records() if i.track and i.preorder_enabled)
        item_id, q, limit, counter = (
            item.id,
            item.quantity,
            item.preorder_limit,
            item.preorder_counter,
        )
        assert q >= 0 and limit >= 2
        api = v3_api_of(emu)
        body = {
            "decrementData": [
                {"inventoryItemId": item_id, "decrementBy": q + 2, "preorderRequest": True}
            ],
            "returnEntity": True,
        }
        data = await api.bulk("decrement", body)
        shown = data["results"][0]["item"]
        assert shown["quantity"] == -2
        assert shown["preorderInfo"]["counter"] == counter + 2
        assert shown["preorderInfo"]["quantity"] == limit - counter - 2
        assert shown["availabilityStatus"] == ("PREORDER" if limit > 2 else "OUT_OF_STOCK")
        body["decrementData"][0]["decrementBy"] = limit
        refused = _meta(await api.bulk("decrement", body))[0]
        assert refused["error"]["code"] == "INSUFFICIENT_INVENTORY"
        counter = item.preorder_counter
        await api.bulk(
            "increment", {"incrementData": [{"inventoryItemId": item_id, "incrementBy": 1}]}
        )
        assert (item.quantity, item.preorder_counter) == (-1, counter - 1)


async def test_preorder_request_on_an_item_without_preorder_is_insufficient(api3: Any) -> None:
    """preorderRequest true on an item without preorder enabled is refused like any other."""
    item = api3.tracked3()
    entry = {"inventoryItemId": item["id"], "decrementBy": item["quantity"] + 1}
    entry["preorderRequest"] = True
    meta = _meta(await api3.bulk("decrement", {"decrementData": [entry]}))[0]
    assert meta["error"]["code"] == "INSUFFICIENT_INVENTORY"


async def test_by_variant_and_location_targets_the_default_or_the_named_location(
    api3: Any,
) -> None:
    """Without locationId the default location's item changes; with one, that location's."""
    store = api3.store3()
    home = api3.tracked3()
    away = store.at(home["variantId"], store.locations[1])
    away_q = away.quantity
    entries = [{"variantId": home["variantId"], "decrementBy": 1}]
    await api3.bulk("decrement-by-variant-and-location", {"decrementData": entries})
    assert store.find(home["id"]).quantity == home["quantity"] - 1
    inc = {"variantId": home["variantId"], "locationId": store.locations[1], "incrementBy": 3}
    await api3.bulk("increment-by-variant-and-location", {"incrementData": [inc]})
    assert away.quantity == away_q + 3
    unknown = {"variantId": MISSING, "incrementBy": 1}
    meta = _meta(await api3.bulk("increment-by-variant-and-location", {"incrementData": [unknown]}))
    assert meta[0]["error"]["code"] == "NOT_FOUND"
    assert "id" not in meta[0]


def _entry(item_id: str, **fields: Any) -> dict[str, Any]:
    return {"inventoryItemId": item_id, "decrementBy": 1, **fields}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decrementData": []}, "decrementData"),
        ({"decrementData": [_entry(MISSING)] * 301}, "decrementData"),
        ({"decrementData": [_entry(MISSING, decrementBy=0)]}, "decrementData[0].decrementBy"),
        (
            {"decrementData": [_entry(MISSING, decrementBy=100_000)]},
            "decrementData[0].decrementBy",
        ),
        ({"decrementData": [_entry("not-a-guid")]}, "decrementData[0].inventoryItemId"),
        ({"decrementData": [{"decrementBy": 1}]}, "decrementData[0].inventoryItemId"),
        ({"decrementData": [_entry(MISSING, productId="x")]}, "decrementData[0].productId"),
        ({"decrementData": [_entry(MISSING)], "reason": "THEFT"}, "reason"),
    ],
)
async def test_requests_outside_the_typings_limits_are_400_naming_the_field(
    api3: Any, body: dict[str, Any], field: str
) -> None:
    """Out-of-range counts and amounts, bad GUIDs, unknown fields and reasons: 400, nothing applied."""
    data = await api3.bulk("decrement", body, expect=400)
    violations = data["details"]["validationError"]["fieldViolations"]
    assert violations[0]["field"] == field
    assert api3.emu.v3_store().entries_applied == 0


async def test_the_journal_lets_a_checker_verify_conservation(api3: Any) -> None:
    """Each journaled entry carries the item, the change applied, success and the stock after."""
    store = api3.store3()
    initial = {i.id: i.quantity for i in store.records() if i.track}
    ids = list(initial)[:5]
    entries = [{"inventoryItemId": i, "decrementBy": 1 + n} for n, i in enumerate(ids)]
    entries.append({"inventoryItemId": ids[0], "decrementBy": 99_999})
    await api3.bulk("decrement", {"decrementData": entries, "reason": "ORDER"})
    await api3.bulk(
        "increment",
        {"incrementData": [{"inventoryItemId": i, "incrementBy": 2} for i in ids]},
    )
    totals: dict[str, int] = {}
    for entry in api3.emu.journal():
        for record in entry.entries:
            totals[record["inventoryItemId"]] = (
                totals.get(record["inventoryItemId"], 0) + record["change"]
            )
            if record["success"]:
                assert record["quantityAfter"] == record["quantityBefore"] + record["change"]
            else:
                assert record["change"] == 0 and record["error"]
    for item_id in ids:
        assert store.find(item_id).quantity == initial[item_id] + totals[item_id]
    assert api3.emu.journal()[0].entries[0]["reason"] == "ORDER"


async def _faulted_run(plan: FaultPlan, v3_api_of: Any) -> list[list[Any]]:
    async with Emulator(products=30, seed=2, catalog="v3", faults=plan) as emu:
        ids = [i.id for i in emu.v3_store().records() if i.track][:20]
        api = v3_api_of(emu)
        runs = []
        for _ in range(3):
            body = {"incrementData": [{"inventoryItemId": i, "incrementBy": 1} for i in ids]}
            data = await api.bulk("increment", body)
            runs.append(
                [
                    [(m["originalIndex"], m["success"]) for m in _meta(data)],
                    data["bulkActionMetadata"],
                ]
            )
        return runs


async def test_per_item_faults_are_deterministic_for_a_seed(v3_api_of: Any) -> None:
    """item_error / item_undetailed fail entries (undetailed ones have no result) the same way
    for the same seed; failed entries are not applied."""
    plan = FaultPlan({"*": FaultRule(item_error=0.2, item_undetailed=0.2)}, seed=9)
    first, second = await _faulted_run(plan, v3_api_of), await _faulted_run(plan, v3_api_of)
    assert first == second
    results, metadata = first[0]
    assert metadata["undetailedFailures"] > 0 and metadata["totalFailures"] > 0
    assert len(results) == 20 - metadata["undetailedFailures"]
    assert metadata["totalSuccesses"] == sum(1 for _, ok in results if ok)
    other = FaultPlan({"*": FaultRule(item_error=0.2)}, seed=10)
    assert await _faulted_run(other, v3_api_of) != first


async def test_increments_of_an_untracked_item_are_refused_per_item(api3: Any) -> None:
    """An increment of an item tracked by status: INVENTORY_QUANTITY_NOT_TRACKED, unchanged."""
    item = api3.untracked3()
    for path, field in (
        ("increment", "incrementData"),
        ("increment-by-variant-and-location", "incrementData"),
    ):
        entry: dict[str, Any] = {"incrementBy": 1}
        if path == "increment":
            entry["inventoryItemId"] = item["id"]
        else:
            entry["variantId"], entry["locationId"] = item["variantId"], item["locationId"]
        meta = _meta(await api3.bulk(path, {field: [entry]}))[0]
        assert meta["error"]["code"] == "INVENTORY_QUANTITY_NOT_TRACKED"
    assert api3.store3().find(item["id"]).revision == int(item["revision"])


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"variantId": "x", "decrementBy": 1}, "decrementData[0].variantId"),
        (
            {"variantId": MISSING, "locationId": "x", "decrementBy": 1},
            "decrementData[0].locationId",
        ),
        ({"locationId": MISSING, "decrementBy": 1}, "decrementData[0].variantId"),
        ({"variantId": MISSING}, "decrementData[0].decrementBy"),
    ],
)
async def test_by_variant_and_location_requests_are_validated_whole(
    api3: Any, entry: dict[str, Any], field: str
) -> None:
    """Malformed by-variant-and-location entries: 400 naming the field, nothing applied."""
    good = {"variantId": api3.tracked3()["variantId"], "decrementBy": 1}
    body = {"decrementData": [good, entry]}
    field = field.replace("[0]", "[1]")
    data = await api3.bulk("decrement-by-variant-and-location", body, expect=400)
    assert data["details"]["validationError"]["fieldViolations"][0]["field"] == field
    assert api3.emu.v3_store().entries_applied == 0
