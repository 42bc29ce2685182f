"""Audit of issue 15 (docs/AUDIT-15-16.md): the hub's requirements the other tests left open or
pinned on Catalog V1 only, end to end over real HTTP against the many-site emulator."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from wixinv_async import ApiKeyAuth, AppCredentials, InventoryHub, OutcomeStatus, RateLimit
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule, SiteSpec

from .relay import CountingProxy

C = OutcomeStatus.COMMITTED
BULK_BY_VARIANT = "bulkIncrementInventoryItemsByVariantAndLocation"
Key = tuple[str, str]


DEFAULT_VARIANT = "00000000-0000-0000-0000-000000000000"


def stock(emu: Emulator, site: str) -> dict[Key, int]:
    """Every tracked variant's quantity on ``site`` (V3: at its default location), by the
    (product id, variant id) a delta names it with; V1's shared default variant id is left
    out (a migration gives such a variant a V3 id of its own)."""
    if emu.catalog_version(site) == "V3_CATALOG":
        store = emu.v3_store(site)
        found = {
            (r.product_id, r.variant_id): r.quantity
            for r in store.records()
            if r.track is True and r.location_id == store.default_location
        }
    else:
        found = {
            (item.product_id, v.variant_id): v.quantity  # type: ignore[misc]
            for item in emu.site(site).items()
            if item.track_quantity is True
            for v in item.variants
        }
    return {k: q for k, q in found.items() if k[1] != DEFAULT_VARIANT}  # type: ignore[misc]


def tracked(emu: Emulator, site: str) -> list[Key]:
    """The tracked keys of ``site``, sorted."""
    return sorted(stock(emu, site))


class Clock:
    """The emulator's clock, moved by hand (token expiry is judged by it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_audit_a_site_migrating_to_v3_mid_run_through_the_hub() -> None:
    """A V1 site migrates with a batch built for V1 still pending: every delta of it commits
    once (the 428 refused the V1 call whole, the site is detected again and the batch goes by
    V3), its stock is initial + exactly its deltas, its counters say V3, and a V1 and a V3
    site beside it are untouched by the move."""
    specs = [SiteSpec(catalog="v1"), SiteSpec(catalog="v1"), SiteSpec(catalog="v3")]
    async with Emulator(sites=specs, products=6, variants_per_product=2, seed=61) as emu:
        movers, *others = list(zip(emu.instances, emu.sites, strict=True))
        before = {s: stock(emu, s) for _, s in [movers, *others]}
        keys = {i: tracked(emu, s)[:6] for i, s in [movers, *others]}
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(1000, 1.0),
            linger=30.0,  # batches wait for flush(): the second wave is held across the move
        ) as hub:
            first = [hub.submit_nowait(i, *k, 2) for i, ks in keys.items() for k in ks]
            await hub.flush()
            second = [hub.submit_nowait(i, *k, 5) for i, ks in keys.items() for k in ks]
            emu.migrate_to_v3(movers[1])
            await hub.flush()
            outcomes = [t.result() for t in first + second]
            counters = hub.counters()
            batches = hub.site(movers[0]).adjuster.stats().requests_by_catalog
        assert {o.status for o in outcomes} == {C}, Counter(o.code for o in outcomes)
        assert emu.catalog_version(movers[1]) == "V3_CATALOG"
        answered = emu.site_stats(movers[1])["requests"]
        assert answered["incrementInventory"].get("428") == 1  # the held V1 batch, refused whole
        for instance, site in [movers, *others]:
            want = dict(before[site])
            for key in keys[instance]:
                want[key] += 2 + 5
            after = stock(emu, site)
            assert {k: after.get(k) for k in want} == want, site
        assert counters[movers[0]].catalog == "V3_CATALOG"
        assert batches.get("V1_CATALOG", 0) >= 1 and batches.get("V3_CATALOG", 0) >= 1
        assert [counters[i].catalog for i, _ in others] == ["V1_CATALOG", "V3_CATALOG"]


