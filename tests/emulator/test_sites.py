"""Many sites in one emulator: lazy sites, per-site specs, windows, faults, stats and admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from wixinv_async.emulator import Emulator, FaultPlan, FaultRule, SiteSpec
from wixinv_async.errors import ConfigurationError

QUERY = "/stores-reader/v2/inventoryItems/query"
DECREMENT = "/stores/v2/inventoryItems/decrement"
VERSION = "/stores/v3/provision/version"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session for the test."""
    async with aiohttp.ClientSession() as s:
        yield s


async def ask(
    session: aiohttp.ClientSession, emu: Emulator, site: str, path: str = QUERY, body: Any = None
) -> tuple[int, Any]:
    """POST (or GET the version) to ``site`` with the API key; (status, JSON body)."""
    headers = {"Authorization": emu.api_key, "wix-site-id": site}
    method = "GET" if path == VERSION else "POST"
    async with session.request(
        method, emu.url + path, json=body or {}, headers=headers
    ) as response:
        return response.status, await response.json()


def fingerprint(emu: Emulator, site: str) -> list[tuple[str, list[tuple[str, Any]]]]:
    """A site's catalog as (productId, [(variantId, quantity)]) in numericId order."""
    return [
        (i.product_id, [(v.variant_id, v.quantity) for v in i.variants])
        for i in emu.site(site).items()
    ]


async def test_sites_are_made_on_first_use_and_the_same_whenever_made(
    session: aiohttp.ClientSession,
) -> None:
    """A lazy site touched late, early or in another order has the same seeded catalog."""
    async with (
        Emulator(sites=50, products=4, seed=9) as early,
        Emulator(sites=50, products=4, seed=9) as late,
    ):
        assert early.sites == late.sites and len(set(early.sites)) == 50
        assert early.instances == late.instances
        for site in early.sites:
            early.site(site)
        picked = late.sites[37]
        status, data = await ask(session, late, picked)
        assert status == 200
        assert late.stats()["sites"].keys() == {late.sites[0], picked}
        assert fingerprint(late, picked) == fingerprint(early, picked)
        assert [i["id"] for i in data["inventoryItems"]] == [
            i.id for i in early.site(picked).items()
        ]
        assert fingerprint(early, early.sites[1]) != fingerprint(early, early.sites[2])


async def test_a_thousand_sites_are_cheap_until_touched() -> None:
    """Emulator(sites=1000) makes only the default site; the rest appear when asked for."""
    async with Emulator(sites=1000, products=100) as emu:
        stats = emu.stats()
        assert (stats["sites_total"], list(stats["sites"])) == (1000, [emu.site_id])
        assert len(emu.site(emu.sites[999])) == 100
        assert len(emu.stats()["sites"]) == 2


def test_make_sites_makes_every_site_as_first_use_would() -> None:
    """make_sites() seeds every site now, each the catalog it would have on first use."""
    eager, lazy = Emulator(sites=6, products=3, seed=4), Emulator(sites=6, products=3, seed=4)
    eager.make_sites()
    assert list(eager.stats()["sites"]) == eager.sites
    assert [fingerprint(eager, s) for s in eager.sites] == [
        fingerprint(lazy, s) for s in reversed(lazy.sites)
    ][::-1]


async def test_site_specs_give_each_site_its_own_catalog_size_and_version(
    session: aiohttp.ClientSession,
) -> None:
    """SiteSpec fields override the emulator's settings per site; None inherits them."""
    specs = [
        SiteSpec(site_id="shop-a"),
        SiteSpec(site_id="shop-b", catalog="v3", products=7, locations=2),
        SiteSpec(products=2, variants_per_product=1, seed=42),
    ]
    async with Emulator(sites=specs, products=5) as emu:
        assert emu.sites[:2] == ["shop-a", "shop-b"]
        assert [len(emu.site(s)) for s in emu.sites] == [5, 7, 2]
        assert len(emu.v3_store("shop-b").locations) == 2
        versions = [(await ask(session, emu, s, VERSION))[1]["catalogVersion"] for s in emu.sites]
        assert versions == ["V1_CATALOG", "V3_CATALOG", "V1_CATALOG"]
        third = emu.site(emu.sites[2])
        assert all(len(i.variants) == 1 for i in third.items())


