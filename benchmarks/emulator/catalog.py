"""``crawl_query`` (numericId-range queries on a large site) and ``seed`` (seeding a large
catalog in process)."""

from __future__ import annotations

import asyncio
import json
import random
import time

import aiohttp
import msgspec

from benchmarks.emulator.load import fire
from benchmarks.emulator.servers import QUERY, Server, emit

__all__ = ["bench_crawl_query", "bench_seed"]


def bench_crawl_query(products: int, queries: int, concurrency: int) -> None:
    with Server("emulator", products) as info:

        async def bodies() -> list[bytes]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(info["url"] + "/_emulator/state") as r,
            ):
                state = await r.json()
            ids = [int(i["numericId"]) for i in state["inventoryItems"]]
            rng = random.Random(1)
            out = []
            for _ in range(queries):
                low = rng.choice(ids)
                query = {
                    "paging": {"limit": 100},
                    "filter": json.dumps({"numericId": {"$gt": low, "$lte": low + 10**13}}),
                    "sort": '[{"numericId":"asc"}]',
                }
                out.append(msgspec.json.encode({"query": query}))
            return out

        payloads = asyncio.run(bodies())
        seconds, statuses, _ = asyncio.run(
            fire(info["url"] + QUERY, info["headers"], payloads, concurrency)
        )
    emit(
        bench="crawl_query",
        items=products,
        queries=queries,
        seconds=round(seconds, 3),
        qps=round(queries / seconds, 1),
        statuses=statuses,
    )


def bench_seed(products: int) -> None:
    from wixinv_async.emulator import SiteStore

    started = time.perf_counter()
    store = SiteStore(
        site_id="s", instance_id="i", products=products, variants_per_product=3, seed=1
    )
    emit(
        bench="seed",
        products=products,
        variants=sum(len(i.variants) for i in store._items),
        seconds=round(time.perf_counter() - started, 3),
    )
