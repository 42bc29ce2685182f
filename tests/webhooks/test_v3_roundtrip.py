"""V3 round trip over real HTTP: V3 changes on the emulator -> its sender -> one receiver."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import test_utils, web

from wixinv_async import ApiKeyAuth, BulkItemStatus, DecrementDataById, InventoryClient
from wixinv_async.emulator import Emulator
from wixinv_async.emulator.webhook_sender import WebhookSender
from wixinv_async.webhooks import (
    V3_ITEM_UPDATED,
    EntitySequences,
    InventoryItemDeletedEvent,
    InventoryItemUpdatedEvent,
    InventoryItemUpdatedWithReasonEvent,
    InventoryItemV3Event,
    InventoryVariantsChangedEvent,
    WebhookEvent,
    WebhookReceiver,
    sign_webhook,
)

V3 = "/stores/v3"


class Inbox:
    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []

    async def __call__(self, event: WebhookEvent) -> None:
        self.events.append(event)

    def v3(self) -> list[InventoryItemV3Event]:
        return [e for e in self.events if isinstance(e, InventoryItemV3Event)]


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


class Wix:
    """Bare V1 and V3 calls to the emulator with its API key."""

    def __init__(self, emu: Emulator, session: aiohttp.ClientSession) -> None:
        self.emu, self.session = emu, session
        self.headers = {"Authorization": emu.api_key, "wix-site-id": emu.site_id}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = self.emu.url + path
        async with self.session.request(method, url, json=body, headers=self.headers) as r:
            text = await r.text()
            return r.status, json.loads(text) if text else {}

    async def bulk(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, data = await self.call("POST", f"{V3}/bulk/inventory-items/{path}", body)
        assert status == 200, data
        assert isinstance(data, dict)
        return data


def tracked_items(emu: Emulator, count: int, minimum: int = 20) -> list[dict[str, Any]]:
    store = emu.v3_store()
    items = [
        i
        for i in store.items()
        if i["trackQuantity"] and i["quantity"] > minimum and not i["preorderInfo"]["enabled"]
    ]
    assert len(items) >= count
    return items[:count]


def quantities_from_journal(emu: Emulator) -> dict[str, list[int]]:
    """Each item's quantity after every applied V3 increment or decrement, in order."""
    after: dict[str, list[int]] = defaultdict(list)
    for entry in emu.v3_store().journal:
        for record in entry.entries:
            if "change" in record and record["success"]:
                after[record["inventoryItemId"]].append(record["quantityAfter"])
    return after


