"""The fleet's atomic steps, as Lua scripts run by Redis, with thin typed async wrappers.

Each step touches one shard (one hash tag, so one Redis Cluster slot) and is idempotent, so
redis-py's automatic retry of a command whose reply was lost neither orphans nor duplicates it:

- ``claim``: renew my lease, or take a free shard: epoch + 1, and every batch of the older
  epoch still RESERVED (never allowed to leave) goes back to the accumulator, every SENDING one
  becomes IN_DOUBT. A retry finds the lease mine and renews.
- ``fold``: fenced by the lease; drops event ids already seen, nets each delta into the site's
  accumulator hash, emits NETTED for keys that cancel out, and XACKs, all in one step. A retry
  sees the ids as duplicates.
- ``begin``: fenced; refuses when the lease has less than ``lease_min_ms`` left or GCRA on
  Redis's ``TIME`` says wait; otherwise moves up to ``cap`` (at most 300) same-sign net deltas
  into a RESERVED batch-intent record. The batch id comes from the worker, so a retry returns
  the same record instead of a second one.
- ``mark_sent``: fenced; RESERVED -> SENDING just before the request leaves, only while the
  lease still has ``lease_min_ms``. A worker that lost its lease (SIGSTOP, partition) learns it
  here and does not send; the new owner returns its RESERVED batch instead of doubting it.
- ``finish``: by the batch's own sender; APPLIED / REFUSED (one entry: REJECTED; more: RETURNED
  and the site's cap halved, so a bad entry is isolated by bisection) / RETURNED / IN_DOUBT.
  A batch already final is left alone; an IN_DOUBT one may still be settled by its sender when
  the real answer comes late (it is never sent again either way).
- ``trim``: XTRIM MINID up to the oldest pending entry (never MAXLEN, which deletes entries
  that were read but not folded).

Some keys are derived inside the scripts from the shard's tag (batch records, per-key event
lists, per-event results): all share the declared keys' hash tag, so they are in the same slot.

Outcome records: ``XADD out * e <event> s <status> b <batch> c <code> site p v d`` and a
``res:<event>`` string ``status|batch|code`` kept ``keep_ms`` for :meth:`FleetProducer.outcome`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from .shards import MAX_BATCH, KeySpace

__all__ = [
    "SCRIPTS",
    "Begun",
    "Claim",
    "IngestEntry",
    "PlannedEntry",
    "ShardScripts",
    "parse_entry",
    "text",
]

_PRELUDE = r"""
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function split(s, sep)
  local at = string.find(s, sep, 1, true)
  return string.sub(s, 1, at - 1), string.sub(s, at + 1)
end

-- One outcome record per event of a key.
local function emit(tag, out, keep, site, field, status, batch, code, events)
  local p, v = split(field, '\n')
  for _, ev in ipairs(events) do
    local eid, d = split(ev, '\30')
    redis.call('XADD', out, '*', 'e', eid, 's', status, 'b', batch, 'c', code,
               'site', site, 'p', p, 'v', v, 'd', d)
    redis.call('SET', tag .. ':res:' .. eid, status .. '|' .. batch .. '|' .. code, 'PX', keep)
  end
end

-- Fold events back into the accumulator (a RETURNED batch): they net again with new ones.
local function give_back(tag, out, keep, sites, site, entries)
  local acc = tag .. ':acc:' .. site
  for _, e in ipairs(entries) do
    local field, net, events = e[1], e[2], e[3]
    local evkey = tag .. ':ev:' .. site .. ':' .. field
    local total = redis.call('HINCRBY', acc, field, net)
    for _, ev in ipairs(events) do redis.call('RPUSH', evkey, ev) end
    if total == 0 then
      redis.call('HDEL', acc, field)
      emit(tag, out, keep, site, field, 'NETTED', '', '', redis.call('LRANGE', evkey, 0, -1))
      redis.call('DEL', evkey)
    end
  end
  if redis.call('HLEN', acc) > 0 then
    redis.call('ZADD', sites, 'NX', math.floor(now_us() / 1000), site)
  end
end

local function emit_all(tag, out, keep, site, entries, status, batch, code)
  for _, e in ipairs(entries) do
    emit(tag, out, keep, site, e[1], status, batch, code, e[3])
  end
