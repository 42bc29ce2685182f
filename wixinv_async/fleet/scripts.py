"""The fleet's atomic steps, as Lua scripts run by Redis, with thin typed async wrappers.

Each step touches one shard (one hash tag, so one Redis Cluster slot) and is idempotent, so
redis-py's automatic retry of a command whose reply was lost neither orphans nor duplicates it:

- ``claim``: renew my lease, or take a free shard: epoch + 1, and every batch of the older
  epoch still RESERVED (never allowed to leave) goes back to the accumulator, every SENDING one
  becomes IN_DOUBT. A retry finds the lease mine and renews.
- ``read_fold``: fenced by the lease; reads the shard's next entries after its read cursor
  (``rd``, the last entry id folded; XRANGE) inside the script, drops event ids already
  seen, nets each delta into the site's accumulator hash, emits NETTED for keys that cancel
  out, and moves the cursor, all in one step: an entry read is never left unfolded, and the
  worker never parses an entry. A retry after a lost reply reads the next entries (the ones
  before were folded and the cursor is past them). No consumer group: its pending list
  would only track what this one step already settles, at a cost per entry (XREADGROUP's
  PEL insert and its XCLAIM propagated to the append-only file, then XACK). At a takeover,
  an XAUTOCLAIM cursor adopts what a worker of the earlier version (which read through the
  group ``workers`` and folded in a second step) read and never folded; a stream without
  that group has nothing to adopt, and one with it is read on from the group's last
  delivered entry.
- ``begin``: fenced; refuses when the lease has less than ``lease_min_ms`` left or GCRA on
  Redis's ``TIME`` says wait; otherwise moves up to ``cap`` (at most 300) same-sign net deltas
  into a RESERVED batch-intent record. The batch id comes from the worker, so a retry returns
  the same record instead of a second one.
- ``mark_sent``: fenced; RESERVED -> SENDING just before the request leaves, only while the
  lease still has ``lease_min_ms``. A worker that lost its lease (SIGSTOP, partition) learns it
  here and does not send; the new owner returns its RESERVED batch instead of doubting it.
- ``pace``: fenced; takes GCRA slots for a request that carries no batch (the catalog
  detection), so the site's budget counts every request the fleet makes.
- ``finish``: by the batch's own sender; one verdict for the batch (V1, atomic: APPLIED /
  REFUSED (one entry: REJECTED; more: RETURNED and the site's cap halved, so a bad entry is
  isolated by bisection) / RETURNED / IN_DOUBT), or one per entry (``finish_each``: a V3 bulk
  answer, or entries refused before any request). A batch already final is left alone; one a
  takeover put IN_DOUBT may still be settled by its sender when the real answer comes late
  (it is never sent again either way).
- ``resolve``: a person's verdict on an IN_DOUBT batch (applied or not): its entries still in
  doubt get their final outcome.
- ``trim``: XTRIM MINID up to the read cursor, and below any entry still pending in the
  earlier version's group (never MAXLEN, which deletes entries not yet folded);
  ``trim_outcomes`` likewise below what every consumer group
  of the outcome stream has read and acknowledged.

Some keys are derived inside the scripts from the shard's tag (batch records, per-key event
lists, per-event results): all share the declared keys' hash tag, so they are in the same slot.

Outcome records: ``XADD out * e <event> s <status> b <batch> c <code> site p v [l] d`` (``l``
only for a delta that names a location), and each event's last outcome ``status|batch|code``
for :meth:`FleetProducer.outcome` (the ``outcome`` script) in a hash per hour of Redis time,
``rix:<hour>`` (field: the event id), kept ``keep_ms`` after its hour and listed in the ZSET
``rixb``: one HSET per script for all its events (a version before it wrote ``res:<event>``
strings, still read).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import _lua
from ._connect import FleetRedis, evalsha_many
from .shards import MAX_BATCH, KeySpace

__all__ = [
    "GROUP",
    "READ_COUNT",
    "SCRIPTS",
    "Begun",
    "Claim",
    "EntryVerdicts",
    "PlannedEntry",
    "ReadFold",
    "ShardScripts",
    "text",
]

GROUP = "workers"
"""The ingest streams' consumer group of the earlier version (workers read through it, then
folded in a second step): only adopted from at a takeover, never read through now."""
READ_COUNT = 500
"""Entries one ``read_fold`` reads at most (Redis serves nothing else during a script)."""

SCRIPTS = {
    "begin": _lua.BEGIN,
    "claim": _lua.CLAIM,
    "finish": _lua.FINISH,
    "heartbeat": _lua.HEARTBEAT,
    "mark_sent": _lua.MARK_SENT,
    "outcome": _lua.OUTCOME,
    "pace": _lua.PACE,
    "read_fold": _lua.READ_FOLD,
    "release": _lua.RELEASE,
    "resolve": _lua.RESOLVE,
    "trim": _lua.TRIM,
    "trim_outcomes": _lua.TRIM_OUTCOMES,
}
"""Every script's Lua text by step name (a test proxy recognises a step by its SHA1)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """``status``: CLAIMED (taken over: ``returned`` RESERVED batches went back, ``doubted``
    SENDING ones became IN_DOUBT), RENEWED, or TAKEN (``owner`` holds it)."""

    status: str
    epoch: int
    owner: str
    returned: int
    doubted: int

    @property
    def mine(self) -> bool:
        return self.status in ("CLAIMED", "RENEWED")


@dataclass(frozen=True, slots=True)
class ReadFold:
    """What one ``read_fold`` did: entries ``read`` (and acknowledged), ``folded`` into the
    accumulators, ``duplicates`` (event ids seen before), ``last_id`` (the last entry read, or
    the stream's last when nothing was new: where a wake-up read waits from), ``cursor`` (the
    XAUTOCLAIM cursor to go on with, ``"0-0"`` when done; ``""`` for new entries), and the ids
    of ``malformed`` entries (not written by a producer: acknowledged and dropped)."""

    read: int
    folded: int
    duplicates: int
    last_id: str
    cursor: str
    malformed: tuple[str, ...] = ()

    @classmethod
    def from_reply(cls, reply: list[Any]) -> ReadFold:
        read, folded, dups, last, cursor, *bad = reply
        return cls(int(read), int(folded), int(dups), text(last), text(cursor), tuple(bad))


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    """One net delta of a begun batch, with the events it nets."""

    product_id: str
    variant_id: str
    net: int
    events: tuple[tuple[str, int], ...]
    location_id: str = ""


@dataclass(frozen=True, slots=True)
class EntryVerdicts:
    """How a batch ends, entry by entry: ``statuses`` holds one ``(status, code)`` per entry
    in batch order (status APPLIED, REJECTED, IN_DOUBT or RETURNED); ``cap_op`` what becomes
    of the site's batch cap (``""`` leave it, ``"double"``, or a new cap as digits); ``code``
    the batch's own code (the whole request's failure, if any)."""

    statuses: tuple[tuple[str, str], ...]
    cap_op: str = ""
    code: str = ""


@dataclass(frozen=True, slots=True)
class Begun:
    """What ``begin`` answered: ``status`` BEGUN (``kind`` inc/dec and ``entries``), WAIT
    (``wait_us`` of pacing), LEASE (the lease is too short to send), or EMPTY."""

    status: str
    batch_id: str = ""
    kind: str = ""
    entries: tuple[PlannedEntry, ...] = ()
    wait_us: int = 0


def text(value: object) -> str:
    """A reply as text (the connections decode, but redis-py types replies as bytes | str)."""
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def _planned(encoded: str) -> tuple[PlannedEntry, ...]:
    planned = []
    for field, net, events in json.loads(encoded):
        product_id, _, rest = field.partition("\n")
        variant_id, _, location_id = rest.partition("\n")
        pairs = tuple((eid, int(d)) for eid, _, d in (ev.partition("\x1e") for ev in events))
        planned.append(PlannedEntry(product_id, variant_id, int(net), pairs, location_id))
    return tuple(planned)


class ShardScripts:
    """The scripts bound to one Redis connection and key space (``decode_responses=True``)."""

    def __init__(self, redis: FleetRedis, keys: KeySpace, *, keep_ms: int = 86_400_000) -> None:
        self.redis = redis
        self.keys = keys
        self.keep_ms = keep_ms
        self._claim = redis.register_script(_lua.CLAIM)
        self._heartbeat = redis.register_script(_lua.HEARTBEAT)
        self._release = redis.register_script(_lua.RELEASE)
        self._read_fold = redis.register_script(_lua.READ_FOLD)
        self._pace = redis.register_script(_lua.PACE)
        self._begin = redis.register_script(_lua.BEGIN)
        self._mark_sent = redis.register_script(_lua.MARK_SENT)
        self._finish = redis.register_script(_lua.FINISH)
        self._resolve = redis.register_script(_lua.RESOLVE)
        self._trim = redis.register_script(_lua.TRIM)
        self._trim_outcomes = redis.register_script(_lua.TRIM_OUTCOMES)

    async def claim(self, shard: int, worker: str, ttl_ms: int) -> Claim:
        keys, args = self._claim_call(shard, worker, ttl_ms)
        return _claim_of(await self._claim(keys=keys, args=args), worker)

    async def claim_many(
        self, shards: Sequence[int], worker: str, ttl_ms: int
    ) -> list[Claim | Exception]:
        """``claim`` of each shard, pipelined in one round trip (one per node of a cluster);
        a shard's error is its answer, not raised (on a cluster, its node's, down, while the
        other nodes answered)."""
        calls = [self._claim_call(shard, worker, ttl_ms) for shard in shards]
        replies = await evalsha_many(self.redis, self._claim, calls)
        return [r if isinstance(r, Exception) else _claim_of(r, worker) for r in replies]

    def _claim_call(
        self, shard: int, worker: str, ttl_ms: int
    ) -> tuple[list[str], list[str | int]]:
        k = self.keys
        return [k.key(shard, "lease"), k.key(shard, "epoch")], [
            worker,
            ttl_ms,
            k.tag(shard),
            self.keep_ms,
        ]

    async def heartbeat(self, worker: str, lease_ms: int) -> list[str]:
        """Record ``worker`` alive now and answer every worker heard from within ``lease_ms``
        (one clock for all: the workers key's server's)."""
        live: list[Any] = await self._heartbeat(keys=[self.keys.workers], args=[worker, lease_ms])
        return [text(w) for w in live]

    async def release(self, shard: int, token: str) -> bool:
        return bool(await self._release(keys=[self.keys.key(shard, "lease")], args=[token]))

    def _read_fold_call(
        self, shard: int, token: str, consumer: str, start: str, count: int, dedup_ms: int
    ) -> tuple[list[str], list[str | int]]:
        k = self.keys
        keys = [k.key(shard, n) for n in ("lease", "in", "seen", "sites", "rd")]
        args: list[str | int] = [token, GROUP, consumer, count, dedup_ms, k.tag(shard)]
        return keys, [*args, self.keep_ms, start]

    async def read_fold(
        self,
        shard: int,
        token: str,
        consumer: str,
        *,
        dedup_ms: int,
        start: str = ">",
        count: int = READ_COUNT,
    ) -> ReadFold:
        """Read up to ``count`` entries of the shard's stream (``start`` ``">"``: the next
        ones after its read cursor; an XAUTOCLAIM cursor: the earlier version's group's
        unfolded ones, adopted as ``consumer``), fold them and move on, in one step. Raises
        ``ResponseError`` ``FENCED`` when the lease is no longer ``token`` (then nothing was
        read)."""
        keys, args = self._read_fold_call(shard, token, consumer, start, count, dedup_ms)
        return ReadFold.from_reply(await self._read_fold(keys=keys, args=args))

    async def read_fold_many(
        self, shards: Sequence[tuple[int, str]], consumer: str, *, dedup_ms: int
    ) -> list[ReadFold | Exception]:
        """``read_fold`` of new entries for each ``(shard, token)``, pipelined in one round
        trip (one per node of a cluster); a shard's error is its answer, not raised: a
        ``ResponseError`` (FENCED), or on a cluster the error of its node (down, the cluster
        down) while the other nodes answered."""
        calls = [
            self._read_fold_call(shard, token, consumer, ">", READ_COUNT, dedup_ms)
            for shard, token in shards
        ]
        replies = await evalsha_many(self.redis, self._read_fold, calls)
        return [r if isinstance(r, Exception) else ReadFold.from_reply(r) for r in replies]

    async def begin(
        self,
        shard: int,
        token: str,
        site: str,
        *,
        interval_us: int,
        lease_min_ms: int,
        batch_id: str | None = None,
        max_entries: int = MAX_BATCH,
    ) -> Begun:
        """Reserve the site's next batch (see the module docstring). Pass the ``batch_id`` of
        an earlier attempt to learn whether it was begun."""
        k = self.keys
        batch_id = batch_id or uuid.uuid4().hex
        keys = [
            k.key(shard, "lease"),
            k.site_key(shard, "gcra", site),
            k.site_key(shard, "acc", site),
            k.batch(shard, batch_id),
            k.key(shard, "sites"),
            k.site_key(shard, "cap", site),
        ]
        args: list[str | int] = [
            *(token, batch_id, site, interval_us, lease_min_ms, k.tag(shard), max_entries)
        ]
        reply: list[Any] = await self._begin(keys=keys, args=args)
        status = reply[0]
        if status == "BEGUN":
            return Begun(status, batch_id, reply[1], _planned(reply[2]))
        if status == "WAIT":
            return Begun(status, batch_id, wait_us=int(reply[1]))
        return Begun(status, batch_id)

    async def mark_sent(self, shard: int, token: str, batch_id: str, lease_min_ms: int) -> str:
        """``"OK"`` when the request may leave now, else why not (FENCED, LEASE, a state)."""
        keys = [self.keys.key(shard, "lease"), self.keys.batch(shard, batch_id)]
        reply: list[str] = await self._mark_sent(keys=keys, args=[token, lease_min_ms])
        return reply[0] if reply[0] == "OK" else reply[1]

    async def finish(
        self, shard: int, token: str, batch_id: str, verdict: str, code: str = ""
    ) -> str:
        """Settle the whole batch with one verdict (APPLIED, REFUSED, RETURNED, IN_DOUBT);
        answers the state it ended in (or MISSING / NOT_MINE)."""
        return await self._finish_call(shard, token, batch_id, [verdict, code, ""])

    async def finish_each(
        self, shard: int, token: str, batch_id: str, settled: EntryVerdicts
    ) -> str:
        """Settle the batch entry by entry (:class:`EntryVerdicts`); answers the state it
        ended in: one status when every entry has it, IN_DOUBT when some are, else SETTLED."""
        statuses = [part for status in settled.statuses for part in status]
        return await self._finish_call(
            shard, token, batch_id, ["EACH", settled.code, settled.cap_op, *statuses]
        )

    async def _finish_call(self, shard: int, token: str, batch_id: str, tail: list[str]) -> str:
        k = self.keys
        verdict, code, *rest = tail
        args: list[str | int] = [token, batch_id, verdict, code, k.tag(shard), self.keep_ms]
        reply: list[Any] = await self._finish(keys=[k.batch(shard, batch_id)], args=[*args, *rest])
        return str(reply[0])

    async def pace(
        self, shard: int, token: str, site: str, *, interval_us: int, lease_min_ms: int, slots: int
    ) -> tuple[str, int]:
        """Take ``slots`` of the site's pacing for requests that carry no batch (catalog
        detection): ``("OK", 0)``, ``("WAIT", us)`` or ``("LEASE", ttl_ms)``. Raises
        ``ResponseError`` FENCED when the lease is not ``token``."""
        keys = [self.keys.key(shard, "lease"), self.keys.site_key(shard, "gcra", site)]
        args: list[str | int] = [token, interval_us, lease_min_ms, slots]
        reply: list[Any] = await self._pace(keys=keys, args=args)
        return str(reply[0]), int(reply[1])

    async def resolve(
        self, shard: int, batch_id: str, *, applied: bool, code: str
    ) -> tuple[str, int]:
        """Settle the entries of an IN_DOUBT batch still in doubt as APPLIED or REJECTED with
        ``code``: ``(state it ended in, entries resolved)``; a batch not in doubt is left alone
        (``(its state, 0)``, ``MISSING`` when there is none)."""
        k = self.keys
        args: list[str | int] = [batch_id, int(applied), k.tag(shard), self.keep_ms, code]
        reply: list[Any] = await self._resolve(keys=[k.batch(shard, batch_id)], args=args)
        return str(reply[0]), int(reply[1])

    async def trim_outcomes(self, shard: int, age_floor: str) -> tuple[int, str]:
        """XTRIM the outcome stream below what every consumer group has read and acknowledged
        (``age_floor``, a stream id, when it has no groups): ``(entries removed, floor)``."""
        reply: list[Any] = await self._trim_outcomes(
            keys=[self.keys.key(shard, "out")], args=[age_floor]
        )
        return int(reply[0]), text(reply[1])

    async def trim(self, shard: int, group: str = "workers") -> int:
        """XTRIM the ingest stream below its read cursor (and below any entry still pending
        in ``group``, read by a worker of an earlier version); entries removed."""
        keys = [self.keys.key(shard, "in"), self.keys.key(shard, "rd")]
        return int(await self._trim(keys=keys, args=[group]))


def _claim_of(reply: Any, worker: str) -> Claim:
    status = reply[0]
    if status == "TAKEN":
        return Claim(status, 0, reply[1], 0, 0)
    return Claim(status, int(reply[1]), worker, int(reply[2]), int(reply[3]))
