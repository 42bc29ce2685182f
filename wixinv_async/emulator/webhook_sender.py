"""The emulator's webhook sender: signed inventory events for every change the store applies.

:class:`WebhookSender` is the emulator's :class:`WebhookSink` (``docs/ARCHITECTURE.md``). It
listens to a store's :class:`ChangeEvent` values and posts what Wix would: an RS256-signed JWT
per event, ``InventoryVariantsChanged`` for quantity, inStock or availableForPreorder changes
(old and new values of the changed fields only), ``InventoryItemChanged`` for trackQuantity or
preorder changes. Like Wix, it can deliver duplicates and out of order, and it retries a
delivery that was not answered 200.

On a site that runs Catalog V3 (seeded so, or migrated: from then on its V1 calls fail, so it
sends V3 events only) it listens to the site's V3 store too and posts V3 domain events (shapes
in :mod:`wixinv_async.webhooks._v3`): for every applied change of an item (each entry of a bulk
increment or decrement, each update) ``inventory_item_updated`` and
``inventory_item_updated_with_reason`` (with the request's ``reason`` when it gave one, and
``appId``), for a delete ``inventory_item_deleted``; the emulator has no create call, so no
``created`` events. Each event has a fresh id (seeded, so a run is reproducible) that its
duplicates and retries keep. ``entityEventSequence`` counts the changes of the item: the two
events of one change share it; it is the item's ``revision`` unless that would not be higher
than the last one sent (after a ``reset``, or for a delete), so it never goes back.

The store's listener only queues (it never signs, sends or waits), so the emulator's request
handling is never blocked by a slow or absent receiver. Signing and posting happen in one
background task started by :meth:`WebhookSender.start`. When ``max_pending`` deliveries are
outstanding, new ones are dropped and counted rather than block the store or grow without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, NamedTuple, Protocol, Self

import aiohttp
import msgspec

from ..errors import ConfigurationError
from ..models import (
    ChangedVariant,
    FieldMask,
    InventoryItemChanged,
    InventoryVariantsChanged,
    PreorderInfo,
    VariantValues,
    WebhookIdentity,
)
from ..webhooks import (
    ITEM_CHANGED,
    V3_ENTITY_FQDN,
    V3_ITEM_DELETED,
    V3_ITEM_UPDATED,
    V3_ITEM_UPDATED_WITH_REASON,
    VARIANTS_CHANGED,
    PrivateKeyInput,
    load_private_key,
    sign_webhook,
)
from .v3_store import V3Change, V3Listener

__all__ = [
    "ChangeLike",
    "ChangeSource",
    "WebhookSender",
    "WebhookSenderStats",
    "change_payloads",
    "v3_payloads",
]

_FIELD_PATHS: Final = {"trackQuantity": "trackInventory"}
"""Store field names -> the InventoryItemChanged field mask's names."""
_VALUE_FIELDS: Final = ("quantity", "in_stock", "available_for_preorder")

Payload = InventoryItemChanged | InventoryVariantsChanged | dict[str, Any]


class ChangeLike(Protocol):
    """What the sender reads of the store's ``ChangeEvent`` (``emulator/store.py``)."""

    @property
    def site_id(self) -> str: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def inventory_item_id(self) -> str: ...
    @property
    def product_id(self) -> str: ...
    @property
    def track_quantity(self) -> bool: ...
    @property
    def preorder_info(self) -> PreorderInfo: ...
    @property
    def item_fields_changed(self) -> tuple[str, ...]: ...
    @property
    def variants(self) -> tuple[tuple[str, VariantValues, VariantValues], ...]: ...


class ChangeSource(Protocol):
    """What the sender needs of a store: ``SiteStore``'s listeners (V1's and its V3 store's)
    and instance id."""

    @property
    def instance_id(self) -> str: ...
    @property
    def v3_listeners(self) -> list[V3Listener]: ...
    def add_listener(self, listener: Callable[[ChangeLike], None]) -> None: ...


def _changed_values(old: VariantValues, new: VariantValues) -> tuple[VariantValues, VariantValues]:
    """Old and new values restricted to the fields that changed (all of them if none did)."""
    names = [n for n in _VALUE_FIELDS if getattr(old, n) != getattr(new, n)] or _VALUE_FIELDS
    return (
        VariantValues(**{n: getattr(old, n) for n in names}),
        VariantValues(**{n: getattr(new, n) for n in names}),
    )


