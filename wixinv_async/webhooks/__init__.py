"""Wix inventory webhooks: verify and decode signed events, remember deliveries, receive them.

Wix posts each event as a JWT signed RS256 with the app's key pair. Its ``data`` claim is a
JSON *string* holding ``{eventType, instanceId, data, identity, accountInfo}``, where ``data``
and ``identity`` are JSON strings again. Deliveries are retried for 48 hours, so they arrive
duplicated and out of order, and the receiver must answer 200 within 1250 ms.

- :func:`verify_webhook` checks the signature (RS256 only), ``exp`` and every JSON level, and
  returns a typed event: Catalog V1's :class:`InventoryItemChangedEvent` and
  :class:`InventoryVariantsChangedEvent`, Catalog V3's :class:`InventoryItemCreatedEvent`,
  :class:`InventoryItemUpdatedEvent`, :class:`InventoryItemDeletedEvent` and
  :class:`InventoryItemUpdatedWithReasonEvent` (all :class:`InventoryItemV3Event`), or, for
  any other event type, a :class:`RawWebhookEvent`. Anything else raises
  :class:`~wixinv_async.errors.WebhookVerificationError`.
- :class:`DeliveryMemory` is a pure, bounded, time-windowed memory of handled deliveries,
  keyed by :attr:`WebhookEvent.delivery_key`: a V3 event's unique id (exact), a V1 event's
  content (V1 events carry no id: see :func:`delivery_key`).
- :class:`EntitySequences` says whether a V3 event is stale (a lower ``entityEventSequence``
  than one already handled for its item).
- :class:`WebhookReceiver` is the aiohttp handler: it verifies, answers at once and hands the
  events to your async callback through a bounded queue. One receiver takes both catalogs'
  events, so it serves a site before, during and after its move from V1 to V3 (from then on
  the site sends V3 events only).

JWT support is the optional extra ``pip install "wixinv-async[webhooks]"`` (PyJWT with
cryptography), imported only when a webhook function is used.
"""

from ._events import (
    ITEM_CHANGED,
    VARIANTS_CHANGED,
    InventoryItemChangedEvent,
    InventoryItemCreatedEvent,
    InventoryItemDeletedEvent,
    InventoryItemUpdatedEvent,
    InventoryItemUpdatedWithReasonEvent,
    InventoryItemV3Event,
    InventoryVariantsChangedEvent,
    RawWebhookEvent,
    WebhookCallback,
    WebhookEvent,
)
from ._memory import DeliveryMemory, delivery_key
from ._receiver import WebhookReceiver, WebhookReceiverStats
from ._sequence import EntitySequences
from ._v3 import (
    V3_ENTITY_FQDN,
    V3_EVENT_TYPES,
    V3_ITEM_CREATED,
    V3_ITEM_DELETED,
    V3_ITEM_UPDATED,
    V3_ITEM_UPDATED_WITH_REASON,
)
from ._verify import (
    PrivateKeyInput,
    PublicKeyInput,
    load_private_key,
    load_public_key,
    sign_webhook,
    verify_webhook,
)

__all__ = [
    "ITEM_CHANGED",
    "V3_ENTITY_FQDN",
    "V3_EVENT_TYPES",
    "V3_ITEM_CREATED",
    "V3_ITEM_DELETED",
    "V3_ITEM_UPDATED",
    "V3_ITEM_UPDATED_WITH_REASON",
    "VARIANTS_CHANGED",
    "DeliveryMemory",
    "EntitySequences",
    "InventoryItemChangedEvent",
    "InventoryItemCreatedEvent",
    "InventoryItemDeletedEvent",
    "InventoryItemUpdatedEvent",
    "InventoryItemUpdatedWithReasonEvent",
    "InventoryItemV3Event",
    "InventoryVariantsChangedEvent",
    "PrivateKeyInput",
    "PublicKeyInput",
    "RawWebhookEvent",
    "WebhookCallback",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookReceiverStats",
    "delivery_key",
    "load_private_key",
    "load_public_key",
    "sign_webhook",
    "verify_webhook",
]
