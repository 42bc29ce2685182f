"""Keys the server refused are sent apart from the rest of their next batch, over HTTP."""

from __future__ import annotations

from wixinv_async.adjuster import BatchPolicy, InventoryAdjuster, OutcomeStatus, SentBatch
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient
from wixinv_async.emulator import Emulator

Key = tuple[str, str]


async def _batches(
    emu: Emulator, rounds: list[list[tuple[Key, int]]], **policy: int
) -> list[list[int]]:
    """Send each round as one batch; the entries of each request each round cost."""
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    sizes: list[list[int]] = []

    async def on_send(batch: SentBatch) -> None:
        sizes[-1].append(len(batch.entries))

    async with InventoryClient(auth, base_url=emu.url, rate_limit=None) as client:
        adj = InventoryAdjuster(
            client, linger=60, on_send=on_send, batch_policy=BatchPolicy(**policy)
        )
        async with adj:
            for deltas in rounds:
                sizes.append([])
                tickets = [adj.submit_nowait(*key, delta) for key, delta in deltas]
                await adj.flush()
                assert all(t.outcome is not None for t in tickets)
    return sizes


def _keys(emu: Emulator) -> list[Key]:
    keys = [
        (str(item.product_id), item.variants[0].variant_id)
        for item in emu.store.items()
        if item.track_quantity
    ]
    for key in keys:
        emu.store.set_quantity(*key, 100)
    return keys


async def test_a_bad_key_that_keeps_coming_costs_no_resend_of_the_rest() -> None:
    """A key refused NOT_FOUND comes again: its next batch sends the 20 good entries once and
    the refused key alone (2 requests, as before), where whole batches resend the 20."""
    async with Emulator(products=40, variants_per_product=1, seed=4) as emu:
        good = [(key, -1) for key in _keys(emu)[:20]]
        gone = (("gone-product", good[0][0][1]), -1)
        rounds = [[*good, gone], [*good, gone]]
        apart = await _batches(emu, rounds)
        whole = await _batches(emu, rounds, refused_keys=0)
    assert apart == [[21, 20], [20, 1]]
    assert whole == [[21, 20], [21, 20]]


async def test_a_refused_key_that_commits_is_forgotten() -> None:
    """A decrement refused for want of stock makes its key a refused key; once restocked, its
    part commits and the next batch goes out whole again."""
    async with Emulator(products=40, variants_per_product=1, seed=4) as emu:
        keys = _keys(emu)[:6]
        short = keys[0]
        others = [(key, -1) for key in keys[1:]]
        auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
        sizes: list[list[int]] = []

        async def on_send(batch: SentBatch) -> None:
            sizes[-1].append(len(batch.entries))

        client = InventoryClient(auth, base_url=emu.url, rate_limit=None)
        async with client, InventoryAdjuster(client, linger=60, on_send=on_send) as adj:
            outcomes = []
            for delta in (-500, -1, -1):  # refused, then (restocked) committed apart, whole
                sizes.append([])
                ticket = adj.submit_nowait(*short, delta)
                for key, amount in others:
                    adj.submit_nowait(*key, amount)
                await adj.flush()
                outcomes.append((await ticket).status)
                emu.store.set_quantity(*short, 100)
    assert outcomes == [OutcomeStatus.REJECTED, OutcomeStatus.COMMITTED, OutcomeStatus.COMMITTED]
    assert sizes == [[6, 5], [5, 1], [6]]