async def test_v3_changes_arrive_as_typed_events_with_ids_and_sequences(
    receiver_url: Any, app_keys: Any
) -> None:
    """Bulk decrements and increments, an update and a delete on a V3 site come back typed:
    updated plus updated_with_reason per applied change (reason and app id included), with
    unique ids and per-item increasing sequences; a refused entry sends nothing."""
    url, receiver, inbox = receiver_url
    sender = WebhookSender(url, app_keys.private_pem, app_id="app-under-test", seed=3)
    async with (
        Emulator(products=12, variants_per_product=2, seed=2, catalog="v3", webhooks=sender) as emu,
        aiohttp.ClientSession() as session,
    ):
        wix = Wix(emu, session)
        a, b, gone = tracked_items(emu, 3)
        decrements = [
            {"inventoryItemId": a["id"], "decrementBy": 2},
            {"inventoryItemId": a["id"], "decrementBy": 3},
            {"inventoryItemId": b["id"], "decrementBy": 99_999},  # refused: not enough stock
        ]
        answer = await wix.bulk("decrement", {"decrementData": decrements, "reason": "ORDER"})
        assert answer["bulkActionMetadata"]["totalFailures"] == 1
        await wix.bulk(
            "increment", {"incrementData": [{"inventoryItemId": b["id"], "incrementBy": 4}]}
        )
        revision = emu.v3_store().get(a["id"]).revision
        status, _ = await wix.call(
            "PATCH",
            f"{V3}/inventory-items/{a['id']}",
            {
                "inventoryItem": {"id": a["id"], "revision": str(revision), "quantity": 50},
                "reason": "MANUAL",
            },
        )
        assert status == 200
        status, _ = await wix.call("DELETE", f"{V3}/inventory-items/{gone['id']}")
        assert status == 200
        await sender.drain()
        await receiver.join()
        journal_after = quantities_from_journal(emu)

    events = inbox.v3()
    assert len(events) == len(inbox.events) == 2 * 4 + 1
    assert len({e.event_id for e in events}) == len(events)
    updated = [e for e in events if type(e) is InventoryItemUpdatedEvent]
    reasoned = [e for e in events if isinstance(e, InventoryItemUpdatedWithReasonEvent)]
    assert [(e.entity_id, e.item.quantity) for e in updated] == [  # type: ignore[union-attr]
        (a["id"], a["quantity"] - 2),
        (a["id"], a["quantity"] - 5),
        (b["id"], b["quantity"] + 4),
        (a["id"], 50),
    ]
    assert [e.item.quantity for e in updated[:3]] == [  # type: ignore[union-attr]
        *journal_after[a["id"]],
        *journal_after[b["id"]],
    ]
    assert [(e.reason, e.app_id) for e in reasoned] == [
        ("ORDER", "app-under-test"),
        ("ORDER", "app-under-test"),
        (None, "app-under-test"),
        ("MANUAL", "app-under-test"),
    ]
    assert [e.entity_event_sequence for e in updated] == [e.entity_event_sequence for e in reasoned]
    a_sequences = [e.entity_event_sequence for e in updated if e.entity_id == a["id"]]
    assert a_sequences == sorted(a_sequences) and len(set(a_sequences)) == 3
    (deleted,) = [e for e in events if isinstance(e, InventoryItemDeletedEvent)]
    assert deleted.entity_id == gone["id"] and deleted.item is not None
    assert deleted.item.quantity == gone["quantity"]
    assert {e.instance_id for e in events} == {emu.instance_id}


async def test_duplicated_v3_deliveries_are_dropped_by_id(receiver_url: Any, app_keys: Any) -> None:
    """Every V3 event sent twice reaches the callback once: the receiver keys them by id."""
    url, receiver, inbox = receiver_url
    sender = WebhookSender(url, app_keys.private_pem, duplicate_probability=1.0, seed=8)
    async with (
        Emulator(products=8, variants_per_product=2, seed=5, catalog="v3", webhooks=sender) as emu,
        aiohttp.ClientSession() as session,
    ):
        wix = Wix(emu, session)
        (item,) = tracked_items(emu, 1)
        entries = [{"inventoryItemId": item["id"], "incrementBy": 1}] * 5
        await wix.bulk("increment", {"incrementData": entries})
        await sender.drain()
        await receiver.join()

    events = inbox.v3()
    assert len(events) == 10 and len({e.delivery_key for e in events}) == 10
    assert sender.stats().duplicates == 10
    assert receiver.stats().duplicates == 10
    # Five increments of one: no two changes have the same content but each its own id, so
    # none was merged (a content key would not merge these either; equal states would be).
    assert [e.item.quantity for e in events if type(e) is InventoryItemUpdatedEvent] == [  # type: ignore[union-attr]
        item["quantity"] + n for n in range(1, 6)
    ]


