"""Decrement, increment and update over real HTTP: semantics, errors and atomicity."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wixinv_async.models import DEFAULT_VARIANT_ID

WRITE = "/stores/v2/inventoryItems"
OTHER_GUID = "11111111-2222-4333-8444-555555555555"


def entry(pid: str, vid: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {"productId": pid, "variantId": vid, "decrementBy": amount, **extra}


def inc(pid: str, vid: str, amount: int) -> dict[str, Any]:
    return {"productId": pid, "variantId": vid, "incrementBy": amount}


async def test_decrement_lowers_quantity_and_answers_empty_object(api: Any) -> None:
    """A decrement by 2 lowers the quantity by 2 and answers {} with a request id."""
    pid, _, vid = api.tracked()
    before = api.emu.store.quantity(pid, vid)
    status, data, response = await api.call(
        "POST", f"{WRITE}/decrement", {"decrementData": [entry(pid, vid, 2)]}
    )
    assert (status, data) == (200, {})
    assert response.headers["x-wix-request-id"]
    assert api.emu.store.quantity(pid, vid) == before - 2


async def test_decrement_by_inventory_id(api: Any) -> None:
    """An entry may name the inventory item instead of the product."""
    pid, iid, vid = api.tracked()
    before = api.emu.store.quantity(pid, vid)
    status, _ = await api.decrement([{"inventoryId": iid, "variantId": vid, "decrementBy": 1}])
    assert status == 200
    assert api.emu.store.quantity(pid, vid) == before - 1


async def test_increment_raises_quantity(api: Any) -> None:
    """An increment by 7 raises the quantity by 7."""
    pid, _, vid = api.tracked()
    before = api.emu.store.quantity(pid, vid)
    assert (await api.increment([inc(pid, vid, 7)]))[0] == 200
    assert api.emu.store.quantity(pid, vid) == before + 7


async def test_same_key_twice_is_applied_in_order(api: Any) -> None:
    """The same variant twice in one batch is allowed, and both entries are applied."""
    pid, _, vid = api.tracked()
    before = api.emu.store.quantity(pid, vid)
    status, _ = await api.decrement([entry(pid, vid, 1), entry(pid, vid, 2)])
    assert status == 200
    assert api.emu.store.quantity(pid, vid) == before - 3


async def test_decrement_to_zero_takes_variant_out_of_stock(api: Any) -> None:
    """A tracked variant decremented to 0 shows inStock false."""
    pid, _, vid = api.tracked()
    quantity = api.emu.store.quantity(pid, vid)
    assert (await api.decrement([entry(pid, vid, quantity)]))[0] == 200
    item = api.emu.store.item(pid)
    variant = next(v for v in item.variants if v.variant_id == vid)
    assert (variant.quantity, variant.in_stock) == (0, False)


async def test_insufficient_inventory_is_428_and_names_the_entry(api: Any) -> None:
    """Decrementing below zero fails with 428 INSUFFICIENT_INVENTORY naming the entry index."""
    pid, _, vid = api.tracked()
    quantity = api.emu.store.quantity(pid, vid)
    status, data = await api.decrement([entry(pid, vid, 1), entry(pid, vid, quantity)])
    assert status == 428
    error = data["details"]["applicationError"]
    assert error["code"] == "INSUFFICIENT_INVENTORY"
    assert error["data"]["index"] == 1


async def test_failed_batch_applies_nothing(api: Any) -> None:
    """A batch with one failing entry leaves every other entry unapplied and unjournaled."""
    pid, _, vid = api.tracked()
    other_pid, _, other_vid = api.tracked(preorder=False)
    before = api.emu.store.quantity(other_pid, other_vid), api.emu.store.quantity(pid, vid)
    status, _ = await api.decrement([entry(other_pid, other_vid, 1), entry(pid, vid, 10**6)])
    assert status == 428
    assert (
        api.emu.store.quantity(other_pid, other_vid),
        api.emu.store.quantity(pid, vid),
    ) == before
    assert api.emu.store.journal == []


async def test_untracked_item_refuses_decrement_and_increment(api: Any) -> None:
    """Increment and decrement of an untracked item fail with 428 INVENTORY_QUANTITY_NOT_TRACKED."""
    pid, vid = api.untracked()
    for status, data in (
        await api.decrement([entry(pid, vid, 1)]),
        await api.increment([inc(pid, vid, 1)]),
    ):
        assert status == 428
        assert data["details"]["applicationError"]["code"] == "INVENTORY_QUANTITY_NOT_TRACKED"


async def test_increment_above_max_is_428(api: Any) -> None:
    """An increment that would pass 99999 fails with 428 MAX_QUANTITY_LIMIT_REACHED."""
    pid, _, vid = api.tracked()
    status, data = await api.increment([inc(pid, vid, 99_999)])
    assert status == 428
    assert data["details"]["applicationError"]["code"] == "MAX_QUANTITY_LIMIT_REACHED"


async def test_increment_up_to_max_is_accepted(api: Any) -> None:
    """An increment reaching exactly 99999 is accepted."""
    pid, _, vid = api.tracked()
    quantity = api.emu.store.quantity(pid, vid)
    assert (await api.increment([inc(pid, vid, 99_999 - quantity)]))[0] == 200
    assert api.emu.store.quantity(pid, vid) == 99_999


@pytest.mark.parametrize(
    ("entry_fields", "code"),
    [
        ({"productId": "no-such-product"}, "NOT_FOUND"),
        ({"inventoryId": "no-such-inventory"}, "NOT_FOUND"),
        ({"variantId": OTHER_GUID}, "NOT_FOUND"),
    ],
)
async def test_unknown_ids_are_404(api: Any, entry_fields: dict[str, str], code: str) -> None:
    """Unknown product, inventory item or variant: 404 NOT_FOUND naming the entry."""
    pid, _, vid = api.tracked()
    bad = entry(pid, vid, 1)
    if "inventoryId" in entry_fields:
        del bad["productId"]
    bad.update(entry_fields)
    status, data = await api.decrement([entry(pid, vid, 1), bad])
    assert status == 404
    assert data["details"]["applicationError"]["code"] == code
    assert data["details"]["applicationError"]["data"]["index"] == 1


async def test_preorder_decrement_goes_negative_down_to_the_limit(api: Any) -> None:
    """With preorderRequest on a preorder item, stock may go down to -limit, not further."""
    store = api.emu.store
    item = store.add_product(variants=1, quantity=2)
    pid = item.product_id
    status, _, _ = await api.call(
        "PATCH",
        f"{WRITE}/product/{pid}",
        {"inventoryItem": {"trackQuantity": True, "preorderInfo": {"enabled": True, "limit": 3}}},
    )
    assert status == 200
    assert (await api.decrement([entry(pid, DEFAULT_VARIANT_ID, 5, preorderRequest=True)]))[
        0
    ] == 200
    assert store.quantity(pid, DEFAULT_VARIANT_ID) == -3
    variant = store.item(pid).variants[0]
    assert (variant.in_stock, variant.available_for_preorder) == (False, False)
    status, data = await api.decrement([entry(pid, DEFAULT_VARIANT_ID, 1, preorderRequest=True)])
    assert (status, data["details"]["applicationError"]["code"]) == (428, "INSUFFICIENT_INVENTORY")


async def test_preorder_request_without_preorder_enabled_is_insufficient(api: Any) -> None:
    """preorderRequest on an item without preorder cannot go below zero."""
    pid, _, vid = api.tracked(preorder=False)
    quantity = api.emu.store.quantity(pid, vid)
    status, _ = await api.decrement([entry(pid, vid, quantity + 1, preorderRequest=True)])
    assert status == 428


async def test_decrement_without_preorder_request_stops_at_zero(api: Any) -> None:
    """An item with preorder enabled still refuses a plain decrement below zero."""
    item = api.emu.store.add_product(quantity=1)
    await api.call(
        "PATCH",
        f"{WRITE}/product/{item.product_id}",
        {"inventoryItem": {"trackQuantity": True, "preorderInfo": {"enabled": True, "limit": 10}}},
    )
    status, _ = await api.decrement([entry(item.product_id, DEFAULT_VARIANT_ID, 2)])
    assert status == 428


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decrementData": []}, "decrementData"),
        ({}, "decrementData"),
        (
            {"decrementData": [{"productId": "p", "variantId": DEFAULT_VARIANT_ID}]},
            "decrementData[0].decrementBy",
        ),
        (
            {
                "decrementData": [
                    {"productId": "p", "variantId": DEFAULT_VARIANT_ID, "decrementBy": 0}
                ]
            },
            "decrementData[0].decrementBy",
        ),
        (
            {
                "decrementData": [
                    {"productId": "p", "variantId": DEFAULT_VARIANT_ID, "decrementBy": "1"}
                ]
            },
            "decrementData[0].decrementBy",
        ),
        (
            {"decrementData": [{"productId": "p", "variantId": "not-a-guid", "decrementBy": 1}]},
            "decrementData[0].variantId",
        ),
        (
            {
                "decrementData": [
                    {"productId": "p" * 37, "variantId": DEFAULT_VARIANT_ID, "decrementBy": 1}
                ]
            },
            "decrementData[0].productId",
        ),
        (
            {"decrementData": [{"variantId": DEFAULT_VARIANT_ID, "decrementBy": 1}]},
            "decrementData[0].productId",
        ),
        (
            {
                "decrementData": [
                    {
                        "productId": "p",
                        "variantId": DEFAULT_VARIANT_ID,
                        "decrementBy": 1,
                        "extra": 1,
                    }
                ]
            },
            "decrementData[0].extra",
        ),
    ],
)
async def test_malformed_decrements_are_400_naming_the_field(
    api: Any, body: dict[str, Any], field: str
) -> None:
    """Malformed batches get 400 with a fieldViolation naming the field."""
    status, data, _ = await api.call("POST", f"{WRITE}/decrement", body)
    assert status == 400
    fields = [v["field"] for v in data["details"]["validationError"]["fieldViolations"]]
    assert field in fields


async def test_batch_of_301_entries_is_400(api: Any) -> None:
    """301 entries are refused as a whole with 400 on decrementData; 300 are accepted."""
    pid, _, vid = api.tracked()
    api.emu.store.set_quantity(pid, vid, 1000)
    status, data = await api.decrement([entry(pid, vid, 1)] * 301)
    assert status == 400
    assert data["details"]["validationError"]["fieldViolations"][0]["field"] == "decrementData"
    assert (await api.decrement([entry(pid, vid, 1)] * 300))[0] == 200
    assert api.emu.store.quantity(pid, vid) == 700


async def test_validation_wins_over_not_found(api: Any) -> None:
    """A batch with an unknown product and a bad amount is a 400, not a 404."""
    pid, _, vid = api.tracked()
    status, _ = await api.decrement([entry("unknown", vid, 1), entry(pid, vid, 0)])
    assert status == 400


async def test_invalid_json_is_400(api: Any) -> None:
    """A body that is not JSON gets 400 naming the body."""
    async with api.session.post(
        api.emu.url + f"{WRITE}/decrement", data=b"{nope", headers=api.headers
    ) as response:
        data = await response.json()
    assert response.status == 400
    assert data["details"]["validationError"]["fieldViolations"][0]["field"] == "body"


async def test_journal_records_each_applied_write_once(api: Any) -> None:
    """The journal holds every applied write in order with its request id and entries."""
    pid, _, vid = api.tracked()
    _, _, first = await api.call(
        "POST", f"{WRITE}/decrement", {"decrementData": [entry(pid, vid, 1)]}
    )
    _, _, second = await api.call(
        "POST", f"{WRITE}/increment", {"incrementData": [inc(pid, vid, 2)]}
    )
    journal = api.emu.store.journal
    assert [(j.request_id, j.endpoint) for j in journal] == [
        (first.headers["x-wix-request-id"], "decrementInventory"),
        (second.headers["x-wix-request-id"], "incrementInventory"),
    ]
    assert journal[1].entries == [inc(pid, vid, 2)]


async def test_write_updates_last_updated(api: Any) -> None:
    """An applied write sets lastUpdated to the current time."""
    pid, _, vid = api.tracked()
    before = api.emu.store.item(pid).last_updated
    await api.decrement([entry(pid, vid, 1)])
    after = api.emu.store.item(pid).last_updated
    assert after > before
    assert after[:2] == "20"


async def test_product_and_inventory_id_must_name_the_same_item(api: Any) -> None:
    """An entry naming a product and another product's inventory item is a 404."""
    items = [i for i in api.emu.store.items() if i.track_quantity]
    first, second = items[0], items[1]
    bad = {
        "productId": first.product_id,
        "inventoryId": second.id,
        "variantId": first.variants[0].variant_id,
        "decrementBy": 1,
    }
    status, data = await api.decrement([bad])
    assert (status, data["details"]["applicationError"]["code"]) == (404, "NOT_FOUND")
    good = {**bad, "inventoryId": first.id}
    api.emu.store.set_quantity(first.product_id, first.variants[0].variant_id, 5)
    assert (await api.decrement([good]))[0] == 200


