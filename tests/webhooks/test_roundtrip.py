"""Round trip: stock changed on the emulator over HTTP comes back as verified, decoded webhooks."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import test_utils, web

from wixinv_async.adjuster import InventoryAdjuster, OutcomeStatus
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient
from wixinv_async.emulator import Emulator, SiteStore
from wixinv_async.emulator.webhook_sender import WebhookSender
from wixinv_async.models import DecrementData, IncrementData, VariantUpdate
from wixinv_async.webhooks import (
    InventoryItemChangedEvent,
    InventoryVariantsChangedEvent,
    WebhookEvent,
    WebhookReceiver,
)

Change = tuple[str, str, int | None, int | None]
"""(productId, variantId, old quantity, new quantity)"""


class Inbox:
    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []

    async def __call__(self, event: WebhookEvent) -> None:
        self.events.append(event)

    def variant_changes(self) -> Counter[Change]:
        changes: Counter[Change] = Counter()
        for event in self.events:
            if isinstance(event, InventoryVariantsChangedEvent):
                for variant in event.payload.variants:
                    old, new = variant.old_value.quantity, variant.new_value.quantity
                    assert isinstance(event.payload.product_id, str)
                    changes[(event.payload.product_id, variant.id, old, new)] += 1  # type: ignore[arg-type]
        return changes


@pytest.fixture
async def receiver_url(app_keys: Any) -> AsyncIterator[tuple[str, WebhookReceiver, Inbox]]:
    """A verifying receiver on its own loopback port."""
    inbox = Inbox()
    receiver = WebhookReceiver(app_keys.public_pem, inbox)
    app = web.Application()
    receiver.install(app, "/wix/webhooks")
    server = test_utils.TestServer(app)
    await server.start_server()
    yield str(server.make_url("/wix/webhooks")), receiver, inbox
    await server.close()


def replay(
    store: SiteStore, before: dict[tuple[str, str], int | None]
) -> tuple[Counter[Change], dict[tuple[str, str], int | None]]:
    """Replay the journal's increments and decrements from ``before``: one change per variant
    per request (old value before the request, new value after it), and the final values."""
    current = dict(before)
    changes: Counter[Change] = Counter()
    for entry in store.journal:
        sign = {"incrementInventory": 1, "decrementInventory": -1}.get(entry.endpoint)
        if sign is None:
            continue
        after = dict(current)
        for item in entry.entries:
            key = (item["productId"], item["variantId"])
            amount = item.get("incrementBy", item.get("decrementBy"))
            after[key] = (after[key] or 0) + sign * amount
        for key in {(i["productId"], i["variantId"]) for i in entry.entries}:
            changes[(*key, current[key], after[key])] += 1
        current = after
    return changes, current


async def test_emulator_changes_arrive_verified_and_match_the_journal(
    receiver_url: Any, app_keys: Any
) -> None:
    """Increments and decrements over HTTP, sent duplicated and shuffled, are received once each
    with the journal's old and new quantities; the tracking switch arrives as an item event."""
    url, receiver, inbox = receiver_url
    sender = WebhookSender(
        url, app_keys.private_pem, duplicate_probability=0.5, reorder=True, seed=11
    )
    async with Emulator(products=6, variants_per_product=2, seed=4, webhooks=sender) as emu:
        tracked = [i for i in emu.store.items() if i.track_quantity is True]
        assert len(tracked) >= 3
        keys = [(str(i.product_id), v.variant_id) for i in tracked[:2] for v in i.variants]
        before = {key: emu.store.quantity(*key) for key in keys}
        auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
        async with InventoryClient(auth, base_url=emu.url, rate_limit=None) as client:
            for step in (3, 5, 7):
                await client.increment_inventory(
                    [IncrementData(product_id=p, variant_id=v, increment_by=step) for p, v in keys]
                )
            await client.decrement_inventory(
                [DecrementData(product_id=p, variant_id=v, decrement_by=2) for p, v in keys[:2]]
            )
            switched = tracked[2]
            pid = str(switched.product_id)
            untracked: Counter[Change] = Counter(
                (pid, v.variant_id, emu.store.quantity(pid, v.variant_id), None)
                for v in switched.variants
            )
            await client.update_inventory_variants(
                str(switched.product_id),
                [VariantUpdate(variant_id=switched.variants[0].variant_id, in_stock=True)],
                track_quantity=False,
            )
        await sender.drain()
        await receiver.join()
        expected, replayed = replay(emu.store, before)
        final = {key: emu.store.quantity(*key) for key in keys}

    received = inbox.variant_changes()
    assert received == expected + untracked
    assert sum(expected.values()) == 3 * len(keys) + 2
    assert final == replayed
    assert sender.stats().duplicates > 0
    assert receiver.stats().duplicates == sender.stats().duplicates
    item_events = [e for e in inbox.events if isinstance(e, InventoryItemChangedEvent)]
    assert [(e.payload.product_id, e.payload.track_inventory) for e in item_events] == [
        (switched.product_id, False)
    ]
    assert item_events[0].payload.field_mask.paths == ["trackInventory"]  # type: ignore[union-attr]
    assert {e.instance_id for e in inbox.events} == {emu.instance_id}


async def test_adjuster_traffic_arrives_once_per_applied_change(
    receiver_url: Any, app_keys: Any
) -> None:
    """Deltas from concurrent producers, coalesced by the adjuster into batches, come back as
    one verified event per variant per applied request, matching the journal's replay."""
    url, receiver, inbox = receiver_url
    rng = random.Random(2026)
    sender = WebhookSender(url, app_keys.private_pem, duplicate_probability=0.3, seed=5)
    async with Emulator(products=20, variants_per_product=3, seed=9, webhooks=sender) as emu:
        keys = [
            (str(i.product_id), v.variant_id)
            for i in emu.store.items()
            if i.track_quantity is True
            for v in i.variants
        ]
        before = {key: emu.store.quantity(*key) for key in keys}
        auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
        async with InventoryClient(auth, base_url=emu.url, rate_limit=None) as client:
            adjuster = InventoryAdjuster(client, max_batch=25, linger=0.005)
            async with adjuster:

                async def producer(sign: int) -> list[Any]:
                    pool = keys if sign > 0 else [k for k in keys if (before[k] or 0) >= 100]
                    picks = [rng.choice(pool) for _ in range(60)]
                    return [await adjuster.submit(p, v, sign * rng.randint(1, 3)) for p, v in picks]

                # Phase one only adds and phase two only takes, so no two distinct changes of
                # one variant carry the same old and new values (which a content key would merge).
                up = await asyncio.gather(*(producer(+1) for _ in range(4)))
                await adjuster.flush()
                down = await asyncio.gather(*(producer(-1) for _ in range(2)))
                await adjuster.flush()
                outcomes = {(await t).status for batch in (*up, *down) for t in batch}
        await sender.drain()
        await receiver.join()
        expected, replayed = replay(emu.store, before)
        final = {key: emu.store.quantity(*key) for key in keys}

    assert outcomes == {OutcomeStatus.COMMITTED}
    assert len(emu.store.journal) > 2
    assert inbox.variant_changes() == expected
    assert final == replayed
    assert receiver.stats().duplicates == sender.stats().duplicates > 0