end

-- Settle a batch: the one place its state leaves RESERVED, SENDING or IN_DOUBT.
local function settle(tag, batch_id, state, code, keep)
  local bkey = tag .. ':batch:' .. batch_id
  local site = redis.call('HGET', bkey, 'site')
  local entries = cjson.decode(redis.call('HGET', bkey, 'entries'))
  local out, sites = tag .. ':out', tag .. ':sites'
  if state == 'RETURNED' then
    give_back(tag, out, keep, sites, site, entries)
  else
    emit_all(tag, out, keep, site, entries, state, batch_id, code)
  end
  redis.call('HSET', bkey, 'state', state, 'code', code,
             'settled_us', string.format('%d', now_us()))
  redis.call('ZREM', tag .. ':open', batch_id)
  if state == 'IN_DOUBT' then
    redis.call('ZADD', tag .. ':doubt', math.floor(now_us() / 1000), batch_id)
  else
    redis.call('ZREM', tag .. ':doubt', batch_id)
    redis.call('PEXPIRE', bkey, keep)
  end
  return #entries
end
"""

_CLAIM = (
    _PRELUDE
    + r"""
-- KEYS: lease, epoch. ARGV: worker, ttl_ms, tag, keep_ms
local cur = redis.call('GET', KEYS[1])
if cur then
  local owner, epoch = split(cur, '|')
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {'RENEWED', tonumber(epoch), 0, 0}
  end
  return {'TAKEN', owner, redis.call('PTTL', KEYS[1]), 0}
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
local tag, keep = ARGV[3], ARGV[4]
local returned, doubted = 0, 0
for _, id in ipairs(redis.call('ZRANGE', tag .. ':open', 0, -1)) do
  local state = redis.call('HGET', tag .. ':batch:' .. id, 'state')
  if state == 'RESERVED' then
    settle(tag, id, 'RETURNED', 'TAKEOVER', keep)
    returned = returned + 1
  elseif state == 'SENDING' then
    settle(tag, id, 'IN_DOUBT', 'TAKEOVER', keep)
    doubted = doubted + 1
  else
    redis.call('ZREM', tag .. ':open', id)
  end
end
return {'CLAIMED', epoch, returned, doubted}
"""
)

_RELEASE = r"""
-- KEYS: lease. ARGV: token
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

_FOLD = (
    _PRELUDE
    + r"""
-- KEYS: lease, stream, seen, sites. ARGV: token, group, dedup_ms, tag, keep_ms,
-- then 6 per entry: stream id, event id, site, product, variant, delta
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
local tag, keep = ARGV[4], ARGV[5]
local out = tag .. ':out'
local now = math.floor(now_us() / 1000)
local folded, dups, ids = 0, 0, {}
for i = 6, #ARGV, 6 do
  ids[#ids + 1] = ARGV[i]
  local eid, site, d = ARGV[i + 1], ARGV[i + 2], ARGV[i + 5]
  if redis.call('ZADD', KEYS[3], 'NX', now, eid) == 0 then
    dups = dups + 1
  else
    local field = ARGV[i + 3] .. '\n' .. ARGV[i + 4]
    local acc = tag .. ':acc:' .. site
    local evkey = tag .. ':ev:' .. site .. ':' .. field
    local net = redis.call('HINCRBY', acc, field, d)
    redis.call('RPUSH', evkey, eid .. '\30' .. d)
    if net == 0 then
      redis.call('HDEL', acc, field)
      emit(tag, out, keep, site, field, 'NETTED', '', '', redis.call('LRANGE', evkey, 0, -1))
      redis.call('DEL', evkey)
      if redis.call('HLEN', acc) == 0 then redis.call('ZREM', KEYS[4], site) end
    else
      redis.call('ZADD', KEYS[4], 'NX', now, site)
    end
    folded = folded + 1
  end
end
if #ids > 0 then redis.call('XACK', KEYS[2], ARGV[2], unpack(ids)) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[3]))
return {folded, dups}
"""
)