async def test_mixed_catalog_alternates_v1_and_v3() -> None:
    """catalog="mixed": the first site V1, then V3, V1, ..."""
    async with Emulator(sites=5, products=2, catalog="mixed") as emu:
        versions = [emu.catalog_version(s) for s in emu.sites]
    assert versions == ["V1_CATALOG", "V3_CATALOG"] * 2 + ["V1_CATALOG"]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"sites": 0}, "sites"),
        ({"sites": 2, "extra_sites": 1}, "extra_sites"),
        ({"sites": [SiteSpec(site_id="x"), SiteSpec(site_id="x")]}, "unique"),
        ({"sites": [SiteSpec(site_id="x")], "site_id": "y"}, "site_id"),
        ({"sites": 2, "catalog": ["v1"]}, "catalog"),
        ({"sites": []}, "sites"),
    ],
)
def test_bad_site_settings_are_configuration_errors(settings: dict[str, Any], field: str) -> None:
    """Impossible site settings fail at construction, naming the setting."""
    with pytest.raises(ConfigurationError, match=field):
        Emulator(**settings)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"catalog": "v2"}, "catalog"),
        ({"products": -1}, "products"),
        ({"variants_per_product": 0}, "variants_per_product"),
        ({"locations": 0}, "locations"),
        ({"rate_limit": "fast"}, "rate_limit"),
        ({"site_id": " "}, "site_id"),
    ],
)
def test_bad_site_specs_name_the_field(spec: dict[str, Any], field: str) -> None:
    """A SiteSpec with an impossible value is a ConfigurationError naming field and value."""
    with pytest.raises(ConfigurationError, match=f"SiteSpec.{field}"):
        SiteSpec(**spec)


async def test_windows_are_per_site_never_exceeded_and_independent(
    session: aiohttp.ClientSession,
) -> None:
    """Three sites at 4 per rolling 10 s: each accepts exactly 4 however the requests
    interleave, one site at its limit throttles no other, and a slot frees as time rolls."""
    clock = FakeClock()
    async with Emulator(sites=3, products=2, rate_limit="4/10", clock=clock) as emu:
        order = [0, 0, 0, 0, 0, 0, 1, 0, 2, 1, 1, 1, 1, 2, 2]
        accepted = dict.fromkeys(range(3), 0)
        for index in order:
            status, _ = await ask(session, emu, emu.sites[index])
            assert status in (200, 429)
            accepted[index] += status == 200
        assert accepted == {0: 4, 1: 4, 2: 3}
        assert (await ask(session, emu, emu.sites[2]))[0] == 200
        assert (await ask(session, emu, emu.sites[2]))[0] == 429
        clock.now += 10
        assert (await ask(session, emu, emu.sites[0]))[0] == 200
        peaks = [emu.site_stats(s)["peak_in_window"] for s in emu.sites]
        assert peaks == [4, 4, 4]
        assert emu.site_stats(emu.sites[0])["requests"]["queryInventory"] == {"200": 5, "429": 3}


async def test_a_site_spec_sets_its_own_rate_limit_or_none(
    session: aiohttp.ClientSession,
) -> None:
    """SiteSpec.rate_limit replaces the emulator's window for that site; "off" removes it."""
    clock = FakeClock()
    specs = [SiteSpec(), SiteSpec(rate_limit="1/60"), SiteSpec(rate_limit="off")]
    async with Emulator(sites=specs, products=1, rate_limit="2/60", clock=clock) as emu:
        statuses = [[(await ask(session, emu, site))[0] for _ in range(4)] for site in emu.sites]
        assert statuses == [[200, 200, 429, 429], [200, 429, 429, 429], [200] * 4]
        assert [emu.site_stats(s)["rate_limit"] for s in emu.sites] == ["2/60", "1/60", None]


