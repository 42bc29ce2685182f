"""End to end over real loopback HTTP against the emulator."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from wixinv_async.auth import ApiKeyAuth, AppOAuth
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule
from wixinv_async.errors import (
    ConnectError,
    NotFoundError,
    OutcomeUnknownError,
    PreconditionFailedError,
    RequestTimeoutError,
)
from wixinv_async.models import DEFAULT_VARIANT_ID as V0
from wixinv_async.models import DecrementData, IncrementData, InventoryItem, VariantUpdate
from wixinv_async.transport import RateLimit, VirtualClock


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A small seeded emulator."""
    async with Emulator(products=20, variants_per_product=2, seed=5) as emulator:
        yield emulator


def api_client(emu: Emulator, **options: Any) -> InventoryClient:
    options.setdefault("rate_limit", None)
    options.setdefault("retry", RetryPolicy(base_delay=0.01, max_delay=0.05, seed=1))
    return InventoryClient(
        ApiKeyAuth(emu.api_key, site_id=emu.site_id), base_url=emu.url, **options
    )


def tracked(emu: Emulator) -> InventoryItem:
    """A tracked item with plenty of stock on its first variant."""
    for item in emu.store.items():
        preorder = item.preorder_info
        if item.track_quantity is True and not (preorder and preorder.enabled is True):
            emu.store.set_quantity(item.product_id, item.variants[0].variant_id, 50)  # type: ignore[arg-type]
            return item
    raise AssertionError("no tracked item")


def decrement(item: InventoryItem, by: int = 1) -> list[DecrementData]:
    return [
        DecrementData(
            product_id=item.product_id, variant_id=item.variants[0].variant_id, decrement_by=by
        )
    ]


def stock(emu: Emulator, item: InventoryItem) -> int | None:
    return emu.store.quantity(item.product_id, item.variants[0].variant_id)  # type: ignore[arg-type]


async def test_query_pages_through_the_catalog(emu: Emulator) -> None:
    """Query returns the emulator's items in numericId order, with paging metadata."""
    async with api_client(emu) as client:
        first = await client.query_inventory(limit=5, sort=[{"numericId": "asc"}])
        rest = await client.query_inventory(
            filter={"numericId": {"$gt": int(first.inventory_items[-1].numeric_id)}},
            limit=100,  # type: ignore[arg-type]
        )
    ids = [i.id for i in first.inventory_items + rest.inventory_items]
    assert ids == [i.id for i in emu.store.items()]
    assert first.total_results == 20


async def test_decrement_and_increment_move_stock(emu: Emulator) -> None:
    """A decrement of 3 and an increment of 1 leave 48 of 50."""
    item = tracked(emu)
    variant = item.variants[0].variant_id
    async with api_client(emu) as client:
        await client.decrement_inventory(decrement(item, 3))
        await client.increment_inventory(
            [IncrementData(inventory_id=item.id, variant_id=variant, increment_by=1)]  # type: ignore[arg-type]
        )
    assert stock(emu, item) == 48


async def test_get_variants_by_inventory_id_and_by_product_id(emu: Emulator) -> None:
    """Both lookups give the same item."""
    item = emu.store.items()[3]
    async with api_client(emu) as client:
        by_inventory = await client.get_inventory_variants(inventory_id=item.id)  # type: ignore[arg-type]
        by_product = await client.get_inventory_variants(product_id=item.product_id)  # type: ignore[arg-type]
    assert by_inventory == by_product
    assert by_inventory.id == item.id


async def test_update_with_keep_preserves_tracking(emu: Emulator) -> None:
    """Setting a quantity with track_quantity="keep" leaves tracking as it was."""
    item = tracked(emu)
    variant = item.variants[0].variant_id
    async with api_client(emu) as client:
        await client.update_inventory_variants(
            item.product_id,  # type: ignore[arg-type]
            [VariantUpdate(variant_id=variant, quantity=7)],
            track_quantity="keep",
        )
    after = emu.store.item(item.product_id)  # type: ignore[arg-type]
    assert after is not None and after.track_quantity is True
    assert stock(emu, item) == 7


async def test_insufficient_stock_is_refused_atomically(emu: Emulator) -> None:
    """A batch with one impossible entry raises 428 INSUFFICIENT_INVENTORY and applies nothing."""
    item = tracked(emu)
    other = next(i for i in emu.store.items() if i.track_quantity is True and i.id != item.id)
    batch = [*decrement(item, 1), *decrement(other, 99_999)]
    async with api_client(emu) as client:
        with pytest.raises(PreconditionFailedError) as caught:
            await client.decrement_inventory(batch)
    assert caught.value.code == "INSUFFICIENT_INVENTORY"
    assert caught.value.request_id
    assert stock(emu, item) == 50


async def test_unknown_product_is_not_found(emu: Emulator) -> None:
    """An unknown product gives NotFoundError."""
    async with api_client(emu) as client:
        with pytest.raises(NotFoundError):
            await client.get_inventory_variants(product_id="no-such-product")


async def test_app_oauth_end_to_end_with_expiry_and_replay() -> None:
    """An app token works; when the server expires it early, one 401 refresh replays the call."""
    now = [0.0]
    async with Emulator(products=5, seed=2, token_lifetime=100, clock=lambda: now[0]) as emu:
        auth = AppOAuth(emu.app_id, emu.app_secret, emu.instance_id)
        async with InventoryClient(auth, base_url=emu.url, rate_limit=None) as client:
            await client.query_inventory()
            now[0] += 101  # the server's clock passes the token's lifetime; ours does not
            page = await client.query_inventory()
            assert client.stats().auth_refreshes == 1
    assert len(page.inventory_items) == 5
    assert auth.fetches == 2