async def test_shuffled_v3_events_are_told_stale_by_their_sequence(
    receiver_url: Any, app_keys: Any
) -> None:
    """Events of one item delivered shuffled: EntitySequences drops the ones older than an
    event already handled, so the state kept is the final one."""
    url, receiver, inbox = receiver_url
    sender = WebhookSender(url, app_keys.private_pem, reorder=True, reorder_window=0.05, seed=21)
    async with (
        Emulator(products=8, variants_per_product=2, seed=6, catalog="v3", webhooks=sender) as emu,
        aiohttp.ClientSession() as session,
    ):
        wix = Wix(emu, session)
        (item,) = tracked_items(emu, 1)
        entries = [{"inventoryItemId": item["id"], "incrementBy": 1}] * 20
        await wix.bulk("increment", {"incrementData": entries})
        await sender.drain()
        await receiver.join()
        final = emu.v3_store().get(item["id"]).quantity

    updated = [e for e in inbox.v3() if type(e) is InventoryItemUpdatedEvent]
    sequences = [e.entity_event_sequence for e in updated]
    assert sorted(sequences) != sequences, "the seeded shuffle reordered them"  # type: ignore[type-var]
    tracker = EntitySequences()
    kept: dict[str, int] = {}
    stale = 0
    for event in updated:
        if tracker.accept(event):
            assert event.item is not None and isinstance(event.item.quantity, int)
            kept[event.entity_id] = event.item.quantity
        else:
            stale += 1
    assert stale > 0
    assert kept == {item["id"]: final} and final == item["quantity"] + 20
    assert tracker.latest(item["id"]) == max(sequences)  # type: ignore[type-var]


async def test_site_migrating_mid_stream_sends_v1_then_v3_through_one_receiver(
    receiver_url: Any, app_keys: Any
) -> None:
    """A V1 site sends V1 events; migrated to V3 mid-stream, its V1 writes are refused and
    its V3 writes come back as V3 events, all through the same receiver."""
    url, receiver, inbox = receiver_url
    sender = WebhookSender(url, app_keys.private_pem, seed=4)
    async with (
        Emulator(products=8, variants_per_product=2, seed=7, webhooks=sender) as emu,
        aiohttp.ClientSession() as session,
    ):
        wix = Wix(emu, session)
        v1 = next(i for i in emu.store.items() if i.track_quantity is True)
        entry = {"productId": str(v1.product_id), "variantId": v1.variants[0].variant_id}
        status, _ = await wix.call(
            "POST",
            "/stores/v2/inventoryItems/increment",
            {"incrementData": [{**entry, "incrementBy": 2}]},
        )
        assert status == 200
        await sender.drain()
        await receiver.join()
        before_migration = len(inbox.events)
        emu.migrate_to_v3()
        status, _ = await wix.call(
            "POST",
            "/stores/v2/inventoryItems/increment",
            {"incrementData": [{**entry, "incrementBy": 2}]},
        )
        assert status == 428
        (record,) = [  # the V1 variant migrated (a default variant gets a fresh id)
            r
            for r in emu.v3_store().records()
            if r.product_id == entry["productId"]
            and entry["variantId"] in (r.variant_id, r.v1_variant_id)
        ]
        item = record.to_wire()
        await wix.bulk(
            "increment-by-variant-and-location",
            {"incrementData": [{"variantId": item["variantId"], "incrementBy": 3}]},
        )
        await sender.drain()
        await receiver.join()

    assert before_migration == 1
    kinds = [type(e) for e in inbox.events]
    assert kinds == [
        InventoryVariantsChangedEvent,
        InventoryItemUpdatedEvent,
        InventoryItemUpdatedWithReasonEvent,
    ]
    v3_event = inbox.events[1]
    assert isinstance(v3_event, InventoryItemUpdatedEvent) and v3_event.item is not None
    assert v3_event.item.quantity == item["quantity"] + 3
    assert {e.instance_id for e in inbox.events} == {emu.instance_id}
    assert receiver.stats().rejected == 0


def _token(keys: Any, payload: Any) -> str:
    return sign_webhook(V3_ITEM_UPDATED, payload, keys.private, instance_id="inst")


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"entityId": "x", "updatedEvent": {}}, "`id`"),
        ({"id": "e1", "entityId": "x", "entityEventSequence": "soon"}, "entityEventSequence"),
        ({"id": "e1", "entityId": "x", "updatedEvent": {"currentEntityAsJson": "{"}}, "JSON"),
        ({"id": "e1", "updatedEvent": {}}, "entityId"),
    ],
    ids=["no-id", "bad-sequence", "bad-entity-json", "no-entity-id"],
)
async def test_malformed_v3_events_get_400_over_http(
    receiver_url: Any, app_keys: Any, payload: Any, says: str
) -> None:
    """A signed but malformed V3 event is answered 400 naming the problem, like V1's."""
    url, receiver, inbox = receiver_url
    token = _token(app_keys, payload)
    async with aiohttp.ClientSession() as session, session.post(url, data=token) as response:
        assert response.status == 400
        assert says in await response.text()
    assert receiver.stats().rejected == 1 and inbox.events == []


