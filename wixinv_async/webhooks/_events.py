"""The typed webhook events :func:`~wixinv_async.webhooks.verify_webhook` returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ..models import InventoryItemChanged, InventoryVariantsChanged, WebhookIdentity
from ..models_v3 import InventoryItemV3

ITEM_CHANGED: Final = "com.wix.ecommerce.inventory.api.v1.InventoryItemChanged"
VARIANTS_CHANGED: Final = "com.wix.ecommerce.inventory.api.v1.InventoryVariantsChanged"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEvent:
    """The envelope every event carries, decoded.

    ``delivery_key`` identifies the event across Wix's redeliveries (see :func:`delivery_key`).
    """

    event_type: str
    instance_id: str | None
    identity: WebhookIdentity | None
    account_info: Any
    delivery_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryItemChangedEvent(WebhookEvent):
    """``InventoryItemChanged``: tracking or preorder settings of an item changed."""

    payload: InventoryItemChanged


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryVariantsChangedEvent(WebhookEvent):
    """``InventoryVariantsChanged``: quantity, inStock or availableForPreorder changed."""

    payload: InventoryVariantsChanged


@dataclass(frozen=True, slots=True, kw_only=True)
class RawWebhookEvent(WebhookEvent):
    """An event type this library does not model; ``payload`` is its decoded JSON."""

    payload: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryItemV3Event(WebhookEvent):
    """A Catalog V3 inventory item event (a Wix domain event); the four kinds subclass it.

    ``delivery_key`` is ``"id:" + event_id``: V3 events carry a unique id, so redeliveries
    are recognised exactly. ``entity_event_sequence`` grows with every change of the item:
    an event whose sequence is lower than one already handled for ``entity_id`` is stale
    (see :class:`EntitySequences`).
    """

    event_id: str
    """The event's unique id (the same in every redelivery)."""
    entity_id: str
    """The inventory item's id."""
    entity_event_sequence: int | None
    """The item's change counter at this event (``None`` if Wix sent none)."""
    event_time: str | None
    slug: str
    """``created``, ``updated``, ``deleted`` or ``updated_with_reason``."""
    originated_from: str | None
    item: InventoryItemV3 | None
    """The item after the change (for ``deleted``: as it was, when Wix sends it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryItemCreatedEvent(InventoryItemV3Event):
    """``wix.stores.catalog.v3.inventory_item_created``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryItemUpdatedEvent(InventoryItemV3Event):
    """``wix.stores.catalog.v3.inventory_item_updated``: any change of the item."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryItemDeletedEvent(InventoryItemV3Event):
    """``wix.stores.catalog.v3.inventory_item_deleted``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryItemUpdatedWithReasonEvent(InventoryItemV3Event):
    """``wix.stores.catalog.v3.inventory_item_updated_with_reason``: a change with the
    ``reason`` the writer gave (``ORDER``, ``MANUAL``, ``REVERT_INVENTORY_CHANGE``) and the id
    of the app that made it."""

    reason: str | None
    app_id: str | None


WebhookCallback: TypeAlias = Callable[[WebhookEvent], Awaitable[None]]
