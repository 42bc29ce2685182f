"""Benchmark: what an idle fleet costs on a Redis Cluster, and how fast it wakes.

A local Redis Cluster (``--nodes``, appendfsync always), ``--workers`` worker processes
started with ``--cluster`` and ``--shards`` shards each (two sizes by default, side by side),
the emulator in a child process. Once every shard is leased, for ``--seconds`` nothing is
queued: the CPU each party spends per second of that idle time (the workers together, the
Redis nodes together, ``/proc/<pid>/stat``) and the commands the nodes served per second
(``INFO commandstats``). Then the wake-up: ``--wakes`` single deltas, each queued after
``--gap`` idle seconds (long enough for any idle back-off to reach its longest pause) on a
random site, timed from the XADD's reply until the owner's read cursor is past it (the delta
folded: what a wake-up read is for). Prints one JSON line per size and measure.

    .venv/bin/python benchmarks/bench_fleet_idle.py [--shards 64 --shards 1024] [--workers 2]
        [--nodes 3] [--seconds 5] [--wakes 20] [--gap 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from benchmarks.bench_fleet import _cpu_seconds, _server_main  # noqa: E402
from wixinv_async.fleet._connect import FleetRedis, connect  # noqa: E402
from wixinv_async.fleet._redis_cluster import LocalRedisCluster  # noqa: E402
from wixinv_async.fleet.shards import KeySpace, ingest_fields, shard_of  # noqa: E402


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _start_workers(
    url: str, emu: dict[str, Any], prefix: str, shards: int, count: int
) -> list[subprocess.Popen[bytes]]:
    workers = []
    for _ in range(count):
        args = [sys.executable, "-m", "wixinv_async", "fleet", "worker", "--cluster"]
        args += ["--redis", url, "--base-url", emu["url"]]  # the key in WIX_API_KEY, not argv
        args += ["--prefix", prefix, "--shards", str(shards), "--rate-limit", "1000/1"]
        args += ["--lease-ms", "6000", "--http-timeout", "1", "--margin", "0.5"]
        env = {**os.environ, "WIX_API_KEY": emu["api_key"]}
        workers.append(
            subprocess.Popen(  # noqa: S603
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
            )
        )
    return workers


async def _leased(conn: FleetRedis, keys: KeySpace, workers: int) -> None:
    """Until every shard is leased, by ``workers`` distinct workers."""
    for _ in range(1200):
        async with conn.pipeline(transaction=False) as pipe:
            for number in range(keys.shards):
                pipe.get(keys.key(number, "lease"))
            leases = await pipe.execute()
        owners = {lease.split("|")[0] for lease in leases if lease}
        if all(leases) and len(owners) == workers:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the shards never settled on the workers")


async def _commands(ports: list[int]) -> Counter[str]:
    """Calls so far by command, summed over the nodes (a script's commands apart, by name)."""
    total: Counter[str] = Counter()
    for port in ports:
        async with aioredis.Redis(port=port, decode_responses=True) as node:
            info: dict[str, Any] = await node.info("commandstats")
        for name, v in info.items():
            total[name.removeprefix("cmdstat_")] += int(v["calls"])
    return total


async def _idle(
    ports: list[int], redis_pids: list[int], workers: list[subprocess.Popen[bytes]], seconds: float
) -> dict[str, Any]:
    def cpu() -> tuple[float, float]:
        return (
            sum(_cpu_seconds(w.pid) for w in workers),
            sum(_cpu_seconds(pid) for pid in redis_pids),
        )

    await asyncio.sleep(1.0)  # the claims' and first reads' work is over
    calls = await _commands(ports)
    (w0, r0), start = cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    (w1, r1), wall = cpu(), time.monotonic() - start
    calls = await _commands(ports) - calls
    return {
        "worker_cores": round((w1 - w0) / wall, 3),
        "redis_cores": round((r1 - r0) / wall, 3),
        "commands_per_s": {name: round(n / wall) for name, n in calls.most_common(6)},
    }


async def _wakes(
    conn: FleetRedis, keys: KeySpace, emu: dict[str, Any], wakes: int, gap: float
) -> list[float]:
    rng = random.Random(7)
    found = []
    for _ in range(wakes):
        await asyncio.sleep(gap)
        site, product, variant = rng.choice(emu["keys"])
        shard = shard_of(site, keys.shards)
        fields = ingest_fields(site, product, variant, 1, rng.randbytes(8).hex(), packed=True)
        entry = await conn.xadd(keys.key(shard, "in"), fields)  # type: ignore[arg-type]
        start = time.monotonic()
        while await conn.get(keys.key(shard, "rd")) != entry:
            if time.monotonic() - start > 10:
                raise RuntimeError("a queued delta was not folded within 10 s")
            await asyncio.sleep(0.001)
        found.append((time.monotonic() - start) * 1000)
    return found


async def measure(
    cluster: LocalRedisCluster, emu: dict[str, Any], shards: int, args: argparse.Namespace
) -> None:
    prefix = f"idle{shards}"
    keys = KeySpace(prefix, shards)
    conn = connect(cluster.url, cluster=True)
    workers = _start_workers(cluster.url, emu, prefix, shards, args.workers)
    redis_pids = [pid for pid in cluster.pids if pid is not None]
    try:
        await _leased(conn, keys, args.workers)
        idle = await _idle(cluster.ports, redis_pids, workers, args.seconds)
        wake_ms = sorted(await _wakes(conn, keys, emu, args.wakes, args.gap))
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait()
        await conn.aclose()
    emit(
        benchmark="bench_fleet_idle",
        name="idle",
        nodes=len(cluster.ports),
        workers=args.workers,
        shards=shards,
        seconds=args.seconds,
        **idle,
    )
    emit(
        benchmark="bench_fleet_idle",
        name="wake",
        shards=shards,
        wakes=args.wakes,
        gap_s=args.gap,
        p50_ms=round(statistics.median(wake_ms), 1),
        max_ms=round(wake_ms[-1], 1),
    )


async def main_async(args: argparse.Namespace) -> None:
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    stop = ctx.Event()
    server = ctx.Process(target=_server_main, args=(sender, stop, 20))
    server.start()
    emu = receiver.recv()
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            LocalRedisCluster(Path(tmp), nodes=args.nodes) as cluster,
        ):
            for shards in args.shards or [64, 1024]:
                await measure(cluster, emu, shards, args)
    finally:
        stop.set()
        server.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, action="append", help="shards (repeatable)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="idle time measured")
    parser.add_argument("--wakes", type=int, default=20)
    parser.add_argument("--gap", type=float, default=1.0, help="idle seconds before each wake")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