async def test_audit_tokens_are_refreshed_before_they_expire_on_v1_and_v3_sites() -> None:
    """Four instances (V1 and V3): 550 s into a 600 s token, inside the refresh margin but
    before the emulator would refuse it, each instance fetches its next token before sending
    (one more token each, all at once), and no request is ever answered 401."""
    clock = Clock()
    async with Emulator(
        sites=4, catalog="mixed", products=4, seed=62, token_lifetime=600, clock=clock
    ) as emu:
        keys = {i: tracked(emu, s)[0] for i, s in zip(emu.instances, emu.sites, strict=True)}
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(100, 1.0),
        ) as hub:

            async def burst() -> None:
                tickets = [hub.submit_nowait(i, *k, 1) for i, k in keys.items() for _ in range(5)]
                assert {(await t).status for t in tickets} == {C}

            await burst()
            assert emu.stats()["tokens_issued"] == dict.fromkeys(emu.instances, 1)
            loop = asyncio.get_running_loop()
            real = loop.time
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(loop, "time", lambda: real() + 550)
                clock.now += 550
                await burst()
            assert emu.stats()["tokens_issued"] == dict.fromkeys(emu.instances, 2)
            assert hub.stats().total.token_fetches == 8
        statuses = Counter(
            status
            for site in emu.sites
            for counts in emu.site_stats(site)["requests"].values()
            for status in counts
        )
        assert "401" not in statuses, statuses
        assert {emu.catalog_version(s) for s in emu.sites} == {"V1_CATALOG", "V3_CATALOG"}


@pytest.mark.parametrize(("connections", "per_host"), [(2, 100), (100, 3)])
async def test_audit_all_sites_share_one_bounded_pool(connections: int, per_host: int) -> None:
    """Twelve sites (V1 and V3), each with batches in flight at once, go over one pool:
    the wire never sees more connections open than the hub's ``connections`` or
    ``connections_per_host``, and far fewer made than sites, yet every site commits."""
    bound = min(connections, per_host)
    async with (
        Emulator(sites=12, catalog="mixed", products=4, seed=63, latency_ms=20) as emu,
        CountingProxy(int(emu.url.rsplit(":", 1)[1])) as proxy,
        InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=proxy.url,
            rate_limit=RateLimit(1000, 1.0),
            connections=connections,
            connections_per_host=per_host,
            max_batch=1,
            linger=0,
        ) as hub,
    ):
        tickets = [
            hub.submit_nowait(i, *k, 1)
            for i, s in zip(emu.instances, emu.sites, strict=True)
            for k in tracked(emu, s)[:3]
        ]
        assert {(await t).status for t in tickets} == {C}
        assert hub.stats().total.requests >= len(tickets)
    assert 1 <= proxy.peak <= bound, (proxy.peak, proxy.accepted)
    assert proxy.accepted < len(emu.sites), proxy.accepted


@pytest.mark.parametrize("catalog", ["v1", "v3"])
async def test_audit_an_idle_site_is_drained_then_closed_on_either_catalog(catalog: str) -> None:
    """A site (V1 or V3) whose deltas wait behind its pacing is closed once idle only after
    every delta has its outcome and its stock moved by them; its next delta makes it again."""
    async with Emulator(sites=[SiteSpec(catalog=catalog)], products=4, seed=64) as emu:
        instance, site = emu.instances[0], emu.sites[0]
        keys = tracked(emu, site)[:4]
        before = stock(emu, site)
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            idle_timeout=0.2,
            rate_limit=RateLimit(2, 1.0),
            max_batch=1,
            linger=0.0,
        ) as hub:
            tickets = [hub.submit_nowait(instance, *k, 3) for k in keys]
            handle = hub.site(instance)
            await handle.wait_closed()
            assert all(t.done() for t in tickets)
            assert {t.result().status for t in tickets} == {C}
            assert instance not in hub.stats().sites
            want = dict(before)
            for key in keys:
                want[key] += 3
            assert stock(emu, site) == want
            assert hub.counters()[instance].catalog == f"{catalog.upper()}_CATALOG"
            assert (await hub.adjust(instance, *keys[0], 1)).status is C
            assert hub.site(instance) is not handle


@pytest.mark.parametrize("catalog", ["v1", "v3"])
async def test_audit_max_sites_evicts_after_draining_on_either_catalog(catalog: str) -> None:
    """max_sites=2 over four sites of one catalog: never more than two open, every delta of an
    evicted site commits, every site's stock moved by exactly its deltas."""
    async with Emulator(sites=4, catalog=catalog, products=4, seed=65) as emu:
        pairs = list(zip(emu.instances, emu.sites, strict=True))
        before = {s: stock(emu, s) for _, s in pairs}
        keys = {i: tracked(emu, s)[:3] for i, s in pairs}
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url, max_sites=2
        ) as hub:
            tickets = []
            for instance, _ in pairs:
                tickets += [hub.submit_nowait(instance, *k, 2) for k in keys[instance]]
                assert hub.stats().total.open_sites <= 2
            assert {(await t).status for t in tickets} == {C}
            assert hub.stats().total.sites_closed >= 2
        for instance, site in pairs:
            want = dict(before[site])
            for key in keys[instance]:
                want[key] += 2
            assert stock(emu, site) == want


