"""Update Inventory Variants over HTTP: quantities, tracking (and its trap), preorder, errors."""

from __future__ import annotations

from typing import Any

import pytest

from wixinv_async.models import DEFAULT_VARIANT_ID

WRITE = "/stores/v2/inventoryItems"
GUID = "11111111-2222-4333-8444-555555555555"


async def patch(api: Any, product_id: str, item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, data, _ = await api.call(
        "PATCH", f"{WRITE}/product/{product_id}", {"inventoryItem": item}
    )
    return status, data


def variants_of(api: Any, product_id: str) -> dict[str, Any]:
    return {v.variant_id: v for v in api.emu.store.item(product_id).variants}


async def test_update_sets_quantity_of_one_variant(api: Any) -> None:
    """Setting quantity 42 with trackQuantity true changes that variant only."""
    pid, _, vid = api.tracked()
    others = {k: v for k, v in variants_of(api, pid).items() if k != vid}
    status, data = await patch(
        api, pid, {"trackQuantity": True, "variants": [{"variantId": vid, "quantity": 42}]}
    )
    assert (status, data) == (200, {})
    after = variants_of(api, pid)
    assert (after[vid].quantity, after[vid].in_stock) == (42, True)
    assert {k: after[k] for k in others} == others


async def test_omitting_track_quantity_turns_tracking_off_for_all_variants(api: Any) -> None:
    """The trap: an update without trackQuantity switches tracking off product-wide."""
    pid, _, vid = api.tracked()
    status, _ = await patch(api, pid, {"variants": [{"variantId": vid, "quantity": 3}]})
    assert status == 200
    item = api.emu.store.item(pid)
    assert item.track_quantity is False
    assert all(not isinstance(v.quantity, int) for v in item.variants)
    assert api.emu.store.quantity(pid, vid) is None
    status, data = await api.decrement([{"productId": pid, "variantId": vid, "decrementBy": 1}])
    assert data["details"]["applicationError"]["code"] == "INVENTORY_QUANTITY_NOT_TRACKED"


async def test_untracked_variants_hide_quantity_and_keep_in_stock_by_hand(api: Any) -> None:
    """Untracked variants show no quantity on the wire; inStock is whatever was set."""
    pid, _, vid = api.tracked()
    await patch(
        api, pid, {"trackQuantity": False, "variants": [{"variantId": vid, "inStock": False}]}
    )
    _, data, _ = await api.call(
        "POST", f"/stores/v2/inventoryItems/{api.emu.store.item(pid).id}/getVariants", {}
    )
    variant = next(v for v in data["inventoryItem"]["variants"] if v["variantId"] == vid)
    assert "quantity" not in variant
    assert variant["inStock"] is False


async def test_switching_tracking_back_on_restores_quantity(api: Any) -> None:
    """Tracking off then on shows the quantity kept meanwhile, and decrements work again."""
    pid, _, vid = api.tracked()
    quantity = api.emu.store.quantity(pid, vid)
    await patch(api, pid, {"trackQuantity": False})
    await patch(api, pid, {"trackQuantity": True})
    assert api.emu.store.quantity(pid, vid) == quantity
    status, _ = await api.decrement([{"productId": pid, "variantId": vid, "decrementBy": 1}])
    assert status == 200
    assert api.emu.store.quantity(pid, vid) == quantity - 1


async def test_update_preorder_info(api: Any) -> None:
    """preorderInfo fields given are stored; availableForPreorder follows."""
    item = api.emu.store.add_product(quantity=0)
    status, _ = await patch(
        api,
        item.product_id,
        {"trackQuantity": True, "preorderInfo": {"enabled": True, "message": "Soon", "limit": 5}},
    )
    assert status == 200
    after = api.emu.store.item(item.product_id)
    assert (
        after.preorder_info.enabled,
        after.preorder_info.message,
        after.preorder_info.limit,
    ) == (True, "Soon", 5)
    assert after.variants[0].available_for_preorder is True


async def test_update_journals_and_touches_last_updated(api: Any) -> None:
    """An applied update is journaled with its body and moves lastUpdated."""
    pid, _, vid = api.tracked()
    before = api.emu.store.item(pid).last_updated
    await patch(api, pid, {"trackQuantity": True, "variants": [{"variantId": vid, "quantity": 9}]})
    (journal,) = api.emu.store.journal
    assert journal.endpoint == "updateInventoryVariants"
    assert journal.entries == [
        {"productId": pid, "trackQuantity": True, "variants": [{"variantId": vid, "quantity": 9}]}
    ]
    assert api.emu.store.item(pid).last_updated > before


@pytest.mark.parametrize(
    ("item", "status", "marker"),
    [
        (
            {"trackQuantity": True, "variants": [{"variantId": GUID, "quantity": 1}]},
            404,
            "NOT_FOUND",
        ),
        (
            {"trackQuantity": True, "variants": [{"variantId": "VID", "quantity": 100_000}]},
            428,
            "MAX_QUANTITY_LIMIT_REACHED",
        ),
        (
            {"trackQuantity": True, "variants": [{"variantId": "VID", "quantity": -1}]},
            400,
            "inventoryItem.variants[0].quantity",
        ),
        (
            {"trackQuantity": True, "variants": [{"variantId": "nope", "quantity": 1}]},
            400,
            "inventoryItem.variants[0].variantId",
        ),
        ({"trackQuantity": True, "productId": "other"}, 400, "inventoryItem.productId"),
        (
            {"trackQuantity": True, "preorderInfo": {"message": ""}},
            400,
            "inventoryItem.preorderInfo.message",
        ),
        (
            {"trackQuantity": True, "preorderInfo": {"limit": 100_001}},
            400,
            "inventoryItem.preorderInfo.limit",
        ),
        ({"trackQuantity": "yes"}, 400, "inventoryItem.trackQuantity"),
        ({"trackQuantity": True, "color": "red"}, 400, "inventoryItem.color"),
    ],
)
async def test_bad_updates_are_refused_and_change_nothing(
    api: Any, item: dict[str, Any], status: int, marker: str
) -> None:
    """Each bad update gets its status, names the field or code, and changes nothing."""
    pid, _, vid = api.tracked()
    for variant in item.get("variants", []):
        variant["variantId"] = vid if variant["variantId"] == "VID" else variant["variantId"]
    before = api.emu.store.item(pid)
    got, data = await patch(api, pid, item)
    assert got == status
    details = data["details"]
    found = (
        details["applicationError"]["code"]
        if status != 400
        else details["validationError"]["fieldViolations"][0]["field"]
    )
    assert found == marker
    assert api.emu.store.item(pid) == before
    assert api.emu.store.journal == []


async def test_update_of_unknown_product_is_404(api: Any) -> None:
    """PATCH on an unknown product id answers 404 NOT_FOUND."""
    status, data = await patch(api, "no-such-product", {"trackQuantity": True})
    assert (status, data["details"]["applicationError"]["code"]) == (404, "NOT_FOUND")


async def test_update_with_too_long_product_id_is_400(api: Any) -> None:
    """A path productId over 36 characters is a 400."""
    status, _ = await patch(api, "p" * 37, {"trackQuantity": True})
    assert status == 400


async def test_default_variant_product(api: Any) -> None:
    """A product without options has the one default variant, which updates like any other."""
    item = api.emu.store.add_product(quantity=1)
    assert [v.variant_id for v in item.variants] == [DEFAULT_VARIANT_ID]
    await patch(
        api,
        item.product_id,
        {"trackQuantity": True, "variants": [{"variantId": DEFAULT_VARIANT_ID, "quantity": 0}]},
    )
    variant = api.emu.store.item(item.product_id).variants[0]
    assert (variant.quantity, variant.in_stock) == (0, False)
