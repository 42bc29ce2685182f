"""Benchmark: the emulator must not be what limits our other benchmarks.

Measures, in one run, on loopback, with the server and the load generator in separate
processes (the machine has 2 cores):

- ``decrement300``: 300-entry Decrement Inventory requests against the emulator (10,000
  products, every request a success, the journal kept) and against a bare aiohttp handler that
  only reads and JSON-parses the body with msgspec; the ratio must be >= 0.5. For context,
  also against a handler doing aiohttp's ``request.json()``. Rounds alternate the servers;
  each sends every body once to warm up, then again measured, over 8 keep-alive
  connections of a raw HTTP/1.1 client (far cheaper than a full client, so the server sets
  the pace). Reported: the ratio of the best rates, the median of the rounds' ratios, and the
  ratio of the servers' own CPU time per request (from ``/proc``; the steadiest of the three
  when other processes share the machine).
- ``crawl_query``: numericId-range queries (numericId sort, limit 100) on a 100k-item site.
- ``seed``: seconds to seed 100,000 products in process.

The load generator and each server are pinned to different CPUs (when there are two), so no
run has them competing for one. Prints one JSON line per measurement. ``--quick`` runs a small version (20k items, fewer
requests). Other processes on the machine move the figures; compare within one run.

    .venv/bin/python benchmarks/bench_emulator.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._cpus import CLIENT_CPU, SERVER_CPU, pin

DECREMENT = "/stores/v2/inventoryItems/decrement"
QUERY = "/stores-reader/v2/inventoryItems/query"
PRODUCTS = 10_000
"""Products of the decrement benchmark's emulator (3 variants each, seed ``SEED``)."""
SEED = 1


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# --- servers (run in a child process) -------------------------------------------------------


async def _serve_bare(ready: Any, stop: Any, parser: str) -> None:
    """``bare``: msgspec parses the body (the strict baseline); ``bare_json``: aiohttp's own
    ``request.json()`` (the stdlib parser most aiohttp handlers use)."""

    async def decrement(request: web.Request) -> web.Response:
        msgspec.json.decode(await request.read())
        return web.Response(body=b"{}", content_type="application/json")

    async def decrement_json(request: web.Request) -> web.Response:
        await request.json()
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application(client_max_size=16 * 1024 * 1024)
    if parser == "bare_sites":  # any call of any site: the many-site benchmark's baseline
        app.router.add_post("/{tail:.*}", decrement)
    else:
        app.router.add_post(DECREMENT, decrement if parser == "bare" else decrement_json)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    ready.send({"url": f"http://127.0.0.1:{port}", "headers": {}})
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    await runner.cleanup()


async def _serve_emulator(ready: Any, stop: Any, products: int) -> None:
    from wixinv_async.emulator import Emulator

    async with Emulator(products=products, variants_per_product=3, seed=SEED) as emu:
        headers = {"Authorization": emu.api_key, "wix-site-id": emu.site_id}
        ready.send({"url": emu.url, "headers": headers})
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)


def _server_main(kind: str, ready: Any, stop: Any, products: int) -> None:
    pin(SERVER_CPU)
    if kind.startswith("bare"):
        asyncio.run(_serve_bare(ready, stop, kind))
    elif kind.startswith("sites_"):
        asyncio.run(_serve_sites(ready, stop, kind.removeprefix("sites_")))
    else:
        asyncio.run(_serve_emulator(ready, stop, products))


class Server:
    """A server in a child process, as a context manager giving its URL and headers."""

    def __init__(self, kind: str, products: int = PRODUCTS) -> None:
        self.kind = kind
        self.products = products

    def __enter__(self) -> dict[str, Any]:
        ctx = multiprocessing.get_context("spawn")
        receiver, sender = ctx.Pipe(duplex=False)
        self.stop = ctx.Event()
        self.process = ctx.Process(
            target=_server_main, args=(self.kind, sender, self.stop, self.products)
        )
        self.process.start()
        info: dict[str, Any] = receiver.recv()
        info["pid"] = self.process.pid
        return info

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()


# --- load generation ------------------------------------------------------------------------


