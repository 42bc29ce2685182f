"""Benchmark: Redis's instructions per delta for the fleet's steps, by callgrind (counts that
do not depend on the machine's load, unlike CPU time on shared cores).

A redis-server (appendonly yes, appendfsync always) runs under ``valgrind --tool=callgrind``.
A backlog of ``--deltas`` deltas over 20 sites of 100 keys each is queued on 16 shards, then
the counters are zeroed and the worker's steps run without HTTP, as one worker would: claim
every shard, ``read_fold`` until caught up, then per site begin, mark_sent and finish_each
(every entry APPLIED, as a V1 call that succeeded) until nothing is pending. The counters are
dumped and Redis's instructions (Ir) divided by the deltas. Prints one JSON line.

The entries are queued packed (one field, what a producer writes once the fleet's ``ingest``
config says ``packed``); ``--fields`` queues them as separate fields (what producers wrote
before, still read) for the comparison.

    .venv/bin/python benchmarks/callgrind_fleet.py [--deltas 4000] [--fields]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from wixinv_async.fleet._redis_server import find_redis_server  # noqa: E402
from wixinv_async.fleet.scripts import READ_COUNT, EntryVerdicts, ShardScripts  # noqa: E402
from wixinv_async.fleet.shards import KeySpace, ingest_fields, shard_of  # noqa: E402

SHARDS, SITES, KEYS_PER_SITE = 16, 20, 100


def _start(directory: Path, port: int) -> subprocess.Popen[bytes]:
    args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={directory}/cg.out"]
    args += [str(find_redis_server()), "--port", str(port), "--dir", str(directory)]
    args += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def _control(pid: int, flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)  # noqa: S603, S607


def _ir(directory: Path) -> int:
    """The last dump's total instructions (the dump made after the counters were zeroed)."""
    dumps = sorted(directory.glob("cg.out*"), key=lambda p: p.stat().st_mtime)
    for line in dumps[-1].read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise AssertionError("no totals in the callgrind dump")


async def _queue(conn: aioredis.Redis, keys: KeySpace, count: int, packed: bool) -> None:
    rng = random.Random(5)
    variants = [f"00000000-0000-0000-0000-{i:012d}" for i in range(KEYS_PER_SITE)]
    async with conn.pipeline(transaction=False) as pipe:
        for _ in range(count):
            site = f"site-{rng.randrange(SITES)}"
            fields = ingest_fields(
                site,
                "p1",
                rng.choice(variants),
                rng.choice([-2, -1, 1, 2, 3]),
                rng.randbytes(8).hex(),
                packed=packed,
            )
            pipe.xadd(keys.key(shard_of(site, SHARDS), "in"), fields)  # type: ignore[arg-type]
        await pipe.execute()


async def _work(scripts: ShardScripts) -> int:
    """Every shard claimed, read, folded, and its sites' batches begun, marked, finished."""
    batches = 0
    for shard in range(SHARDS):
        claim = await scripts.claim(shard, "w1", 600_000)
        token = f"w1|{claim.epoch}"
        while (await scripts.read_fold(shard, token, "w1", dedup_ms=60_000)).read == READ_COUNT:
            pass
        sites = await scripts.redis.zrange(scripts.keys.key(shard, "sites"), 0, -1)
        for site in sites:
            while True:
                begun = await scripts.begin(shard, token, site, interval_us=1, lease_min_ms=0)
                if begun.status != "BEGUN":
                    break
                await scripts.mark_sent(shard, token, begun.batch_id, 0)
                done = EntryVerdicts((("APPLIED", ""),) * len(begun.entries), cap_op="double")
                await scripts.finish_each(shard, token, begun.batch_id, done)
                batches += 1
    return batches


async def main(deltas: int, packed: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory, port = Path(tmp), random.randrange(20_000, 40_000)
        server = _start(directory, port)
        conn = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", decode_responses=True)
        try:
            for _ in range(600):
                try:
                    await conn.ping()
                    break
                except aioredis.ConnectionError:  # still starting under valgrind
                    await asyncio.sleep(0.1)
            keys = KeySpace("cg", SHARDS)
            await _queue(conn, keys, deltas, packed)
            for shard in range(SHARDS):  # what a worker of the version reading through it made
                with contextlib.suppress(aioredis.ResponseError):
                    await conn.xgroup_create(
                        keys.key(shard, "in"), "workers", id="0", mkstream=True
                    )
            _control(server.pid, "-z")
            batches = await _work(ShardScripts(conn, keys))
            _control(server.pid, "-d")
            ir = _ir(directory)
        finally:
            await conn.aclose()
            server.terminate()
            server.wait()
    print(
        json.dumps(
            {
                "benchmark": "callgrind_fleet",
                "deltas": deltas,
                "ingest": "packed" if packed else "fields",
                "batches": batches,
                "redis_ir_per_delta": round(ir / deltas),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=4000)
    parser.add_argument(
        "--fields", action="store_true", help="queue entries as fields (before packing)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.deltas, not args.fields))
