"""FleetWorker embedded in this process (the emulator too): the backlog rule for hot SKUs and
app-credential workers on V1 and V3 sites, idle sites' clients closed, streams trimmed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from wixinv_async import ApiKeyAuth, AppCredentials, RateLimit
from wixinv_async.emulator import Emulator, SiteSpec
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.shards import EventStatus, KeySpace, shard_of
from wixinv_async.fleet.worker import FleetWorker, WorkerSettings

DEFAULT_VARIANT = "00000000-0000-0000-0000-000000000000"
"""V1's shared default variant id, which a V3 site refuses."""


@pytest.mark.parametrize("catalog", ["v1", "v3"])
async def test_a_queued_hot_sku_backlog_goes_in_one_request(
    redis_url: str, redis_conn: aioredis.Redis, catalog: str
) -> None:
    """3,000 increments on 4 variants of a V1 or a V3 site queued before the worker starts: it
    folds the whole backlog before sending, so one request carries them all (the minimum;
    pacing loose: the first send could go at once), and each variant moved by exactly its
    deltas."""
    keys = KeySpace("hot", 4)
    async with Emulator(sites=[SiteSpec(catalog=catalog)], products=4, seed=84) as emulator:
        site = emulator.sites[0]
        targets = tracked_variants(emulator, site, 4)
        before = [site_quantity(emulator, site, p, v) for p, v in targets]
        rng = random.Random(6)
        added = [0] * len(targets)
        stream = keys.key(shard_of(site, keys.shards), "in")
        async with redis_conn.pipeline(transaction=False) as pipe:
            for n in range(3000):
                pick = rng.randrange(len(targets))
                added[pick] += 1
                product, variant = targets[pick]
                fields = {"e": f"e{n}", "site": site, "p": product, "v": variant, "d": 1}
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            await pipe.execute()
        # max_defer roomy: on a loaded machine folding 3,000 entries can take longer than the
        # default, and the backlog rule is what this test is about.
        settings = WorkerSettings(
            prefix="hot", shards=4, rate_limit=RateLimit(1000, 1), max_defer=60.0
        )
        worker = FleetWorker(
            redis_url,
            ApiKeyAuth(emulator.api_key),
            base_url=emulator.url,
            settings=settings,
        )
        running = asyncio.create_task(worker.run())
        producer = FleetProducer(redis_conn, prefix="hot", shards=4)
        outcome = await producer.outcome(site, "e2999", wait=60)
        worker.stop()
        await running
        assert outcome is not None and outcome.status is EventStatus.APPLIED
        [write] = emulator.journal(site)  # one request applied: V1 atomic, V3 bulk
        assert write.endpoint.startswith("bulk") is (catalog == "v3"), write.endpoint
        after = [site_quantity(emulator, site, p, v) for p, v in targets]
        assert after == [q + a for q, a in zip(before, added, strict=True)]  # type: ignore[operator]


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` until it holds (a bounded wait for a background effect, not a timer)."""
    for _ in range(400):
        if await condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never: {what}")


async def test_an_idle_site_client_is_closed_and_made_again_without_detecting_twice(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """The hub closes the client of a site idle past idle_timeout; the site's next batch makes
    it again and the catalog kept in Redis spares a second detection. The worker's periodic
    trim empties the folded ingest stream."""
    keys = KeySpace("idle", 2)
    async with Emulator(products=0) as emulator:
        item = emulator.store.add_product(variants=1, quantity=10, track=True)
        variant = item.variants[0].variant_id
        settings = WorkerSettings(
            prefix="idle",
            shards=2,
            rate_limit=RateLimit(1000, 1),
            lease_ms=1500,
            http_timeout=0.5,
            margin=0.2,
            idle_timeout=1.5,
            trim_every=1,
        )
        worker = FleetWorker(
            redis_url, ApiKeyAuth(emulator.api_key), base_url=emulator.url, settings=settings
        )
        running = asyncio.create_task(worker.run())
        producer = FleetProducer(redis_conn, prefix="idle", shards=2)
        site = emulator.site_id
        for event in ("first", "second"):
            await producer.submit(site, item.product_id, variant, 1, event_id=event)
            outcome = await producer.outcome(site, event, wait=15)
            assert outcome is not None and outcome.status is EventStatus.APPLIED
            if event == "first":
                await until(
                    lambda: _true(worker.hub.stats().total.sites_closed == 1), "site closed"
                )
        stream = keys.key(shard_of(site, 2), "in")
        await until(lambda: _lte(redis_conn.xlen(stream), 1), "ingest trimmed")
        worker.stop()
        await running
        assert worker.hub.stats().total.sites_made == 2
        versions = emulator.stats()["requests"].get("getCatalogVersion", {})
        assert sum(versions.values()) == 1
        assert emulator.store.quantity(item.product_id, variant) == 12


async def _true(value: bool) -> bool:
    return value


async def _lte(length: Awaitable[int], most: int) -> bool:
    return await length <= most


@pytest.mark.parametrize(
    ("catalog", "versions"),
    [("v1", ["V1_CATALOG", "V1_CATALOG"]), ("mixed", ["V1_CATALOG", "V3_CATALOG"])],
    ids=["v1", "mixed"],
)
async def test_an_app_worker_serves_sites_by_instance_id_with_their_own_tokens(
    redis_url: str, redis_conn: aioredis.Redis, catalog: str, versions: list[str]
) -> None:
    """With the app's credentials a site is an app instance (two V1 sites, or a V1 and a V3
    site): the hub fetches one token per instance, and each delta lands once on its own site
    through its own catalog."""
    async with Emulator(sites=2, catalog=catalog, products=3, seed=85) as emulator:
        assert sorted(emulator.catalog_version(s) for s in emulator.sites) == versions
        targets = []
        for site in emulator.sites:
            [(product, variant)] = tracked_variants(emulator, site, 1)
            targets.append((site, emulator.instance_of(site), product, variant))
        before = [site_quantity(emulator, s, p, v) for s, _, p, v in targets]
        settings = WorkerSettings(prefix="app", shards=2, rate_limit=RateLimit(1000, 1))
        worker = FleetWorker(
            redis_url,
            AppCredentials(emulator.app_id, emulator.app_secret),
            base_url=emulator.url,
            settings=settings,
        )
        running = asyncio.create_task(worker.run())
        producer = FleetProducer(redis_conn, prefix="app", shards=2)
        for n, (_, instance, product, variant) in enumerate(targets):
            await producer.submit(instance, product, variant, n + 1, event_id=f"e{n}")
        for n, (_, instance, _, _) in enumerate(targets):
            outcome = await producer.outcome(instance, f"e{n}", wait=15)
            assert outcome is not None and outcome.status is EventStatus.APPLIED
        worker.stop()
        await running
        after = [site_quantity(emulator, s, p, v) for s, _, p, v in targets]
        assert after == [q + n + 1 for n, q in enumerate(before)]  # type: ignore[operator]
        assert emulator.stats()["tokens_issued"] == dict.fromkeys(emulator.instances, 1)
        assert worker.hub.stats().total.token_fetches == 2


def tracked_variants(emulator: Emulator, site: str, count: int) -> list[tuple[str, str]]:
    """``count`` (product, variant) pairs of the site whose quantity is tracked (V1: a product
    added with that many variants; V3: seeded records at the default location)."""
    if emulator.catalog_version(site) == "V1_CATALOG":
        item = emulator.site(site).add_product(variants=count, quantity=10, track=True)
        return [(item.product_id, v.variant_id) for v in item.variants]
    store = emulator.v3_store(site)
    records = [
        r
        for r in store.records()
        if r.track is True
        and r.location_id == store.default_location
        and r.variant_id != DEFAULT_VARIANT
    ][:count]
    assert len(records) == count
    return [(r.product_id, r.variant_id) for r in records]


def site_quantity(emulator: Emulator, site: str, product: str, variant: str) -> int | None:
    """A variant's quantity (V3: at the site's default location)."""
    if emulator.catalog_version(site) == "V1_CATALOG":
        return emulator.site(site).quantity(product, variant)
    store = emulator.v3_store(site)
    [record] = [
        r
        for r in store.records()
        if r.product_id == product
        and r.variant_id == variant
        and r.location_id == store.default_location
    ]
    return record.quantity
