"""The end-to-end harness of the fleet tests: the emulator in this process (V1 sites, or V1 and
V3 sites side by side, over HTTP), a FleetProducer, and worker processes started with
``python -m wixinv_async fleet worker``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from wixinv_async.emulator import Emulator, SiteSpec
from wixinv_async.fleet.admin import FleetAdmin
from wixinv_async.fleet.producer import EventOutcome, FleetProducer
from wixinv_async.fleet.shards import EventStatus

PREFIX, SHARDS = "e2e", 8
# Bounds of the waits on an observable condition: generous, so a loaded machine (worker
# processes starting slowly, a restarted Redis loading its append-only file) only waits longer.
START_S, CONDITION_S, REDIS_BACK_S = 60.0, 60.0, 60.0
# A short lease so a dead worker's shards move in about two seconds.
WORKER_FLAGS = ("--rate-limit", "5/1", "--safety", "0.1", "--lease-ms", "1500")
WORKER_FLAGS += ("--http-timeout", "0.5", "--margin", "0.25")
Key = tuple[str, str, str, str]  # site, product, variant, location ("" for none named)
Content = frozenset[tuple[str, str, int]]  # (site, "product/variant[/location]", signed amount)
# Codes of entries refused before any request (wixinv_async.fleet.verdicts.refusals).
PRE_REFUSED = {
    "AMOUNT_ABOVE_99999",
    "LOCATION_NEEDS_V3",
    "DEFAULT_VARIANT_NEEDS_V3_ID",
    "STORES_NOT_INSTALLED",
}


SENT_STATES = ("APPLIED", "IN_DOUBT", "SETTLED", "REJECTED")
"""States of a batch whose request may have reached a store (a V3 request is journaled even
when every entry was refused)."""


@dataclass
class Fleet:
    """The emulator, the producer and the worker processes of one test."""

    emulator: Emulator
    producer: FleetProducer
    packed: FleetProducer
    """A producer writing packed ingest entries: submit alternates between the two, as
    producers of adjacent versions do while a fleet upgrades."""
    redis: aioredis.Redis
    url: str
    keys: list[Key]
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    produced: dict[str, tuple[Key, int]] = field(default_factory=dict)

    def start_worker(self, *, worker_id: str = "", crash_at: str = "") -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "wixinv_async", "fleet", "worker", "--redis", self.url]
        args += ["--base-url", self.emulator.url]  # the key in the environment, as a user would
        args += ["--prefix", PREFIX, "--shards", str(SHARDS), *WORKER_FLAGS]
        if worker_id:
            args += ["--worker-id", worker_id]
        env = {
            **os.environ,
            "WIXINV_FLEET_CRASH_AT": crash_at,
            "WIX_API_KEY": self.emulator.api_key,
        }
        log = (self.logs / f"worker{len(self.workers)}.log").open("wb")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)  # noqa: S603
        log.close()
        self.workers.append(process)
        return process

    async def wait_for_workers(self, count: int) -> None:
        """Until ``count`` workers heartbeat (their signal handlers are installed by then)."""
        deadline = asyncio.get_running_loop().time() + START_S
        while asyncio.get_running_loop().time() < deadline:
            if await self.redis.zcard(f"{PREFIX}:workers") >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"fewer than {count} workers started: {self.log_tail()}")

    async def lease_owners(self) -> list[str]:
        leases = [await self.redis.get(f"{{{PREFIX}:{n}}}:lease") for n in range(SHARDS)]
        return [lease.split("|")[0] if lease else "" for lease in leases]

    async def until_leases(self, wanted: str, worker_id: str) -> None:
        """Until ``worker_id`` holds "some" or "all" of the shards' leases."""
        test = any if wanted == "some" else all
        deadline = asyncio.get_running_loop().time() + CONDITION_S
        owners: list[str] = []
        while asyncio.get_running_loop().time() < deadline:
            owners = await self.lease_owners()
            if test(owner == worker_id for owner in owners):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{worker_id} never held {wanted} leases: {owners}")

    async def submit(self, key: Key, delta: int, event_id: str = "") -> str:
        """Submit, retrying with the same event id while Redis is unreachable."""
        event_id = event_id or random.randbytes(8).hex()
        producer = self.packed if len(self.produced) % 2 else self.producer
        self.produced[event_id] = (key, delta)
        deadline = asyncio.get_running_loop().time() + REDIS_BACK_S
        while asyncio.get_running_loop().time() < deadline:
            try:
                site, product, variant, location = key
                return await producer.submit(
                    site, product, variant, delta, event_id=event_id, location_id=location or None
                )
            except (RedisConnectionError, OSError):
                await asyncio.sleep(0.05)
        raise AssertionError("redis did not come back")

    async def produce(self, rng: random.Random, count: int) -> None:
        for _ in range(count):
            await self.submit(rng.choice(self.keys), rng.choice([-2, -1, 1, 1, 2, 3]))

    async def first_outcome(self) -> None:
        """Until some event has an outcome (a worker is delivering)."""
        event_id, (key, _) = next(iter(self.produced.items()))
        outcome = await self.producer.outcome(key[0], event_id, wait=CONDITION_S)
        assert outcome is not None, f"no outcome yet: {self.log_tail()}"

    async def outcomes(self) -> dict[str, EventOutcome]:
        found = {}
        for event_id, (key, _) in self.produced.items():
            outcome = await self.producer.outcome(key[0], event_id, wait=45)
            assert outcome is not None, f"no outcome for {event_id}: {self.log_tail()}"
            found[event_id] = outcome
        return found

    def log_tail(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.logs.glob("worker*.log")))

    def journal(self) -> Counter[Content]:
        """The requests that reached the emulator's stores, by content: V1's applied (atomic)
        requests, and every V3 bulk request (its entries applied or not)."""
        batches: Counter[Content] = Counter()
        for site in self.emulator.sites:
            for request in self._requests(site):
                content = frozenset(self._signed(site, e) for e in request.entries)
                batches[content] += 1
        return batches

    def _requests(self, site: str) -> list[Any]:
        """The site's increment and decrement requests, V1 then (once it runs V3) V3."""
        return [
            r
            for r in self.emulator.journal(site)
            if r.endpoint.endswith("crementInventory") or r.endpoint.startswith("bulk")
        ]

    def applied_by_emulator(self) -> Counter[Key]:
        """What the emulator applied, per key (V3: entries that succeeded)."""
        changes: Counter[Key] = Counter()
        for site in self.emulator.sites:
            for request in self._requests(site):
                for entry in request.entries:
                    _, key, amount = self._signed(site, entry)
                    if entry.get("success", True):
                        product, variant, location = [*key.split("/"), ""][:3]
                        changes[site, product, variant, location] += amount
        return changes

    def _signed(self, site: str, entry: dict[str, Any]) -> tuple[str, str, int]:
        amount = entry.get("incrementBy") or -entry.get("decrementBy", 0)
        if "locationId" not in entry:  # V1
            return site, f"{entry['productId']}/{entry['variantId']}", amount
        store = self.emulator.v3_store(site)
        location = "" if entry["locationId"] == store.default_location else entry["locationId"]
        name = f"{entry['productId']}/{entry['variantId']}" + (f"/{location}" if location else "")
        return site, name, amount

    async def batch_records(self) -> dict[str, Counter[Content]]:
        """Each batch record's content (the entries its request carried: not those refused
        before any request, nor those returned unsent), by state."""
        by_state: dict[str, Counter[Content]] = {}
        async for name in self.redis.scan_iter(match=f"{{{PREFIX}:*}}:batch:*"):
            record = await self.redis.hgetall(name)
            entries = json.loads(record["entries"])
            results = json.loads(record.get("results") or "[]") or [["", ""]] * len(entries)
            content = frozenset(
                (record["site"], key.replace("\n", "/"), net)
                for (key, net, _), (status, code) in zip(entries, results, strict=True)
                if code not in PRE_REFUSED and status != "RETURNED"
            )
            if content:
                by_state.setdefault(record["state"], Counter())[content] += 1
        return by_state

    def rate_limited(self) -> int:
        requests = self.emulator.stats()["requests"]
        return sum(counts.get("429", 0) for counts in requests.values())


