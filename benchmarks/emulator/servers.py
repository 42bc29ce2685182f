"""The servers a benchmark measures, each run in a child process pinned to its own CPU: the
emulator as each benchmark configures it, and bare aiohttp handlers as baselines."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from benchmarks._cpus import SERVER_CPU, pin

__all__ = [
    "DECREMENT",
    "PRODUCTS",
    "QUERY",
    "SEED",
    "SITES",
    "SITES_PRODUCTS",
    "SITE_KEYS",
    "Server",
    "cpu_seconds",
    "emit",
    "serve_bare",
    "serve_sites",
    "site_keys",
]

DECREMENT = "/stores/v2/inventoryItems/decrement"
QUERY = "/stores-reader/v2/inventoryItems/query"
PRODUCTS = 10_000
"""Products of the decrement benchmark's emulator (3 variants each, seed ``SEED``)."""
SEED = 1
SITES = 300
SITES_PRODUCTS = 1_000 // 2 + 50
"""bench_hub's ``budget`` emulator at its default 1,000 variants: ``variants // 2 + 50``."""
SITE_KEYS = 1_000
"""Keys each site's bodies walk over (bench_hub feeds 1,000 variants a site)."""


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far, from ``/proc`` (Linux)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def serve_bare(ready: Any, stop: Any, parser: str) -> None:
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


async def serve_sites(ready: Any, stop: Any, catalog: str) -> None:
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
                for key in site_keys("v1"):
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


def site_keys(catalog: str) -> list[Any]:
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


def _server_main(kind: str, ready: Any, stop: Any, products: int) -> None:
    pin(SERVER_CPU)
    if kind.startswith("bare"):
        asyncio.run(serve_bare(ready, stop, kind))
    elif kind.startswith("sites_"):
        asyncio.run(serve_sites(ready, stop, kind.removeprefix("sites_")))
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
