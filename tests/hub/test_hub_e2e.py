"""The hub end to end over real HTTP against one many-site emulator (Catalog V1 sites)."""

from __future__ import annotations

import logging

import pytest

from wixinv_async import ApiKeyAuth, AppCredentials, InventoryHub, OutcomeStatus, RateLimit
from wixinv_async.emulator import Emulator

C = OutcomeStatus.COMMITTED
Key = tuple[str, str]


def tracked(emu: Emulator, site: str) -> list[Key]:
    """The tracked (product id, variant id) pairs of ``site``."""
    return [
        (item.product_id, variant.variant_id)  # type: ignore[misc]
        for item in emu.site(site).items()
        if item.track_quantity is True
        for variant in item.variants
    ]


def quantities(emu: Emulator, site: str) -> dict[Key, int]:
    """Every tracked variant's quantity on ``site``."""
    return {
        (item.product_id, v.variant_id): v.quantity  # type: ignore[misc]
        for item in emu.site(site).items()
        for v in item.variants
        if isinstance(v.quantity, int)
    }


async def test_token_refresh_across_many_instances_is_one_request_each() -> None:
    """30 instances start at once, 20 deltas each: one token request per instance; after
    the tokens expire, each instance fetches exactly one more."""
    async with (
        Emulator(sites=30, products=3, seed=2, token_lifetime=600) as emu,
        InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(100, 1.0),
        ) as hub,
    ):
        keys = {i: tracked(emu, s)[0] for i, s in zip(emu.instances, emu.sites, strict=True)}

        async def burst() -> None:
            tickets = [hub.submit_nowait(i, *keys[i], 1) for i in keys for _ in range(20)]
            assert {(await t).status for t in tickets} == {C}

        await burst()
        assert hub.stats().total.token_fetches == 30
        assert emu.stats()["tokens_issued"] == dict.fromkeys(emu.instances, 1)
        for instance in emu.instances:  # every token issued so far is now dead
            emu.revoke(instance)
            emu.reinstate(instance)
        await burst()  # each instance is answered 401 and refreshes, once for all its senders
        assert emu.stats()["tokens_issued"] == dict.fromkeys(emu.instances, 2)
        assert hub.stats().total.token_fetches == 60


async def test_an_idle_site_is_drained_and_closed_with_deltas_pending() -> None:
    """A site whose deltas wait behind its pacing is closed once idle: every delta first
    gets its outcome, the stock moved by them, and the site is made again on its next delta."""
    async with Emulator(sites=2, products=3, seed=4) as emu:
        site = emu.instances[0]
        key = tracked(emu, emu.sites[0])[0]
        start = quantities(emu, emu.sites[0])[key]
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            idle_timeout=0.2,
            rate_limit=RateLimit(2, 1.0),
            max_batch=1,
            linger=0.0,
        ) as hub:
            product = key[0]
            variants = [v for p, v in tracked(emu, emu.sites[0]) if p == product]
            tickets = [hub.submit_nowait(site, product, v, 1) for v in variants]
            handle = hub.site(site)
            await handle.wait_closed()
            assert handle.closing and site not in hub.stats().sites
            assert all(t.done() for t in tickets)
            assert {t.result().status for t in tickets} == {C}
            assert quantities(emu, emu.sites[0])[key] == start + 1
            assert hub.stats().total.sites_closed == 1
            assert (await hub.adjust(site, *key, 1)).status is C
            assert hub.site(site) is not handle


async def test_max_sites_closes_the_least_recently_used_after_draining() -> None:
    """With max_sites=2 a third site closes the least recently used one (its deltas keep
    their outcomes) and at most two sites are open."""
    async with (
        Emulator(sites=3, products=3, seed=6) as emu,
        InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url, max_sites=2
        ) as hub,
    ):
        tickets = []
        for instance, site in zip(emu.instances, emu.sites, strict=True):
            tickets.append(hub.submit_nowait(instance, *tracked(emu, site)[0], 1))
            assert hub.stats().total.open_sites <= 2
        assert {(await t).status for t in tickets} == {C}
        assert list(hub.stats().sites) == emu.instances[1:]


async def test_an_api_key_hub_reaches_sites_by_site_id() -> None:
    """ApiKeyAuth(key) without a site serves sites by site id, and detects each catalog."""
    async with (
        Emulator(sites=2, products=3, seed=9) as emu,
        InventoryHub(ApiKeyAuth(emu.api_key), base_url=emu.url) as hub,
    ):
        for site in emu.sites:
            assert (await hub.adjust(site, *tracked(emu, site)[0], 1)).status is C
        handle = hub.site(emu.sites[1])
        assert (await handle.catalog_version()).value == "V1_CATALOG"
        assert hub.stats().sites[emu.sites[1]].catalog is handle.catalog


async def test_log_records_of_a_site_carry_the_site(caplog: pytest.LogCaptureFixture) -> None:
    """The token fetch each site's adjuster triggers is logged with that site's id."""
    async with Emulator(sites=3, products=3, seed=9) as emu:
        caplog.set_level(logging.DEBUG, logger="wixinv_async")
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url
        ) as hub:
            for instance, site in zip(emu.instances, emu.sites, strict=True):
                assert (await hub.adjust(instance, *tracked(emu, site)[0], 1)).status is C
        fetched = [r for r in caplog.records if r.name == "wixinv_async.auth"]
        assert sorted(getattr(r, "site", None) for r in fetched) == sorted(emu.instances)
