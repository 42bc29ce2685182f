"""Catalog V3 inventory events: verified like V1's, typed, keyed by their id; stale detection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wixinv_async.errors import ConfigurationError, WebhookVerificationError
from wixinv_async.models import WebhookIdentity
from wixinv_async.webhooks import (
    V3_ITEM_CREATED,
    V3_ITEM_DELETED,
    V3_ITEM_UPDATED,
    V3_ITEM_UPDATED_WITH_REASON,
    EntitySequences,
    InventoryItemCreatedEvent,
    InventoryItemDeletedEvent,
    InventoryItemUpdatedEvent,
    InventoryItemUpdatedWithReasonEvent,
    InventoryItemV3Event,
    RawWebhookEvent,
    sign_webhook,
    verify_webhook,
)

NOW = 1_800_000_000.0
ITEM_ID = "3b7a0f59-6a0c-4f8e-9d1b-2f0d5d5e8c11"
ITEM: dict[str, Any] = {
    "id": ITEM_ID,
    "revision": "4",
    "variantId": "9a1c7e1e-0f43-4a43-8c1a-7f1b0e7d2c55",
    "locationId": "c5b8e3f2-1d4a-4f6e-8a7b-9c0d1e2f3a4b",
    "productId": "5d0e9f8a-7b6c-4d3e-a2f1-0e9d8c7b6a5f",
    "trackQuantity": True,
    "quantity": 7,
    "availabilityStatus": "IN_STOCK",
    "preorderInfo": {"enabled": False, "limit": 100000, "counter": 0, "quantity": 100000},
    "product": {"name": "Mug", "variantSku": "MUG-1", "variantVisible": True},
    "updatedDate": "2026-12-01T20:00:00.000Z",
}


def domain_event(slug: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "e0000000-0000-4000-8000-000000000001",
        "entityFqdn": "wix.stores.catalog.v3.inventory_item",
        "slug": slug,
        "entityId": ITEM_ID,
        "eventTime": "2026-12-01T20:00:00.123Z",
        "triggeredByAnonymizeRequest": False,
        "entityEventSequence": "12",
        **body,
    }
    event.update(extra)
    return event


def verify(event_type: str, payload: Any, keys: Any, **kwargs: Any) -> Any:
    token = sign_webhook(event_type, payload, keys.private, instance_id="inst", now=NOW, **kwargs)
    return verify_webhook(token, keys.public_pem, now=NOW)


AS_JSON = json.dumps(ITEM)
BODIES = {
    V3_ITEM_CREATED: ("created", {"createdEvent": {"entityAsJson": AS_JSON}}),
    V3_ITEM_UPDATED: ("updated", {"updatedEvent": {"currentEntityAsJson": AS_JSON}}),
    V3_ITEM_DELETED: ("deleted", {"deletedEvent": {"deletedEntityAsJson": AS_JSON}}),
}
KINDS = {
    V3_ITEM_CREATED: InventoryItemCreatedEvent,
    V3_ITEM_UPDATED: InventoryItemUpdatedEvent,
    V3_ITEM_DELETED: InventoryItemDeletedEvent,
}


@pytest.mark.parametrize("event_type", sorted(BODIES))
def test_entity_events_decode_into_typed_events(event_type: str, app_keys: Any) -> None:
    """Created, updated and deleted events carry the typed item, id, sequence and metadata."""
    slug, body = BODIES[event_type]
    identity = WebhookIdentity(identity_type="APP", app_id="app-1")
    event = verify(event_type, domain_event(slug, body), app_keys, identity=identity)
    assert type(event) is KINDS[event_type]
    assert event.event_id == "e0000000-0000-4000-8000-000000000001"
    assert event.delivery_key == "id:e0000000-0000-4000-8000-000000000001"
    assert event.entity_id == ITEM_ID
    assert event.entity_event_sequence == 12
    assert event.slug == slug
    assert event.instance_id == "inst"
    assert event.identity == identity
    assert event.item.quantity == 7
    assert event.item.variant_id == ITEM["variantId"]
    assert event.item.product.variant_sku == "MUG-1"
    assert event.item.preorder_info.limit == 100000


@pytest.mark.parametrize(
    "body",
    [
        {"updatedEvent": {"currentEntity": ITEM}},
        {"updatedEvent": {"currentEntity": AS_JSON}},
        {"updatedEvent": {"currentEntityAsJson": AS_JSON}},
    ],
    ids=["sdk-name-object", "sdk-name-string", "rest-as-json"],
)
def test_entity_is_read_by_either_name_as_string_or_object(
    body: dict[str, Any], app_keys: Any
) -> None:
    """The REST ``...AsJson`` string and the SDK's name (object or string) decode alike."""
    event = verify(V3_ITEM_UPDATED, domain_event("updated", body), app_keys)
    assert isinstance(event, InventoryItemUpdatedEvent)
    assert event.item is not None and event.item.id == ITEM_ID


def test_updated_with_reason_carries_reason_and_app_id(app_keys: Any) -> None:
    """The action event's body gives the current item, the reason and the writing app."""
    body = json.dumps({"currentEntity": ITEM, "reason": "ORDER", "appId": "app-7"})
    payload = domain_event("updated_with_reason", {"actionEvent": {"bodyAsJson": body}})
    event = verify(V3_ITEM_UPDATED_WITH_REASON, payload, app_keys)
    assert isinstance(event, InventoryItemUpdatedWithReasonEvent)
    assert (event.reason, event.app_id) == ("ORDER", "app-7")
    assert event.item is not None and event.item.quantity == 7
    assert event.entity_event_sequence == 12


