"""WebhookReceiver: answers at once, hands events to the callback once, refuses when full."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from aiohttp import test_utils, web

from wixinv_async.errors import ConfigurationError
from wixinv_async.models import ChangedVariant, InventoryVariantsChanged, VariantValues
from wixinv_async.webhooks import (
    VARIANTS_CHANGED,
    DeliveryMemory,
    InventoryVariantsChangedEvent,
    WebhookEvent,
    WebhookReceiver,
    sign_webhook,
)

PATH = "/webhooks/wix"


def token_for(keys: Any, quantity: int, *, now: float | None = None, lifetime: float = 300) -> str:
    """A signed variants event whose new quantity is ``quantity`` (distinct per quantity)."""
    payload = InventoryVariantsChanged(
        inventory_item_id="inv-1",
        variants=[
            ChangedVariant(
                id="00000000-0000-0000-0000-000000000000",
                old_value=VariantValues(quantity=quantity + 1),
                new_value=VariantValues(quantity=quantity),
            )
        ],
    )
    return sign_webhook(
        VARIANTS_CHANGED, payload, keys.private, instance_id="inst", now=now, lifetime=lifetime
    )


def quantity_of(event: WebhookEvent) -> int | None:
    assert isinstance(event, InventoryVariantsChangedEvent)
    value = event.payload.variants[0].new_value.quantity
    assert value is None or isinstance(value, int)
    return value


class Recorder:
    """An async callback that records events and can be held blocked, as slow user code."""

    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []
        self.release = asyncio.Event()
        self.release.set()
        self.entered = asyncio.Event()

    async def __call__(self, event: WebhookEvent) -> None:
        self.entered.set()
        await self.release.wait()
        self.events.append(event)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


Serve = Callable[..., Any]


@pytest.fixture
async def serve(app_keys: Any) -> AsyncIterator[Serve]:
    """Start a receiver on a test server; yields (client, receiver) makers, closes all after."""
    clients: list[test_utils.TestClient[web.Request, web.Application]] = []

    async def make(callback: Any, **options: Any) -> tuple[Any, WebhookReceiver]:
        receiver = WebhookReceiver(app_keys.public_pem, callback, **options)
        app = web.Application()
        receiver.install(app, PATH)
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        clients.append(client)
        return client, receiver

    yield make
    for client in clients:
        await client.close()


async def post(client: Any, body: str | bytes) -> tuple[int, str]:
    async with client.post(PATH, data=body, headers={"Content-Type": "text/plain"}) as resp:
        return resp.status, await resp.text()


async def test_event_is_acknowledged_and_handed_to_the_callback(
    serve: Serve, recorder: Recorder, app_keys: Any
) -> None:
    """A valid delivery is answered 200 and reaches the callback decoded."""
    client, receiver = await serve(recorder)
    assert await post(client, token_for(app_keys, 7)) == (200, "ok")
    await receiver.join()
    assert [quantity_of(e) for e in recorder.events] == [7]
    assert receiver.stats().handled == 1


async def test_duplicates_are_handled_once(serve: Serve, recorder: Recorder, app_keys: Any) -> None:
    """The same event delivered three times, re-signed, reaches the callback once."""
    client, receiver = await serve(recorder)
    now = time.time()
    statuses = [
        (await post(client, token_for(app_keys, 3, now=now + i, lifetime=600)))[0] for i in range(3)
    ]
    await post(client, token_for(app_keys, 4))
    await receiver.join()
    assert statuses == [200, 200, 200]
    assert [quantity_of(e) for e in recorder.events] == [3, 4]
    assert receiver.stats().duplicates == 2


async def test_ack_does_not_wait_for_a_slow_callback(
    serve: Serve, recorder: Recorder, app_keys: Any
) -> None:
    """While the callback is blocked, further deliveries are still answered 200."""
    client, receiver = await serve(recorder)
    recorder.release.clear()
    async with asyncio.timeout(30):  # a guard against hanging, not a timing assertion
        answers = [await post(client, token_for(app_keys, q)) for q in (1, 2, 3)]
    assert answers == [(200, "ok")] * 3
    assert recorder.events == []
    recorder.release.set()
    await receiver.join()
    assert [quantity_of(e) for e in recorder.events] == [1, 2, 3]


async def test_full_queue_answers_503_and_the_redelivery_is_handled(
    serve: Serve, recorder: Recorder, app_keys: Any
) -> None:
    """With the queue full the answer is 503 (Wix retries), and the retried event is not lost."""
    client, receiver = await serve(recorder, max_queue=1)
    recorder.release.clear()
    assert (await post(client, token_for(app_keys, 1)))[0] == 200
    await recorder.entered.wait()
    assert (await post(client, token_for(app_keys, 2)))[0] == 200
    refused = await post(client, token_for(app_keys, 3))
    assert refused[0] == 503
    recorder.release.set()
    await receiver.join()
    assert (await post(client, token_for(app_keys, 3)))[0] == 200
    await receiver.join()
    assert [quantity_of(e) for e in recorder.events] == [1, 2, 3]
    assert receiver.stats().refused == 1


@pytest.mark.parametrize(
    ("make_body", "status"),
    [
        (lambda keys, other: token_for(other, 1), 401),
        (lambda keys, other: token_for(keys, 1, now=time.time() - 3600), 401),
        (lambda keys, other: "not a jwt", 400),
        (lambda keys, other: token_for(keys, 1)[:-8] + "AAAAAAAA", 401),
    ],
    ids=["wrong-key", "expired", "malformed", "tampered"],
)
async def test_bad_bodies_are_refused_without_calling_back(
    serve: Serve,
    recorder: Recorder,
    app_keys: Any,
    other_keys: Any,
    make_body: Callable[[Any, Any], str],
    status: int,
) -> None:
    """Bodies failing verification get 401 (or 400 if malformed) and never reach the callback."""
    client, receiver = await serve(recorder)
    answer_status, text = await post(client, make_body(app_keys, other_keys))
    await receiver.join()
    assert answer_status == status
    assert "webhook rejected" in text
    assert recorder.events == []
    assert receiver.stats().rejected == 1


async def test_failed_callback_is_reported_and_the_event_can_come_again(
    serve: Serve, app_keys: Any
) -> None:
    """A raising callback goes to on_error, and a redelivery of that event is handled."""
    calls: list[int | None] = []
    errors: list[str] = []

    async def flaky(event: WebhookEvent) -> None:
        calls.append(quantity_of(event))
        if len(calls) == 1:
            raise RuntimeError("database down")

    client, receiver = await serve(flaky, on_error=lambda e, exc: errors.append(str(exc)))
    token = token_for(app_keys, 5)
    await post(client, token)
    await receiver.join()
    await post(client, token)
    await receiver.join()
    assert calls == [5, 5]
    assert errors == ["database down"]
    assert receiver.stats()[4:7] == (0, 1, 1)


async def test_not_started_receiver_answers_503(recorder: Recorder, app_keys: Any) -> None:
    """A receiver whose workers are not running refuses with 503 rather than queue forever."""
    receiver = WebhookReceiver(app_keys.public_pem, recorder)
    app = web.Application()
    app.router.add_post(PATH, receiver.handle)
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        assert (await post(client, token_for(app_keys, 1)))[0] == 503
    assert "closed" in repr(receiver)


async def test_context_manager_drops_what_the_grace_period_cannot_finish(
    recorder: Recorder, app_keys: Any
) -> None:
    """aclose waits up to its grace period, then stops the workers and empties the queue."""
    receiver = WebhookReceiver(app_keys.public_pem, recorder)
    app = web.Application()
    app.router.add_post(PATH, receiver.handle)
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        async with receiver:
            recorder.release.clear()
            await post(client, token_for(app_keys, 1))
            await post(client, token_for(app_keys, 2))
            await recorder.entered.wait()
            assert receiver.stats().queued == 1
            await receiver.aclose(grace=0)
        assert receiver.stats().queued == 0
        assert recorder.events == []
        assert (await post(client, token_for(app_keys, 3)))[0] == 503


@pytest.mark.parametrize(
    "kwargs", [{"max_queue": 0}, {"workers": 0}, {"max_queue": True}, {"workers": 1.5}]
)
def test_bad_receiver_settings_are_refused(app_keys: Any, kwargs: dict[str, Any]) -> None:
    """Queue and worker counts must be positive ints."""
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        WebhookReceiver(app_keys.public_pem, Recorder(), **kwargs)


async def test_raising_on_error_does_not_kill_the_worker(serve: Serve, app_keys: Any) -> None:
    """An on_error hook that raises is logged; the worker lives on and handles later events."""
    calls: list[int | None] = []

    async def flaky(event: WebhookEvent) -> None:
        calls.append(quantity_of(event))
        if len(calls) == 1:
            raise RuntimeError("database down")

    def broken_hook(event: WebhookEvent, exc: Exception) -> None:
        raise ValueError("the hook itself fails")

    client, receiver = await serve(flaky, on_error=broken_hook)
    await post(client, token_for(app_keys, 1))
    await receiver.join()
    assert (await post(client, token_for(app_keys, 2)))[0] == 200
    async with asyncio.timeout(30):  # a guard against hanging, not a timing assertion
        await receiver.join()
    assert calls == [1, 2]
    assert receiver.stats().handled == 1


async def test_events_dropped_at_shutdown_are_forgotten_by_the_memory(
    recorder: Recorder, app_keys: Any
) -> None:
    """Events aclose drops (queued, or cut off mid-callback) leave a shared memory, so a later
    delivery of them is handled by the next receiver instead of being taken for a duplicate."""
    memory = DeliveryMemory()
    first = WebhookReceiver(app_keys.public_pem, recorder, memory=memory)
    app = web.Application()
    app.router.add_post(PATH, first.handle)
    async with test_utils.TestClient(test_utils.TestServer(app)) as client, first:
        recorder.release.clear()
        await post(client, token_for(app_keys, 1))
        await post(client, token_for(app_keys, 2))
        await recorder.entered.wait()
        await first.aclose(grace=0)
    assert recorder.events == []
    assert len(memory) == 0


async def test_deeply_nested_signed_event_gets_400(
    serve: Serve, recorder: Recorder, app_keys: Any
) -> None:
    """A well-signed event whose data nests JSON 100,000 deep is answered 400, not 500."""
    client, _ = await serve(recorder)
    envelope = {"eventType": VARIANTS_CHANGED, "instanceId": "i", "data": "[" * 100_000}
    claims = {"data": json.dumps(envelope), "iat": int(time.time()), "exp": int(time.time()) + 60}
    status, text = await post(client, jwt.encode(claims, app_keys.private, algorithm="RS256"))
    assert status == 400
    assert "nested too deeply" in text
    assert recorder.events == []
