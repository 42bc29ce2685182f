"""Sites of one hub sharing a seeded RetryPolicy back off by their own delays."""

from __future__ import annotations

import logging

import pytest

from wixinv_async import AppCredentials, BatchPolicy, InventoryHub, OutcomeStatus, RetryPolicy
from wixinv_async.core.backoff import site_seed
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule

SITES = 4
ATTEMPTS = 4
RETRY = RetryPolicy(max_attempts=ATTEMPTS, base_delay=0.001, max_delay=0.004, seed=11)
ONE_SEND = BatchPolicy(max_sends=1)  # the adjuster hands each batch over once: no resends
OUTAGE = FaultPlan({"incrementInventory": FaultRule(error_503=1.0)}, seed=5)


def test_site_seeds_are_distinct_per_site_and_stable() -> None:
    """One seed gives each site its own jitter seed, the same every time; another seed others."""
    sites = [f"site-{i}" for i in range(1000)]
    seeds = [site_seed(11, s) for s in sites]
    assert len(set(seeds)) == len(sites)
    assert seeds == [site_seed(11, s) for s in sites]
    assert not set(seeds) & {site_seed(12, s) for s in sites}
    assert RetryPolicy(seed=11).jitter_seed("site-0") == seeds[0]
    assert RetryPolicy().jitter_seed("site-0") is None


async def backoffs(caplog: pytest.LogCaptureFixture) -> dict[str, list[float]]:
    """Each site's backoff delays when all of them meet the same 503 outage at once."""
    caplog.clear()
    async with (
        Emulator(sites=SITES, products=2, seed=3, faults=OUTAGE) as emu,
        InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=None,
            retry=RETRY,
            batch_policy=ONE_SEND,
            linger=0,
        ) as hub,
    ):
        tickets = []
        for instance, site in zip(emu.instances, emu.sites, strict=True):
            item = next(i for i in emu.site(site).items() if i.track_quantity is True)
            tickets.append(
                hub.submit_nowait(instance, item.product_id, item.variants[0].variant_id, 1)
            )
        await hub.flush()
        assert {t.result().status for t in tickets} == {OutcomeStatus.REJECTED}
    delays: dict[str, list[float]] = {}
    for record in caplog.records:
        if record.name == "wixinv_async.client" and "retrying in" in record.getMessage():
            assert isinstance(record.args, tuple)
            delay = record.args[-1]
            assert isinstance(delay, float)
            delays.setdefault(str(record.__dict__["site"]), []).append(delay)
    return delays


async def test_sites_failing_together_do_not_retry_in_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """4 sites hit by one 503 outage: each backs off by delays of its own (no two sites
    alike), and a second run with the same seed repeats every site's delays exactly."""
    caplog.set_level(logging.INFO, logger="wixinv_async.client")
    first = await backoffs(caplog)
    assert len(first) == SITES
    assert all(len(d) == ATTEMPTS - 1 for d in first.values()), first
    sequences = [tuple(d) for d in first.values()]
    assert len(set(sequences)) == SITES, first
    assert await backoffs(caplog) == first
