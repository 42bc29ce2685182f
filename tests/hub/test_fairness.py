"""Fairness under overload: sites with a backlog progress together, none starves."""

from __future__ import annotations

from collections import Counter

from wixinv_async import AppCredentials, InventoryHub, OutcomeStatus, RateLimit, Ticket
from wixinv_async.emulator import Emulator, SiteSpec


async def test_sites_with_a_backlog_share_the_process_and_none_starves() -> None:
    """8 sites each queue 12 batches at once, unpaced (the process, not the budget, is the
    bound): by the time half of all deltas have outcomes, every site has between a quarter and
    three quarters of its own."""
    async with Emulator(sites=[SiteSpec(seed=1) for _ in range(8)], products=400, seed=1) as emu:
        keys = [
            (item.product_id, v.variant_id)
            for item in emu.store.items()
            if item.track_quantity is True
            for v in item.variants
        ][:600]
        order: list[str] = []
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(1_000_000, 1.0),
            max_batch=50,
            max_in_flight=1,
        ) as hub:
            tickets: list[Ticket] = []
            for instance in emu.instances:
                for key in keys:
                    ticket = hub.submit_nowait(instance, *key, 1)
                    ticket.add_done_callback(lambda _t, s=instance: order.append(s))
                    tickets.append(ticket)
            assert {(await t).status for t in tickets} == {OutcomeStatus.COMMITTED}
        half = Counter(order[: len(order) // 2])
        assert set(half) == set(emu.instances)
        for instance in emu.instances:
            assert len(keys) / 4 <= half[instance] <= len(keys) * 3 / 4, half
