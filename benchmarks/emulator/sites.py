"""``sites300`` (issue 15): the emulator's CPU per 300-entry request at 300 sites, against a
bare handler that parses the same bodies, side by side, round after round; and
``sites300_paced``: decrements paced at 1,000 requests a second, the server's share of a core."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from benchmarks.emulator.load import fire_sites
from benchmarks.emulator.servers import DECREMENT, SITES, Server, emit, site_keys

__all__ = [
    "PACED_RATE",
    "V1_PATHS",
    "V3_PATHS",
    "bench_sites",
    "site_bodies",
    "site_heads",
    "tokens",
]

PACED_RATE = 1_000.0
"""Requests a second of the paced run: 300 sites at 200 per 60 s."""
V1_PATHS = {"decrement": DECREMENT, "increment": "/stores/v2/inventoryItems/increment"}
V3_PATHS = {
    "decrement": "/stores/v3/bulk/inventory-items/decrement",
    "increment": "/stores/v3/bulk/inventory-items/increment",
}


def site_bodies(catalog: str, kind: str, keys: list[Any], count: int) -> list[bytes]:
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


async def tokens(info: dict[str, Any]) -> list[str]:
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


def site_heads(tokens: list[str]) -> list[bytes]:
    return [
        f"Authorization: Bearer {t}\r\nContent-Type: application/json\r\n".encode() for t in tokens
    ]


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
        heads = site_heads(["-" * 43] * SITES if bare else asyncio.run(tokens(info)))
        keys = site_keys(catalog)
        paths = V1_PATHS if catalog == "v1" else V3_PATHS
        for kind in ("decrement", "increment"):  # V1 stock at 99,999: decrements first
            bodies = site_bodies(catalog, kind, keys, per_site)
            for _warm_then_measured in range(2):
                requests, wall, used, statuses = asyncio.run(
                    fire_sites(
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
        bodies = site_bodies(catalog, "decrement", keys, paced)
        requests, wall, used, statuses = asyncio.run(
            fire_sites(
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
            server_rss_mb=_rss_mb(info["pid"]),
            statuses=statuses,
        )


def _rss_mb(pid: int) -> float | None:
    """The resident memory of process ``pid`` in MB, from ``/proc`` (Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return round(int(kb) / 1024, 1) if kb is not None else None