async def test_audit_an_api_key_hub_detects_each_sites_own_catalog() -> None:
    """ApiKeyAuth(key) over a V1 and a V3 site by site id: each handle detects its own
    catalog and each site's deltas land."""
    async with (
        Emulator(sites=2, catalog="mixed", products=3, seed=66) as emu,
        InventoryHub(ApiKeyAuth(emu.api_key), base_url=emu.url) as hub,
    ):
        versions = []
        for site in emu.sites:
            key = tracked(emu, site)[0]
            before = stock(emu, site)[key]
            assert (await hub.adjust(site, *key, 4)).status is C
            assert stock(emu, site)[key] == before + 4
            versions.append((await hub.site(site).catalog_version()).value)
        assert versions == ["V1_CATALOG", "V3_CATALOG"]
        assert [hub.stats().sites[s].catalog for s in emu.sites] == [
            hub.site(s).catalog for s in emu.sites
        ]


async def test_audit_a_v3_sites_short_batch_keeps_filling_while_it_waits_for_its_slot() -> None:
    """On a V3 site whose catalog detection just took its slot, three bursts of 10 keys all
    arrive while the next slot is 0.5 s away: the held batch takes them all, 1 request of 30,
    not 3 (each burst cut on linger and queued behind the limiter)."""
    async with Emulator(sites=[SiteSpec(catalog="v3")], products=40, seed=67) as emu:
        instance = emu.instances[0]
        keys = tracked(emu, emu.sites[0])[:30]
        assert len(keys) == 30
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(2, 1.0),
            linger=0.0,
        ) as hub:
            await hub.site(instance).catalog_version()  # takes the slot: the next is 0.5 s away
            tickets = []
            for burst in range(3):
                tickets += [hub.submit_nowait(instance, *k, 1) for k in keys[burst::3]]
                for _ in range(5):  # let the dispatcher and the first request run
                    await asyncio.sleep(0)
            assert {(await t).status for t in tickets} == {C}
            stats = hub.site(instance).adjuster.stats()
        assert (stats.requests, stats.entries_sent) == (1, 30)
        assert stats.requests_by_catalog.get("V3_CATALOG") == 1
        assert not stats.requests_by_catalog.get("V1_CATALOG")


def test_audit_v3_sites_are_seeded_per_site_and_keep_their_own_journal() -> None:
    """Two emulators of the same seed give every V3 site the same catalog whatever order the
    sites are made in; sites differ from each other; a write to one V3 site is in its own
    journal only."""
    a = Emulator(sites=4, catalog="v3", products=3, seed=68)
    b = Emulator(sites=4, catalog="v3", products=3, seed=68)

    def shape(emu: Emulator, site: str) -> list[tuple[str, str, str, object]]:
        return [
            (r.id, r.product_id, r.variant_id, r.quantity) for r in emu.v3_store(site).records()
        ]

    for site in a.sites:
        a.v3_store(site)
    for site in reversed(b.sites):
        b.v3_store(site)
    assert [shape(a, s) for s in a.sites] == [shape(b, s) for s in b.sites]
    assert shape(a, a.sites[0]) != shape(a, a.sites[1])
    target = a.sites[2]
    record = next(r for r in a.v3_store(target).records() if r.track is True)
    a.edit_quantity(record.id, delta=1, site_id=target)
    assert [len(a.journal(s)) for s in a.sites] == [0, 0, 1, 0]


async def test_audit_concurrent_senders_of_one_instance_share_each_token_fetch() -> None:
    """Six instances (V1 and V3), each with four batches in flight at once: one token request
    per instance (fetched for its catalog detection, reused by the four); after every token
    dies, the four concurrent 401s of an instance share one refresh."""
    async with Emulator(sites=6, catalog="mixed", products=8, seed=69) as emu:
        keys = {i: tracked(emu, s)[:4] for i, s in zip(emu.instances, emu.sites, strict=True)}
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(1000, 1.0),
            max_batch=1,
            max_in_flight=4,
            linger=0,
        ) as hub:
            for instance in keys:  # catalogs detected first: the waves below are all writes
                await hub.site(instance).catalog_version()
            assert emu.stats()["tokens_issued"] == dict.fromkeys(emu.instances, 1)

            async def wave() -> None:
                tickets = [hub.submit_nowait(i, *k, 1) for i, ks in keys.items() for k in ks]
                assert {(await t).status for t in tickets} == {C}

            await wave()
            peaks = {i: hub.site(i).adjuster.stats().requests for i in keys}
            assert set(peaks.values()) == {4}
            for instance in emu.instances:  # every token issued so far is now dead
                emu.revoke(instance)
                emu.reinstate(instance)
            await wave()
            assert emu.stats()["tokens_issued"] == dict.fromkeys(emu.instances, 2)
            assert hub.stats().total.token_fetches == 12
        refused = sum(c.get("401", 0) for c in emu.stats()["requests"].values())
        # More 401s than instances (four senders of an instance each answered 401, here 24),
        # and still one new token each.
        assert len(emu.sites) < refused <= 4 * len(emu.sites), refused