async def test_faults_are_per_site(session: aiohttp.ClientSession) -> None:
    """A site's own plan faults only that site; set_faults(site_id=) changes one site alone;
    stats count the faults of each site."""
    noisy = FaultPlan({"queryInventory": FaultRule(error_503=1.0)})
    async with Emulator(sites=[SiteSpec(), SiteSpec(faults=noisy), SiteSpec()], products=1) as emu:
        first, second, third = emu.sites
        assert [(await ask(session, emu, s))[0] for s in emu.sites] == [200, 503, 200]
        emu.set_faults(FaultPlan({"*": FaultRule(error_500=1.0)}), site_id=third)
        assert [(await ask(session, emu, s))[0] for s in emu.sites] == [200, 503, 500]
        assert (emu.faults_of(first), emu.faults_of(second)) == (None, noisy)
        per_site = emu.stats()["sites"]
        assert [per_site[s]["faults"] for s in emu.sites] == [
            {},
            {"error_503": 2},
            {"error_500": 1},
        ]
        assert emu.stats()["faults"] == {"error_503": 2, "error_500": 1}
        emu.set_faults(None)
        assert [(await ask(session, emu, s))[0] for s in emu.sites] == [200, 200, 200]


async def test_a_shared_plan_draws_each_site_from_its_own_generator(
    session: aiohttp.ClientSession,
) -> None:
    """One plan for every site: a site's faults depend on its own requests only (the same
    sequence whatever the other sites do), and sites do not fault in lockstep."""
    plan = FaultPlan({"queryInventory": FaultRule(error_503=0.5)}, seed=3)

    async def pattern(emu: Emulator, site: str) -> list[int]:
        return [(await ask(session, emu, site))[0] for _ in range(20)]

    async with (
        Emulator(sites=3, products=1, faults=plan) as quiet,
        Emulator(sites=3, products=1, faults=plan) as busy,
    ):
        for _ in range(7):
            await ask(session, busy, busy.sites[1])
        alone = await pattern(quiet, quiet.sites[2])
        assert await pattern(busy, busy.sites[2]) == alone
        assert await pattern(quiet, quiet.sites[0]) != alone


async def test_admin_endpoints_address_each_site(session: aiohttp.ClientSession) -> None:
    """?site= picks the site for faults, stats, state and journal; /sites lists them all."""
    async with Emulator(sites=3, products=2) as emu:
        second = emu.sites[1]
        plan = {"endpoints": {"queryInventory": {"error_503": 1.0}}}
        async with session.post(f"{emu.url}/_emulator/faults?site={second}", json=plan) as r:
            assert r.status == 200
        assert [(await ask(session, emu, s))[0] for s in emu.sites] == [200, 503, 200]
        async with session.get(f"{emu.url}/_emulator/faults?site={second}") as r:
            assert (await r.json())["endpoints"] == {"queryInventory": {"error_503": 1.0}}
        async with session.get(f"{emu.url}/_emulator/faults") as r:
            assert await r.json() is None
        async with session.get(f"{emu.url}/_emulator/stats?site={second}") as r:
            stats = await r.json()
        assert stats["requests"] == {"queryInventory": {"503": 1}}
        assert stats["instanceId"] == emu.instance_of(second)
        async with session.get(f"{emu.url}/_emulator/sites") as r:
            listed = (await r.json())["sites"]
        assert [(s["siteId"], s["instanceId"]) for s in listed] == list(
            zip(emu.sites, emu.instances, strict=True)
        )
        async with session.get(f"{emu.url}/_emulator/stats?site=nope") as r:
            assert r.status == 404


async def test_each_site_has_its_own_journal(session: aiohttp.ClientSession) -> None:
    """A decrement on one site is in that site's journal only."""
    async with Emulator(sites=3, products=5, seed=2) as emu:
        target = emu.sites[2]
        item = next(i for i in emu.site(target).items() if i.track_quantity)
        entry = {"productId": item.product_id, "variantId": item.variants[0].variant_id}
        body = {"decrementData": [{**entry, "decrementBy": 1}]}
        status, _ = await ask(session, emu, target, DECREMENT, body)
        assert status == 200
        assert [len(emu.journal(s)) for s in emu.sites] == [0, 0, 1]
        async with session.get(f"{emu.url}/_emulator/journal?site={target}") as r:
            (logged,) = (await r.json())["journal"]
        expected = [{**entry, "decrementBy": 1, "preorderRequest": False}]
        assert (logged["entries"], logged["source"]) == (expected, "api")
