"""A worker's loops outlive what fails under them: one shard's unreachable node, a shard loop
that fails, redis-py's own errors for a connection closed under a command; a reader that fails
on a bug stops the worker loudly instead of leaving it up and serving nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from wixinv_async import ApiKeyAuth, FleetUnavailable, RateLimit
from wixinv_async.emulator import Emulator
from wixinv_async.fleet._boundary import unavailable
from wixinv_async.fleet._redis_server import RedisServer
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.scripts import Claim
from wixinv_async.fleet.shards import EventStatus, KeySpace, shard_of
from wixinv_async.fleet.worker import FleetWorker, WorkerSettings

SHARDS = 4
LEASE_MS = 1500


def _worker(redis_url: str, emulator: Emulator, prefix: str) -> FleetWorker:
    settings = WorkerSettings(
        prefix=prefix,
        shards=SHARDS,
        rate_limit=RateLimit(1000, 1),
        lease_ms=LEASE_MS,
        http_timeout=0.5,
        margin=0.2,
    )
    return FleetWorker(
        redis_url, ApiKeyAuth(emulator.api_key), base_url=emulator.url, settings=settings
    )


def _site_past_shard_0(emulator: Emulator) -> str:
    """A site whose shard is not the first, so another shard's claim comes before its own."""
    return next(site for site in emulator.sites if shard_of(site, SHARDS) > 0)


async def _lease(redis_conn: aioredis.Redis, prefix: str, shard: int) -> str | None:
    value: Any = await redis_conn.get(KeySpace(prefix, SHARDS).key(shard, "lease"))
    return None if value is None else str(value)


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def _applied(producer: FleetProducer, emulator: Emulator, site: str, event: str) -> None:
    item = emulator.site(site).add_product(variants=1, quantity=10, track=True)
    variant = item.variants[0].variant_id
    await producer.submit(site, item.product_id, variant, 3, event_id=event)
    outcome = await producer.outcome(site, event, wait=20)
    assert outcome is not None and outcome.status is EventStatus.APPLIED
    assert emulator.site(site).quantity(item.product_id, variant) == 13