def _site_keys(emulator: Emulator, site: str) -> list[Key]:
    """Four tracked variants of a V1 site; on a V3 site every tracked item of the seeded
    catalog (stocked 5,000), the default location's named by no location."""
    if emulator.catalog_version(site) == "V1_CATALOG":
        keys: list[Key] = []
        for _ in range(2):
            item = emulator.site(site).add_product(variants=2, quantity=1000, track=True)
            keys += [(site, item.product_id, v.variant_id, "") for v in item.variants]
        return keys
    store = emulator.v3_store(site)
    keys = []
    for item in store.records():
        if item.track and item.variant_id != "00000000-0000-0000-0000-000000000000":
            emulator.edit_quantity(item.id, quantity=5000, site_id=site)
            location = "" if item.location_id == store.default_location else item.location_id
            keys.append((site, item.product_id, item.variant_id, location))
    return keys


@contextlib.asynccontextmanager
async def open_fleet(url: str, logs: Path, *, catalogs: str = "v1 v1 v1") -> AsyncIterator[Fleet]:
    """An emulator with a site per word of ``catalogs`` (``v1`` or ``v3``) under a strict
    5-per-second window, and a producer on ``url``."""
    specs = [
        SiteSpec(catalog=c, products=2, variants_per_product=2, locations=2)
        for c in catalogs.split()
    ]
    async with Emulator(sites=specs, rate_limit="5/1", latency_ms=20) as emulator:
        keys = [key for site in emulator.sites for key in _site_keys(emulator, site)]
        conn = aioredis.Redis.from_url(url, decode_responses=True)
        admin = FleetAdmin(conn, prefix=PREFIX, shards=SHARDS)
        await admin.pack_ingest(False)
        producer = FleetProducer(conn, prefix=PREFIX, shards=SHARDS)
        await producer.__aenter__()  # reads the fleet's ingest format now (not owning conn)
        await admin.pack_ingest()
        packed = FleetProducer(conn, prefix=PREFIX, shards=SHARDS)
        fleet = Fleet(emulator, producer, packed, conn, url, keys, logs)
        try:
            yield fleet
        finally:
            for process in fleet.workers:
                if process.poll() is None:
                    process.kill()
                process.wait()
            await conn.aclose()


async def settle_and_check(
    fleet: Fleet,
) -> tuple[dict[str, EventOutcome], dict[str, Counter[Content]]]:
    """Wait for every outcome, then check the invariants every scenario must keep:
    per key, emulator = APPLIED + some IN_DOUBT; every applied request is one APPLIED or IN_DOUBT
    batch record (nothing sent twice); every APPLIED record was applied; nothing left open;
    0 x 429 under the emulator's strict window."""
    outcomes = await fleet.outcomes()
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
    records = await fleet.batch_records()
    journal = fleet.journal()
    sent = sum((records.get(s, Counter()) for s in SENT_STATES), Counter())
    assert journal - sent == Counter(), "an applied request matches no batch record"
    assert records.get("APPLIED", Counter()) - journal == Counter(), (
        "an APPLIED batch never arrived"
    )
    assert "SENDING" not in records and "RESERVED" not in records
    assert fleet.rate_limited() == 0, fleet.emulator.stats()["requests"]
    return outcomes, records
