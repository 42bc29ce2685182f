"""FleetAdmin: what a person does with the fleet's state: list the batches in doubt, resolve
them, trim the outcome streams, switch the format producers write ingest entries in.

A batch is IN_DOUBT when its request may have been applied and no answer says (a worker died
after the request left, a timeout, a V3 entry without a trustworthy result). The fleet never
sends it again. Whoever finds out what happened (Wix's inventory, a webhook, the site's
owner) tells the fleet::

    async with FleetAdmin(url) as admin:
        for batch in await admin.in_doubt():
            print(batch.batch_id, batch.site, [(e.product_id, e.net) for e in batch.entries])
        await admin.resolve(batch_id, applied=True)

``resolve`` settles the batch's entries still in doubt, atomically in the batch's shard:
``applied=True`` makes each of their events APPLIED (code ``RESOLVED``), ``applied=False``
REJECTED (code ``RESOLVED_NOT_APPLIED``: final, never sent; submit again with a new event id
to apply it after all). Both go to the outcome stream and the producer's ``outcome``. A
batch its own sender settles late (its answer came after a takeover) leaves doubt by itself;
resolving a batch no longer in doubt changes nothing and says its state.

Every method is safe to repeat, so a connection that died with its server gets one more try;
what still fails raises :class:`~wixinv_async.errors.FleetUnavailable` or
:class:`~wixinv_async.errors.FleetError` (a ``resolve`` whose reply was lost and that is
tried again answers the state it left the batch in, with 0 entries resolved).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from ..errors import ConfigurationError, InvalidInputError
from ._boundary import redis_call
from ._connect import FleetRedis, connect
from .producer import INGEST, ingest_packed
from .scripts import ShardScripts, text
from .shards import KeySpace

__all__ = [
    "FleetAdmin",
    "InDoubtBatch",
    "InDoubtEntry",
    "Resolution",
    "batch_record",
    "ingest_format",
]

RESOLVED = "RESOLVED"
RESOLVED_NOT_APPLIED = "RESOLVED_NOT_APPLIED"


@dataclass(frozen=True, slots=True)
class InDoubtEntry:
    """One net delta of a batch in doubt, with the events (``(event id, delta)``) it nets."""

    product_id: str
    variant_id: str
    location_id: str
    net: int
    events: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class InDoubtBatch:
    """A batch in doubt: where it is, whose, why (``code``: ``TAKEOVER`` when its worker was
    gone, else the request's failure or ``ITEM_UNKNOWN``), and its entries still in doubt."""

    shard: int
    batch_id: str
    site: str
    kind: str
    code: str
    doubted_ms: int
    """Redis time (ms) at which it was put in doubt."""
    entries: tuple[InDoubtEntry, ...]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What ``resolve`` did: the batch's ``state`` afterwards and how many of its entries it
    settled (0 when the batch was not in doubt; state ``MISSING`` when there is none)."""

    batch_id: str
    state: str
    resolved: int


class FleetAdmin:
    """The fleet's state under ``prefix`` for a person (see the module doc)."""

    def __init__(
        self,
        redis: str | FleetRedis,
        *,
        prefix: str = "wixfleet",
        shards: int = 1024,
        keep_ms: int = 86_400_000,
        cluster: bool = False,
    ) -> None:
        self.keys = KeySpace(prefix, shards)
        if isinstance(redis, str):
            self.redis: FleetRedis = connect(redis, cluster=cluster)
            self._owned = True
        else:
            self.redis, self._owned = redis, False
        self.scripts = ShardScripts(self.redis, self.keys, keep_ms=keep_ms)

    def __repr__(self) -> str:
        return f"FleetAdmin(prefix={self.keys.prefix!r}, shards={self.keys.shards})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self.redis.aclose()

    async def in_doubt(self) -> list[InDoubtBatch]:
        """Every batch in doubt, oldest first within each shard."""
        return await redis_call(self.redis, "in_doubt", self._in_doubt, repeatable=True)

    async def _in_doubt(self) -> list[InDoubtBatch]:
        keys = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(keys.shards):
                pipe.zrange(keys.key(shard, "doubt"), 0, -1, withscores=True)
            per_shard: list[Any] = await pipe.execute()
        found = []
        for shard, ids in enumerate(per_shard):
            for batch_id, score in ids:
                record = await self.redis.hgetall(keys.batch(shard, text(batch_id)))
                if record:
                    found.append(batch_record(shard, text(batch_id), int(score), record))
        return found

    async def resolve(self, batch_id: str, *, applied: bool) -> Resolution:
        """Settle the entries of ``batch_id`` still in doubt (see the module doc)."""
        if not isinstance(batch_id, str) or not batch_id or any(c in batch_id for c in "{}*"):
            raise InvalidInputError("batch_id", batch_id, "must be a batch id from in_doubt()")
        if not isinstance(applied, bool):
            raise InvalidInputError("applied", applied, "must be True or False")
        return await redis_call(
            self.redis, "resolve", lambda: self._resolve(batch_id, applied), repeatable=True
        )

    async def _resolve(self, batch_id: str, applied: bool) -> Resolution:
        shard = await self._shard_of(batch_id)
        if shard is None:
            return Resolution(batch_id, "MISSING", 0)
        code = RESOLVED if applied else RESOLVED_NOT_APPLIED
        state, resolved = await self.scripts.resolve(shard, batch_id, applied=applied, code=code)
        return Resolution(batch_id, state, resolved)

    async def _shard_of(self, batch_id: str) -> int | None:
        keys = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(keys.shards):
                pipe.exists(keys.batch(shard, batch_id))
            present: list[int] = await pipe.execute()
        return next((shard for shard, there in enumerate(present) if there), None)

    async def pack_ingest(self, packed: bool = True) -> None:
        """Have producers write each ingest entry as one packed field (``packed=False``: as
        separate fields again), which costs Redis less to fold. Only once every worker reads
        packed entries (this version on): an earlier worker drops them as malformed. A
        producer reads the setting when it first connects."""
        if not isinstance(packed, bool):
            raise InvalidInputError("packed", packed, "must be True or False")
        value = "packed" if packed else "fields"
        await redis_call(
            self.redis,
            "pack_ingest",
            lambda: self.redis.hset(self.keys.config, INGEST, value),
            repeatable=True,
        )

    async def ingest_format(self) -> str:
        """How a producer that connects now writes ingest entries: ``"packed"`` or
        ``"fields"`` (see :meth:`pack_ingest`)."""
        return await redis_call(
            self.redis,
            "ingest_format",
            lambda: ingest_format(self.redis, self.keys),
            repeatable=True,
        )

    async def check_fleet(self) -> None:
        """Raise :class:`~wixinv_async.errors.ConfigurationError` unless a producer or worker
        has used ``prefix`` (a mistyped prefix names no fleet: a switch there would change
        nothing that runs), with this shard count."""
        key = self.keys.config
        stored = text(
            await redis_call(
                self.redis, "check_fleet", lambda: self.redis.hget(key, "shards"), repeatable=True
            )
        )
        prefix = self.keys.prefix
        if not stored:
            raise ConfigurationError(
                f"prefix={prefix!r}: no fleet uses it (no producer or worker has connected)"
            )
        if int(stored) != self.keys.shards:
            raise ConfigurationError(
                f"shards={self.keys.shards}: the fleet under prefix {prefix!r} uses {stored}"
            )

    async def trim_outcomes(self) -> int:
        """Trim every shard's outcome stream below what each of its consumer groups has read
        and acknowledged (a stream without groups: below ``keep_ms`` of age); entries
        removed. Workers do this on their own shards every ``trim_every`` ticks."""
        return await redis_call(self.redis, "trim_outcomes", self._trim_outcomes, repeatable=True)

    async def _trim_outcomes(self) -> int:
        seconds, _ = await self.redis.time()
        floor = f"{max(0, seconds * 1000 - self.scripts.keep_ms)}-0"
        removed = 0
        for shard in range(self.keys.shards):
            removed += (await self.scripts.trim_outcomes(shard, floor))[0]
        return removed


async def ingest_format(redis: FleetRedis, keys: KeySpace) -> str:
    """The fleet's ingest entry format: ``"packed"`` or ``"fields"``."""
    return "packed" if await ingest_packed(redis, keys) else "fields"


def batch_record(shard: int, batch_id: str, score: int, raw: Mapping[Any, Any]) -> InDoubtBatch:
    """A batch record read from Redis as an :class:`InDoubtBatch` (its entries in doubt)."""
    record = {text(k): text(v) for k, v in raw.items()}
    entries = json.loads(record["entries"])
    doubt = record.get("doubt", "")
    indices = [int(i) for i in doubt.split(",")] if doubt else range(len(entries))
    picked = []
    for index in indices:
        field, net, events = entries[index]
        product_id, _, rest = field.partition("\n")
        variant_id, _, location_id = rest.partition("\n")
        pairs = tuple((eid, int(d)) for eid, _, d in (ev.partition("\x1e") for ev in events))
        picked.append(InDoubtEntry(product_id, variant_id, location_id, int(net), pairs))
    return InDoubtBatch(
        shard,
        batch_id,
        record.get("site", ""),
        record.get("kind", ""),
        record.get("code", ""),
        score,
        tuple(picked),
    )
