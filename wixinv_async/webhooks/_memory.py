"""Idempotency: the key of one event across Wix's redeliveries, and a memory of handled ones."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import msgspec

from ..errors import ConfigurationError
from ..models import WebhookEnvelope
from ..settings import is_int

_CANONICAL = msgspec.json.Encoder(order="sorted")


def delivery_key(envelope: WebhookEnvelope, payload: Any, identity: Any) -> str:
    """SHA-256 of the event's canonical content: stable across Wix's redeliveries.

    Not the raw body's hash: a redelivery may be signed again, with new ``iat``/``exp``, so the
    same event arrives as different bytes. Not an event id: V1 inventory events carry none, and
    an ``id`` in other payloads may be the entity's, shared by many events. The content
    (type, instance, decoded payload and identity, account info) with sorted keys is what one
    event keeps across deliveries.

    The price: two distinct events with equal content share a key. ``InventoryVariantsChanged``
    carries no timestamp, so stock going 5 -> 4, back to 5, then 4 again within the memory's
    window makes the second 5 -> 4 look like a duplicate of the first. A receiver that must
    see every change should re-read the item (Get Inventory Variants) rather than trust the
    sequence of events alone.
    """
    fields = [envelope.event_type, envelope.instance_id, payload, identity, envelope.account_info]
    canonical = _CANONICAL.encode([None if f is msgspec.UNSET else f for f in fields])
    return hashlib.sha256(canonical).hexdigest()


class DeliveryMemory:
    """Which deliveries were handled, for ``window`` seconds, at most ``max_entries`` of them.

    Pure: ``now`` is passed in. Keys are :attr:`WebhookEvent.delivery_key`. The default
    window covers Wix's 48 hours of retries plus an hour; past ``max_entries`` the oldest
    keys are forgotten first (a bounded memory may let a very late duplicate through: size it
    to your event rate times the window).
    """

    __slots__ = ("_max_entries", "_seen", "_window")

    def __init__(self, *, window: float = 49 * 3600.0, max_entries: int = 100_000):
        if not window > 0:
            raise ConfigurationError(f"window={window!r}: must be > 0 seconds")
        if not is_int(max_entries) or max_entries < 1:
            raise ConfigurationError(f"max_entries={max_entries!r}: must be an int >= 1")
        self._window = float(window)
        self._max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def claim(self, key: str, now: float) -> bool:
        """Remember ``key``; ``True`` if it is new (handle it), ``False`` if a duplicate."""
        self._expire(now)
        if key in self._seen:
            return False
        self._seen[key] = now
        while len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)
        return True

    def seen(self, key: str, now: float) -> bool:
        """Whether ``key`` was claimed within the window, without claiming it."""
        self._expire(now)
        return key in self._seen

    def forget(self, key: str) -> None:
        """Drop ``key``, so its next delivery is handled (after a failed or refused one)."""
        self._seen.pop(key, None)

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if oldest > horizon:
                break
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)

    def __repr__(self) -> str:
        return (
            f"DeliveryMemory(window={self._window}, max_entries={self._max_entries}, "
            f"remembered={len(self._seen)})"
        )
