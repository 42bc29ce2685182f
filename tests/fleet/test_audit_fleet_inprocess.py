"""Audit of issue 16 (docs/AUDIT-15-16.md): what users get, with a FleetWorker embedded in
this process over a V1 and a V3 site (the emulator over HTTP, a real redis-server): leases
released at a graceful stop, deltas acknowledged by submit surviving kill -9 of Redis, the
outcome stream read by a consumer group of the user's own, and ``fleet status``'s owners and
backlog per site."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from wixinv_async import ApiKeyAuth, AppCredentials, RateLimit
from wixinv_async.cli import EXIT_OK, build_parser
from wixinv_async.emulator import Emulator, SiteSpec
from wixinv_async.fleet._redis_server import RedisServer
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.scripts import ShardScripts
from wixinv_async.fleet.shards import EventStatus, KeySpace, shard_of
from wixinv_async.fleet.worker import FleetWorker, WorkerSettings

from .harness import PREFIX, SHARDS, Fleet, open_fleet, settle_and_check
from .helpers import fold_all

S = EventStatus
BOTH = "v1 v3"
KEYS = KeySpace(PREFIX, SHARDS)


def settings(**changes: object) -> WorkerSettings:
    """The harness's worker flags as settings (5/1 per site, a 1.5 s lease)."""
    base: dict[str, object] = {
        "prefix": PREFIX,
        "shards": SHARDS,
        "rate_limit": RateLimit(5, 1, 0.1),
        "lease_ms": 1500,
        "http_timeout": 0.5,
        "margin": 0.25,
    }
    return WorkerSettings(**{**base, **changes})  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def embedded(fleet: Fleet, url: str, **changes: object) -> AsyncIterator[FleetWorker]:
    """A FleetWorker running in this process for the fleet's emulator, stopped on exit."""
    worker = FleetWorker(
        url,
        ApiKeyAuth(fleet.emulator.api_key),
        base_url=fleet.emulator.url,
        settings=settings(**changes),
    )
    running = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await running


async def leases_of(conn: aioredis.Redis, worker_id: str) -> list[int]:
    """The shards whose lease ``worker_id`` holds now."""
    leases = [await conn.get(KEYS.key(n, "lease")) for n in range(SHARDS)]
    return [n for n, lease in enumerate(leases) if lease and lease.split("|")[0] == worker_id]


async def test_audit_a_graceful_stop_releases_every_lease_at_once(
    redis_url: str, tmp_path: Path
) -> None:
    """A worker with a 60 s lease serving a V1 and a V3 site stops: the moment run() returns
    it holds no lease (not one left to expire), and every delta it took was APPLIED."""
    async with open_fleet(redis_url, tmp_path, catalogs=BOTH) as fleet:
        async with embedded(fleet, redis_url, lease_ms=60_000) as worker:
            await fleet.produce(random.Random(81), 20)
            outcomes, _ = await settle_and_check(fleet)
            held = await leases_of(fleet.redis, worker.worker_id)
            assert sorted(held) == list(range(SHARDS))
        assert await leases_of(fleet.redis, worker.worker_id) == []
        assert {o.status for o in outcomes.values()} <= {S.APPLIED, S.NETTED}
        assert S.APPLIED in {o.status for o in outcomes.values()}


