"""Shared helpers of the fleet tests (no fakes: they read and write the real server)."""

from __future__ import annotations

import contextlib

import redis.asyncio as aioredis

from wixinv_async.fleet.scripts import IngestEntry, parse_entry
from wixinv_async.fleet.shards import KeySpace

GROUP = "workers"
VARIANTS = [f"00000000-0000-0000-0000-{i:012d}" for i in range(400)]


async def read_all(
    conn: aioredis.Redis, keys: KeySpace, shard: int, consumer: str
) -> list[IngestEntry]:
    """Every new entry of the shard's ingest stream, read into ``consumer``'s pending list."""
    stream = keys.key(shard, "in")
    with contextlib.suppress(aioredis.ResponseError):
        await conn.xgroup_create(stream, GROUP, id="0", mkstream=True)
    entries: list[IngestEntry] = []
    while True:
        replies = await conn.xreadgroup(GROUP, consumer, {stream: ">"}, count=500)
        if not replies:
            return entries
        for _, records in replies:
            for stream_id, fields in records:
                entry = parse_entry(stream_id, fields)
                assert entry is not None
                entries.append(entry)
