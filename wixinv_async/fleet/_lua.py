"""The Lua text of the fleet's scripts (the typed wrappers and the contract are in
:mod:`~wixinv_async.fleet.scripts`).

An accumulator field, a batch entry's key, is ``product\\nvariant`` or, for a delta that names
a (Catalog V3) location, ``product\\nvariant\\nlocation``: fields written before locations
existed read as "no location". A batch record's ``results`` holds one ``[status, code]`` per
entry once it is settled, ``doubt`` the comma-separated indices still in doubt.
"""

from __future__ import annotations

__all__ = [
    "BEGIN",
    "CLAIM",
    "FINISH",
    "HEARTBEAT",
    "MARK_SENT",
    "OUTCOME",
    "PACE",
    "READ_FOLD",
    "RELEASE",
    "RESOLVE",
    "TRIM",
    "TRIM_OUTCOMES",
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

-- product, variant, location ('' when the key names none) of an accumulator field
local function parts(field)
  local p, rest = split(field, '\n')
  local at = string.find(rest, '\n', 1, true)
  if at then return p, string.sub(rest, 1, at - 1), string.sub(rest, at + 1) end
  return p, rest, ''
end

-- Each event's last outcome, for FleetProducer.outcome, goes to a per-shard hash per hour of
-- Redis time (rix:<hour>, expiring keep_ms after its hour) listed in the ZSET rixb: a script
-- writes all its outcomes in one HSET (flush_results), where one key per event cost a key,
-- an expiry and an append-only entry each.
local RESULT_HOUR_MS = 3600000
local emitted = {}

-- One outcome record per event of a key.
local function emit(tag, out, keep, site, field, status, batch, code, events)
  local p, v, l = parts(field)
  local value = status .. '|' .. batch .. '|' .. code
  for _, ev in ipairs(events) do
    local eid, d = split(ev, '\30')
    if l == '' then
      redis.call('XADD', out, '*', 'e', eid, 's', status, 'b', batch, 'c', code,
                 'site', site, 'p', p, 'v', v, 'd', d)
    else
      redis.call('XADD', out, '*', 'e', eid, 's', status, 'b', batch, 'c', code,
                 'site', site, 'p', p, 'v', v, 'l', l, 'd', d)
    end
    emitted[#emitted + 1] = eid
    emitted[#emitted + 1] = value
  end
end

-- Write the outcomes emit collected (once per script, after every emit).
local function flush_results(tag, keep)
  if #emitted == 0 then return end
  local now = math.floor(now_us() / 1000)
  local hour = math.floor(now / RESULT_HOUR_MS)
  local key = tag .. ':rix:' .. hour
  if redis.call('EXISTS', key) == 0 then
    -- A value longer than hash-max-ziplist-value (64) makes the new hash a hashtable at once:
    -- as a ziplist its first 512 fields would each be found by scanning the list.
    redis.call('HSET', key, '', 'the last outcome of each event settled in hour ' .. hour ..
               ': field event id, value status|batch|code')
  end
  for at = 1, #emitted, 2000 do  -- unpack is bounded by Lua's C stack
    redis.call('HSET', key, unpack(emitted, at, math.min(at + 1999, #emitted)))
  end
  redis.call('PEXPIRE', key, (hour + 1) * RESULT_HOUR_MS - now + tonumber(keep))
  local hours = tag .. ':rixb'
  redis.call('ZADD', hours, hour, hour)
  local oldest = hour - math.ceil(tonumber(keep) / RESULT_HOUR_MS) - 1
  redis.call('ZREMRANGEBYSCORE', hours, '-inf', '(' .. oldest)
  emitted = {}
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

-- Settle a batch: the one place its state leaves RESERVED, SENDING or IN_DOUBT.
-- statuses: one {status, code} per entry (APPLIED, REJECTED, IN_DOUBT or RETURNED), or nil
-- for every entry ending `state` with `code`. Entries a takeover already reported IN_DOUBT
-- are not reported IN_DOUBT again.
local function settle(tag, batch_id, keep, statuses, state, code)
  local bkey = tag .. ':batch:' .. batch_id
  local site = redis.call('HGET', bkey, 'site')
  local entries = cjson.decode(redis.call('HGET', bkey, 'entries'))
  local prior = redis.call('HGET', bkey, 'state')
  local out, sites = tag .. ':out', tag .. ':sites'
  local doubt, back, results, same = {}, {}, {}, nil
  for i, e in ipairs(entries) do
    local s, c = state, code
    if statuses then s, c = statuses[i][1], statuses[i][2] end
    results[i] = {s, c}
    if same == nil then same = s elseif same ~= s then same = false end
    if s == 'RETURNED' then
      back[#back + 1] = e
    elseif s == 'IN_DOUBT' then
      doubt[#doubt + 1] = tostring(i - 1)
      if prior ~= 'IN_DOUBT' then emit(tag, out, keep, site, e[1], s, batch_id, c, e[3]) end
    else
      emit(tag, out, keep, site, e[1], s, batch_id, c, e[3])
    end
  end
  if #back > 0 then give_back(tag, out, keep, sites, site, back) end
  local final = same or ((#doubt > 0) and 'IN_DOUBT' or 'SETTLED')
  redis.call('HSET', bkey, 'state', final, 'code', code or '', 'results', cjson.encode(results),
             'doubt', table.concat(doubt, ','), 'settled_us', string.format('%d', now_us()))
  redis.call('ZREM', tag .. ':open', batch_id)
  if #doubt > 0 then
    redis.call('ZADD', tag .. ':doubt', math.floor(now_us() / 1000), batch_id)
  else
    redis.call('ZREM', tag .. ':doubt', batch_id)
    redis.call('PEXPIRE', bkey, keep)
  end
  flush_results(tag, keep)
  return final
end

-- GCRA without burst on Redis's clock: the microseconds to wait (0: a send may go now).
local function gcra_wait(key, now)
  local tat = tonumber(redis.call('GET', key) or '0')
  if now < tat then return tat - now end
  return 0
end

local function gcra_take(key, now, interval)
  local tat = tonumber(redis.call('GET', key) or '0')
  local next_tat = math.max(tat, now) + interval
  redis.call('SET', key, string.format('%d', next_tat), 'PX',
             math.floor((next_tat - now) / 1000) + 1000)
end
"""

CLAIM = (
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
    settle(tag, id, keep, nil, 'RETURNED', 'TAKEOVER')
    returned = returned + 1
  elseif state == 'SENDING' then
    settle(tag, id, keep, nil, 'IN_DOUBT', 'TAKEOVER')
    doubted = doubted + 1
  else
    redis.call('ZREM', tag .. ':open', id)
  end
end
return {'CLAIMED', epoch, returned, doubted}
"""
)

HEARTBEAT = r"""
-- KEYS: workers. ARGV: worker, lease_ms. Heartbeat at this server's time, forget workers
-- silent for a lease, answer the live ones: every worker reads one clock, the workers key's
-- server's (on a cluster, not the node a TIME command happens to reach).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

RELEASE = r"""
-- KEYS: lease. ARGV: token
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

READ_FOLD = (
    _PRELUDE
    + r"""
-- KEYS: lease, stream, seen, sites, cursor. ARGV: token, group, consumer, count, dedup_ms,
-- tag, keep_ms, start. start '>': XRANGE the next `count` entries after the shard's read
-- cursor (a string key: the last entry id read and folded; where a group of an earlier
-- version had got to when there is none yet) and move the cursor; else an XAUTOCLAIM cursor
-- ('0-0' first): take over up to `count` entries a worker of that version read and never
-- folded (none when the stream has no group). Then, in the same step, fold them (drop event
-- ids seen, net each delta into acc:<site>, NETTED for keys that cancel out): an entry read
-- is never left unfolded, and no consumer group is needed to know what was read.
-- Answers {read, folded, duplicates, last id (of the stream when nothing new), next cursor,
-- malformed ids...}; malformed entries (not a producer's) are skipped and named.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
local tag, keep, stream, seen = ARGV[6], ARGV[7], KEYS[2], KEYS[3]
local records, cursor, adopted = {}, '', false
if ARGV[8] == '>' then
  local after = redis.call('GET', KEYS[5])
  if not after then
    after = '0-0'
    local groups = redis.pcall('XINFO', 'GROUPS', stream)
    if not groups.err then
      for _, g in ipairs(groups) do
        local info = {}
        for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
        if info['name'] == ARGV[2] then after = info['last-delivered-id'] end
      end
    end
  end
  records = redis.call('XRANGE', stream, '(' .. after, '+', 'COUNT', ARGV[4])
  if #records > 0 then redis.call('SET', KEYS[5], records[#records][1]) end
else
  local r = redis.pcall('XAUTOCLAIM', stream, ARGV[2], ARGV[3], 0, ARGV[8], 'COUNT', ARGV[4])
  if r.err then  -- NOGROUP: no worker of the earlier version ever read this stream
    cursor = '0-0'
  else
    cursor, records, adopted = r[1], r[2], true
  end
end
local out = tag .. ':out'
local now = math.floor(now_us() / 1000)
-- Parse; then one ZMSCORE and one ZADD for the event ids, one HINCRBY and one RPUSH per
-- distinct key (a backlog's deltas of one key net within the call: their sum is what
-- counts), one ZADD or ZREM per site.
-- An entry is either one field m, 'delta RS event RS site LF product LF variant[ LF location]'
-- (one string op to parse; the site-and-key part is the fold's group key as it stands), or,
-- from a producer before it, the fields e, site, p, v, d and l.
local PACKED = '^(-?%d+)\30([^\30]+)\30(([^\n]+)\n([^\n]*\n.*))$'
local ids, bad, last, valid, eids = {}, {}, nil, {}, {}
for _, rec in ipairs(records) do
  local f = rec[2]
  if f then  -- an entry deleted while pending comes back without fields: nothing to fold
    last = rec[1]
    ids[#ids + 1] = rec[1]
    local d, eid, gk, site, field
    if f[1] == 'm' and #f == 2 then
      d, eid, gk, site, field = string.match(f[2], PACKED)
    else
      local v = {}
      for j = 1, #f, 2 do v[f[j]] = f[j + 1] end
      local p, var = v['p'], v['v']
      eid, site, d = v['e'], v['site'], v['d']
      if p and var and site and d and string.match(d, '^-?%d+$') then
        field = p .. '\n' .. var
        if v['l'] and v['l'] ~= '' then field = field .. '\n' .. v['l'] end
        gk = site .. '\n' .. field
      else
        eid = nil
      end
    end
    if not (eid and #d < 16) then
      bad[#bad + 1] = rec[1]
    else
      valid[#valid + 1] = {eid, site, field, d, gk}
      eids[#eids + 1] = eid
    end
  end
end
local nowtext = string.format('%d', now)
local folded, dups, groups, order, fresh, taken = 0, 0, {}, {}, {}, {}
local scores = (#eids > 0) and redis.call('ZMSCORE', seen, unpack(eids)) or {}
for i, e in ipairs(valid) do
  local eid = e[1]
  if scores[i] or taken[eid] then
    dups = dups + 1
  else
    taken[eid] = true
    fresh[#fresh + 1] = nowtext
    fresh[#fresh + 1] = eid
    local gk = e[5]
    local g = groups[gk]
    if not g then
      g = {e[2], e[3], 0, {}}
      groups[gk] = g
      order[#order + 1] = g
    end
    g[3] = g[3] + tonumber(e[4])
    g[4][#g[4] + 1] = eid .. '\30' .. e[4]
    folded = folded + 1
  end
end
if #fresh > 0 then redis.call('ZADD', seen, unpack(fresh)) end
local touched = {}
for _, g in ipairs(order) do
  local site, field = g[1], g[2]
  local acc = tag .. ':acc:' .. site
  local evkey = tag .. ':ev:' .. site .. ':' .. field
  local net = redis.call('HINCRBY', acc, field, string.format('%d', g[3]))
  redis.call('RPUSH', evkey, unpack(g[4]))
  if net == 0 then
    redis.call('HDEL', acc, field)
    emit(tag, out, keep, site, field, 'NETTED', '', '', redis.call('LRANGE', evkey, 0, -1))
    redis.call('DEL', evkey)
  end
  touched[site] = acc
end
for site, acc in pairs(touched) do
  if redis.call('HLEN', acc) == 0 then
    redis.call('ZREM', KEYS[4], site)
  else
    redis.call('ZADD', KEYS[4], 'NX', nowtext, site)
  end
end
if adopted and #ids > 0 then redis.call('XACK', stream, ARGV[2], unpack(ids)) end
if folded > 0 then redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - tonumber(ARGV[5])) end
flush_results(tag, keep)
if not last then
  local tail = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  last = tail[1] and tail[1][1] or '0-0'
end
return {#records, folded, dups, last, cursor, unpack(bad)}
"""
)

PACE = (
    _PRELUDE
    + r"""
-- KEYS: lease, gcra. ARGV: token, interval_us, lease_min_ms, slots
-- Takes `slots` of the site's pacing for requests that are not batches (catalog detection).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[3]) then return {'LEASE', ttl} end
local now = now_us()
local wait = gcra_wait(KEYS[2], now)
if wait > 0 then return {'WAIT', wait} end
gcra_take(KEYS[2], now, tonumber(ARGV[2]) * tonumber(ARGV[4]))
return {'OK', 0}
"""
)

BEGIN = (
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
local wait = gcra_wait(KEYS[2], now)
if wait > 0 then return {'WAIT', wait} end
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
gcra_take(KEYS[2], now, tonumber(ARGV[4]))
local kind = (sign > 0) and 'inc' or 'dec'
local encoded = cjson.encode(entries)
local _, epoch = split(ARGV[1], '|')
redis.call('HSET', KEYS[4], 'state', 'RESERVED', 'token', ARGV[1], 'epoch', epoch, 'site', site,
           'kind', kind, 'entries', encoded, 'n', #entries,
           'began_us', string.format('%d', now))
redis.call('ZADD', tag .. ':open', math.floor(now / 1000), ARGV[2])
if redis.call('HLEN', KEYS[3]) == 0 then redis.call('ZREM', KEYS[5], site) end
return {'BEGUN', kind, encoded}
"""
)

MARK_SENT = r"""
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

FINISH = (
    _PRELUDE
    + r"""
-- KEYS: batch. ARGV: token, batch id, verdict, code, tag, keep_ms, cap_op, then for verdict
-- EACH one status and one code per entry; cap_op '' (leave), 'double' or a new cap (300 or
-- more: none). Otherwise one verdict for the whole batch. The site's cap key is built from
-- the record's site (the shard's tag: the same slot), so the sender needs no lookup first.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'MISSING', 0} end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return {'NOT_MINE', 0} end
local open = state == 'RESERVED' or state == 'SENDING'
  or (state == 'IN_DOUBT' and redis.call('HGET', KEYS[1], 'code') == 'TAKEOVER')
if not open or (state == 'IN_DOUBT' and ARGV[3] == 'IN_DOUBT') then return {state, 0} end
local verdict, tag, keep = ARGV[3], ARGV[5], ARGV[6]
local capkey = tag .. ':cap:' .. redis.call('HGET', KEYS[1], 'site')
-- the entry count, kept apart at begin (a record begun before it was: decode the entries)
local entries = tonumber(redis.call('HGET', KEYS[1], 'n') or '')
  or #cjson.decode(redis.call('HGET', KEYS[1], 'entries'))
local cap = tonumber(redis.call('GET', capkey) or '300')
local function double()
  if cap * 2 >= 300 then redis.call('DEL', capkey) else redis.call('SET', capkey, cap * 2) end
end
if verdict == 'EACH' then
  local op = ARGV[7]
  if op == 'double' then double()
  elseif op ~= '' then
    if tonumber(op) >= 300 then redis.call('DEL', capkey) else redis.call('SET', capkey, op) end
  end
  local statuses = {}
  for i = 8, #ARGV, 2 do statuses[#statuses + 1] = {ARGV[i], ARGV[i + 1]} end
  return {settle(tag, ARGV[2], keep, statuses, nil, ARGV[4]), entries}
end
if verdict == 'APPLIED' then
  double()
elseif verdict == 'REFUSED' then
  if entries == 1 then
    verdict = 'REJECTED'
  else
    redis.call('SET', capkey, math.ceil(entries / 2))
    verdict = 'RETURNED'
  end
end
settle(tag, ARGV[2], keep, nil, verdict, ARGV[4])
return {verdict, entries}
"""
)

RESOLVE = (
    _PRELUDE
    + r"""
-- KEYS: batch. ARGV: batch id, applied (1 or 0), tag, keep_ms, code
-- A person's verdict on a batch in doubt: its entries still in doubt end APPLIED or REJECTED.
local bkey = KEYS[1]
local state = redis.call('HGET', bkey, 'state')
if state ~= 'IN_DOUBT' then return {state or 'MISSING', 0} end
local tag, keep, code = ARGV[3], ARGV[4], ARGV[5]
local site = redis.call('HGET', bkey, 'site')
local entries = cjson.decode(redis.call('HGET', bkey, 'entries'))
local raw = redis.call('HGET', bkey, 'results')
local results = {}
if raw then results = cjson.decode(raw) end
local status = (ARGV[2] == '1') and 'APPLIED' or 'REJECTED'
local resolved, same = 0, nil
for i, e in ipairs(entries) do
  if results[i] == nil or results[i][1] == 'IN_DOUBT' then
    results[i] = {status, code}
    emit(tag, tag .. ':out', keep, site, e[1], status, ARGV[1], code, e[3])
    resolved = resolved + 1
  end
  local s = results[i][1]
  if same == nil then same = s elseif same ~= s then same = false end
end
local final = same or 'SETTLED'
redis.call('HSET', bkey, 'state', final, 'results', cjson.encode(results), 'doubt', '',
           'resolved', code, 'settled_us', string.format('%d', now_us()))
redis.call('ZREM', tag .. ':doubt', ARGV[1])
redis.call('PEXPIRE', bkey, keep)
flush_results(tag, keep)
return {final, resolved}
"""
)

TRIM = r"""
-- KEYS: stream, cursor. ARGV: group. Trim below the read cursor (everything before it was
-- folded), and below the oldest entry still pending in the group of an earlier version.
local minid = redis.call('GET', KEYS[2])
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if not pending.err and tonumber(pending[1]) > 0 then
  local pm, ps = string.match(pending[2], '^(%d+)-(%d+)$')
  if minid then
    local cm, cs = string.match(minid, '^(%d+)-(%d+)$')
    pm, ps, cm, cs = tonumber(pm), tonumber(ps), tonumber(cm), tonumber(cs)
    if pm < cm or (pm == cm and ps < cs) then minid = pending[2] end
  else
    minid = pending[2]
  end
end
if not minid then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', minid)
"""

TRIM_OUTCOMES = r"""
-- KEYS: out. ARGV: the age floor (a stream id: now - keep). With consumer groups, trim below
-- the lowest of each group's oldest pending entry (or, with none pending, its last delivered
-- id): nothing a group has not read, or read and not acknowledged, goes. Without groups,
-- trim below the age floor.
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local function below(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local floor = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
  local mark = info['last-delivered-id']
  local pending = redis.call('XPENDING', KEYS[1], info['name'])
  if tonumber(pending[1]) > 0 and below(pending[2], mark) then mark = pending[2] end
  if floor == nil or below(mark, floor) then floor = mark end
end
if floor == nil then floor = ARGV[1] end
return {redis.call('XTRIM', KEYS[1], 'MINID', floor), floor}
"""

OUTCOME = r"""
-- KEYS: rixb. ARGV: tag, event id. The event's last outcome 'status|batch|code', or nil:
-- the newest hour's index first (a later settlement of an IN_DOUBT is in a later hour or
-- overwrote it), then the per-event key of a version before the index.
local tag, eid = ARGV[1], ARGV[2]
for _, hour in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local found = redis.call('HGET', tag .. ':rix:' .. hour, eid)
  if found then return found end
end
return redis.call('GET', tag .. ':res:' .. eid)
"""
