"""WebhookSender: store changes become signed events, posted in the background, like Wix."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import test_utils, web

from wixinv_async.emulator.store import ChangeEvent
from wixinv_async.emulator.webhook_sender import WebhookSender, change_payloads
from wixinv_async.errors import ConfigurationError
from wixinv_async.models import (
    FieldMask,
    InventoryItemChanged,
    InventoryVariantsChanged,
    PreorderInfo,
    VariantValues,
)
from wixinv_async.webhooks import (
    ITEM_CHANGED,
    VARIANTS_CHANGED,
    InventoryItemChangedEvent,
    InventoryVariantsChangedEvent,
    WebhookEvent,
    WebhookReceiver,
)

VARIANT = "00000000-0000-0000-0000-000000000000"
NO_PREORDER = PreorderInfo(enabled=False, message=None, limit=None)


def values(quantity: int | None, in_stock: bool = True) -> VariantValues:
    return VariantValues(quantity=quantity, in_stock=in_stock, available_for_preorder=False)


def change(
    old: int | None = 5,
    new: int | None = 4,
    *,
    product: str = "prod-1",
    fields: tuple[str, ...] = (),
    track: bool = True,
) -> ChangeEvent:
    """A ChangeEvent as the store emits it: one item, one variant from ``old`` to ``new``."""
    variants = () if old == new else ((VARIANT, values(old, old != 0), values(new, new != 0)),)
    return ChangeEvent(
        site_id="site-1",
        instance_id="inst-1",
        request_id="req-1",
        inventory_item_id=f"inv-{product}",
        product_id=product,
        track_quantity=track,
        preorder_info=NO_PREORDER,
        item_fields_changed=fields,
        variants=variants,
    )


# --- change_payloads (pure) -------------------------------------------------------------


def test_quantity_change_becomes_a_variants_event_with_changed_fields_only() -> None:
    """A quantity change reports the old and new values of the fields that changed."""
    [(event_type, payload)] = change_payloads(change(5, 4), updated_date="d")
    assert event_type == VARIANTS_CHANGED
    assert isinstance(payload, InventoryVariantsChanged)
    assert payload.product_id == payload.external_id == "prod-1"
    [variant] = payload.variants
    assert (variant.id, variant.old_value, variant.new_value) == (
        VARIANT,
        VariantValues(quantity=5),
        VariantValues(quantity=4),
    )


def test_selling_out_reports_quantity_and_in_stock() -> None:
    """Going to zero changes inStock too, so both appear in old and new."""
    [(_, payload)] = change_payloads(change(1, 0), updated_date="d")
    assert isinstance(payload, InventoryVariantsChanged)
    assert payload.variants[0].new_value == VariantValues(quantity=0, in_stock=False)


def test_tracking_switch_becomes_an_item_event() -> None:
    """A trackQuantity change is an InventoryItemChanged whose field mask says trackInventory."""
    events = change_payloads(change(5, 5, fields=("trackQuantity",), track=False), updated_date="d")
    assert events == [
        (
            ITEM_CHANGED,
            InventoryItemChanged(
                inventory_item_id="inv-prod-1",
                external_id="prod-1",
                product_id="prod-1",
                track_inventory=False,
                preorder_info=NO_PREORDER,
                field_mask=FieldMask(paths=["trackInventory"]),
                updated_date="d",
            ),
        )
    ]


def test_item_and_variant_changes_give_two_events() -> None:
    """A change of both kinds gives the item event, then the variants event."""
    events = change_payloads(change(5, None, fields=("trackQuantity",)), updated_date="d")
    assert [event_type for event_type, _ in events] == [ITEM_CHANGED, VARIANTS_CHANGED]


# --- sending -------------------------------------------------------------------------------


class Inbox:
    """A receiver app that records what it is handed."""

    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []

    async def __call__(self, event: WebhookEvent) -> None:
        self.events.append(event)

    def quantities(self) -> list[Any]:
        return [
            e.payload.variants[0].new_value.quantity
            for e in self.events
            if isinstance(e, InventoryVariantsChangedEvent)
        ]


@pytest.fixture
async def inbox(app_keys: Any) -> AsyncIterator[tuple[str, WebhookReceiver, Inbox]]:
    """A running receiver on a loopback port: (url, receiver, inbox)."""
    box = Inbox()
    receiver = WebhookReceiver(app_keys.public_pem, box)
    app = web.Application()
    receiver.install(app, "/hooks")
    server = test_utils.TestServer(app)
    await server.start_server()
    yield str(server.make_url("/hooks")), receiver, box
    await server.close()


async def test_changes_arrive_signed_and_decoded(inbox: Any, app_keys: Any) -> None:
    """Events queued from store changes reach a verifying receiver, in order, envelope intact."""
    url, receiver, box = inbox
    async with WebhookSender(url, app_keys.private_pem) as sender:
        for old in (5, 4, 3):
            sender.on_change(change(old, old - 1))
        sender.on_change(change(3, 3, fields=("trackQuantity",), track=False))
        await sender.drain()
    await receiver.join()
    assert box.quantities() == [4, 3, 2]
    assert isinstance(box.events[-1], InventoryItemChangedEvent)
    first = box.events[0]
    assert (first.instance_id, first.account_info) == ("inst-1", {"siteId": "site-1"})
    assert sender.stats().sent == 4


async def test_duplicates_are_sent_and_handled_once(inbox: Any, app_keys: Any) -> None:
    """With duplicate_probability=1 every event goes out twice and is handled once."""
    url, receiver, box = inbox
    async with WebhookSender(url, app_keys.private_pem, duplicate_probability=1.0) as sender:
        sender.on_change(change(5, 4))
        sender.on_change(change(4, 3))
        await sender.drain()
    await receiver.join()
    assert sender.stats()[1:3] == (4, 2)
    assert box.quantities() == [4, 3]
    assert receiver.stats().duplicates == 2


async def test_reorder_shuffles_deliveries_reproducibly(inbox: Any, app_keys: Any) -> None:
    """reorder=True delivers a burst out of order, the same order for the same seed."""
    url, receiver, box = inbox
    orders = []
    for run in range(2):
        box.events.clear()
        async with WebhookSender(url, app_keys.private_pem, reorder=True, seed=7) as sender:
            for quantity in range(8):
                sender.on_change(change(quantity + 100, quantity, product=f"p{quantity}-{run}"))
            await sender.drain()
        await receiver.join()
        orders.append(box.quantities())
    assert sorted(orders[0]) == list(range(8))
    assert orders[0] != list(range(8))
    assert orders[0] == orders[1]


async def test_refused_delivery_is_retried_until_answered_200(app_keys: Any) -> None:
    """A non-200 answer is retried, re-signed, until the receiver accepts it."""
    statuses = iter([503, 500, 200])
    bodies: list[str] = []

    async def flaky(request: web.Request) -> web.Response:
        bodies.append(await request.text())
        return web.Response(status=next(statuses))

    app = web.Application()
    app.router.add_post("/", flaky)
    async with test_utils.TestServer(app) as server:
        sender = WebhookSender(str(server.make_url("/")), app_keys.private_pem, retry_delay=0.001)
        async with sender:
            sender.on_change(change())
            await sender.drain()
    assert len(bodies) == 3
    assert sender.stats()[1:5] == (1, 0, 2, 0)


async def test_unreachable_receiver_is_given_up_after_max_attempts(app_keys: Any) -> None:
    """With nobody listening, a delivery fails max_attempts times and is counted failed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    async with WebhookSender(
        url, app_keys.private_pem, max_attempts=2, retry_delay=0.001
    ) as sender:
        sender.on_change(change())
        await sender.drain()
    assert sender.stats() == (0, 0, 0, 1, 1, 0)