def change_payloads(change: ChangeLike, *, updated_date: str) -> list[tuple[str, Payload]]:
    """The webhook events (type, payload) Wix would send for one changed inventory item."""
    events: list[tuple[str, Payload]] = []
    if change.item_fields_changed:
        paths = [_FIELD_PATHS.get(name, name) for name in change.item_fields_changed]
        item = InventoryItemChanged(
            inventory_item_id=change.inventory_item_id,
            external_id=change.product_id,
            product_id=change.product_id,
            track_inventory=change.track_quantity,
            preorder_info=change.preorder_info,
            field_mask=FieldMask(paths=paths),
            updated_date=updated_date,
        )
        events.append((ITEM_CHANGED, item))
    if change.variants:
        variants = []
        for variant_id, old, new in change.variants:
            old_value, new_value = _changed_values(old, new)
            variants.append(ChangedVariant(id=variant_id, old_value=old_value, new_value=new_value))
        changed = InventoryVariantsChanged(
            inventory_item_id=change.inventory_item_id,
            external_id=change.product_id,
            product_id=change.product_id,
            variants=variants,
        )
        events.append((VARIANTS_CHANGED, changed))
    return events


def _domain_event(
    event_id: str, slug: str, change: V3Change, sequence: int, event_time: str, body: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": event_id,
        "entityFqdn": V3_ENTITY_FQDN,
        "slug": slug,
        "entityId": change.item["id"],
        "eventTime": event_time,
        "triggeredByAnonymizeRequest": False,
        "entityEventSequence": str(sequence),
    }
    event.update(body)
    return event


def v3_payloads(
    change: V3Change,
    *,
    event_ids: Callable[[], str],
    sequence: int,
    event_time: str,
    app_id: str,
) -> list[tuple[str, dict[str, Any]]]:
    """The V3 webhook events (type, domain event) Wix would send for one changed item."""
    entity = _encode_str(change.item)
    if change.kind == "deleted":
        body = {"deletedEvent": {"deletedEntityAsJson": entity}}
        return [
            (
                V3_ITEM_DELETED,
                _domain_event(event_ids(), "deleted", change, sequence, event_time, body),
            )
        ]
    reason: dict[str, Any] = {"currentEntity": change.item, "appId": app_id}
    if change.reason is not None:
        reason["reason"] = change.reason
    updated = {"updatedEvent": {"currentEntityAsJson": entity}}
    action = {"actionEvent": {"bodyAsJson": _encode_str(reason)}}
    return [
        (
            V3_ITEM_UPDATED,
            _domain_event(event_ids(), "updated", change, sequence, event_time, updated),
        ),
        (
            V3_ITEM_UPDATED_WITH_REASON,
            _domain_event(event_ids(), "updated_with_reason", change, sequence, event_time, action),
        ),
    ]