def test_deleted_event_without_entity_has_no_item(app_keys: Any) -> None:
    """A deleted event with a null entity still names the item by entityId."""
    payload = domain_event("deleted", {"deletedEvent": {"deletedEntityAsJson": None}})
    event = verify(V3_ITEM_DELETED, payload, app_keys)
    assert isinstance(event, InventoryItemDeletedEvent)
    assert event.item is None and event.entity_id == ITEM_ID


def test_redelivery_has_the_same_key_and_distinct_events_differ(app_keys: Any) -> None:
    """The key is the event id: a re-signed copy shares it, equal content with another id not."""
    slug, body = BODIES[V3_ITEM_UPDATED]
    first = verify(V3_ITEM_UPDATED, domain_event(slug, body), app_keys)
    again = verify(V3_ITEM_UPDATED, domain_event(slug, body), app_keys, lifetime=900)
    other = verify(V3_ITEM_UPDATED, domain_event(slug, body, id="other-id"), app_keys)
    assert first.delivery_key == again.delivery_key
    assert other.delivery_key != first.delivery_key


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({k: v for k, v in domain_event("updated", {}).items() if k != "id"}, "`id`"),
        (domain_event("updated", {}, id=""), "empty 'id'"),
        (domain_event("updated", {}, entityEventSequence="x1"), "entityEventSequence 'x1'"),
        (domain_event("updated", {}, entityEventSequence=True), "entityEventSequence"),
        (domain_event("updated", {"updatedEvent": {"currentEntityAsJson": "{"}}), "JSON"),
        (
            domain_event("updated", {"updatedEvent": {"currentEntity": {"quantity": "x"}}}),
            "quantity",
        ),
        (domain_event("updated", {}, entityId=None), "entityId"),
        ([1, 2], "inventory_item_updated payload"),
    ],
    ids=[
        "no-id",
        "empty-id",
        "bad-sequence",
        "bool-sequence",
        "bad-json",
        "bad-item",
        "no-entity",
        "not-object",
    ],
)
def test_malformed_v3_events_are_refused_naming_the_field(
    payload: Any, names: str, app_keys: Any
) -> None:
    """A signed V3 event with a bad shape is malformed, and the message says where."""
    with pytest.raises(WebhookVerificationError) as caught:
        verify(V3_ITEM_UPDATED, payload, app_keys)
    assert caught.value.reason == "malformed"
    assert names in str(caught.value)


def test_updated_with_reason_without_action_event_is_malformed(app_keys: Any) -> None:
    """An updated_with_reason event must carry its actionEvent."""
    with pytest.raises(WebhookVerificationError, match="no actionEvent"):
        verify(V3_ITEM_UPDATED_WITH_REASON, domain_event("updated_with_reason", {}), app_keys)


def test_other_v3_event_types_stay_raw(app_keys: Any) -> None:
    """An event type this library does not model (stock_status_updated) is a raw event."""
    event_type = "wix.stores.catalog.v3.inventory_item_stock_status_updated"
    payload = domain_event("stock_status_updated", {"actionEvent": {"bodyAsJson": "{}"}})
    event = verify(event_type, payload, app_keys)
    assert isinstance(event, RawWebhookEvent)
    assert not isinstance(event, InventoryItemV3Event)


def test_sequences_drop_only_lower_numbers_per_entity() -> None:
    """Lower is stale, equal or higher is current, per entity; no sequence is never stale."""
    seen = EntitySequences()
    assert seen.observe("a", 5)
    assert not seen.observe("a", 4)
    assert seen.observe("a", 5)
    assert seen.observe("a", 9)
    assert seen.is_stale("a", 8) and not seen.is_stale("a", 9)
    assert seen.observe("b", 1)
    assert seen.observe("a", None)
    assert seen.latest("a") == 9 and seen.latest("b") == 1 and seen.latest("c") is None


def test_sequences_forget_the_least_recently_updated_entity() -> None:
    """Past max_entities, the entity updated longest ago is forgotten first."""
    seen = EntitySequences(max_entities=2)
    seen.observe("a", 3)
    seen.observe("b", 3)
    seen.observe("a", 4)
    seen.observe("c", 1)
    assert len(seen) == 2 and seen.latest("b") is None
    assert seen.latest("a") == 4 and repr(seen) == "EntitySequences(max_entities=2, entities=2)"


def test_sequences_accept_takes_an_event(app_keys: Any) -> None:
    """accept() reads the event's entity id and sequence."""
    slug, body = BODIES[V3_ITEM_UPDATED]
    newer = verify(V3_ITEM_UPDATED, domain_event(slug, body), app_keys)
    older = verify(V3_ITEM_UPDATED, domain_event(slug, body, entityEventSequence="3"), app_keys)
    seen = EntitySequences()
    assert seen.accept(newer) and not seen.accept(older)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_sequences_validate_max_entities(bad: Any) -> None:
    """max_entities must be an int >= 1."""
    with pytest.raises(ConfigurationError, match="max_entities"):
        EntitySequences(max_entities=bad)
