"""Wix inventory webhooks: verify and decode signed events, remember deliveries, receive them.

Wix posts each event as a JWT signed RS256 with the app's key pair. Its ``data`` claim is a
JSON *string* holding ``{eventType, instanceId, data, identity, accountInfo}``, where ``data``
and ``identity`` are JSON strings again. Deliveries are retried for 48 hours, so they arrive
duplicated and out of order, and the receiver must answer 200 within 1250 ms.

- :func:`verify_webhook` checks the signature (RS256 only), ``exp`` and every JSON level, and
  returns an :class:`InventoryItemChangedEvent`, an :class:`InventoryVariantsChangedEvent` or,
  for any other event type, a :class:`RawWebhookEvent`. Anything else raises
  :class:`~wixinv_async.errors.WebhookVerificationError`.
- :class:`DeliveryMemory` is a pure, bounded, time-windowed memory of handled deliveries.
- :class:`WebhookReceiver` is the aiohttp handler: it verifies, answers at once and hands the
  events to your async callback through a bounded queue.

JWT support is the optional extra ``pip install "wixinv-async[webhooks]"`` (PyJWT with
cryptography), imported only when a webhook function is used.
"""

from ._events import (
    ITEM_CHANGED,
    VARIANTS_CHANGED,
    InventoryItemChangedEvent,
    InventoryVariantsChangedEvent,
    RawWebhookEvent,
    WebhookCallback,
    WebhookEvent,
)
from ._memory import DeliveryMemory, delivery_key
from ._receiver import WebhookReceiver, WebhookReceiverStats
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
    "VARIANTS_CHANGED",
    "DeliveryMemory",
    "InventoryItemChangedEvent",
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
