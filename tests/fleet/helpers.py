"""Shared helpers of the fleet tests (no fakes: they read and write the real server)."""

from __future__ import annotations

import contextlib

from wixinv_async.fleet.scripts import GROUP, READ_COUNT, ShardScripts

__all__ = ["GROUP", "VARIANTS", "fold_all"]

VARIANTS = [f"00000000-0000-0000-0000-{i:012d}" for i in range(400)]


async def fold_all(
    scripts: ShardScripts, shard: int, token: str, consumer: str = "w1"
) -> tuple[int, int]:
    """read_fold every new entry of the shard's stream; ``(folded, duplicates)`` in all."""
    stream = scripts.keys.key(shard, "in")
    with contextlib.suppress(Exception):  # BUSYGROUP: it exists
        await scripts.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    folded = dups = 0
    while True:
        done = await scripts.read_fold(shard, token, consumer, dedup_ms=60_000)
        folded, dups = folded + done.folded, dups + done.duplicates
        if done.read < READ_COUNT:
            return folded, dups
