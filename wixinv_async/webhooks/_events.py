"""The typed webhook events :func:`~wixinv_async.webhooks.verify_webhook` returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ..models import InventoryItemChanged, InventoryVariantsChanged, WebhookIdentity

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


WebhookCallback: TypeAlias = Callable[[WebhookEvent], Awaitable[None]]
