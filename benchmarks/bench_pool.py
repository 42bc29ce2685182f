"""Benchmark: does the hub's shared connection pool bound many busy sites at Wix latency?

A site at its budget (200 requests a minute) keeps ``200 / 60 * latency`` requests on the
wire, so ``--sites`` busy sites need about ``sites * 200 / 60 * latency`` connections at
once. This runs the same load through hubs that differ only in ``connections`` (and
``connections_per_host``, the same: Wix is one host), side by side in one run, each on its
own sites (a site's rolling window at the emulator is not shared between two runs):

- ``default``: the hub's defaults;
- ``large``: a pool far above the need (``--large``), the reference: what the sites do when
  the pool cannot be the bound;
- ``small``: a pool at about half the need (or ``--small``), the control: it shows the run
  can see a pool that binds (achieved falls to about ``small / need``, and sockets peak at
  the bound).

The emulator runs in another process, every inventory call delayed ``--latency-ms`` give or
take a uniform ``--jitter-ms`` (the emulator's ``FaultRule`` latency), a strict ``200/60``
window per site. Each site is fed ``--rate`` decrements a second, more than a paced batch
needs, so each is always at its budget. Per run: achieved requests / aggregate budget (the
client paces at 0.98 of it), the connections needed (``sites * 200 / 60 * mean latency``),
the most requests in flight (summed over sites, sampled), the most sockets open (the
process's socket descriptors, sampled), 429s, client CPU, loop lag p99. ``default_over_large``
is the ratio of the two achieved figures: 1.0 means the defaults do not bound the sites.
Sockets about as many as requests in flight: no request waited for a connection; sockets
pinned at the pool's bound with more requests in flight: they did. A loop lag p99 of a second
or more means the client's CPU was the bound in that run (compare only runs that kept up).

``--dilate K`` runs the same queue K times slower: each site's budget ``200 / (60 K)`` a
second, latency and jitter times K, feed rate over K, warm-up and window times K. Requests in
flight (``rate * latency``) and so the connections needed are unchanged, at 1/K of the CPU:
what lets this 2-core machine carry 300 sites and more (a run at ``--dilate 1`` shows where
the client's CPU, not the pool, is the bound). ``seconds`` is reported as given (the window
before dilation); ``loop_lag_p99`` is in real seconds.

    .venv/bin/python benchmarks/bench_pool.py [--sites 300] [--latency-ms 300] [--jitter-ms 150]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._cpus import CLIENT_CPU, SERVER_CPU, pin  # noqa: E402
from wixinv_async import AppCredentials, InventoryHub, RateLimit  # noqa: E402

SERVER = """
import asyncio, json, sys
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule, SiteSpec

