"""kill -9 of a worker at each step, SIGSTOP past the lease, kill -9 and restart of Redis, a proxy
dropping the reply to a begin, each on three V1 sites and on a V1 and a V3 site side by side:
after each, nothing is sent twice and the accounts are exact (see accounts.exact_check)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from wixinv_async.fleet._redis_server import RedisServer
from wixinv_async.fleet.scripts import SCRIPTS
from wixinv_async.fleet.shards import EventStatus
from wixinv_async.fleet.worker import CRASH_POINTS

from .accounts import assert_sites_served, doubted_batches, exact_check
from .harness import open_fleet
from .proxy import ReplyDroppingProxy

pytestmark = pytest.mark.slow

# Before the request may leave, a dead worker's work is returned, not doubted.
NO_DOUBT = {"after_read", "after_fold", "after_begin"}


@pytest.mark.parametrize("step", CRASH_POINTS)
async def test_kill_9_at_each_step_then_takeover(
    redis_url: str, tmp_path: Path, catalogs: str, step: str
) -> None:
    """A worker killed at ``step`` of its first batch: a new one takes over; nothing sent twice,
    the accounts exact, in doubt only once a request may have left."""
    async with open_fleet(redis_url, tmp_path, catalogs=catalogs) as fleet:
        if step == "during_request":
            fleet.emulator.latency = 0.3  # the request is still at the emulator when it dies
        rng = random.Random(f"{catalogs}-{step}")
        victim = fleet.start_worker(crash_at=step)
        await fleet.wait_for_workers(1)
        await fleet.produce(rng, 60)
        assert await asyncio.to_thread(victim.wait, 60) == -signal.SIGKILL
        fleet.start_worker()
        await fleet.produce(rng, 60)
        fleet.emulator.latency = 0.02
        outcomes, records = await exact_check(fleet)
        doubted = doubted_batches(outcomes)
        if step in NO_DOUBT:
            assert not doubted
        else:  # one request in flight per shard: at most one batch per site
            assert 1 <= len(doubted) <= len(fleet.emulator.sites)
        if step == "after_mark_sent":  # marked, never sent: the emulator applied none of it
            assert fleet.journal() == records["APPLIED"]
        if step == "after_answer":  # answered 200, killed before finishing: applied, in doubt
            assert fleet.journal() - records["APPLIED"] != Counter()
        assert_sites_served(fleet, catalogs)


async def test_sigstop_past_the_lease_then_sigcont(
    redis_url: str, tmp_path: Path, catalogs: str
) -> None:
    """A worker frozen longer than its lease: the other takes its shards; resumed, it is fenced;
    the accounts are exact."""
    async with open_fleet(redis_url, tmp_path, catalogs=catalogs) as fleet:
        rng = random.Random(f"{catalogs}-sigstop")
        frozen = fleet.start_worker(worker_id="frozen")
        fleet.start_worker(worker_id="alive")
        await fleet.wait_for_workers(2)
        await fleet.produce(rng, 80)
        await fleet.first_outcome()
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            await fleet.until_leases("all", "alive")
            await fleet.produce(rng, 80)
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        await fleet.produce(rng, 80)
        await exact_check(fleet)
        assert frozen.poll() is None  # it carried on as a normal member
        assert_sites_served(fleet, catalogs)


async def test_kill_9_and_restart_of_redis_mid_run(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path, catalogs: str
) -> None:
    """Redis killed with -9 and restarted under appendfsync always while two workers deliver:
    workers and producer carry on, the accounts are exact."""
    server = redis_server_factory()
    async with open_fleet(server.url, tmp_path, catalogs=catalogs) as fleet:
        rng = random.Random(f"{catalogs}-redis")
        fleet.start_worker()
        fleet.start_worker()
        await fleet.wait_for_workers(2)
        await fleet.produce(rng, 100)
        await fleet.first_outcome()
        server.kill()
        server.restart()
        await fleet.produce(rng, 100)
        outcomes, _ = await exact_check(fleet)
        assert Counter(o.status for o in outcomes.values())[EventStatus.APPLIED] > 0
        assert_sites_served(fleet, catalogs)


async def test_reply_lost_right_after_a_begin_is_neither_orphaned_nor_duplicated(
    redis_server: RedisServer, redis_url: str, tmp_path: Path, catalogs: str
) -> None:
    """A proxy drops Redis's reply to the first begins: the retried begin (same batch id) returns
    the same batch, so every batch record is sent once, none in doubt, none left RESERVED."""
    async with (
        ReplyDroppingProxy(redis_server.port, SCRIPTS["begin"], drops=3) as proxy,
        open_fleet(redis_url, tmp_path, catalogs=catalogs) as fleet,
    ):
        fleet.url = proxy.url  # the workers talk through the proxy, the test directly
        fleet.start_worker()
        await fleet.wait_for_workers(1)
        await fleet.produce(random.Random(f"{catalogs}-begin"), 100)
        outcomes, records = await exact_check(fleet)
        assert proxy.dropped == 3
        assert not doubted_batches(outcomes)
        assert fleet.journal() == records["APPLIED"]
        assert_sites_served(fleet, catalogs)