async def test_audit_submitted_deltas_survive_kill_9_of_redis_then_apply_once(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """40 deltas for a V1 and a V3 site acknowledged by submit with no worker running, then
    Redis killed -9 and restarted: all 40 are still queued, and a worker started then
    delivers each exactly once."""
    server = redis_server_factory()
    async with open_fleet(server.url, tmp_path, catalogs=BOTH) as fleet:
        await fleet.produce(random.Random(82), 40)
        server.kill()
        server.restart()
        conn = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            queued = sum([await conn.xlen(KEYS.key(n, "in")) for n in range(SHARDS)])
        finally:
            await conn.aclose()
        assert queued == 40
        with contextlib.suppress(RedisConnectionError):  # the producer's pooled connection
            await fleet.redis.ping()  # died with the server: the pool reconnects after this
        async with embedded(fleet, server.url):
            outcomes, records = await settle_and_check(fleet)
        assert {o.status for o in outcomes.values()} <= {S.APPLIED, S.NETTED}
        assert fleet.journal() == records["APPLIED"]


async def test_audit_users_read_every_outcome_through_a_group_of_their_own(
    redis_url: str, tmp_path: Path
) -> None:
    """A user's consumer group on each shard's outcome stream, made before any delta: it
    reads every event's outcome (as producer.outcome reports it), a producer retry with the
    same event id adds no second outcome, and on both sites that retry applied once."""
    async with open_fleet(redis_url, tmp_path, catalogs=BOTH) as fleet:
        for n in range(SHARDS):
            await fleet.redis.xgroup_create(KEYS.key(n, "out"), "mine", id="0", mkstream=True)
        retried = {}
        for site in fleet.emulator.sites:
            key = next(k for k in fleet.keys if k[0] == site)
            retried[site] = await fleet.submit(key, 3)
        await fleet.produce(random.Random(83), 40)
        async with embedded(fleet, redis_url):
            for event_id in retried.values():
                key, delta = fleet.produced[event_id]
                await fleet.submit(key, delta, event_id=event_id)  # the retry
            outcomes, records = await settle_and_check(fleet)
        seen: dict[str, list[str]] = {}
        for n in range(SHARDS):
            stream = KEYS.key(n, "out")
            replies = await fleet.redis.xreadgroup("mine", "me", {stream: ">"}, count=10_000)
            for _, entries in replies:
                for entry_id, fields in entries:
                    seen.setdefault(fields["e"], []).append(fields["s"])
                    await fleet.redis.xack(stream, "mine", entry_id)
        assert seen.keys() == outcomes.keys()
        assert {e: states[-1] for e, states in seen.items()} == {
            e: o.status.value for e, o in outcomes.items()
        }
        assert all(len(states) == 1 for states in seen.values()), seen  # nothing in doubt
        for site, event_id in retried.items():
            assert outcomes[event_id].status is S.APPLIED, site
        assert fleet.journal() == records["APPLIED"]
        assert {fleet.emulator.catalog_version(s) for s in fleet.emulator.sites} == {
            "V1_CATALOG",
            "V3_CATALOG",
        }


def test_audit_fleet_status_names_each_shards_owner_and_backlog_per_site(
    redis_url: str,
) -> None:
    """Two sites in one shard owned by w1 (epoch 1), with folded deltas on 3 and 2 keys, a
    third site queued in another, unowned shard: ``fleet status`` shows the owner, epoch and
    lease, the pending keys by site, and the other shard's stream entries with no owner."""
    sites = [f"site-{n}" for n in range(40)]
    by_shard: dict[int, list[str]] = {}
    for site in sites:
        by_shard.setdefault(shard_of(site, SHARDS), []).append(site)
    owned, pair = next((n, s[:2]) for n, s in by_shard.items() if len(s) >= 2)
    other, lone = next((n, s[0]) for n, s in by_shard.items() if n != owned)
    variants = [f"00000000-0000-0000-0000-{n:012d}" for n in range(5)]

    async def arrange() -> None:
        conn = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            scripts = ShardScripts(conn, KEYS)
            claim = await scripts.claim(owned, "w1", 60_000)
            async with FleetProducer(conn, prefix=PREFIX, shards=SHARDS) as producer:
                for site, count in zip(pair, (3, 2), strict=True):
                    for variant in variants[:count]:
                        await producer.submit(site, "p1", variant, 1)
                await producer.submit(lone, "p1", variants[0], 1)
            await fold_all(scripts, owned, f"w1|{claim.epoch}")
        finally:
            await conn.aclose()

    asyncio.run(arrange())
    args = build_parser().parse_args(
        ["fleet", "status", "--redis", redis_url, "--prefix", PREFIX, "--shards", str(SHARDS)]
    )
    out = io.StringIO()
    assert args.func(args, out) == EXIT_OK
    status = json.loads(out.getvalue())
    shards = {s["shard"]: s for s in status["active_shards"]}
    assert (shards[owned]["owner"], shards[owned]["epoch"]) == ("w1", 1)
    assert 0 < shards[owned]["lease_ms"] <= 60_000
    assert shards[owned]["pending_keys_by_site"] == {pair[0]: 3, pair[1]: 2}
    assert (shards[other]["owner"], shards[other]["stream_entries"]) == (None, 1)
    assert status["pending_keys"] == 5 and status["in_doubt_batches"] == 0


async def test_audit_a_queued_hot_sku_backlog_on_a_v3_site_goes_in_one_request(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """3,000 increments on 4 variants of a V3 site queued before the worker starts: one bulk
    request carries them all (the minimum), and each variant moved by exactly its deltas."""
    keys = KeySpace("hot3", 4)
    async with Emulator(sites=[SiteSpec(catalog="v3")], products=4, seed=84) as emulator:
        site = emulator.sites[0]
        store = emulator.v3_store(site)
        records = [
            r
            for r in store.records()
            if r.track is True
            and r.location_id == store.default_location
            and r.variant_id != "00000000-0000-0000-0000-000000000000"
        ][:4]
        assert len(records) == 4
        before = {r.id: r.quantity for r in records}
        rng = random.Random(6)
        added: Counter[str] = Counter()
        stream = keys.key(shard_of(site, keys.shards), "in")
        async with redis_conn.pipeline(transaction=False) as pipe:
            for n in range(3000):
                record = rng.choice(records)
                added[record.id] += 1
                fields = {"e": f"e{n}", "site": site, "p": record.product_id}
                fields |= {"v": record.variant_id, "d": 1}
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            await pipe.execute()
        worker = FleetWorker(
            redis_url,
            ApiKeyAuth(emulator.api_key),
            base_url=emulator.url,
            # max_defer roomy: on a loaded machine folding 3,000 entries can take longer than
            # the default, and the backlog rule is what this test is about.
            settings=WorkerSettings(
                prefix="hot3", shards=4, rate_limit=RateLimit(1000, 1), max_defer=60.0
            ),
        )
        running = asyncio.create_task(worker.run())
        producer = FleetProducer(redis_conn, prefix="hot3", shards=4)
        outcome = await producer.outcome(site, "e2999", wait=60)
        worker.stop()
        await running
        assert outcome is not None and outcome.status is S.APPLIED
        writes = [e for e in emulator.journal(site) if e.endpoint.startswith("bulk")]
        assert len(writes) == 1
        after = {r.id: store.find(r.id).quantity for r in records}  # type: ignore[union-attr]
        assert after == {i: q + added[i] for i, q in before.items()}  # type: ignore[operator]


async def test_audit_an_app_worker_serves_v1_and_v3_instances_with_their_own_tokens(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """With the app's credentials, a V1 and a V3 site named by instance id: one token per
    instance, each delta lands once on its own site through its own catalog."""
    async with Emulator(sites=2, catalog="mixed", products=3, seed=85) as emulator:
        targets = []
        for site in emulator.sites:
            instance = emulator.instance_of(site)
            if emulator.catalog_version(site) == "V1_CATALOG":
                item = emulator.site(site).add_product(variants=1, quantity=10, track=True)
                product, variant = item.product_id, item.variants[0].variant_id
            else:
                store = emulator.v3_store(site)
                record = next(
                    r
                    for r in store.records()
                    if r.track is True and r.variant_id != "00000000-0000-0000-0000-000000000000"
                )
                product, variant = record.product_id, record.variant_id
            targets.append((site, instance, product, variant))
        before = [_quantity(emulator, s, p, v) for s, _, p, v in targets]
        worker = FleetWorker(
            redis_url,
            AppCredentials(emulator.app_id, emulator.app_secret),
            base_url=emulator.url,
            settings=WorkerSettings(prefix="app3", shards=2, rate_limit=RateLimit(1000, 1)),
        )
        running = asyncio.create_task(worker.run())
        producer = FleetProducer(redis_conn, prefix="app3", shards=2)
        for n, (_, instance, product, variant) in enumerate(targets):
            await producer.submit(instance, product, variant, n + 1, event_id=f"e{n}")
        for n, (_, instance, _, _) in enumerate(targets):
            outcome = await producer.outcome(instance, f"e{n}", wait=15)
            assert outcome is not None and outcome.status is S.APPLIED
        worker.stop()
        await running
        after = [_quantity(emulator, s, p, v) for s, _, p, v in targets]
        assert after == [q + n + 1 for n, q in enumerate(before)]
        assert emulator.stats()["tokens_issued"] == dict.fromkeys(emulator.instances, 1)
        assert worker.hub.stats().total.token_fetches == 2


def _quantity(emulator: Emulator, site: str, product: str, variant: str) -> int | None:
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
    return record.quantity  # type: ignore[return-value]
