"""The hub's default connection pool carries hundreds of busy sites' requests at once."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from wixinv_async import ApiKeyAuth, InventoryHub, OutcomeStatus, RateLimit
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule

from .relay import CountingProxy

SITES, PER_SITE = 100, 12
"""1200 requests on the wire at once: what 300 sites (issue 15's target for one process) hold
with their 4 (the hub's ``max_in_flight``) each, as busy sites do while Wix answers slowly (a
site at its budget sends every 0.31 s, so from 0.93 s a request it has all 4 out). Fewer sites
with more in flight each ask the pool the same and cost the test a third of the set-up."""
NEED = SITES * PER_SITE
HELD = FaultPlan({"incrementInventory": FaultRule(latency_ms=1500)})
"""Each write held 1.5 s: long enough that every request of the wave is on the wire before
the first one ends, so the most connections open at once is what the pool let through."""


@pytest.fixture
def descriptors() -> Iterator[None]:
    """Room for four descriptors a connection (the hub's, the relay's two, the emulator's)."""
    want = NEED * 4 + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"needs {want} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def peak_connections(pool: int | None) -> int:
    """The most connections open at once while 100 sites each send 12 requests together,
    through a hub with ``pool`` connections (``None``: its defaults)."""
    limits = {} if pool is None else {"connections": pool, "connections_per_host": pool}
    async with (
        Emulator(sites=SITES, products=24, seed=71, faults=HELD) as emu,
        CountingProxy(int(emu.url.rsplit(":", 1)[1]), backlog=4096) as proxy,
        InventoryHub(
            ApiKeyAuth(emu.api_key),
            base_url=proxy.url,
            rate_limit=RateLimit(1000, 1.0),
            max_batch=1,
            max_in_flight=PER_SITE,
            linger=0,
            **limits,  # type: ignore[arg-type]  # only the two int settings
        ) as hub,
    ):
        waves: dict[str, list[tuple[str, str]]] = {}
        for site in emu.sites:
            keys = [
                (str(item.product_id), v.variant_id)
                for item in emu.site(site).items()
                if item.track_quantity is True
                for v in item.variants
            ][:PER_SITE]
            assert len(keys) == PER_SITE
            emu.site(site).set_quantity(*keys[0], 10)
            waves[site] = keys
        # Each site's token, catalog and a first connection first (a decrement: not held),
        # so the held wave starts at once.
        ready = [hub.submit_nowait(i, *keys[0], -1) for i, keys in waves.items()]
        assert {(await t).status for t in ready} == {OutcomeStatus.COMMITTED}
        tickets = [hub.submit_nowait(i, *key, 1) for i, keys in waves.items() for key in keys]
        assert {(await t).status for t in tickets} == {OutcomeStatus.COMMITTED}
    return proxy.peak


@pytest.mark.usefixtures("descriptors")
async def test_the_default_pool_lets_every_busy_sites_requests_on_the_wire_at_once() -> None:
    """With the hub's default pool, all 1200 requests of the wave are on the wire at once: no
    site waits for a connection."""
    assert await peak_connections(None) == NEED
