"""Catalog V3 inventory item events: their wire shapes and decoding.

V3 events are Wix "domain events". The JWT and its envelope are V1's (``data`` claim -> JSON
string envelope -> ``data`` JSON string), but the payload is a domain event::

    {"id": "<event GUID>", "entityFqdn": "wix.stores.catalog.v3.inventory_item",
     "slug": "updated", "entityId": "<item GUID>", "eventTime": "2026-...Z",
     "entityEventSequence": "7", "updatedEvent": {"currentEntityAsJson": "<item JSON>"}}

with one body: ``createdEvent.entityAsJson``, ``updatedEvent.currentEntityAsJson``,
``deletedEvent.deletedEntityAsJson`` or, for ``updated_with_reason`` (an action event),
``actionEvent.bodyAsJson`` holding ``{currentEntity, reason, appId}``. The entity is a JSON
string once more (a fourth level). The SDK's typings name these fields ``entity``,
``currentEntity``, ``deletedEntity`` and ``body`` (it parses them for you) and Wix's reference
pages render them as objects, so each is read from either name, as a JSON string or an object.
The item decodes into the client's :class:`~wixinv_async.models_v3.InventoryItemV3`.
``entityEventSequence`` is an int64 sent as a string (the typings: ``string | null``).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import UNSET, Struct, UnsetType

from ..errors import WebhookVerificationError
from ..models_v3 import InventoryItemV3
from ..settings import is_int

__all__ = [
    "V3_ENTITY_FQDN",
    "V3_EVENT_TYPES",
    "V3_ITEM_CREATED",
    "V3_ITEM_DELETED",
    "V3_ITEM_UPDATED",
    "V3_ITEM_UPDATED_WITH_REASON",
    "DomainEvent",
    "decode_domain_event",
    "entity_of",
    "reason_body",
    "sequence_of",
]

V3_ITEM_CREATED: Final = "wix.stores.catalog.v3.inventory_item_created"
V3_ITEM_UPDATED: Final = "wix.stores.catalog.v3.inventory_item_updated"
V3_ITEM_DELETED: Final = "wix.stores.catalog.v3.inventory_item_deleted"
V3_ITEM_UPDATED_WITH_REASON: Final = "wix.stores.catalog.v3.inventory_item_updated_with_reason"
V3_EVENT_TYPES: Final = frozenset(
    {V3_ITEM_CREATED, V3_ITEM_UPDATED, V3_ITEM_DELETED, V3_ITEM_UPDATED_WITH_REASON}
)
V3_ENTITY_FQDN: Final = "wix.stores.catalog.v3.inventory_item"

_ANY = msgspec.json.Decoder()


class _Wire(Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """Base of the V3 event models (the client decodes them: unknown fields are ignored)."""


class _Created(_Wire, kw_only=True):
    entity_as_json: str | None | UnsetType = UNSET
    entity: Any = UNSET


class _Updated(_Wire, kw_only=True):
    current_entity_as_json: str | None | UnsetType = UNSET
    current_entity: Any = UNSET


class _Deleted(_Wire, kw_only=True):
    deleted_entity_as_json: str | None | UnsetType = UNSET
    deleted_entity: Any = UNSET


class _Action(_Wire, kw_only=True):
    body_as_json: str | None | UnsetType = UNSET
    body: Any = UNSET


class _ReasonBody(_Wire, kw_only=True):
    """``InventoryItemUpdatedWithReason``: the action event's body."""

    current_entity: Any = UNSET
    reason: str | None | UnsetType = UNSET
    app_id: str | None | UnsetType = UNSET


class DomainEvent(_Wire, kw_only=True):
    """The payload (envelope ``data``) of a V3 event; ``id`` is the event's, unique."""

    id: str
    entity_fqdn: str | UnsetType = UNSET
    slug: str | UnsetType = UNSET
    entity_id: str | UnsetType = UNSET
    event_time: str | None | UnsetType = UNSET
    triggered_by_anonymize_request: bool | None | UnsetType = UNSET
    originated_from: str | None | UnsetType = UNSET
    entity_event_sequence: str | int | None | UnsetType = UNSET
    created_event: _Created | UnsetType = UNSET
    updated_event: _Updated | UnsetType = UNSET
    deleted_event: _Deleted | UnsetType = UNSET
    action_event: _Action | UnsetType = UNSET


def _reject(message: str) -> WebhookVerificationError:
    return WebhookVerificationError(f"webhook rejected: {message}", reason="malformed")


def _convert(value: Any, kind: type[Any], where: str) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise _reject(f"unexpected shape of {where}: {exc}") from None


def _json_or_object(as_json: Any, value: Any, where: str) -> Any:
    """A nested value sent as a JSON string (``...AsJson``) or, by its SDK name, as either."""
    for candidate in (as_json, value):
        if isinstance(candidate, str):
            try:
                return _ANY.decode(candidate)
            except msgspec.DecodeError as exc:
                raise _reject(f"malformed JSON in {where}: {exc}") from None
            except RecursionError:
                raise _reject(f"JSON nested too deeply in {where}") from None
        if candidate is not UNSET and candidate is not None:
            return candidate
    return None


def decode_domain_event(raw: Any, where: str) -> DomainEvent:
    """The domain event of a decoded payload; its ``id`` must be a non-empty string."""
    event: DomainEvent = _convert(raw, DomainEvent, where)
    if not event.id:
        raise _reject(f"empty 'id' in {where}: V3 events are de-duplicated by their id")
    return event


def sequence_of(event: DomainEvent, where: str) -> int | None:
    """``entityEventSequence`` as an int (``None`` when absent)."""
    value = event.entity_event_sequence
    if value is UNSET or value is None:
        return None
    if is_int(value):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise _reject(f"entityEventSequence {value!r} in {where}: not a non-negative integer")


def entity_of(event: DomainEvent, where: str) -> InventoryItemV3 | None:
    """The item a created, updated or deleted event carries (``None`` if it carries none)."""
    raw: Any = None
    if isinstance(event.created_event, _Created):
        raw = _json_or_object(event.created_event.entity_as_json, event.created_event.entity, where)
    elif isinstance(event.updated_event, _Updated):
        body = event.updated_event
        raw = _json_or_object(body.current_entity_as_json, body.current_entity, where)
    elif isinstance(event.deleted_event, _Deleted):
        body_d = event.deleted_event
        raw = _json_or_object(body_d.deleted_entity_as_json, body_d.deleted_entity, where)
    if raw is None:
        return None
    item: InventoryItemV3 = _convert(raw, InventoryItemV3, f"the inventory item in {where}")
    return item


def reason_body(
    event: DomainEvent, where: str
) -> tuple[InventoryItemV3 | None, str | None, str | None]:
    """``(currentEntity, reason, appId)`` of an ``updated_with_reason`` action event."""
    action = event.action_event
    if not isinstance(action, _Action):
        raise _reject(f"no actionEvent in {where}")
    raw = _json_or_object(action.body_as_json, action.body, f"actionEvent of {where}")
    body: _ReasonBody = _convert(raw or {}, _ReasonBody, f"actionEvent of {where}")
    entity = _json_or_object(UNSET, body.current_entity, f"currentEntity of {where}")
    item = None
    if entity is not None:
        item = _convert(entity, InventoryItemV3, f"the inventory item in {where}")
    reason = body.reason if isinstance(body.reason, str) else None
    app_id = body.app_id if isinstance(body.app_id, str) else None
    return item, reason, app_id