def _encode_str(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _rfc3339(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class _Delivery:
    event_type: str
    payload: Payload
    instance_id: str
    site_id: str
    attempt: int = 1


class WebhookSenderStats(NamedTuple):
    """Counters of a :class:`WebhookSender` since it was made."""

    outstanding: int
    """Deliveries queued, in flight or waiting to be retried now."""
    sent: int
    """Deliveries answered 200 (duplicates included)."""
    duplicates: int
    """Extra copies queued on purpose (``duplicate_probability``)."""
    retried: int
    """Attempts that failed and were queued again."""
    failed: int
    """Deliveries given up after ``max_attempts``."""
    dropped: int
    """Deliveries never queued because ``max_pending`` were outstanding."""


class WebhookSender:
    """Posts RS256-signed inventory webhooks for the changes of attached stores.

    ``url`` receives the POSTs; ``private_key_pem`` is the app's private key (the receiver
    verifies with its public half). ``duplicate_probability`` sends that share of events
    twice; ``reorder`` collects what arrives within ``reorder_window`` seconds and sends it
    shuffled; both use ``random.Random(seed)``, so a run is reproducible. A delivery not
    answered 200 is retried after ``retry_delay * 2**(attempt - 1)`` seconds, up to
    ``max_attempts`` in all, re-signed each time as Wix does.
    """

    def __init__(
        self,
        url: str,
        private_key_pem: PrivateKeyInput,
        *,
        duplicate_probability: float = 0.0,
        reorder: bool = False,
        seed: int = 0,
        reorder_window: float = 0.02,
        app_id: str = "wixinv-emulator",
        token_lifetime: float = 300.0,
        max_pending: int = 10_000,
        max_attempts: int = 3,
        retry_delay: float = 0.2,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ):
        _check_settings(duplicate_probability, max_pending, max_attempts, url)
        self._url = url
        self._key = load_private_key(private_key_pem)
        self._duplicate_probability = duplicate_probability
        self._reorder = reorder
        self._reorder_window = reorder_window
        self._rng = random.Random(seed)
        self._ids = random.Random(seed ^ 0x1D5)
        self._sequences: dict[str, int] = {}
        self._identity = WebhookIdentity(identity_type="APP", app_id=app_id)
        self._lifetime = token_lifetime
        self._max_pending = max_pending
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._timeout = timeout
        self._clock = clock
        self._pending: deque[_Delivery] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._outstanding = 0
        self._timers: set[asyncio.TimerHandle] = set()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._counts = dict.fromkeys(WebhookSenderStats._fields[1:], 0)

    # --- WebhookSink -------------------------------------------------------------------

    def attach(self, store: ChangeSource) -> None:
        """Listen to ``store``'s changes, V1 and (while the site runs V3) V3; any number of
        stores may be attached."""
        store.add_listener(self.on_change)
        instance_id = store.instance_id

        def on_v3_change(change: V3Change) -> None:
            self.on_v3_change(change, instance_id)

        store.v3_listeners.append(on_v3_change)

    async def start(self) -> None:
        """Open the HTTP session and start the background sender (idempotent)."""
        if self._task is not None:
            return
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        self._task = asyncio.create_task(self._run(), name="wixinv-webhook-sender")

    async def aclose(self, *, grace: float | None = 5.0) -> None:
        """Send what is outstanding for up to ``grace`` seconds, then stop and close."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- queueing (synchronous, called from the store) ---------------------------------

    def on_change(self, change: ChangeLike) -> None:
        """The store listener: queue the events of one change; never blocks or raises."""
        for event_type, payload in change_payloads(change, updated_date=_rfc3339(self._clock())):
            self._queue(_Delivery(event_type, payload, change.instance_id, change.site_id))

    def on_v3_change(self, change: V3Change, instance_id: str) -> None:
        """The V3 store listener: queue the events of one changed item; never blocks."""
        item_id = str(change.item["id"])
        sequence = max(self._sequences.get(item_id, 0) + 1, int(change.item["revision"]))
        self._sequences[item_id] = sequence
        payloads = v3_payloads(
            change,
            event_ids=self._event_id,
            sequence=sequence,
            event_time=_rfc3339(self._clock()),
            app_id=self._identity.app_id if isinstance(self._identity.app_id, str) else "",
        )
        for event_type, payload in payloads:
            self._queue(_Delivery(event_type, payload, instance_id, change.site_id))

    def _event_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _queue(self, delivery: _Delivery) -> None:
        """Queue one delivery, and a duplicate of it with ``duplicate_probability``."""
        self._enqueue(delivery)
        twice = self._duplicate_probability > 0 and self._rng.random() < self._duplicate_probability
        if twice and self._enqueue(delivery):
            self._counts["duplicates"] += 1

    def _enqueue(self, delivery: _Delivery) -> bool:
        if self._outstanding >= self._max_pending:
            self._counts["dropped"] += 1
            return False
        self._outstanding += 1
        self._idle.clear()
        self._pending.append(delivery)
        self._wake.set()
        return True

    def _requeue(self, delivery: _Delivery) -> None:
        self._pending.append(delivery)
        self._wake.set()

    def _finish(self, outcome: str) -> None:
        self._counts[outcome] += 1
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle.set()

    # --- sending (the background task) ---------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self._reorder:
                await asyncio.sleep(self._reorder_window)
            self._wake.clear()
            batch = list(self._pending)
            self._pending.clear()
            if self._reorder:
                self._rng.shuffle(batch)
            for delivery in batch:
                await self._deliver(delivery)

    async def _deliver(self, delivery: _Delivery) -> None:
        if await self._post(self._sign(delivery)):
            self._finish("sent")
        elif delivery.attempt < self._max_attempts:
            self._counts["retried"] += 1
            delay = self._retry_delay * 2 ** (delivery.attempt - 1)
            self._schedule_retry(replace(delivery, attempt=delivery.attempt + 1), delay)
        else:
            self._finish("failed")

    def _schedule_retry(self, delivery: _Delivery, delay: float) -> None:
        timers: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(timers[0])
            self._requeue(delivery)

        timers.append(asyncio.get_running_loop().call_later(delay, fire))
        self._timers.add(timers[0])

    def _sign(self, delivery: _Delivery) -> str:
        return sign_webhook(
            delivery.event_type,
            delivery.payload,
            self._key,
            instance_id=delivery.instance_id,
            identity=self._identity,
            account_info={"siteId": delivery.site_id},
            now=self._clock(),
            lifetime=self._lifetime,
        )

    async def _post(self, body: str) -> bool:
        assert self._session is not None, "start() the sender first"
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        try:
            async with self._session.post(self._url, data=body, headers=headers) as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    # --- inspection --------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait until every queued delivery was sent or given up (the sender must be started)."""
        if self._task is None and self._outstanding:
            raise ConfigurationError("drain() of a WebhookSender that was not started")
        await self._idle.wait()

    def stats(self) -> WebhookSenderStats:
        """Counters so far, and the deliveries outstanding now."""
        return WebhookSenderStats(outstanding=self._outstanding, **self._counts)

    def __repr__(self) -> str:
        state = "running" if self._task is not None else "stopped"
        return f"<WebhookSender {state} url={self._url!r} outstanding={self._outstanding}>"


def _check_settings(probability: float, max_pending: int, max_attempts: int, url: str) -> None:
    if not 0.0 <= probability <= 1.0:
        raise ConfigurationError(f"duplicate_probability={probability!r}: must be from 0 to 1")
    for name, value in (("max_pending", max_pending), ("max_attempts", max_attempts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name}={value!r}: must be an int >= 1")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"url={url!r}: must be an http(s) URL")
