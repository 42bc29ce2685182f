"""The fleet's end-to-end harness on a real Redis Cluster: the same emulator, producer and
worker processes as :mod:`.harness`, with cluster clients and ``fleet worker --cluster``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from redis.asyncio.cluster import RedisCluster

from wixinv_async.emulator import Emulator, SiteSpec
from wixinv_async.fleet.admin import FleetAdmin
from wixinv_async.fleet.producer import FleetProducer

from .harness import PREFIX, SHARDS, WORKER_FLAGS, Fleet, _site_keys

__all__ = ["ClusterFleet", "open_cluster_fleet"]


class ClusterFleet(Fleet):
    """:class:`Fleet` whose workers are started with ``--cluster`` on a cluster node's URL."""

    def start_worker(self, *, worker_id: str = "", crash_at: str = "") -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "wixinv_async", "fleet", "worker", "--cluster"]
        args += ["--redis", self.url, "--base-url", self.emulator.url]
        args += ["--api-key", self.emulator.api_key]
        args += ["--prefix", PREFIX, "--shards", str(SHARDS), *WORKER_FLAGS]
        if worker_id:
            args += ["--worker-id", worker_id]
        env = {**os.environ, "WIXINV_FLEET_CRASH_AT": crash_at}
        log = (self.logs / f"worker{len(self.workers)}.log").open("wb")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)  # noqa: S603
        log.close()
        self.workers.append(process)
        return process


@contextlib.asynccontextmanager
async def open_cluster_fleet(url: str, logs: Path, *, sites: int) -> AsyncIterator[ClusterFleet]:
    """An emulator with ``sites`` V1 sites under a strict 5-per-second window, and a producer
    on the cluster whose node ``url`` is."""
    specs = [SiteSpec(catalog="v1", products=2, variants_per_product=2) for _ in range(sites)]
    async with Emulator(sites=specs, rate_limit="5/1", latency_ms=20) as emulator:
        keys = [key for site in emulator.sites for key in _site_keys(emulator, site)]
        conn = RedisCluster.from_url(url, decode_responses=True)
        admin = FleetAdmin(conn, prefix=PREFIX, shards=SHARDS)
        await admin.pack_ingest(False)
        producer = FleetProducer(conn, prefix=PREFIX, shards=SHARDS)
        await producer.__aenter__()  # reads the fleet's ingest format now (not owning conn)
        await admin.pack_ingest()
        packed = FleetProducer(conn, prefix=PREFIX, shards=SHARDS)
        fleet = ClusterFleet(emulator, producer, packed, conn, url, keys, logs)
        try:
            yield fleet
        finally:
            for process in fleet.workers:
                if process.poll() is None:
                    process.kill()
                process.wait()
            await conn.aclose()
