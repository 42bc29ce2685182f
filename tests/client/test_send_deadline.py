"""A send deadline (``not_after``, event-loop time): no attempt of the call leaves after it, a
retry that could only go later is not waited for, and the error says nothing was applied."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator, Callable

import pytest

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.core.failures import applied
from wixinv_async.emulator import Emulator
from wixinv_async.errors import (
    Applied,
    LateSendError,
    OutcomeUnknownError,
    RateLimitedError,
)
from wixinv_async.models import DecrementData
from wixinv_async.models_v3 import DecrementDataByVariantAndLocation
from wixinv_async.transport import VirtualClock

from .conftest import Routes

BASE = "https://www.wixapis.com"
DECREMENT = f"{BASE}/stores/v2/inventoryItems/decrement"
BULK_BY_VARIANT = f"{BASE}/stores/v3/bulk/inventory-items/decrement-by-variant-and-location"
Entries = Callable[..., list[DecrementData]]


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_an_attempt_past_its_deadline_is_never_handed_to_the_transport(
    client: InventoryClient, http: Routes, decrements: Entries
) -> None:
    """The deadline passed: nothing is sent, LateSendError says nothing was applied, and it
    pickles with its fields."""
    with pytest.raises(LateSendError) as caught:
        await client.decrement_inventory(decrements(2), not_after=now() - 0.001)
    error = caught.value
    assert http.transport.requests == []
    assert error.attempt == 1 and error.late_by > 0
    assert error.applied is Applied.NO and applied(error) is Applied.NO
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert vars(again) == vars(error) and str(again) == str(error)


async def test_a_slow_step_before_the_wire_makes_the_attempt_late(
    client: InventoryClient, http: Routes, decrements: Entries
) -> None:
    """The deadline is checked after everything that runs before the request leaves (here an
    ``on_wire`` hook slower than the time left): the request is not sent."""

    async def slow() -> None:
        await asyncio.sleep(0.05)

    http.post(DECREMENT, payload={})
    with pytest.raises(LateSendError):
        await client.decrement_inventory(decrements(), on_wire=slow, not_after=now() + 0.01)
    assert http.transport.requests == []


async def test_a_retry_whose_wait_ends_past_the_deadline_is_not_made(
    client: InventoryClient, http: Routes, clock: VirtualClock, decrements: Entries
) -> None:
    """A 429 asking for 3 s, with less than that left: the retry is neither waited for nor
    sent; what the first attempt was (refused) makes the whole call not applied."""
    http.post(DECREMENT, status=429, headers={"Retry-After": "3"})
    http.post(DECREMENT, payload={})
    with pytest.raises(LateSendError) as caught:
        await client.decrement_inventory(decrements(), not_after=now() + 1.0)
    assert len(http.requests_to("POST", DECREMENT)) == 1
    assert caught.value.attempt == 2 and caught.value.applied is Applied.NO
    assert isinstance(caught.value.__cause__, RateLimitedError)
    assert clock.slept == []


async def test_a_retry_in_time_goes(
    new_client: Callable[..., InventoryClient], http: Routes, decrements: Entries
) -> None:
    """A 503 whose retry can leave before the deadline is retried as without one, and both
    attempts carry the deadline to the transport."""
    http.post(DECREMENT, status=503)
    http.post(DECREMENT, payload={})
    deadline = now() + 60.0
    async with new_client(retry=RetryPolicy(base_delay=0.0, max_delay=0.0, seed=7)) as client:
        await client.decrement_inventory(decrements(), not_after=deadline)
    assert [r.not_after for r in http.requests_to("POST", DECREMENT)] == [deadline, deadline]


async def test_an_attempt_that_may_have_applied_stays_in_doubt(
    client: InventoryClient, http: Routes, decrements: Entries
) -> None:
    """A 500 may have been applied: it is never retried, so no deadline can turn it into a
    "not applied"; the call is OutcomeUnknownError (MAYBE), as without a deadline."""
    http.post(DECREMENT, status=500)
    http.post(DECREMENT, payload={})
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.decrement_inventory(decrements(), not_after=now() + 0.5)
    assert caught.value.applied is Applied.MAYBE
    assert len(http.requests_to("POST", DECREMENT)) == 1


async def test_a_v3_bulk_call_past_its_deadline_is_not_sent(
    client: InventoryClient, http: Routes
) -> None:
    """The V3 bulk call by variant and location takes the same deadline."""
    entry = DecrementDataByVariantAndLocation(
        variant_id="00000000-0000-0000-0000-000000000001", decrement_by=1
    )
    http.post(BULK_BY_VARIANT, payload={})
    with pytest.raises(LateSendError):
        await client.bulk_decrement_inventory_items_by_variant_and_location(
            [entry], not_after=now() - 0.001
        )
    assert http.transport.requests == []


async def test_over_aiohttp_a_late_batch_never_reaches_the_server(decrements: Entries) -> None:
    """Through the real transport to the emulator: a late batch is not in its journal; the
    same batch in time is."""
    async with Emulator(products=0) as emulator:
        item = emulator.store.add_product(variants=1, quantity=10, track=True)
        variant = item.variants[0].variant_id
        auth = ApiKeyAuth(emulator.api_key, site_id=emulator.site_id)
        entries = [DecrementData(product_id=item.product_id, variant_id=variant, decrement_by=1)]
        async with InventoryClient(auth, base_url=emulator.url, rate_limit=None) as client:
            with pytest.raises(LateSendError):
                await client.decrement_inventory(entries, not_after=now() - 0.001)
            assert emulator.store.journal == []
            await client.decrement_inventory(entries, not_after=now() + 30)
            assert len(emulator.store.journal) == 1


@pytest.fixture
async def tls_black_hole() -> AsyncIterator[int]:
    """A port that accepts connections and never answers: a TLS handshake there never ends."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_connection_still_being_made_at_the_deadline_is_given_up(
    tls_black_hole: int, decrements: Entries
) -> None:
    """A new connection may take only what is left before the deadline (not the 30 s connect
    timeout): one that is not ready by then never carries the request."""
    auth = ApiKeyAuth("KEY", site_id="SITE")
    base = f"https://127.0.0.1:{tls_black_hole}"
    async with InventoryClient(auth, base_url=base, rate_limit=None, timeout=30) as client:
        async with asyncio.timeout(10):  # without the bound: the 30 s connect timeout
            with pytest.raises(LateSendError) as caught:
                await client.decrement_inventory(decrements(), not_after=now() + 0.1)
    assert caught.value.applied is Applied.NO
