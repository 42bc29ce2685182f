"""FleetWorker embedded in this process (the emulator too): the backlog rule for hot SKUs."""

from __future__ import annotations

import asyncio
import random

import redis.asyncio as aioredis

from wixinv_async import ApiKeyAuth, RateLimit
from wixinv_async.emulator import Emulator
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.shards import KeySpace, shard_of
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
        settings = WorkerSettings(prefix="hot", shards=4, rate_limit=RateLimit(1000, 1))
        worker = FleetWorker(
            redis_url,
            ApiKeyAuth(emulator.api_key),
            base_url=emulator.url,
            settings=settings,
        )
        running = asyncio.create_task(worker.run())
        producer = FleetProducer(redis_conn, prefix="hot", shards=4)
        outcome = await producer.outcome(emulator.site_id, "e2999", wait=15)
        worker.stop()
        await running
        assert outcome is not None
        assert len(emulator.store.journal) == 1
        assert sum(emulator.store.quantity(item.product_id, v) or 0 for v in variants) == 3040