_BEGIN = (
    _PRELUDE
    + r"""
-- KEYS: lease, gcra, acc, batch, sites, cap.
-- ARGV: token, batch id, site, interval_us, lease_min_ms, tag, max_entries
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {'BEGUN', redis.call('HGET', KEYS[4], 'kind'), redis.call('HGET', KEYS[4], 'entries')}
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[5]) then return {'LEASE', ttl} end
local site, tag = ARGV[3], ARGV[6]
if redis.call('HLEN', KEYS[3]) == 0 then
  redis.call('ZREM', KEYS[5], site)
  return {'EMPTY'}
end
local now = now_us()
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < tat then return {'WAIT', tat - now} end
local cap = math.min(tonumber(redis.call('GET', KEYS[6]) or ARGV[7]), tonumber(ARGV[7]))
local picked, seen, sign, cursor = {}, {}, 0, '0'
repeat
  local r = redis.call('HSCAN', KEYS[3], cursor, 'COUNT', 300)
  cursor = r[1]
  for j = 1, #r[2], 2 do
    local field, net = r[2][j], tonumber(r[2][j + 1])
    if sign == 0 then sign = (net > 0) and 1 or -1 end
    if #picked < cap and not seen[field] and (net > 0) == (sign > 0) then
      seen[field] = true
      picked[#picked + 1] = {field, net}
    end
  end
until cursor == '0' or #picked >= cap
local entries = {}
for _, e in ipairs(picked) do
  local evkey = tag .. ':ev:' .. site .. ':' .. e[1]
  entries[#entries + 1] = {e[1], e[2], redis.call('LRANGE', evkey, 0, -1)}
  redis.call('DEL', evkey)
  redis.call('HDEL', KEYS[3], e[1])
end
local next_tat = math.max(tat, now) + tonumber(ARGV[4])
redis.call('SET', KEYS[2], string.format('%d', next_tat), 'PX',
           math.floor((next_tat - now) / 1000) + 1000)
local kind = (sign > 0) and 'inc' or 'dec'
local encoded = cjson.encode(entries)
local _, epoch = split(ARGV[1], '|')
redis.call('HSET', KEYS[4], 'state', 'RESERVED', 'token', ARGV[1], 'epoch', epoch, 'site', site,
           'kind', kind, 'entries', encoded, 'began_us', string.format('%d', now))
redis.call('ZADD', tag .. ':open', math.floor(now / 1000), ARGV[2])
if redis.call('HLEN', KEYS[3]) == 0 then redis.call('ZREM', KEYS[5], site) end
return {'BEGUN', kind, encoded}
"""
)

_MARK_SENT = r"""
-- KEYS: lease, batch. ARGV: token, lease_min_ms
local state = redis.call('HGET', KEYS[2], 'state')
local mine = redis.call('HGET', KEYS[2], 'token') == ARGV[1]
if state == 'SENDING' and mine then return {'OK'} end
if state ~= 'RESERVED' or not mine then return {'NO', state or 'MISSING'} end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'NO', 'FENCED'} end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then return {'NO', 'LEASE'} end
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], 'state', 'SENDING', 'sent_us', t[1] .. string.format('%06d', t[2]))
return {'OK'}
"""

_FINISH = (
    _PRELUDE
    + r"""
-- KEYS: batch, cap. ARGV: token, batch id, verdict, code, tag, keep_ms
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'MISSING', 0} end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return {'NOT_MINE', 0} end
local open = state == 'RESERVED' or state == 'SENDING' or state == 'IN_DOUBT'
if not open or (state == 'IN_DOUBT' and ARGV[3] == 'IN_DOUBT') then return {state, 0} end
local verdict, tag, keep = ARGV[3], ARGV[5], ARGV[6]
local entries = #cjson.decode(redis.call('HGET', KEYS[1], 'entries'))
local cap = tonumber(redis.call('GET', KEYS[2]) or '300')
if verdict == 'APPLIED' then
  if cap * 2 >= 300 then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], cap * 2) end
elseif verdict == 'REFUSED' then
  if entries == 1 then
    verdict = 'REJECTED'
  else
    redis.call('SET', KEYS[2], math.ceil(entries / 2))
    verdict = 'RETURNED'
  end
end
settle(tag, ARGV[2], verdict, ARGV[4], keep)
return {verdict, entries}
"""
)

