"""A site's short batch waits for its next pacing slot while still filling, not in line."""

from __future__ import annotations

import asyncio

from wixinv_async import AppCredentials, InventoryHub, OutcomeStatus, RateLimit
from wixinv_async.emulator import Emulator


async def test_deltas_arriving_while_a_site_waits_for_its_slot_go_in_one_request() -> None:
    """Three bursts of 10 keys, the last two while the site's next slot is 0.2 s away:
    2 requests (10, then 20), not 3 (each burst cut on linger and queued behind the limiter)."""
    async with Emulator(products=40, variants_per_product=3, seed=1) as emu:
        keys = [
            (item.product_id, v.variant_id)
            for item in emu.store.items()
            if item.track_quantity is True
            for v in item.variants
        ][:30]
        assert len(keys) == 30
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(5, 1.0),
            linger=0.0,
        ) as hub:
            tickets = []
            for burst in range(3):
                tickets += [hub.submit_nowait(emu.instance_id, *k, 1) for k in keys[burst::3]]
                for _ in range(5):  # let the dispatcher and the first request run
                    await asyncio.sleep(0)
            assert {(await t).status for t in tickets} == {OutcomeStatus.COMMITTED}
            stats = hub.site(emu.instance_id).adjuster.stats()
        assert (stats.requests, stats.entries_sent) == (2, 30)
