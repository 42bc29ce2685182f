"""The fleet end to end: real worker processes, a real redis-server, the emulator over HTTP (V1)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from wixinv_async.emulator import Emulator
from wixinv_async.fleet.producer import EventOutcome, FleetProducer
from wixinv_async.fleet.shards import EventStatus

pytestmark = pytest.mark.slow

PREFIX, SHARDS = "e2e", 8
Key = tuple[str, str, str]  # site, product, variant


@dataclass
class Fleet:
    """The emulator, the producer and the worker processes of one test."""

    emulator: Emulator
    producer: FleetProducer
    redis: aioredis.Redis
    url: str
    keys: list[Key]
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    produced: dict[str, tuple[Key, int]] = field(default_factory=dict)

    def start_worker(self) -> subprocess.Popen[bytes]:
        args = [
            *(sys.executable, "-m", "wixinv_async", "fleet", "worker", "--redis", self.url),
            *("--base-url", self.emulator.url, "--api-key", self.emulator.api_key),
            *("--prefix", PREFIX, "--shards", str(SHARDS), "--rate-limit", "5/1"),
            *("--safety", "0.1", "--lease-ms", "3000", "--http-timeout", "1", "--margin", "0.3"),
        ]
        log = (self.logs / f"worker{len(self.workers)}.log").open("wb")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        log.close()
        self.workers.append(process)
        return process

    async def wait_for_workers(self, count: int) -> None:
        """Until ``count`` workers heartbeat (their signal handlers are installed by then)."""
        for _ in range(400):
            if await self.redis.zcard(f"{PREFIX}:workers") >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"fewer than {count} workers started")

    async def submit(self, key: Key, delta: int, event_id: str = "") -> str:
        event_id = await self.producer.submit(*key, delta, event_id=event_id)
        self.produced[event_id] = (key, delta)
        return event_id

    async def outcomes(self) -> dict[str, EventOutcome]:
        found = {}
        for event_id, (key, _) in self.produced.items():
            outcome = await self.producer.outcome(key[0], event_id, wait=15)
            assert outcome is not None, f"no outcome for {event_id}"
            found[event_id] = outcome
        return found

    def applied_by_emulator(self) -> Counter[Key]:
        changes: Counter[Key] = Counter()
        for site in self.emulator.sites:
            for request in self.emulator.site(site).journal:
                for entry in request.entries:
                    amount = entry.get("incrementBy") or -entry.get("decrementBy", 0)
                    changes[site, entry["productId"], entry["variantId"]] += amount
        return changes

    def journal_batches(self) -> Counter[frozenset[tuple[str, str, int]]]:
        batches: Counter[frozenset[tuple[str, str, int]]] = Counter()
        for site in self.emulator.sites:
            for request in self.emulator.site(site).journal:
                batches[frozenset(_signed(site, e) for e in request.entries)] += 1
        return batches

    async def batch_records(self) -> dict[str, Counter[frozenset[tuple[str, str, int]]]]:
        import json

        by_state: dict[str, Counter[frozenset[tuple[str, str, int]]]] = {}
        async for name in self.redis.scan_iter(match=f"{{{PREFIX}:*}}:batch:*"):
            record = await self.redis.hgetall(name)
            content = frozenset(
                (record["site"], field.replace("\n", "/"), net)
                for field, net, _ in json.loads(record["entries"])
            )
            by_state.setdefault(record["state"], Counter())[content] += 1
        return by_state


def _signed(site: str, entry: dict[str, Any]) -> tuple[str, str, int]:
    amount = entry.get("incrementBy") or -entry.get("decrementBy", 0)
    return site, f"{entry['productId']}/{entry['variantId']}", amount


@pytest.fixture
async def fleet(redis_url: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    """An emulator with 3 sites under a strict 5-per-second window, and a producer."""
    async with Emulator(products=2, extra_sites=2, rate_limit="5/1", latency_ms=20) as emulator:
        keys: list[Key] = []
        for site in emulator.sites:
            store = emulator.site(site)
            for _ in range(2):
                item = store.add_product(variants=2, quantity=1000, track=True)
                keys += [(site, item.product_id, v.variant_id) for v in item.variants]
        conn = aioredis.Redis.from_url(redis_url, decode_responses=True)
        producer = FleetProducer(conn, prefix=PREFIX, shards=SHARDS)
        fleet = Fleet(emulator, producer, conn, redis_url, keys, tmp_path)
        try:
            yield fleet
        finally:
            for process in fleet.workers:
                if process.poll() is None:
                    process.kill()
                process.wait()
            await conn.aclose()


def check_conservation(fleet: Fleet, outcomes: dict[str, EventOutcome]) -> None:
    """Per key: what the emulator applied = APPLIED events + some of the in-doubt ones."""
    applied: Counter[Key] = Counter()
    doubt: Counter[Key] = Counter()
    for event_id, outcome in outcomes.items():
        key, delta = fleet.produced[event_id]
        if outcome.status is EventStatus.APPLIED:
            applied[key] += delta
        elif outcome.status is EventStatus.IN_DOUBT:
            doubt[key] += abs(delta)
    emulator = fleet.applied_by_emulator()
    for key in fleet.keys:
        assert abs(emulator[key] - applied[key]) <= doubt[key], key


async def produce(fleet: Fleet, rng: random.Random, count: int) -> None:
    for _ in range(count):
        await fleet.submit(rng.choice(fleet.keys), rng.choice([-2, -1, 1, 1, 2, 3]))


async def test_two_workers_deliver_everything_once_within_the_site_budget(fleet: Fleet) -> None:
    """Two worker processes: every event settles, nothing is in doubt, and 0 x 429 in the strict window."""
    rng = random.Random(1)
    fleet.start_worker()
    fleet.start_worker()
    await produce(fleet, rng, 300)
    retried = next(iter(fleet.produced))
    await fleet.submit(fleet.produced[retried][0], fleet.produced[retried][1], event_id=retried)
    outcomes = await fleet.outcomes()
    assert {o.status for o in outcomes.values()} <= {EventStatus.APPLIED, EventStatus.NETTED}
    check_conservation(fleet, outcomes)
    requests = fleet.emulator.stats()["requests"]
    assert all("429" not in counts for counts in requests.values()), requests
    records = await fleet.batch_records()
    assert fleet.journal_batches() == records["APPLIED"]


async def test_kill_9_of_a_worker_mid_run_sends_nothing_twice(fleet: Fleet) -> None:
    """kill -9 one of two workers while deltas flow: the survivor takes over; no batch is sent twice."""
    rng = random.Random(2)
    victim = fleet.start_worker()
    fleet.start_worker()
    await fleet.wait_for_workers(2)
    await produce(fleet, rng, 150)
    first = next(iter(fleet.produced))
    await fleet.producer.outcome(fleet.produced[first][0][0], first, wait=15)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    await produce(fleet, rng, 150)
    outcomes = await fleet.outcomes()
    check_conservation(fleet, outcomes)
    records = await fleet.batch_records()
    journal = fleet.journal_batches()
    sent = records.get("APPLIED", Counter()) + records.get("IN_DOUBT", Counter())
    assert journal - sent == Counter(), "a request the emulator applied matches no batch record"
    assert records.get("APPLIED", Counter()) - journal == Counter()
    assert "SENDING" not in records and "RESERVED" not in records
    requests = fleet.emulator.stats()["requests"]
    assert all("429" not in counts for counts in requests.values()), requests


async def test_graceful_stop_hands_over_with_nothing_in_doubt(fleet: Fleet) -> None:
    """SIGTERM one of two workers mid-run: it finishes in flight and releases; no event is in doubt."""
    rng = random.Random(3)
    leaving = fleet.start_worker()
    fleet.start_worker()
    await fleet.wait_for_workers(2)
    await produce(fleet, rng, 100)
    first = next(iter(fleet.produced))
    await fleet.producer.outcome(fleet.produced[first][0][0], first, wait=15)
    leaving.send_signal(signal.SIGTERM)
    await produce(fleet, rng, 100)
    try:
        assert await asyncio.to_thread(leaving.wait, 20) == 0
    except subprocess.TimeoutExpired:
        leaving.send_signal(signal.SIGUSR2)
        await asyncio.sleep(0.5)
        raise AssertionError((fleet.logs / "worker0.log").read_text()) from None
    outcomes = await fleet.outcomes()
    assert EventStatus.IN_DOUBT not in {o.status for o in outcomes.values()}
    check_conservation(fleet, outcomes)