_TRIM = r"""
-- KEYS: stream. ARGV: group. Trim below the oldest pending entry, or below the last delivered.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
local minid = nil
if tonumber(pending[1]) > 0 then
  minid = pending[2]
else
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
    if info['name'] == ARGV[1] then minid = info['last-delivered-id'] end
  end
end
if not minid then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', minid)
"""


SCRIPTS = {
    "begin": _BEGIN,
    "claim": _CLAIM,
    "finish": _FINISH,
    "fold": _FOLD,
    "mark_sent": _MARK_SENT,
    "release": _RELEASE,
    "trim": _TRIM,
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
class IngestEntry:
    """One delta as it sits in a shard's ingest stream."""

    stream_id: str
    event_id: str
    site: str
    product_id: str
    variant_id: str
    delta: int


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    """One net delta of a begun batch, with the events it nets."""

    product_id: str
    variant_id: str
    net: int
    events: tuple[tuple[str, int], ...]


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


def parse_entry(stream_id: str, fields: dict[str, str]) -> IngestEntry | None:
    """An ingest stream entry, or ``None`` when it is malformed (not written by a producer)."""
    try:
        delta = int(fields["d"])
        return IngestEntry(stream_id, fields["e"], fields["site"], fields["p"], fields["v"], delta)
    except (KeyError, ValueError):
        return None


def _planned(encoded: str) -> tuple[PlannedEntry, ...]:
    planned = []
    for field, net, events in json.loads(encoded):
        product_id, _, variant_id = field.partition("\n")
        pairs = tuple((eid, int(d)) for eid, _, d in (ev.partition("\x1e") for ev in events))
        planned.append(PlannedEntry(product_id, variant_id, int(net), pairs))
    return tuple(planned)


class ShardScripts:
    """The scripts bound to one Redis connection and key space (``decode_responses=True``)."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace, *, keep_ms: int = 86_400_000) -> None:
        self.redis = redis
        self.keys = keys
        self.keep_ms = keep_ms
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._fold = redis.register_script(_FOLD)
        self._begin = redis.register_script(_BEGIN)
        self._mark_sent = redis.register_script(_MARK_SENT)
        self._finish = redis.register_script(_FINISH)
        self._trim = redis.register_script(_TRIM)

    async def claim(self, shard: int, worker: str, ttl_ms: int) -> Claim:
        k = self.keys
        reply: list[Any] = await self._claim(
            keys=[k.key(shard, "lease"), k.key(shard, "epoch")],
            args=[worker, ttl_ms, k.tag(shard), self.keep_ms],
        )
        status = reply[0]
        if status == "TAKEN":
            return Claim(status, 0, reply[1], 0, 0)
        return Claim(status, int(reply[1]), worker, int(reply[2]), int(reply[3]))

    async def release(self, shard: int, token: str) -> bool:
        return bool(await self._release(keys=[self.keys.key(shard, "lease")], args=[token]))

    async def fold(
        self, shard: int, token: str, group: str, entries: Sequence[IngestEntry], dedup_ms: int
    ) -> tuple[int, int]:
        """Fold ``entries`` and XACK them; ``(folded, duplicates)``. Raises ``ResponseError``
        ``FENCED`` when the lease is no longer ``token``."""
        k = self.keys
        args: list[str | int] = [token, group, dedup_ms, k.tag(shard), self.keep_ms]
        for e in entries:
            args += [e.stream_id, e.event_id, e.site, e.product_id, e.variant_id, e.delta]
        keys = [k.key(shard, n) for n in ("lease", "in", "seen", "sites")]
        reply: list[int] = await self._fold(keys=keys, args=args)
        return int(reply[0]), int(reply[1])

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
        """Settle the batch; answers the state it ended in (or MISSING / NOT_MINE)."""
        k = self.keys
        batch = k.batch(shard, batch_id)
        site = text(await self.redis.hget(batch, "site"))
        cap = k.site_key(shard, "cap", site)
        args: list[str | int] = [token, batch_id, verdict, code, k.tag(shard), self.keep_ms]
        reply: list[Any] = await self._finish(keys=[batch, cap], args=args)
        return str(reply[0])

    async def trim(self, shard: int, group: str) -> int:
        """XTRIM the ingest stream up to its oldest pending entry; entries removed."""
        return int(await self._trim(keys=[self.keys.key(shard, "in")], args=[group]))