async def test_pacing_avoids_the_emulators_rolling_window() -> None:
    """Paced at the emulator's own strict limit, 24 calls meet no 429."""
    async with (
        Emulator(products=5, seed=3, rate_limit="12/0.5") as emu,
        # safety 0.25: 125 ms of slack for a loaded machine delaying one request, not the next
        api_client(emu, rate_limit=RateLimit(12, 0.5, safety=0.25)) as client,
    ):
        await asyncio.gather(*(client.query_inventory(limit=1) for _ in range(24)))
        assert client.stats().rate_limited == 0


async def test_unpaced_bursts_are_throttled_then_retried() -> None:
    """Without pacing the emulator answers 429s; Retry-After is honoured and all succeed."""
    async with Emulator(products=5, seed=3, rate_limit="5/1") as emu, api_client(emu) as client:
        await asyncio.gather(*(client.query_inventory(limit=1) for _ in range(8)))
        assert client.stats().rate_limited >= 3


@pytest.mark.parametrize("kind", ["error_503", "rate_limited"])
async def test_refusals_before_processing_are_retried_to_exactly_once(kind: str) -> None:
    """503s and 429s are retried: every decrement lands, each exactly once."""
    plan = FaultPlan(
        endpoints={"decrementInventory": FaultRule(**{kind: 0.5})}, seed=4, retry_after=0
    )
    async with Emulator(products=5, seed=6, faults=plan) as emu:
        item = tracked(emu)
        retry = RetryPolicy(max_attempts=20, base_delay=0.001, max_delay=0.01, seed=2)
        async with api_client(emu, retry=retry) as client:
            for _ in range(10):
                await client.decrement_inventory(decrement(item))
            assert client.stats().retries > 0
    assert stock(emu, item) == 40
    assert len([e for e in emu.store.journal if e.endpoint == "decrementInventory"]) == 10


@pytest.mark.parametrize("kind", ["error_500", "reset_before"])
async def test_ambiguous_failures_are_reported_never_retried(kind: str) -> None:
    """A 500 or a reset may have applied the batch, so it is reported unknown, never resent."""
    plan = FaultPlan(endpoints={"decrementInventory": FaultRule(**{kind: 0.5})}, seed=4)
    async with Emulator(products=5, seed=6, faults=plan) as emu:
        item = tracked(emu)
        async with api_client(emu) as client:
            outcomes = [
                await asyncio.gather(
                    client.decrement_inventory(decrement(item)), return_exceptions=True
                )
                for _ in range(10)
            ]
            sent = client.stats().requests
    results = [o[0] for o in outcomes]
    unknown = sum(isinstance(r, OutcomeUnknownError) for r in results)
    assert all(isinstance(r, str | OutcomeUnknownError) for r in results)  # a request id: applied
    assert 0 < unknown < 10
    assert sent == 10
    assert stock(emu, item) == 50 - (10 - unknown)  # here the emulator failed before applying


@pytest.mark.parametrize("kind", ["error_502", "error_504", "reset_after"])
async def test_faults_after_applying_are_reported_unknown_not_retried(kind: str) -> None:
    """A 502/504/reset after the emulator applied the batch: OutcomeUnknownError, applied once."""
    plan = FaultPlan(endpoints={"decrementInventory": FaultRule(**{kind: 1.0})})
    async with Emulator(products=5, seed=6, faults=plan) as emu:
        item = tracked(emu)
        async with api_client(emu) as client:
            with pytest.raises(OutcomeUnknownError) as caught:
                await client.decrement_inventory(decrement(item, 2))
    assert caught.value.request.json()["decrementData"][0]["decrementBy"] == 2
    assert stock(emu, item) == 48


async def test_a_stall_after_applying_times_out_as_unknown() -> None:
    """A response that never comes, after applying, is a sent timeout: outcome unknown."""
    plan = FaultPlan(endpoints={"decrementInventory": FaultRule(stall_after=1.0)}, stall_seconds=5)
    async with Emulator(products=5, seed=6, faults=plan) as emu:
        item = tracked(emu)
        async with api_client(emu, timeout=0.3) as client:
            with pytest.raises(OutcomeUnknownError) as caught:
                await client.decrement_inventory(decrement(item))
    assert isinstance(caught.value.__cause__, RequestTimeoutError)
    assert caught.value.__cause__.sent is True
    assert stock(emu, item) == 49


async def test_a_refused_connection_is_a_connect_error() -> None:
    """Nothing listening: the decrement is retried, then ConnectError says it was never sent."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago, now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = VirtualClock()
    auth = ApiKeyAuth("KEY", site_id="SITE")
    retry = RetryPolicy(max_attempts=3, seed=1)
    async with InventoryClient(
        auth, base_url=f"http://127.0.0.1:{port}", rate_limit=None, retry=retry, clock=clock
    ) as client:
        with pytest.raises(ConnectError):
            await client.decrement_inventory(
                [DecrementData(product_id="p1", variant_id=V0, decrement_by=1)]
            )
        assert client.stats().requests == 3
    assert len(clock.slept) == 2


@pytest.mark.parametrize("odd", ["a/b", "../decrement", "x?y#z"])
async def test_an_id_with_path_characters_is_looked_up_as_itself(emu: Emulator, odd: str) -> None:
    """Over real HTTP the id reaches the server as one segment: a 404 naming it, no other call."""
    async with api_client(emu) as client:
        with pytest.raises(NotFoundError, match=re.escape(repr(odd))):
            await client.get_inventory_variants(inventory_id=odd)
        with pytest.raises(NotFoundError, match=re.escape(repr(odd))):
            await client.update_inventory_variants(odd, [], track_quantity=True)
    assert emu.store.journal == []
