"""The fleet end to end: real worker processes, a real redis-server, the emulator over HTTP
(V1; workers joining and leaving on V1 and on V1 beside V3)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from wixinv_async.fleet.shards import EventStatus

from .accounts import assert_sites_served, doubted_batches, exact_check
from .harness import Fleet, open_fleet, settle_and_check

pytestmark = pytest.mark.slow


async def test_two_workers_deliver_everything_once_within_the_site_budget(fleet: Fleet) -> None:
    """Two worker processes: every event settles once, none in doubt, 0 x 429 in the strict window."""
    fleet.start_worker()
    fleet.start_worker()
    await fleet.produce(random.Random(1), 300)
    retried, (key, delta) = next(iter(fleet.produced.items()))
    await fleet.submit(key, delta, event_id=retried)  # a producer retry: the same event id
    outcomes, records = await settle_and_check(fleet)
    assert {o.status for o in outcomes.values()} <= {EventStatus.APPLIED, EventStatus.NETTED}
    assert fleet.journal() == records["APPLIED"]


async def test_kill_9_of_a_worker_mid_run_sends_nothing_twice(fleet: Fleet) -> None:
    """kill -9 one of two workers while deltas flow: the survivor takes over; nothing sent twice."""
    rng = random.Random(2)
    victim = fleet.start_worker()
    fleet.start_worker()
    await fleet.wait_for_workers(2)
    await fleet.produce(rng, 150)
    await fleet.first_outcome()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    await fleet.produce(rng, 150)
    # settle_and_check also asserts, per key, emulator = APPLIED + at most the IN_DOUBT deltas,
    # every applied request matches one batch record (nothing sent twice), nothing left
    # SENDING, 0 x 429.
    outcomes, records = await settle_and_check(fleet)
    assert outcomes.keys() == fleet.produced.keys()  # every event settled, none lost
    assert fleet.journal() - sum(records.values(), Counter()) == Counter()


async def test_graceful_stop_hands_over_with_nothing_in_doubt(fleet: Fleet) -> None:
    """SIGTERM one of two workers mid-run: it finishes in flight and releases; nothing in doubt."""
    rng = random.Random(3)
    leaving = fleet.start_worker()
    fleet.start_worker()
    await fleet.wait_for_workers(2)
    await fleet.produce(rng, 100)
    await fleet.first_outcome()
    leaving.send_signal(signal.SIGTERM)
    await fleet.produce(rng, 100)
    try:
        assert await asyncio.to_thread(leaving.wait, 20) == 0
    except subprocess.TimeoutExpired:
        leaving.send_signal(signal.SIGUSR2)  # the worker prints its tasks' stacks
        await asyncio.sleep(0.5)
        raise AssertionError(fleet.log_tail()) from None
    outcomes, _ = await settle_and_check(fleet)
    assert EventStatus.IN_DOUBT not in {o.status for o in outcomes.values()}


async def test_workers_joining_and_leaving_mid_run_lose_nothing(
    redis_url: str, tmp_path: Path, catalogs: str
) -> None:
    """One worker, then a second joins (shards hand over), then the first leaves: nothing in
    doubt, every delta APPLIED or NETTED, the accounts exact."""
    async with open_fleet(redis_url, tmp_path, catalogs=catalogs) as fleet:
        rng = random.Random(f"{catalogs}-join")
        first = fleet.start_worker(worker_id="first")
        await fleet.wait_for_workers(1)
        await fleet.produce(rng, 80)
        await fleet.first_outcome()
        fleet.start_worker(worker_id="second")
        await fleet.produce(rng, 80)
        await fleet.until_leases("some", "second")
        assert "first" in await fleet.lease_owners()  # both own shards now
        first.send_signal(signal.SIGTERM)
        await fleet.produce(rng, 80)
        assert await asyncio.to_thread(first.wait, 60) == 0
        await fleet.until_leases("all", "second")
        outcomes, _ = await exact_check(fleet)
        assert not doubted_batches(outcomes)
        assert_sites_served(fleet, catalogs)
