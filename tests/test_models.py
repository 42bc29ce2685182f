"""The wire models: names as on the wire, unknown fields tolerated, read models free of msgspec's UNSET."""

from __future__ import annotations

import typing

import msgspec
import pytest

from wixinv_async.models import (
    DEFAULT_VARIANT_ID,
    UNSET,
    DecrementData,
    DecrementInventoryRequest,
    ErrorBody,
    IncrementData,
    IncrementInventoryRequest,
    InventoryItem,
    InventoryVariant,
    PreorderInfo,
    QueryInventoryResponse,
    TokenRequest,
    TokenResponse,
    or_none,
)

ITEM = {
    "id": "i1",
    "externalId": "p1",
    "productId": "p1",
    "trackQuantity": True,
    "variants": [
        {
            "variantId": DEFAULT_VARIANT_ID,
            "inStock": True,
            "quantity": 5,
            "availableForPreorder": False,
        }
    ],
    "lastUpdated": "2026-01-01T00:00:00.000Z",
    "numericId": "1669215583914000",
    "preorderInfo": {"enabled": False, "message": None, "limit": None},
    "someFieldWixAddedLater": {"x": 1},
}


def test_inventory_item_round_trips_with_wire_names() -> None:
    """Decoding then encoding an item gives back the wire's names and values."""
    item = msgspec.json.decode(msgspec.json.encode(ITEM), type=InventoryItem)
    assert item.numeric_id == "1669215583914000"
    assert item.variants[0].quantity == 5
    encoded = msgspec.json.decode(msgspec.json.encode(item))
    assert encoded == {k: v for k, v in ITEM.items() if k != "someFieldWixAddedLater"}


def test_untracked_quantity_is_none_whether_null_or_absent() -> None:
    """A read model says None for an untracked variant's quantity, sent as null or not at all."""
    null = msgspec.json.decode(
        b'{"variantId":"v","inStock":true,"quantity":null}', type=InventoryVariant
    )
    absent = msgspec.json.decode(b'{"variantId":"v"}', type=InventoryVariant)
    assert null.quantity is None and absent.quantity is None
    assert msgspec.json.encode(absent) == b'{"variantId":"v"}'


@pytest.mark.parametrize("model", [InventoryItem, InventoryVariant, QueryInventoryResponse])
def test_read_models_need_nothing_from_msgspec(model: type) -> None:
    """No field of a read model is typed with msgspec's UnsetType: plain types or X | None."""
    hints = typing.get_type_hints(model)
    assert hints and not [
        name for name, hint in hints.items() if msgspec.UnsetType in typing.get_args(hint)
    ]


def test_an_item_without_an_id_is_malformed() -> None:
    """``id`` has a plain type and is required: an answer without one is refused on decoding."""
    body = {k: v for k, v in ITEM.items() if k != "id"}
    with pytest.raises(msgspec.ValidationError, match="id"):
        msgspec.json.decode(msgspec.json.encode(body), type=InventoryItem)


def test_an_item_with_only_an_id_decodes_with_nones() -> None:
    """Every other field may be missing: None (or an empty list), never msgspec's UNSET."""
    item = msgspec.json.decode(b'{"id":"i1"}', type=InventoryItem)
    assert (item.product_id, item.numeric_id, item.track_quantity, item.variants) == (
        None,
        None,
        None,
        [],
    )


def test_written_models_keep_unset_and_or_none_narrows_it() -> None:
    """PreorderInfo is also written, so absent stays UNSET (re-exported); or_none makes it None."""
    info = msgspec.json.decode(b'{"enabled":true}', type=PreorderInfo)
    assert info.message is UNSET and or_none(info.message) is None
    assert or_none(PreorderInfo(message="soon").message) == "soon"
    assert msgspec.json.encode(info) == b'{"enabled":true}'


def test_query_response_tolerates_unknown_fields() -> None:
    """A query response with fields we do not know decodes."""
    body = {
        "inventoryItems": [ITEM],
        "metadata": {"items": 1, "offset": 0},
        "totalResults": 1,
        "new": 1,
    }
    response = msgspec.json.decode(msgspec.json.encode(body), type=QueryInventoryResponse)
    assert response.total_results == 1
    assert response.inventory_items[0].id == "i1"


@pytest.mark.parametrize(
    ("sdk_method", "request_model"),
    [
        ("incrementInventory", IncrementInventoryRequest),
        ("decrementInventory", DecrementInventoryRequest),
    ],
)
def test_write_bodies_match_the_official_sdk(sdk_requests, sdk_method, request_model) -> None:  # type: ignore[no-untyped-def]
    """Increment and decrement bodies encode exactly as the official SDK's."""
    if sdk_method == "incrementInventory":
        model = IncrementInventoryRequest(
            increment_data=[
                IncrementData(product_id="p1", variant_id=DEFAULT_VARIANT_ID, increment_by=2)
            ]
        )
    else:
        model = DecrementInventoryRequest(
            decrement_data=[
                DecrementData(inventory_id="i1", variant_id=DEFAULT_VARIANT_ID, decrement_by=1)
            ]
        )
    assert isinstance(model, request_model)
    assert msgspec.json.decode(msgspec.json.encode(model)) == sdk_requests[sdk_method]["body"]


def test_error_body_decodes_both_kinds() -> None:
    """Application and validation error bodies decode into their parts."""
    app = msgspec.json.decode(
        b'{"message":"m","details":{"applicationError":{"code":"INSUFFICIENT_INVENTORY","description":"d"}}}',
        type=ErrorBody,
    )
    assert app.details.application_error.code == "INSUFFICIENT_INVENTORY"  # type: ignore[union-attr]
    val = msgspec.json.decode(
        b'{"message":"m","details":{"validationError":{"fieldViolations":[{"field":"decrementData[0].decrementBy","description":"must be >= 1"}]}}}',
        type=ErrorBody,
    )
    assert val.details.validation_error.field_violations[0].field == "decrementData[0].decrementBy"  # type: ignore[union-attr]


def test_token_models_never_show_secrets() -> None:
    """The OAuth request and response reprs leave out the secret and the token."""
    request = TokenRequest(client_id="app", client_secret="s3cr3t-value", instance_id="inst")
    response = TokenResponse(access_token="tok-very-secret", expires_in=10)
    assert "s3cr3t-value" not in repr(request)
    assert "tok-very-secret" not in repr(response)
    assert msgspec.json.decode(msgspec.json.encode(request))["grant_type"] == "client_credentials"