async def test_audit_sites_of_both_catalogs_with_a_backlog_share_the_process() -> None:
    """Four V1 and four V3 sites each queue 12 batches at once, unpaced: by the time half of
    all deltas have outcomes, every site has between a quarter and three quarters of its own
    (neither catalog starves the other)."""
    async with Emulator(sites=8, catalog="mixed", products=400, seed=70) as emu:
        keys = {i: tracked(emu, s)[:600] for i, s in zip(emu.instances, emu.sites, strict=True)}
        assert {len(k) for k in keys.values()} == {600}
        order: list[str] = []
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(1_000_000, 1.0),
            max_batch=50,
            max_in_flight=1,
        ) as hub:
            for instance in keys:
                await hub.site(instance).catalog_version()
            tickets = []
            for instance, mine in keys.items():
                for key in mine:
                    ticket = hub.submit_nowait(instance, *key, 1)
                    ticket.add_done_callback(lambda _t, s=instance: order.append(s))
                    tickets.append(ticket)
            assert {(await t).status for t in tickets} == {C}
        half = Counter(order[: len(order) // 2])
        assert set(half) == set(emu.instances)
        for instance in emu.instances:
            assert 600 / 4 <= half[instance] <= 600 * 3 / 4, half


@pytest.mark.parametrize("catalog", ["v1", "v3"])
async def test_audit_one_sites_429_pause_holds_back_no_other_site(catalog: str) -> None:
    """Every write of one site (V1 or V3) answered 429 with Retry-After 1 s: while it pauses,
    two other sites (V1 and V3) commit all their deltas; once its throttling ends, the paused
    site commits too, each delta once."""
    throttled = FaultPlan(
        {w: FaultRule(rate_limited=1.0) for w in ("incrementInventory", BULK_BY_VARIANT)},
        seed=1,
        retry_after=1,
    )
    specs = [SiteSpec(catalog=catalog, faults=throttled), SiteSpec(catalog="v1")]
    specs.append(SiteSpec(catalog="v3"))
    async with Emulator(sites=specs, products=4, seed=71) as emu:
        pairs = list(zip(emu.instances, emu.sites, strict=True))
        keys = {i: tracked(emu, s)[:4] for i, s in pairs}
        before = {s: stock(emu, s) for _, s in pairs}
        (paused, paused_site), *others = pairs
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(1000, 1.0),
            linger=0,
        ) as hub:
            for instance in keys:
                await hub.site(instance).catalog_version()
            held = [hub.submit_nowait(paused, *k, 1) for k in keys[paused]]
            served = [hub.submit_nowait(i, *k, 1) for i, _ in others for k in keys[i]]
            assert {(await t).status for t in served} == {C}
            assert not any(t.done() for t in held)
            assert hub.site(paused).adjuster.stats().rate_limited >= 1
            emu.set_faults(None, site_id=paused_site)
            assert {(await t).status for t in held} == {C}
        for instance, site in pairs:
            want = dict(before[site])
            for key in keys[instance]:
                want[key] += 1
            assert stock(emu, site) == want, site


async def test_audit_a_revoked_v3_installation_rests_and_the_other_sites_commit() -> None:
    """A revoked V3 installation beside a V1 and a V3 site: six waves cost it one token
    request and no other request, each of its deltas REJECTED retriable with the reason;
    the other sites commit every wave."""
    specs = [SiteSpec(catalog="v3"), SiteSpec(catalog="v1"), SiteSpec(catalog="v3")]
    async with Emulator(sites=specs, products=4, seed=72) as emu:
        revoked = emu.instances[0]
        emu.revoke(revoked)
        keys = {i: tracked(emu, s)[:3] for i, s in zip(emu.instances, emu.sites, strict=True)}
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(1000, 1.0),
            linger=0,
        ) as hub:
            for _ in range(6):
                tickets = {i: [hub.submit_nowait(i, *k, 1) for k in ks] for i, ks in keys.items()}
                await hub.flush()
                for instance, group in tickets.items():
                    outcomes = [t.result() for t in group]
                    if instance != revoked:
                        assert {o.status for o in outcomes} == {C}
                        continue
                    for outcome in outcomes:
                        assert (outcome.status, outcome.retriable) == (
                            OutcomeStatus.REJECTED,
                            True,
                        ), outcome
                        assert "token refused" in (outcome.message or ""), outcome
            sent = dict(hub.site(revoked).client.stats().requests_by_endpoint)
        assert sent.pop("oauth_token") == 1
        assert sum(sent.values()) == 0, sent