async def test_not_found_wins_over_insufficient(api: Any) -> None:
    """A batch with an insufficient entry first and an unknown product later is a 404."""
    pid, _, vid = api.tracked()
    status, _ = await api.decrement([entry(pid, vid, 10**6), entry("unknown", vid, 1)])
    assert status == 404


async def test_queries_show_writes_at_once(api: Any) -> None:
    """A query after a decrement shows the new quantity (no stale cached page)."""
    pid, _, vid = api.tracked()
    await api.query({"paging": {"limit": 100}})
    await api.decrement([entry(pid, vid, 1)])
    _, data = await api.query({"filter": json.dumps({"productId": pid})})
    (variant,) = [v for v in data["inventoryItems"][0]["variants"] if v["variantId"] == vid]
    assert variant["quantity"] == api.emu.store.quantity(pid, vid)


async def test_decrement_and_increment_by_inventory_id_only(api: Any) -> None:
    """Increment entries may also name the inventory item alone."""
    pid, iid, vid = api.tracked()
    before = api.emu.store.quantity(pid, vid)
    assert (await api.increment([{"inventoryId": iid, "variantId": vid, "incrementBy": 3}]))[
        0
    ] == 200
    assert api.emu.store.quantity(pid, vid) == before + 3


@pytest.mark.parametrize("kind", ["decrement", "increment"])
async def test_amount_above_int32_is_400(api: Any, kind: str) -> None:
    """decrementBy/incrementBy above 2^31-1 are malformed (400), even where no 428 would stop
    them: a preorder item without a limit has no floor."""
    item = api.emu.store.add_product(quantity=5)
    pid = item.product_id
    body = {"inventoryItem": {"trackQuantity": True, "preorderInfo": {"enabled": True}}}
    assert (await api.call("PATCH", f"{WRITE}/product/{pid}", body))[0] == 200
    if kind == "decrement":
        status, data = await api.decrement(
            [entry(pid, DEFAULT_VARIANT_ID, 2**31, preorderRequest=True)]
        )
        field = "decrementData[0].decrementBy"
    else:
        status, data = await api.increment([inc(pid, DEFAULT_VARIANT_ID, 2**31)])
        field = "incrementData[0].incrementBy"
    assert status == 400
    assert [v["field"] for v in data["details"]["validationError"]["fieldViolations"]] == [field]
    assert api.emu.store.quantity(pid, DEFAULT_VARIANT_ID) == 5