def test_listener_drops_past_max_pending_without_blocking(app_keys: Any) -> None:
    """The store's listener never blocks: past max_pending, deliveries are dropped and counted."""
    sender = WebhookSender("http://127.0.0.1:9/", app_keys.private_pem, max_pending=2)
    for old in (9, 8, 7):
        sender.on_change(change(old, old - 1))
    assert sender.stats().outstanding == 2
    assert sender.stats().dropped == 1
    assert "BEGIN" not in repr(sender)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"duplicate_probability": 1.5}, "duplicate_probability"),
        ({"max_pending": 0}, "max_pending"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"url": "ftp://x"}, "url"),
    ],
)
def test_bad_sender_settings_are_refused(
    app_keys: Any, kwargs: dict[str, Any], fragment: str
) -> None:
    """Settings that cannot work raise ConfigurationError naming the field."""
    url = kwargs.pop("url", "http://127.0.0.1:9/")
    with pytest.raises(ConfigurationError, match=fragment):
        WebhookSender(url, app_keys.private_pem, **kwargs)


def test_private_key_errors_do_not_echo_the_key() -> None:
    """A bad private key is refused without its text in the message."""
    with pytest.raises(ConfigurationError) as info:
        WebhookSender("http://127.0.0.1:9/", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END")
    assert "c2VjcmV0" not in str(info.value)
    assert info.value.__cause__ is None
