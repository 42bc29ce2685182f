"""A snapshot of the fleet for ``wixinv-async fleet status``: workers, shard owners and the
server holding each shard (a cluster's node), backlog per site, open and in-doubt batches,
and the format producers write ingest entries in.
Read-only; not atomic across shards (each shard is read in one pipeline)."""

from __future__ import annotations

from typing import Any

from ._connect import FleetRedis, node_of
from .admin import InDoubtBatch, batch_record, ingest_format
from .scripts import text
from .shards import KeySpace

__all__ = ["fleet_status", "in_doubt_view"]


async def _shard(redis: FleetRedis, keys: KeySpace, shard: int) -> dict[str, Any] | None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.key(shard, "lease"))
        pipe.pttl(keys.key(shard, "lease"))
        pipe.xlen(keys.key(shard, "in"))
        pipe.zrange(keys.key(shard, "sites"), 0, -1)
        pipe.zrange(keys.key(shard, "open"), 0, -1)
        pipe.zrange(keys.key(shard, "doubt"), 0, -1)
        lease, ttl, length, sites, open_ids, doubt_ids = await pipe.execute()
    if not (lease or length or sites or open_ids or doubt_ids):
        return None
    owner, _, epoch = text(lease).partition("|")
    backlog = {}
    for site in map(text, sites):
        backlog[site] = await redis.hlen(keys.site_key(shard, "acc", site))
    doubt = []
    for batch_id in map(text, doubt_ids):
        record = await redis.hgetall(keys.batch(shard, batch_id))
        if record:
            doubt.append(in_doubt_view(batch_record(shard, batch_id, 0, record)))
    return {
        "shard": shard,
        "node": await node_of(redis, keys.key(shard, "lease")),
        "owner": owner or None,
        "epoch": int(epoch) if epoch else None,
        "lease_ms": ttl if lease else None,
        "stream_entries": length,
        "pending_keys_by_site": backlog,
        "open_batches": [text(b) for b in open_ids],
        "in_doubt": doubt,
    }


def in_doubt_view(batch: InDoubtBatch) -> dict[str, Any]:
    """A batch in doubt as ``fleet status`` shows it (``fleet resolve`` takes its id)."""
    entries = [
        {
            "product": e.product_id,
            "variant": e.variant_id,
            "location": e.location_id or None,
            "net": e.net,
            "events": [event for event, _ in e.events],
        }
        for e in batch.entries
    ]
    return {"batch": batch.batch_id, "site": batch.site, "code": batch.code, "entries": entries}


async def fleet_status(redis: FleetRedis, keys: KeySpace) -> dict[str, Any]:
    """Workers with their last heartbeat (Redis ms), the ingest format (``"packed"`` or
    ``"fields"``), and every shard that holds anything."""
    workers: Any = await redis.zrange(keys.workers, 0, -1, withscores=True)
    shards = [s for n in range(keys.shards) if (s := await _shard(redis, keys, n)) is not None]
    return {
        "prefix": keys.prefix,
        "shards": keys.shards,
        "ingest": await ingest_format(redis, keys),
        "workers": {text(w): int(score) for w, score in workers},
        "active_shards": shards,
        "in_doubt_batches": sum(len(s["in_doubt"]) for s in shards),
        "pending_keys": sum(sum(s["pending_keys_by_site"].values()) for s in shards),
    }
