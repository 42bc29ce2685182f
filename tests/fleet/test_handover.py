"""Workers joining and leaving gracefully mid-run, with a backlog: nothing in doubt, nothing
lost, each variant moved by exactly its deltas."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import redis.asyncio as aioredis

from wixinv_async import ApiKeyAuth, RateLimit
from wixinv_async.emulator import Emulator, SiteSpec
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.worker import FleetWorker, WorkerSettings

from .test_worker_inprocess import site_quantity, tracked_variants

SETTINGS = WorkerSettings(
    prefix="hand",
    shards=8,
    rate_limit=RateLimit(1000, 1),
    lease_ms=1500,
    http_timeout=0.5,
    margin=0.2,
    idle_timeout=1.5,
    trim_every=1,
    max_defer=0.2,
)


Key = tuple[str, str, str]


def tracked_keys(emulator: Emulator, per_site: int) -> tuple[list[Key], dict[Key, int | None]]:
    """``per_site`` tracked (site, product, variant) keys of every site, and their quantities."""
    keys = [
        (site, p, v)
        for site in emulator.sites
        for p, v in tracked_variants(emulator, site, per_site)
    ]
    return keys, {k: site_quantity(emulator, *k) for k in keys}


async def doubted_records(redis_conn: aioredis.Redis, producer: FleetProducer) -> int:
    """IN_DOUBT records in every outcome stream: an event's last outcome hides an IN_DOUBT
    its sender settled later, so every record is read."""
    doubted = 0
    for shard in range(producer.keys.shards):
        for _, fields in await redis_conn.xrange(producer.keys.key(shard, "out")):
            doubted += fields.get("s") == "IN_DOUBT"
    return doubted


def requests_answered(emulator: Emulator) -> int:
    return sum(len(emulator.journal(site)) for site in emulator.sites)


async def test_join_leave_cycles_under_a_backlog_leave_nothing_in_doubt(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """Three sites, a backlog produced while workers join, stop gracefully and join again:
    every event ends APPLIED (none IN_DOUBT, none missing) and the emulator moved each variant
    by exactly what was produced."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    specs = [SiteSpec(catalog="v1") for _ in range(3)]
    async with Emulator(sites=specs, products=0, seed=7, latency_ms=5) as emulator:
        keys, before = tracked_keys(emulator, 3)
        producer = FleetProducer(redis_conn, prefix="hand", shards=8)
        added = dict.fromkeys(keys, 0)
        sites: dict[str, str] = {}
        auth = ApiKeyAuth(emulator.api_key)

        def start(name: str) -> tuple[FleetWorker, asyncio.Task[None]]:
            worker = FleetWorker(
                redis_url, auth, base_url=emulator.url, settings=SETTINGS, worker_id=name
            )
            return worker, asyncio.create_task(worker.run())

        async def produce(count: int, tag: str) -> None:
            for n in range(count):
                key = rng.choice(keys)
                delta = rng.choice((1, 1, 2, -1))
                added[key] += delta
                sites[f"{tag}-{n}"] = key[0]
                await producer.submit(*key, delta, event_id=f"{tag}-{n}")

        running = [start("w0")]
        for cycle in range(4):
            await produce(150, f"c{cycle}")
            running.append(start(f"w{cycle + 1}"))
            await produce(150, f"j{cycle}")
            await asyncio.sleep(0.6)  # a membership tick or two: shards move
            leaving, task = running.pop(0)
            leaving.stop()
            await task
        outcomes = {e: await producer.outcome(site, e, wait=30) for e, site in sites.items()}
        for worker, task in running:
            worker.stop()
            await task
        statuses = {e: (o.status.value if o else None) for e, o in outcomes.items()}
        assert len(statuses) == 4 * 300
        assert await doubted_records(redis_conn, producer) == 0, f"seed {seed}"
        bad = {e: s for e, s in statuses.items() if s not in ("APPLIED", "NETTED")}
        assert not bad, f"seed {seed}: {bad}"
        after = {k: site_quantity(emulator, *k) for k in keys}
        assert after == {k: before[k] + added[k] for k in keys}, f"seed {seed}"  # type: ignore[operator]


async def test_a_graceful_stop_while_requests_are_at_wix_settles_them(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """Requests take most of the HTTP timeout, the workers own many shards and trim at every
    tick: one worker stopped while its requests are at the emulator finishes and settles
    them before it lets go, the other takes its shards over with nothing in doubt, and every
    delta moves its variant exactly once."""
    settings = dataclasses.replace(SETTINGS, prefix="slowhand", shards=64, max_defer=0.0)
    rng = random.Random(11)
    specs = [SiteSpec(catalog="v1") for _ in range(3)]
    async with Emulator(sites=specs, products=0, seed=7, latency_ms=350) as emulator:
        keys, before = tracked_keys(emulator, 2)
        producer = FleetProducer(redis_conn, prefix="slowhand", shards=64)
        auth = ApiKeyAuth(emulator.api_key)
        workers = [
            FleetWorker(redis_url, auth, base_url=emulator.url, settings=settings, worker_id=n)
            for n in ("a", "b")
        ]
        marked: asyncio.Queue[FleetWorker] = asyncio.Queue()

        def report_marks(worker: FleetWorker) -> None:
            mark_sent = worker.scripts.mark_sent

            async def marking(shard: int, token: str, batch_id: str, lease_min_ms: int) -> str:
                gate = await mark_sent(shard, token, batch_id, lease_min_ms)
                if gate == "OK":  # the request leaves now; the emulator holds it 350 ms
                    marked.put_nowait(worker)
                return gate

            worker.scripts.mark_sent = marking  # type: ignore[method-assign]

        for worker in workers:
            report_marks(worker)
        tasks = {w: asyncio.create_task(w.run()) for w in workers}
        await asyncio.sleep(0.6)  # both own shards
        added = dict.fromkeys(keys, 0)
        events: dict[str, str] = {}

        async def produce() -> None:
            for n in range(120):
                key = rng.choice(keys)
                added[key] += 1
                events[f"e{n}"] = key[0]
                await producer.submit(*key, 1, event_id=f"e{n}")

        producing = asyncio.create_task(produce())
        async with asyncio.timeout(10):
            stopped = await marked.get()
        await asyncio.sleep(0.05)
        answered = requests_answered(emulator)
        stopped.stop()
        await tasks.pop(stopped)
        assert requests_answered(emulator) > answered  # it waited for the answer
        await producing
        outcomes = {e: await producer.outcome(site, e, wait=30) for e, site in events.items()}
        for worker, task in tasks.items():
            worker.stop()
            await task
        statuses = {o.status.value if o else None for o in outcomes.values()}
        assert statuses <= {"APPLIED", "NETTED"}
        assert await doubted_records(redis_conn, producer) == 0
        after = {k: site_quantity(emulator, *k) for k in keys}
        assert after == {k: before[k] + added[k] for k in keys}  # type: ignore[operator]
