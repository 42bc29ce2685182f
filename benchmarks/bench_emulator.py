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
- ``sites300`` (issue 15): the emulator as ``bench_hub.py``'s budget run configures it (300
  sites of one seeded catalog, 550 products of 3 variants, a strict 200/60 window each, every
  site made first), all V1 or all V3, against a bare aiohttp handler that only msgspec-parses
  the same bodies, side by side in each round. 300-entry V1 decrements and increments, V3
  bulk decrements and increments by inventory item id, each site with its own OAuth token,
  round robin over the sites (at most 200 requests a site per server, so every answer is a
  200): the server's CPU per request from ``/proc`` while saturated (8 connections), as
  requests per core-second and a ratio to the bare handler's; then ``sites300_paced``: V1 or V3
  decrements paced at 1,000 requests a second (16 connections), the server's share of one
  core, the headroom left and its resident memory. ``--only sites [--catalog v1|v3]`` runs just this.

The load generator and each server are pinned to different CPUs (when there are two), so no
run has them competing for one. Prints one JSON line per measurement. ``--quick`` runs a
small version (20k items, fewer requests). Other processes on the machine move the figures; compare within one run.
The measurements live in ``benchmarks/emulator/``: ``servers`` (the servers in child
processes), ``load`` (the raw HTTP load generators), ``decrement``, ``catalog`` (crawl and
seed) and ``sites``.

    .venv/bin/python benchmarks/bench_emulator.py [--quick] [--only sites] [--catalog v1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._cpus import CLIENT_CPU, pin
from benchmarks.emulator.catalog import bench_crawl_query, bench_seed
from benchmarks.emulator.decrement import bench_decrement
from benchmarks.emulator.sites import bench_sites


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