async def main():
    args = json.loads(sys.argv[1])
    slow = FaultPlan({"*": FaultRule(latency_ms=args["latency_ms"], jitter_ms=args["jitter_ms"])},
                     seed=1)
    specs = [SiteSpec(seed=1) for _ in range(args["sites"])]  # one catalog's ids on every site
    async with Emulator(sites=specs, products=args["products"], variants_per_product=3,
                        rate_limit=f"200/{60 * args['dilate']}", seed=1, faults=slow) as emu:
        emu.make_sites()
        keys = [(i.product_id, v.variant_id) for i in emu.store.items()
                if i.track_quantity is True for v in i.variants]
        print(json.dumps({"url": emu.url, "app_id": emu.app_id, "app_secret": emu.app_secret,
                          "instances": emu.instances, "keys": keys}), flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""

BUDGET = 200 / 60


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


@contextmanager
def emulator(sites: int, args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The slow many-site emulator in a child process pinned to the server CPU."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    dilate = args.dilate
    settings = {
        "sites": sites,
        "products": 200,
        "latency_ms": args.latency_ms * dilate,
        "jitter_ms": args.jitter_ms * dilate,
        "dilate": dilate,
    }
    process = subprocess.Popen(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, "-c", SERVER, json.dumps(settings)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    pin(SERVER_CPU, process.pid)
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=30)


def sockets_open() -> int:
    """This process's open socket descriptors (each pooled connection is one)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


class Sampler:
    """Every 50 ms: requests in flight over the hub's sites and the loop's lag; every fifth
    time, the sockets open (reading them costs a system call per descriptor)."""

    def __init__(self, hub: InventoryHub) -> None:
        self.hub = hub
        self.in_flight = 0
        self.sockets = 0
        self.lags: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = 0
        while True:
            started = loop.time()
            await asyncio.sleep(0.05)
            self.lags.append(loop.time() - started - 0.05)
            counters = self.hub.counters().values()
            self.in_flight = max(self.in_flight, sum(c.in_flight for c in counters))
            tick += 1
            if tick % 5 == 0:
                self.sockets = max(self.sockets, sockets_open())

    def lag_p99(self) -> float:
        ordered = sorted(self.lags) or [0.0]
        return ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]


async def feed(
    hub: InventoryHub, sites: list[str], keys: list[tuple[str, str]], rate: float
) -> None:
    """``rate`` decrements a second per site, in 20 ms ticks, cycling over ``keys``."""
    loop = asyncio.get_running_loop()
    owed, last, at = 0.0, loop.time(), 0
    while True:
        await asyncio.sleep(0.02)
        now = loop.time()
        owed += rate * (now - last)
        last = now
        count = int(owed)
        owed -= count
        for site in sites:
            for _ in range(count):
                product_id, variant_id = keys[at % len(keys)]
                hub.submit_nowait(site, product_id, variant_id, -1)
                at += 1


async def one_run(
    emu: dict[str, Any], sites: list[str], pool: int | None, args: argparse.Namespace
) -> dict[str, Any]:
    """One hub over ``sites``, ``pool`` connections (``None``: the hub's defaults)."""
    keys = [(str(p), str(v)) for p, v in emu["keys"]]
    limits = {} if pool is None else {"connections": pool, "connections_per_host": pool}
    async with InventoryHub(
        AppCredentials(emu["app_id"], emu["app_secret"]),
        base_url=emu["url"],
        rate_limit=RateLimit(200, 60.0 * args.dilate),
        **limits,  # type: ignore[arg-type]  # only the two int settings
    ) as hub:
        feeder = asyncio.get_running_loop().create_task(
            feed(hub, sites, keys, args.rate / args.dilate)
        )
        await asyncio.sleep(args.warmup * args.dilate)
        sampler = Sampler(hub)
        sampling = asyncio.get_running_loop().create_task(sampler.run())
        before, cpu0, wall0 = hub.stats().total, time.process_time(), time.perf_counter()
        await asyncio.sleep(args.seconds * args.dilate)
        after, cpu1, wall1 = hub.stats().total, time.process_time(), time.perf_counter()
        feeder.cancel()
        sampling.cancel()
    wall = wall1 - wall0
    requests = after.requests - before.requests
    return {
        "achieved_over_budget": round(requests / (len(sites) * BUDGET / args.dilate * wall), 3),
        "requests": requests,
        "peak_in_flight": sampler.in_flight,
        "peak_sockets": sampler.sockets,
        "rate_limited": after.rate_limited,
        "in_doubt": after.in_doubt,
        "client_cpu": round((cpu1 - cpu0) / wall, 2),
        "loop_lag_p99": round(sampler.lag_p99(), 4),
    }


async def bench(args: argparse.Namespace) -> None:
    defaults = InventoryHub.__init__.__kwdefaults__ or {}
    default = min(defaults["connections"], defaults["connections_per_host"])
    need = args.sites * BUDGET * args.latency_ms / 1000
    small = args.small or max(1, round(need / 2))
    pools: dict[str, int | None] = {"default": None, "large": args.large, "small": small}
    sizes = {"default": default, "large": args.large, "small": small}
    results: dict[str, dict[str, Any]] = {}
    with emulator(args.sites * len(pools), args) as emu:
        for index, (name, pool) in enumerate(pools.items()):
            sites = emu["instances"][index * args.sites : (index + 1) * args.sites]
            results[name] = await one_run(emu, sites, pool, args)
            emit(
                bench="pool",
                run=name,
                connections=sizes[name],
                sites=args.sites,
                latency_ms=args.latency_ms,
                jitter_ms=args.jitter_ms,
                dilate=args.dilate,
                connections_needed=round(need),
                seconds=args.seconds,
                **results[name],
            )
    emit(
        bench="pool",
        run="summary",
        default_connections=default,
        connections_needed=round(need),
        default_over_large=round(
            results["default"]["achieved_over_budget"] / results["large"]["achieved_over_budget"],
            3,
        ),
        small_over_large=round(
            results["small"]["achieved_over_budget"] / results["large"]["achieved_over_budget"], 3
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--jitter-ms", type=float, default=150.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--large", type=int, default=8192)
    parser.add_argument("--small", type=int, default=0, help="default: half the need")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--dilate", type=float, default=1.0)
    args = parser.parse_args()
    pin(CLIENT_CPU)
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