async def test_v3_event_signed_with_another_key_gets_401(
    receiver_url: Any, app_keys: Any, other_keys: Any
) -> None:
    """A V3 event with a wrong signature is answered 401 and never reaches the callback."""
    url, receiver, inbox = receiver_url
    claims = {
        "data": json.dumps({"eventType": V3_ITEM_UPDATED, "data": "{}"}),
        "exp": time.time() + 60,
    }
    token = jwt.encode(claims, other_keys.private, algorithm="RS256")
    async with aiohttp.ClientSession() as session, session.post(url, data=token) as response:
        assert response.status == 401
    assert inbox.events == [] and receiver.stats().rejected == 1


async def test_bulk_and_filter_updates_send_events_for_applied_items_only(
    receiver_url: Any, app_keys: Any
) -> None:
    """A bulk update sends events for the entries it applied (not a stale revision's), and an
    update by filter one pair per matched item, without a reason."""
    url, receiver, inbox = receiver_url
    sender = WebhookSender(url, app_keys.private_pem, seed=9)
    async with (
        Emulator(products=8, variants_per_product=2, seed=3, catalog="v3", webhooks=sender) as emu,
        aiohttp.ClientSession() as session,
    ):
        wix = Wix(emu, session)
        good, stale = tracked_items(emu, 2)
        entries = [
            {"inventoryItem": {"id": good["id"], "revision": good["revision"], "quantity": 9}},
            {"inventoryItem": {"id": stale["id"], "revision": "999", "quantity": 1}},
        ]
        await wix.bulk("update", {"inventoryItems": entries, "reason": "REVERT_INVENTORY_CHANGE"})
        await sender.drain()
        await receiver.join()
        after_bulk = list(inbox.v3())
        matches = {i["id"] for i in emu.v3_store().items() if i["productId"] == stale["productId"]}
        body = {"filter": {"productId": stale["productId"]}, "inventoryItem": {"inStock": True}}
        await wix.bulk("update-by-filter", body)
        await sender.drain()
        await receiver.join()

    assert [(type(e), e.entity_id) for e in after_bulk] == [
        (InventoryItemUpdatedEvent, good["id"]),
        (InventoryItemUpdatedWithReasonEvent, good["id"]),
    ]
    assert isinstance(after_bulk[1], InventoryItemUpdatedWithReasonEvent)
    assert after_bulk[1].reason == "REVERT_INVENTORY_CHANGE"
    by_filter = inbox.v3()[2:]
    assert {e.entity_id for e in by_filter} == matches and len(by_filter) == 2 * len(matches)
    assert all(e.item is not None and e.item.in_stock is True for e in by_filter)
    reasons = {e.reason for e in by_filter if isinstance(e, InventoryItemUpdatedWithReasonEvent)}
    assert reasons == {None}


async def test_sequences_keep_growing_across_an_emulator_reset(
    receiver_url: Any, app_keys: Any
) -> None:
    """After a reset reseeds the V3 store (revisions start again), the sender still attached
    to it sends a sequence higher than any before, so nothing new looks stale."""
    url, receiver, inbox = receiver_url
    sender = WebhookSender(url, app_keys.private_pem, seed=10)
    async with (
        Emulator(products=8, variants_per_product=2, seed=3, catalog="v3", webhooks=sender) as emu,
        aiohttp.ClientSession() as session,
    ):
        wix = Wix(emu, session)
        (item,) = tracked_items(emu, 1)
        increment = {"incrementData": [{"inventoryItemId": item["id"], "incrementBy": 1}]}
        await wix.bulk("increment", increment)
        await wix.bulk("increment", increment)
        emu.reset()
        await wix.bulk("increment", increment)
        await sender.drain()
        await receiver.join()
        revision = emu.v3_store().get(item["id"]).revision

    updated = [e for e in inbox.v3() if type(e) is InventoryItemUpdatedEvent]
    assert [e.entity_event_sequence for e in updated] == [2, 3, 4]
    assert revision == 2
    assert updated[-1].item is not None and updated[-1].item.quantity == item["quantity"] + 1


