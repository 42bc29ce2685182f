"""Audit of issue 16 (docs/AUDIT-15-16.md): the proofs of the kill matrix, the SIGSTOP, the
Redis restart, the dropped begin reply and workers joining and leaving, run on a V1 and a V3
site side by side (the project's rule: both catalogs behind the same calls), and a site that
migrates V1 -> V3 while two workers deliver; each checked exactly, not within a bound:

- every event ends APPLIED, IN_DOUBT or NETTED, and per key the produced deltas equal the
  APPLIED plus the IN_DOUBT ones (NETTED groups sum to zero);
- per key, what the emulator applied equals the APPLIED deltas plus those of the in-doubt
  batches whose request the emulator's journal shows;
- and harness.settle_and_check's invariants (nothing sent twice, nothing left open, 0 x 429).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from wixinv_async.fleet._redis_server import RedisServer
from wixinv_async.fleet.producer import EventOutcome
from wixinv_async.fleet.scripts import SCRIPTS
from wixinv_async.fleet.shards import EventStatus
from wixinv_async.fleet.worker import CRASH_POINTS

from .harness import PRE_REFUSED, PREFIX, Content, Fleet, Key, open_fleet, settle_and_check
from .proxy import ReplyDroppingProxy

pytestmark = pytest.mark.slow

BOTH = "v1 v3"
NO_DOUBT = {"after_read", "after_fold", "after_begin"}
S = EventStatus


async def batch_content(fleet: Fleet, batch_id: str) -> Content:
    """What the request of ``batch_id`` carried (as harness.batch_records counts it)."""
    [name] = [n async for n in fleet.redis.scan_iter(match=f"{{{PREFIX}:*}}:batch:{batch_id}")]
    record = await fleet.redis.hgetall(name)
    entries = json.loads(record["entries"])
    results = json.loads(record.get("results") or "[]") or [["", ""]] * len(entries)
    return frozenset(
        (record["site"], key.replace("\n", "/"), net)
        for (key, net, _), (status, code) in zip(entries, results, strict=True)
        if code not in PRE_REFUSED and status != "RETURNED"
    )


async def exact_check(fleet: Fleet) -> dict[str, EventOutcome]:
    """settle_and_check, then the exact per-key accounts of the module doc."""
    outcomes, records = await settle_and_check(fleet)
    assert outcomes.keys() == fleet.produced.keys()
    statuses = Counter(o.status for o in outcomes.values())
    assert set(statuses) <= {S.APPLIED, S.IN_DOUBT, S.NETTED}, statuses
    produced: Counter[Key] = Counter()
    settled: Counter[Key] = Counter()
    applied: Counter[Key] = Counter()
    doubted: dict[str, Counter[Key]] = {}
    for event_id, outcome in outcomes.items():
        key, delta = fleet.produced[event_id]
        produced[key] += delta
        if outcome.status is S.NETTED:
            continue
        settled[key] += delta
        if outcome.status is S.APPLIED:
            applied[key] += delta
        else:
            doubted.setdefault(outcome.batch_id, Counter())[key] += delta
    assert {k: produced[k] for k in fleet.keys} == {k: settled[k] for k in fleet.keys}
    unexplained = fleet.journal() - records.get("APPLIED", Counter())
    reached = Counter(applied)
    for batch_id, deltas in doubted.items():
        content = await batch_content(fleet, batch_id)
        if unexplained[content] > 0:  # the emulator shows this in-doubt request: applied
            unexplained[content] -= 1
            reached.update(deltas)
    emulator = fleet.applied_by_emulator()
    assert {k: emulator[k] for k in fleet.keys} == {k: reached[k] for k in fleet.keys}
    return outcomes


def doubted_batches(outcomes: dict[str, EventOutcome]) -> set[str]:
    return {o.batch_id for o in outcomes.values() if o.status is S.IN_DOUBT}


@pytest.mark.parametrize("step", CRASH_POINTS)
async def test_audit_kill_9_at_each_step_on_v1_and_v3_sites(
    redis_url: str, tmp_path: Path, step: str
) -> None:
    """A worker killed at ``step`` while serving a V1 and a V3 site: a new one takes over;
    nothing sent twice, the accounts exact, in doubt only once a request may have left."""
    async with open_fleet(redis_url, tmp_path, catalogs=BOTH) as fleet:
        if step == "during_request":
            fleet.emulator.latency = 0.3
        rng = random.Random(f"audit-{step}")
        victim = fleet.start_worker(crash_at=step)
        await fleet.wait_for_workers(1)
        await fleet.produce(rng, 60)
        assert await asyncio.to_thread(victim.wait, 20) == -signal.SIGKILL
        fleet.start_worker()
        await fleet.produce(rng, 60)
        fleet.emulator.latency = 0.02
        outcomes = await exact_check(fleet)
        doubted = doubted_batches(outcomes)
        if step in NO_DOUBT:
            assert not doubted
        else:
            assert 1 <= len(doubted) <= len(fleet.emulator.sites)
        catalogs = {fleet.emulator.catalog_version(s) for s in fleet.emulator.sites}
        assert catalogs == {"V1_CATALOG", "V3_CATALOG"}
        assert {k[0] for k, _ in fleet.produced.values()} == set(fleet.emulator.sites)


async def test_audit_sigstop_past_the_lease_on_v1_and_v3_sites(
    redis_url: str, tmp_path: Path
) -> None:
    """A worker frozen past its lease over a V1 and a V3 site: the other takes its shards,
    the resumed one is fenced; the accounts are exact."""
    async with open_fleet(redis_url, tmp_path, catalogs=BOTH) as fleet:
        rng = random.Random(71)
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
        assert frozen.poll() is None


async def test_audit_kill_9_and_restart_of_redis_on_v1_and_v3_sites(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """Redis killed -9 and restarted under appendfsync always while two workers serve a V1
    and a V3 site: the accounts are exact."""
    server = redis_server_factory()
    async with open_fleet(server.url, tmp_path, catalogs=BOTH) as fleet:
        rng = random.Random(72)
        fleet.start_worker()
        fleet.start_worker()
        await fleet.wait_for_workers(2)
        await fleet.produce(rng, 100)
        await fleet.first_outcome()
        server.kill()
        server.restart()
        await fleet.produce(rng, 100)
        outcomes = await exact_check(fleet)
        assert Counter(o.status for o in outcomes.values())[S.APPLIED] > 0


async def test_audit_a_lost_begin_reply_on_v1_and_v3_sites(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    """Redis's replies to the first begins dropped while a V1 and a V3 site are served:
    each retried begin returns its batch, sent once, none in doubt, the accounts exact."""
    async with (
        ReplyDroppingProxy(redis_server.port, SCRIPTS["begin"], drops=3) as proxy,
        open_fleet(redis_url, tmp_path, catalogs=BOTH) as fleet,
    ):
        fleet.url = proxy.url
        fleet.start_worker()
        await fleet.wait_for_workers(1)
        await fleet.produce(random.Random(73), 100)
        outcomes = await exact_check(fleet)
        assert proxy.dropped == 3
        assert not doubted_batches(outcomes)


async def test_audit_workers_joining_and_leaving_on_v1_and_v3_sites(
    redis_url: str, tmp_path: Path
) -> None:
    """A second worker joins, then the first leaves, over a V1 and a V3 site: nothing in
    doubt, every delta APPLIED or NETTED, the accounts exact."""
    async with open_fleet(redis_url, tmp_path, catalogs=BOTH) as fleet:
        rng = random.Random(74)
        first = fleet.start_worker(worker_id="first")
        await fleet.wait_for_workers(1)
        await fleet.produce(rng, 80)
        await fleet.first_outcome()
        fleet.start_worker(worker_id="second")
        await fleet.produce(rng, 80)
        await fleet.until_leases("some", "second")
        first.send_signal(signal.SIGTERM)
        await fleet.produce(rng, 80)
        assert await asyncio.to_thread(first.wait, 20) == 0
        await fleet.until_leases("all", "second")
        outcomes = await exact_check(fleet)
        assert not doubted_batches(outcomes)


async def test_audit_a_site_migrating_mid_run_under_two_workers(
    redis_url: str, tmp_path: Path
) -> None:
    """Two workers serve a V1 site that migrates to V3 mid-run, beside a V3 site, and a
    producer retries an event across the move: nothing in doubt, the retry applied once,
    the accounts exact, the mover's later deltas sent by V3 bulk calls."""
    async with open_fleet(redis_url, tmp_path, catalogs=BOTH) as fleet:
        rng = random.Random(75)
        fleet.start_worker()
        fleet.start_worker()
        await fleet.wait_for_workers(2)
        await fleet.produce(rng, 80)
        await fleet.first_outcome()
        mover = fleet.emulator.sites[0]
        fleet.emulator.migrate_to_v3(mover)
        await fleet.produce(rng, 80)
        retried, (key, delta) = next(iter(fleet.produced.items()))
        await fleet.submit(key, delta, event_id=retried)
        outcomes = await exact_check(fleet)
        assert not doubted_batches(outcomes)
        answered = fleet.emulator.site_stats(mover)["requests"]
        assert any(name.startswith("bulk") for name in answered), answered