async def _fire(
    url: str,
    headers: dict[str, str],
    bodies: list[bytes],
    concurrency: int,
    server_pid: int | None = None,
) -> tuple[float, dict[int, int], float | None]:
    """POST every body twice (a warm-up pass, then the measured one) over ``concurrency``
    keep-alive connections; returns the measured pass's seconds, statuses and the CPU
    seconds the server process used meanwhile (``None`` without ``/proc``).

    A raw HTTP/1.1 client over asyncio streams, far cheaper than a full client, so the
    server, not the load generator, sets the pace.
    """
    split = urlsplit(url)
    head = "".join(
        f"{k}: {v}\r\n" for k, v in {**headers, "Content-Type": "application/json"}.items()
    )
    requests = [
        (
            f"POST {split.path} HTTP/1.1\r\nHost: {split.netloc}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    statuses: dict[int, int] = {}
    streams = [
        await asyncio.open_connection(split.hostname, split.port) for _ in range(concurrency)
    ]

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, todo: Any) -> None:
        for request in todo:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1

    try:
        for measured in (False, True):
            todo = iter(requests)
            statuses.clear()
            cpu = _cpu_seconds(server_pid)
            started = time.perf_counter()
            await asyncio.gather(*(worker(r, w, todo) for r, w in streams))
            if measured:
                seconds = time.perf_counter() - started
                after = _cpu_seconds(server_pid)
                used = after - cpu if after is not None and cpu is not None else None
                return seconds, statuses, used
    finally:
        for _, writer in streams:
            writer.close()
            await writer.wait_closed()
    raise AssertionError("unreachable")


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far, from ``/proc`` (Linux)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _decrement_bodies(count: int) -> list[bytes]:
    """300-entry bodies (each sent twice) walking cyclically over the tracked variants of the
    emulator's seeded catalog, with enough stock that none runs out: every request succeeds.
    Both servers get these same bodies."""
    from wixinv_async.emulator import SiteStore

    catalog = SiteStore(site_id="-", instance_id="-", products=PRODUCTS, seed=SEED).items()
    stock = [
        (v.quantity, item.product_id, v.variant_id)
        for item in catalog
        if item.track_quantity
        for v in item.variants
    ]
    threshold = 1
    while True:
        keys = [(p, v) for q, p, v in stock if isinstance(q, int) and q >= threshold]
        uses = 2 * -(-count * 300 // len(keys))  # each of the two passes walks the cycle
        if uses <= threshold:
            break
        threshold = uses
    bodies = []
    for n in range(count):
        entries = [
            {"productId": p, "variantId": v, "decrementBy": 1, "preorderRequest": False}
            for p, v in (keys[(n * 300 + j) % len(keys)] for j in range(300))
        ]
        bodies.append(msgspec.json.encode({"decrementData": entries}))
    return bodies


def bench_decrement(requests: int, concurrency: int, rounds: int) -> None:
    rates: dict[str, list[float]] = {"bare": [], "emulator": [], "bare_json": []}
    cpu: dict[str, list[float]] = {kind: [] for kind in rates}
    bodies = _decrement_bodies(requests)
    for _ in range(rounds):
        for kind in rates:
            with Server(kind) as info:
                seconds, statuses, used = asyncio.run(
                    _fire(
                        info["url"] + DECREMENT, info["headers"], bodies, concurrency, info["pid"]
                    )
                )
            rates[kind].append(requests / seconds)
            if used:
                cpu[kind].append(used / requests)
            emit(
                bench="decrement300",
                server=kind,
                requests=requests,
                seconds=round(seconds, 3),
                rps=round(requests / seconds, 1),
                server_cpu_us_per_request=round(used / requests * 1e6, 1) if used else None,
                statuses=statuses,
            )
    _emit_ratios(rates, cpu)


def _emit_ratios(rates: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    best = {kind: max(values) for kind, values in rates.items()}
    pairs = sorted(e / b for b, e in zip(rates["bare"], rates["emulator"], strict=True))
    ratio = best["emulator"] / best["bare"]
    cheapest = {kind: min(values) for kind, values in cpu.items() if values}
    emit(
        bench="decrement300",
        name="300-entry decrements: emulator / bare aiohttp handler",
        ratio=round(ratio, 3),
        ratio_median_of_rounds=round(pairs[len(pairs) // 2], 3),
        ratio_by_server_cpu=(
            round(cheapest["bare"] / cheapest["emulator"], 3) if len(cheapest) == 3 else None
        ),
        target=0.5,
        ok=ratio >= 0.5,
        best_rps={kind: round(rate, 1) for kind, rate in best.items()},
    )
    emit(
        bench="decrement300",
        name="300-entry decrements: emulator / aiohttp handler doing request.json()",
        ratio=round(best["emulator"] / best["bare_json"], 3),
    )


def bench_crawl_query(products: int, queries: int, concurrency: int) -> None:
    with Server("emulator", products) as info:

        async def bodies() -> list[bytes]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(info["url"] + "/_emulator/state") as r,
            ):
                state = await r.json()
            ids = [int(i["numericId"]) for i in state["inventoryItems"]]
            rng = random.Random(1)
            out = []
            for _ in range(queries):
                low = rng.choice(ids)
                query = {
                    "paging": {"limit": 100},
                    "filter": json.dumps({"numericId": {"$gt": low, "$lte": low + 10**13}}),
                    "sort": '[{"numericId":"asc"}]',
                }
                out.append(msgspec.json.encode({"query": query}))
            return out

        payloads = asyncio.run(bodies())
        seconds, statuses, _ = asyncio.run(
            _fire(info["url"] + QUERY, info["headers"], payloads, concurrency)
        )
    emit(
        bench="crawl_query",
        items=products,
        queries=queries,
        seconds=round(seconds, 3),
        qps=round(queries / seconds, 1),
        statuses=statuses,
    )


def bench_seed(products: int) -> None:
    from wixinv_async.emulator import SiteStore

    started = time.perf_counter()
    store = SiteStore(
        site_id="s", instance_id="i", products=products, variants_per_product=3, seed=1
    )
    emit(
        bench="seed",
        products=products,
        variants=sum(len(i.variants) for i in store._items),
        seconds=round(time.perf_counter() - started, 3),
    )


# --- many sites (issue 15): the emulator's CPU per request at bench_hub's configuration ----

SITES = 300
SITES_PRODUCTS = 1_000 // 2 + 50
"""bench_hub's ``budget`` emulator at its default 1,000 variants: ``variants // 2 + 50``."""
SITE_KEYS = 1_000
"""Keys each site's bodies walk over (bench_hub feeds 1,000 variants a site)."""
PACED_RATE = 1_000.0
"""Requests a second of the paced run: 300 sites at 200 per 60 s."""
V1_PATHS = {"decrement": DECREMENT, "increment": "/stores/v2/inventoryItems/increment"}
V3_PATHS = {
    "decrement": "/stores/v3/bulk/inventory-items/decrement",
    "increment": "/stores/v3/bulk/inventory-items/increment",
}


async def _serve_sites(ready: Any, stop: Any, catalog: str) -> None:
    """``catalog`` sites as bench_hub's ``SERVER`` makes them (one catalog's ids on every
    site, a strict 200/60 window each, every site made first); V1 stock set to 99,999 as there,
    V3 keys the tracked items with stock enough for the run's decrements."""
    from wixinv_async.emulator import Emulator, SiteSpec

    specs = [SiteSpec(seed=1) for _ in range(SITES)]
    async with Emulator(
        sites=specs,
        products=SITES_PRODUCTS,
        variants_per_product=3,
        rate_limit="200/60",
        seed=1,
        catalog=catalog,
    ) as emu:
        emu.make_sites()
        if catalog == "v1":
            for site in emu.sites:
                store = emu.site(site)
                for key in _site_keys("v1"):
                    store.set_quantity(*key, 99_999)
        ready.send(
            {
                "url": emu.url,
                "app_id": emu.app_id,
                "app_secret": emu.app_secret,
                "instances": emu.instances,
            }
        )
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)


def _site_bodies(catalog: str, kind: str, keys: list[Any], count: int) -> list[bytes]:
    """``count`` 300-entry bodies of ``kind`` walking cyclically over ``keys``, as the client
    encodes them (V1 decrements name ``preorderRequest``; V3 by inventory item id)."""
    bodies = []
    amount = "decrementBy" if kind == "decrement" else "incrementBy"
    for n in range(count):
        window = [keys[(n * 300 + j) % len(keys)] for j in range(300)]
        if catalog == "v1":
            entries = [{"productId": p, "variantId": v, amount: 1} for p, v in window]
            if kind == "decrement":
                for entry in entries:
                    entry["preorderRequest"] = False
        else:
            entries = [{"inventoryItemId": i, amount: 1} for i in window]
        bodies.append(msgspec.json.encode({f"{kind}Data": entries}))
    return bodies


async def _tokens(info: dict[str, Any]) -> list[str]:
    """One OAuth access token per app instance (as the hub holds), fetched before measuring."""
    async with aiohttp.ClientSession() as session:

        async def one(instance: str) -> str:
            form = {
                "grant_type": "client_credentials",
                "client_id": info["app_id"],
                "client_secret": info["app_secret"],
                "instance_id": instance,
            }
            async with session.post(info["url"] + "/oauth2/token", json=form) as response:
                token: str = (await response.json())["access_token"]
                return token

        return list(await asyncio.gather(*(one(i) for i in info["instances"])))


async def _fire_sites(
    url: str,
    path: str,
    heads: list[bytes],
    bodies: list[bytes],
    per_site: int,
    concurrency: int,
    rate: float | None,
    pid: int,
) -> tuple[int, float, float, dict[int, int]]:
    """``per_site`` requests to every site, round robin over the sites (site ``n % sites``
    gets body ``n // sites``), over ``concurrency`` keep-alive connections; ``rate``: paced
    at that many a second, else as fast as the server answers. Returns requests, wall
    seconds, the server's CPU seconds meanwhile and the statuses."""
    split = urlsplit(url)
    start = f"POST {path} HTTP/1.1\r\nHost: {split.netloc}\r\n".encode()
    streams = [
        await asyncio.open_connection(split.hostname, split.port) for _ in range(concurrency)
    ]
    total = per_site * len(heads)
    todo = iter(range(total))
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in todo:
            if rate is not None:
                delay = began + n / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            body = bodies[n // len(heads)]
            writer.write(start + heads[n % len(heads)] + b"Content-Length: %d\r\n\r\n" % len(body))
            writer.write(body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1

    cpu, wall = _cpu_seconds(pid), time.perf_counter()
    try:
        await asyncio.gather(*(worker(r, w) for r, w in streams))
    finally:
        for _, writer in streams:
            writer.close()
            await writer.wait_closed()
    wall = time.perf_counter() - wall
    used = (_cpu_seconds(pid) or 0.0) - (cpu or 0.0)
    return total, wall, used, statuses


def _emit_site_ratios(cpu: dict[str, list[float]]) -> None:
    """Per call: the emulator's requests per core-second (its cheapest round) and that as a
    ratio of the bare handler's, from the servers' own CPU time."""
    for name in sorted(n for n in cpu if n.startswith("emulator/")):
        ours, bare = min(cpu[name]), min(cpu["bare" + name.removeprefix("emulator")])
        emit(
            bench="sites300",
            name=f"{SITES} sites, 300-entry {name.removeprefix('emulator/')}: emulator / bare",
            emulator_requests_per_core_second=round(1 / ours, 1),
            bare_requests_per_core_second=round(1 / bare, 1),
            ratio_by_server_cpu=round(bare / ours, 3),
            cpu_share_at_1000_per_s=round(PACED_RATE * ours, 3),
        )


def _site_heads(tokens: list[str]) -> list[bytes]:
    return [
        f"Authorization: Bearer {t}\r\nContent-Type: application/json\r\n".encode() for t in tokens
    ]


def bench_sites(
    per_site: int, paced_seconds: float, rounds: int, catalogs: tuple[str, ...] = ("v1", "v3")
) -> None:
    """The emulator's CPU per 300-entry request at 300 sites, against a bare handler that
    parses the same bodies, side by side, round after round."""
    cpu: dict[str, list[float]] = {}
    for _ in range(rounds):
        for catalog in catalogs:
            for server in ("bare_sites", f"sites_{catalog}"):
                _sites_round(server, catalog, per_site, paced_seconds, cpu)
    _emit_site_ratios(cpu)


def _sites_round(
    server: str, catalog: str, per_site: int, paced_seconds: float, cpu: dict[str, list[float]]
) -> None:
    """One server: each kind's warm-up pass, its measured pass, then the paced run."""
    with Server(server) as info:
        bare = server == "bare_sites"
        label = "bare" if bare else "emulator"
        heads = _site_heads(["-" * 43] * SITES if bare else asyncio.run(_tokens(info)))
        keys = _site_keys(catalog)
        paths = V1_PATHS if catalog == "v1" else V3_PATHS
        for kind in ("decrement", "increment"):  # V1 stock at 99,999: decrements first
            bodies = _site_bodies(catalog, kind, keys, per_site)
            for _warm_then_measured in range(2):
                requests, wall, used, statuses = asyncio.run(
                    _fire_sites(
                        info["url"], paths[kind], heads, bodies, per_site, 8, None, info["pid"]
                    )
                )
            name = f"{label}/{catalog}/{kind}"
            cpu.setdefault(name, []).append(used / requests)
            emit(
                bench="sites300",
                server=name,
                requests=requests,
                rps=round(requests / wall, 1),
                server_cpu_us_per_request=round(used / requests * 1e6, 1),
                requests_per_core_second=round(requests / used, 1) if used else None,
                statuses=statuses,
            )
        paced = max(1, int(paced_seconds * PACED_RATE) // SITES)
        bodies = _site_bodies(catalog, "decrement", keys, paced)
        requests, wall, used, statuses = asyncio.run(
            _fire_sites(
                info["url"], paths["decrement"], heads, bodies, paced, 16, PACED_RATE, info["pid"]
            )
        )
        emit(
            bench="sites300_paced",
            server=f"{label}/{catalog}/decrement",
            requests=requests,
            rps=round(requests / wall, 1),
            server_cpu_share=round(used / wall, 3),
            headroom=round(1 - used / wall, 3),
            statuses=statuses,
        )


def _site_keys(catalog: str) -> list[Any]:
    """The keys every site's bodies walk over, from the seeded catalog all sites share: V1
    (product, variant) of tracked items; V3 tracked item ids with stock for the run."""
    from wixinv_async.emulator import SiteStore
    from wixinv_async.emulator.catalogs import location_ids, seed_v3

    store = SiteStore(site_id="-", instance_id="-", products=SITES_PRODUCTS, seed=1)
    if catalog == "v1":
        items = [i for i in store.items() if i.track_quantity is True]
        return [(i.product_id, v.variant_id) for i in items for v in i.variants][:SITE_KEYS]
    v3 = seed_v3(store, 1, location_ids(1, 1)).records()
    return [i.id for i in v3 if i.track and i.quantity >= 50][:SITE_KEYS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run for development")
    parser.add_argument("--only", choices=["seed", "decrement", "crawl", "sites"])
    parser.add_argument(
        "--catalog", choices=["v1", "v3"], help="sites: only this catalog's calls (default both)"
    )
    args = parser.parse_args(argv)
    pin(CLIENT_CPU)  # the load generator; each server pins itself to the other CPU
    requests, rounds, queries, products = (
        (1_000, 2, 1_000, 20_000) if args.quick else (3_000, 3, 2_000, 100_000)
    )
    runs = {
        "seed": lambda: bench_seed(products),
        "decrement": lambda: bench_decrement(requests, concurrency=8, rounds=rounds),
        "crawl": lambda: bench_crawl_query(products, queries, concurrency=8),
        "sites": lambda: bench_sites(
            per_site=6 if args.quick else 20,
            paced_seconds=4 if args.quick else 10,
            rounds=rounds,
            catalogs=(args.catalog,) if args.catalog else ("v1", "v3"),
        ),
    }
    for name, run in runs.items():
        if args.only in (None, name):
            run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