SEED = 20261201


async def test_mixed_v3_traffic_duplicated_and_shuffled_settles_on_the_final_state(
    receiver_url: Any, app_keys: Any
) -> None:
    """Random bulk increments and decrements over many items, each event sent 0 or 1 extra
    times and shuffled: every applied entry reaches the callback exactly once, and keeping
    only non-stale events leaves each item at its final quantity."""
    rng = random.Random(SEED)
    print(f"seed={SEED}")
    url, receiver, inbox = receiver_url
    sender = WebhookSender(
        url, app_keys.private_pem, duplicate_probability=0.5, reorder=True, seed=SEED
    )
    async with (
        Emulator(products=15, variants_per_product=2, seed=8, catalog="v3", webhooks=sender) as emu,
        aiohttp.ClientSession() as session,
    ):
        wix = Wix(emu, session)
        items = tracked_items(emu, 8, minimum=30)
        for _ in range(6):
            picks = [rng.choice(items)["id"] for _ in range(25)]
            path, field = rng.choice([("increment", "increment"), ("decrement", "decrement")])
            entries = [{"inventoryItemId": i, f"{field}By": rng.randint(1, 4)} for i in picks]
            await wix.bulk(path, {f"{field}Data": entries, "reason": "ORDER"})
        await sender.drain()
        await receiver.join()
        journal = quantities_from_journal(emu)
        applied = sum(len(v) for v in journal.values())
        final = {i: emu.v3_store().get(i).quantity for i in journal}

    events = inbox.v3()
    assert len({e.event_id for e in events}) == len(events) == 2 * applied
    assert sender.stats().duplicates == receiver.stats().duplicates > 0
    tracker = EntitySequences()
    kept: dict[str, int | None] = {}
    for event in events:
        if type(event) is InventoryItemUpdatedEvent and tracker.accept(event):
            assert event.item is not None
            kept[event.entity_id] = event.item.quantity  # type: ignore[assignment]
    assert kept == final and len(final) > 1


async def test_the_clients_v3_writes_come_back_as_events_matching_its_results(
    receiver_url: Any, app_keys: Any
) -> None:
    """The library's own V3 bulk decrement, with a reason, comes back as one event pair per
    entry it reports APPLIED, none for the REFUSED one, each item's final stock in the last."""
    url, receiver, inbox = receiver_url
    sender = WebhookSender(url, app_keys.private_pem, seed=12)
    async with Emulator(
        products=10, variants_per_product=2, seed=4, catalog="v3", webhooks=sender
    ) as emu:
        a, b = tracked_items(emu, 2)
        entries = [
            DecrementDataById(inventory_item_id=a["id"], decrement_by=1),
            DecrementDataById(inventory_item_id=b["id"], decrement_by=99_999),
            DecrementDataById(inventory_item_id=a["id"], decrement_by=2),
        ]
        auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
        async with InventoryClient(auth, base_url=emu.url, rate_limit=None) as client:
            result = await client.bulk_decrement_inventory_items(entries, reason="ORDER")
        await sender.drain()
        await receiver.join()
        final = emu.v3_store().get(a["id"]).quantity

    assert [r.status for r in result] == [
        BulkItemStatus.APPLIED,
        BulkItemStatus.REFUSED,
        BulkItemStatus.APPLIED,
    ]
    reasoned = [e for e in inbox.v3() if isinstance(e, InventoryItemUpdatedWithReasonEvent)]
    assert [(e.entity_id, e.reason) for e in reasoned] == [(a["id"], "ORDER")] * 2
    assert (
        reasoned[-1].item is not None and reasoned[-1].item.quantity == final == a["quantity"] - 3
    )
