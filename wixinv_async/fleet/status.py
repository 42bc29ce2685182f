"""A snapshot of the fleet for ``wixinv-async fleet status``: workers, shard owners and the
server holding each shard (a cluster's node), the backlog (ingest entries not yet read, and
per site the keys and units netted but not yet sent), open and in-doubt batches, and the
format producers write ingest entries in. Read-only and not atomic: two pipelines for the
whole fleet, the second reading the details of the shards the first found holding anything."""

from __future__ import annotations

from typing import Any

from ._connect import FleetRedis, node_of
from .admin import InDoubtBatch, batch_record, ingest_format
from .scripts import text
from .shards import KeySpace

__all__ = ["fleet_status", "in_doubt_view"]


UNREAD_CAP = 10_000
"""``fleet status`` counts a shard's unread ingest entries up to this many (``unread_more``
says there are more): counting reads them."""

_SHARD_READS = ("lease", "lease_ttl", "length", "cursor", "sites", "open", "doubt")


def _queue_shard(pipe: Any, keys: KeySpace, shard: int) -> None:
    pipe.get(keys.key(shard, "lease"))
    pipe.pttl(keys.key(shard, "lease"))
    pipe.xlen(keys.key(shard, "in"))
    pipe.get(keys.key(shard, "rd"))
    pipe.zrange(keys.key(shard, "sites"), 0, -1)
    pipe.zrange(keys.key(shard, "open"), 0, -1)
    pipe.zrange(keys.key(shard, "doubt"), 0, -1)


async def _shards(redis: FleetRedis, keys: KeySpace) -> list[dict[str, Any]]:
    """Every shard that holds anything, in two pipelines for the whole fleet (what each
    shard's keys say, then the details of the shards that hold anything)."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.shards):
            _queue_shard(pipe, keys, shard)
        flat = await pipe.execute()
    width = len(_SHARD_READS)
    found = {
        shard: dict(zip(_SHARD_READS, flat[shard * width : (shard + 1) * width], strict=True))
        for shard in range(keys.shards)
    }
    active = {
        n: f
        for n, f in found.items()
        if f["lease"] or f["length"] or f["sites"] or f["open"] or f["doubt"]
    }
    async with redis.pipeline(transaction=False) as pipe:
        for shard, f in active.items():
            start = f"({text(f['cursor'])}" if f["cursor"] else "-"  # after the last read
            pipe.xrange(keys.key(shard, "in"), start, "+", count=UNREAD_CAP + 1)
            for site in f["sites"]:
                pipe.hvals(keys.site_key(shard, "acc", text(site)))
            for batch_id in f["doubt"]:
                pipe.hgetall(keys.batch(shard, text(batch_id)))
        details = iter(await pipe.execute())
    return [await _view(redis, keys, shard, f, details) for shard, f in active.items()]


async def _view(
    redis: FleetRedis, keys: KeySpace, shard: int, found: dict[str, Any], details: Any
) -> dict[str, Any]:
    owner, _, epoch = text(found["lease"]).partition("|")
    unread = len(next(details))
    keys_by_site, units_by_site = {}, {}
    for site in map(text, found["sites"]):
        nets = [int(v) for v in next(details)]
        keys_by_site[site] = len(nets)
        units_by_site[site] = sum(map(abs, nets))
    doubt = []
    for batch_id in map(text, found["doubt"]):
        record = next(details)
        if record:
            doubt.append(in_doubt_view(batch_record(shard, batch_id, 0, record)))
    return {
        "shard": shard,
        "node": await node_of(redis, keys.key(shard, "lease")),
        "owner": owner or None,
        "epoch": int(epoch) if epoch else None,
        "lease_ms": found["lease_ttl"] if found["lease"] else None,
        "stream_entries": found["length"],
        "unread_entries": min(unread, UNREAD_CAP),
        "unread_more": unread > UNREAD_CAP,
        "pending_keys_by_site": keys_by_site,
        "pending_units_by_site": units_by_site,
        "open_batches": [text(b) for b in found["open"]],
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
    shards = await _shards(redis, keys)
    return {
        "prefix": keys.prefix,
        "shards": keys.shards,
        "ingest": await ingest_format(redis, keys),
        "workers": {text(w): int(score) for w, score in workers},
        "active_shards": shards,
        "in_doubt_batches": sum(len(s["in_doubt"]) for s in shards),
        "pending_keys": sum(sum(s["pending_keys_by_site"].values()) for s in shards),
        "pending_units": sum(sum(s["pending_units_by_site"].values()) for s in shards),
        "unread_entries": sum(s["unread_entries"] for s in shards),
    }
