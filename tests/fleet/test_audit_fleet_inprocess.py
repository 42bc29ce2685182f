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
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from wixinv_async import ApiKeyAuth, RateLimit
from wixinv_async.cli import EXIT_OK, build_parser
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
    lease, the pending keys and units by site, the owned shard's entries all read, and the
    other shard's entry unread, with no owner."""
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
                for site, count, delta in zip(pair, (3, 2), (2, -1), strict=True):
                    for variant in variants[:count]:
                        await producer.submit(site, "p1", variant, delta)
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
    assert shards[owned]["pending_units_by_site"] == {pair[0]: 6, pair[1]: 2}
    assert (shards[owned]["stream_entries"], shards[owned]["unread_entries"]) == (5, 0)
    assert (shards[other]["owner"], shards[other]["stream_entries"]) == (None, 1)
    assert (shards[other]["unread_entries"], shards[other]["unread_more"]) == (1, False)
    assert status["pending_keys"] == 5 and status["pending_units"] == 8
    assert status["unread_entries"] == 1 and status["in_doubt_batches"] == 0
