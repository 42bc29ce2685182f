"""FleetWorker embedded in this process (the emulator too): the backlog rule for hot SKUs, idle
sites' clients closed, streams trimmed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from wixinv_async import ApiKeyAuth, AppCredentials, RateLimit
from wixinv_async.emulator import Emulator
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.shards import EventStatus, KeySpace, shard_of
from wixinv_async.fleet.worker import FleetWorker, WorkerSettings


async def test_a_queued_hot_sku_backlog_goes_in_one_request(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """3,000 increments on 4 keys queued before the worker starts: it folds the whole backlog
    before sending, so one request carries them (pacing loose: the first send could go at once)."""
    keys = KeySpace("hot", 4)
    async with Emulator(products=0) as emulator:
        item = emulator.store.add_product(variants=4, quantity=10, track=True)
        variants = [v.variant_id for v in item.variants]
        rng = random.Random(6)
        stream = keys.key(shard_of(emulator.site_id, keys.shards), "in")
        async with redis_conn.pipeline(transaction=False) as pipe:
            for n in range(3000):
                fields = {"e": f"e{n}", "site": emulator.site_id, "p": item.product_id}
                fields |= {"v": rng.choice(variants), "d": 1}
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
        outcome = await producer.outcome(emulator.site_id, "e2999", wait=60)
        worker.stop()
        await running
        assert outcome is not None
        assert len(emulator.store.journal) == 1
        assert sum(emulator.store.quantity(item.product_id, v) or 0 for v in variants) == 3040


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


async def test_an_app_worker_serves_sites_by_instance_id_with_their_own_tokens(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """With the app's credentials a site is an app instance: the hub fetches each instance's
    token, and each delta lands on its own site."""
    async with Emulator(sites=2, products=0) as emulator:
        targets = []
        for site in emulator.sites:
            item = emulator.site(site).add_product(variants=1, quantity=10, track=True)
            targets.append((site, emulator.instance_of(site), item.product_id, item.variants[0]))
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
            await producer.submit(instance, product, variant.variant_id, n + 1, event_id=f"e{n}")
        for n, (_, instance, _, _) in enumerate(targets):
            outcome = await producer.outcome(instance, f"e{n}", wait=15)
            assert outcome is not None and outcome.status is EventStatus.APPLIED
        worker.stop()
        await running
        for n, (site, _, product, variant) in enumerate(targets):
            assert emulator.site(site).quantity(product, variant.variant_id) == 10 + n + 1
        assert worker.hub.stats().total.token_fetches == 2