async def test_a_shard_whose_node_is_unreachable_costs_no_other_shard_its_lease(
    redis_url: str, redis_conn: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shard 0's claims fail as on a cluster whose node holding it is down: the other shards
    keep their leases (the same epoch, renewed past twice the lease) and deliver."""
    async with Emulator(products=0, extra_sites=7) as emulator:
        site = _site_past_shard_0(emulator)
        shard = shard_of(site, SHARDS)
        worker = _worker(redis_url, emulator, "down")
        claim_many = worker.scripts.claim_many

        async def claims_but_shard_0(
            numbers: Sequence[int], owner: str, ttl_ms: int
        ) -> list[Claim | Exception]:
            answers = iter(await claim_many([n for n in numbers if n != 0], owner, ttl_ms))
            down = RedisConnectionError("Error 111 connecting to the node of shard 0")
            return [down if n == 0 else next(answers) for n in numbers]

        monkeypatch.setattr(worker.scripts, "claim_many", claims_but_shard_0)
        running = asyncio.create_task(worker.run())
        await _until(
            lambda: _held(redis_conn, "down", shard, worker.worker_id), "the shard claimed"
        )
        first = await _lease(redis_conn, "down", shard)
        await asyncio.sleep(2 * LEASE_MS / 1000)
        assert await _lease(redis_conn, "down", shard) == first
        await _applied(FleetProducer(redis_conn, prefix="down", shards=SHARDS), emulator, site, "e")
        worker.stop()
        await running
        assert await _lease(redis_conn, "down", 0) is None


async def _held(redis_conn: aioredis.Redis, prefix: str, shard: int, owner: str) -> bool:
    lease = await _lease(redis_conn, prefix, shard)
    return lease is not None and lease.startswith(owner + "|")


async def test_a_shard_loop_that_fails_gives_the_shard_up_and_it_is_served_again(
    redis_url: str,
    redis_conn: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A shard's loop ending on an error releases the shard (the next claim is a takeover, a
    new epoch) and the next membership tick serves it with a new loop."""
    async with Emulator(products=0) as emulator:
        site = emulator.site_id
        shard = shard_of(site, SHARDS)
        worker = _worker(redis_url, emulator, "fails")
        run = worker.sender.run
        failures = []

        async def fails_once(owned: Any, stopping: asyncio.Event) -> None:
            if owned.number == shard and not failures:
                failures.append(owned.token)
                raise RuntimeError("a bug in the shard's loop")
            await run(owned, stopping)

        monkeypatch.setattr(worker.sender, "run", fails_once)
        running = asyncio.create_task(worker.run())
        with caplog.at_level(logging.ERROR, logger="wixinv_async.fleet"):
            await _until(lambda: _true(bool(failures)), "the loop failed")
            await _until(lambda: _not_token(redis_conn, "fails", shard, failures[0]), "a new epoch")
        producer = FleetProducer(redis_conn, prefix="fails", shards=SHARDS)
        await _applied(producer, emulator, site, "after")
        worker.stop()
        await running
        assert f"shard {shard}: its loop failed" in caplog.text


async def _true(value: bool) -> bool:
    return value


async def _not_token(redis_conn: aioredis.Redis, prefix: str, shard: int, token: str) -> bool:
    lease = await _lease(redis_conn, prefix, shard)
    return lease is not None and lease != token


async def test_a_reader_that_fails_on_a_bug_stops_the_worker_and_releases_its_leases(
    redis_url: str, redis_conn: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a worker that stays up without reading: run() raises the reader's error once the
    leases are released, so a supervisor sees it and the shards move at once."""
    async with Emulator(products=0) as emulator:
        worker = _worker(redis_url, emulator, "reader")

        async def read_ready(ready: object) -> None:
            raise RuntimeError("a bug in the reader")

        monkeypatch.setattr(worker, "_read_ready", read_ready)
        producer = FleetProducer(redis_conn, prefix="reader", shards=SHARDS)
        item = emulator.store.add_product(variants=1, quantity=10, track=True)
        variant = item.variants[0].variant_id
        await producer.submit(emulator.site_id, item.product_id, variant, 1, event_id="wake")
        with pytest.raises(RuntimeError, match="a bug in the reader"):
            await asyncio.wait_for(worker.run(), 30)
        for shard in range(SHARDS):
            assert await _lease(redis_conn, "reader", shard) is None
        assert await redis_conn.zrange(KeySpace("reader", SHARDS).workers, 0, -1) == []


async def test_redis_pys_error_for_a_connection_closed_under_a_command_is_unavailable() -> None:
    """redis-py 8.1 raises AttributeError from its connection code when a connection's writer
    is cleared under a command (redis/redis-py#3546, #4287): that is a lost connection, to be
    retried; the same error anywhere else is a bug, not retried."""
    with pytest.raises(AttributeError) as closed_under:
        await Connection()._send_packed_command([b"*1\r\n$4\r\nPING\r\n"])
    assert unavailable(closed_under.value)
    assert unavailable(RedisConnectionError("reset by peer"))
    with pytest.raises(AttributeError) as ours:
        _ = None.writelines  # type: ignore[attr-defined]
    assert not unavailable(ours.value)
    assert not unavailable(TypeError("'NoneType' object is not callable"))


async def test_a_stop_while_redis_is_down_ends_within_a_lease_and_says_so(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A graceful stop cannot settle or release anything with Redis gone, but it must end:
    its steps are retried for a lease at most (every write of ours is fenced by then, the
    leases run out on their own), then run() raises FleetUnavailable."""
    server = redis_server_factory()
    conn = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        async with Emulator(products=0) as emulator:
            worker = _worker(server.url, emulator, "gone")
            running = asyncio.create_task(worker.run())
            await _applied(
                FleetProducer(conn, prefix="gone", shards=SHARDS),
                emulator,
                emulator.site_id,
                "before",
            )
            server.kill()
            await asyncio.sleep(1.2)  # each sender's next look at Redis fails: it retries
            worker.stop()
            with pytest.raises(FleetUnavailable, match="worker stop"):
                await asyncio.wait_for(running, LEASE_MS / 1000 + 15)
    finally:
        await conn.aclose()
