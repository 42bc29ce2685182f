"""What users of the fleet see when Redis restarts or is gone: the safe steps try once more
on a fresh connection, and what still fails is our FleetUnavailable (picklable, naming the
step and the server, never the password), not redis-py's exceptions. A real redis-server."""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from wixinv_async import ApiKeyAuth, Applied, FleetError, FleetUnavailable
from wixinv_async.fleet._redis_server import RedisServer
from wixinv_async.fleet.admin import FleetAdmin
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.shards import EventStatus, KeySpace, shard_of
from wixinv_async.fleet.worker import FleetWorker, WorkerSettings

from .harness import PREFIX, SHARDS, open_fleet, settle_and_check
from .helpers import VARIANTS

SECRET = "hunter2-not-in-messages"


async def test_outcome_and_submit_carry_on_after_a_redis_restart(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """After kill -9 and restart of Redis the producer's pooled connection is dead: the first
    outcome() and the first submit() each succeed anyway (one more try, fresh connection)."""
    server = redis_server_factory()
    async with FleetProducer(server.url, prefix="rb", shards=4) as producer:
        event = await producer.submit("site-1", "p1", VARIANTS[1], 2)
        server.kill()
        server.restart()
        assert await producer.outcome("site-1", event, wait=0.1) is None  # no worker: none yet
        server.kill()
        server.restart()
        assert await producer.submit("site-1", "p1", VARIANTS[1], 3, event_id="e2") == "e2"
        stream = KeySpace("rb", 4).key(shard_of("site-1", 4), "in")
        entries = await producer.redis.xrange(stream)
    assert [fields["e"] for _, fields in entries] == [event, "e2"]  # both on disk, once each


async def test_a_gone_redis_raises_fleet_unavailable_naming_the_step_not_the_password(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Redis down for good: submit raises FleetUnavailable (a ConnectionError too), applied
    MAYBE, naming the step and host:port/db; no message or pickle carries the password."""
    server = redis_server_factory()
    url = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    server.stop()
    producer = FleetProducer(url, prefix="rb", shards=4)
    try:
        with pytest.raises(FleetUnavailable) as caught:
            await producer.submit("site-1", "p1", VARIANTS[1], 2, event_id="e1")
    finally:
        await producer.aclose()
    error = caught.value
    assert isinstance(error, ConnectionError) and isinstance(error, FleetError)
    assert (error.operation, error.server) == ("config check", f"127.0.0.1:{server.port}/0")
    assert error.applied is Applied.NO  # nothing was written: the config check failed first
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(again) is FleetUnavailable and vars(again) == vars(error)
    for shown in (str(error), repr(error), pickle.dumps(error).decode("latin-1")):
        assert SECRET not in shown


async def test_a_submit_whose_xadd_fails_says_it_may_have_landed(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Redis gone after the config check: the XADD's FleetUnavailable says applied MAYBE
    (submit again with the same event id: it applies once)."""
    server = redis_server_factory()
    async with FleetProducer(server.url, prefix="rb", shards=4) as producer:
        server.stop()
        with pytest.raises(FleetUnavailable) as caught:
            await producer.submit("site-1", "p1", VARIANTS[1], 2, event_id="e1")
        with pytest.raises(FleetUnavailable) as read:
            await producer.outcome("site-1", "e1", wait=0.1)
    assert (caught.value.operation, caught.value.applied) == ("submit", Applied.MAYBE)
    assert (read.value.operation, read.value.applied) == ("outcome", Applied.NO)


async def test_admin_and_worker_raise_fleet_unavailable_when_redis_is_gone(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """FleetAdmin's reads and FleetWorker.run() with no Redis raise our error, by step."""
    server = redis_server_factory()
    server.stop()
    async with FleetAdmin(server.url, prefix="rb", shards=4) as admin:
        with pytest.raises(FleetUnavailable, match="fleet in_doubt on Redis"):
            await admin.in_doubt()
    worker = FleetWorker(server.url, ApiKeyAuth("k"), settings=WorkerSettings(shards=4))
    with pytest.raises(FleetUnavailable, match=r"fleet worker start on Redis 127\.0\.0\.1"):
        await worker.run()


async def test_a_submit_retried_over_a_redis_restart_applies_once(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """The same event submitted before and after a restart is two stream entries; the
    worker's fold drops the second: one APPLIED outcome, the emulator moved by it once."""
    server = redis_server_factory()
    async with open_fleet(server.url, tmp_path) as fleet:
        key = fleet.keys[0]
        site, product, variant, _ = key
        fleet.produced["twice"] = (key, 3)
        await fleet.producer.submit(site, product, variant, 3, event_id="twice")
        server.kill()
        server.restart()
        await fleet.producer.submit(site, product, variant, 3, event_id="twice")
        await fleet.produce(random.Random(11), 20)
        stream = KeySpace(PREFIX, SHARDS).key(shard_of(site, SHARDS), "in")
        entries = await fleet.redis.xrange(stream)
        events = [f["e"] if "e" in f else f["m"].split("\x1e")[1] for _, f in entries]
        assert events.count("twice") == 2
        fleet.start_worker()
        outcomes, _ = await settle_and_check(fleet)
    assert outcomes["twice"].status is EventStatus.APPLIED
    applied = sum(
        delta
        for event, (k, delta) in fleet.produced.items()
        if k == key and outcomes[event].status is EventStatus.APPLIED
    )
    assert fleet.applied_by_emulator()[key] == applied  # "twice" counted once
