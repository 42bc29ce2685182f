"""The fleet's Lua scripts against a real redis-server: fencing, dedup, netting, pacing, settling."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import redis.asyncio as aioredis

from wixinv_async.core.ratelimit import max_in_window
from wixinv_async.fleet.admin import FleetAdmin
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.scripts import ShardScripts
from wixinv_async.fleet.shards import KeySpace, gcra_decide

from .helpers import GROUP, VARIANTS, fold_all

KEYS = KeySpace("t", 1)
SITE = "site-1"
BIG = 10**9  # a lease_min_ms / interval that always or never allows, as the test needs


@pytest.fixture
async def scripts(redis_conn: aioredis.Redis) -> ShardScripts:
    """The scripts bound to the emptied server."""
    return ShardScripts(redis_conn, KEYS)


@pytest.fixture
async def producer(redis_conn: aioredis.Redis) -> FleetProducer:
    """A producer on the same key space."""
    return FleetProducer(redis_conn, prefix="t", shards=1)


async def owner(scripts: ShardScripts, worker: str = "w1") -> str:
    claim = await scripts.claim(0, worker, 60_000)
    assert claim.mine
    return f"{worker}|{claim.epoch}"


async def accumulator(conn: aioredis.Redis, site: str = SITE) -> dict[str, int]:
    raw = await conn.hgetall(KEYS.site_key(0, "acc", site))
    return {field.split("\n")[1]: int(value) for field, value in raw.items()}


async def read_cursor(conn: aioredis.Redis) -> str | None:
    """The id of the last ingest entry a worker read (and folded) in shard 0."""
    cursor: str | None = await conn.get(KEYS.key(0, "rd"))
    return cursor


async def last_entry(conn: aioredis.Redis) -> str:
    [(entry_id, _)] = await conn.xrevrange(KEYS.key(0, "in"), count=1)
    return str(entry_id)


async def outcomes(conn: aioredis.Redis) -> list[dict[str, str]]:
    return [fields for _, fields in await conn.xrange(KEYS.key(0, "out"))]


async def test_fold_drops_duplicate_event_ids(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """A producer retry (same event id, a second stream entry) is folded once and both acked."""
    token = await owner(scripts)
    await producer.submit(SITE, "p1", VARIANTS[0], 5, event_id="e1")
    await producer.submit(SITE, "p1", VARIANTS[0], 5, event_id="e1")
    assert await fold_all(scripts, 0, token) == (1, 1)
    assert await accumulator(redis_conn) == {VARIANTS[0]: 5}
    assert await read_cursor(redis_conn) == await last_entry(redis_conn)  # both consumed
    await producer.submit(SITE, "p1", VARIANTS[0], 5, event_id="e1")  # a later retry
    assert await fold_all(scripts, 0, token) == (0, 1)
    assert await accumulator(redis_conn) == {VARIANTS[0]: 5}


@pytest.mark.parametrize("seed", range(5))
async def test_fold_nets_and_conserves_the_sum_per_key(
    seed: int, scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """Random deltas on few keys: the accumulator holds each key's sum; zero sums emit NETTED."""
    rng = random.Random(seed)
    token = await owner(scripts)
    expected: dict[str, int] = {}
    submitted: list[str] = []
    for _ in range(200):
        variant, delta = rng.choice(VARIANTS[:5]), rng.choice([-3, -2, -1, 1, 2, 3])
        await producer.submit(SITE, "p1", variant, delta)
        expected[variant] = expected.get(variant, 0) + delta
        submitted.append(variant)
    assert await fold_all(scripts, 0, token) == (200, 0)
    assert await accumulator(redis_conn) == {v: n for v, n in expected.items() if n}
    netted = await outcomes(redis_conn)
    assert all(o["s"] == "NETTED" for o in netted)
    still = {v: submitted.count(v) for v in expected}
    pending = {
        v: await redis_conn.llen(KEYS.site_key(0, "ev", SITE) + f":p1\n{v}") for v in expected
    }
    assert {v: pending[v] + sum(o["v"] == v for o in netted) for v in expected} == still


async def test_stale_owner_is_fenced_by_the_epoch(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """After a takeover the old owner can neither fold, begin, nor let a request leave."""
    old = await owner(scripts, "w1")
    await producer.submit(SITE, "p1", VARIANTS[0], 4)
    await fold_all(scripts, 0, old)
    begun = await scripts.begin(0, old, SITE, interval_us=1, lease_min_ms=0)
    await redis_conn.delete(KEYS.key(0, "lease"))  # what the lease's expiry does
    claim = await scripts.claim(0, "w2", 60_000)
    assert (claim.status, claim.epoch, claim.returned, claim.doubted) == ("CLAIMED", 2, 1, 0)
    await producer.submit(SITE, "p1", VARIANTS[1], 1)
    cursor = await read_cursor(redis_conn)
    with pytest.raises(aioredis.ResponseError, match="FENCED"):
        await scripts.read_fold(0, old, "w1", dedup_ms=60_000)
    assert await read_cursor(redis_conn) == cursor != await last_entry(redis_conn)  # unread
    with pytest.raises(aioredis.ResponseError, match="FENCED"):
        await scripts.begin(0, old, SITE, interval_us=1, lease_min_ms=0)
    assert await scripts.mark_sent(0, old, begun.batch_id, 0) == "RETURNED"
    assert await accumulator(redis_conn) == {VARIANTS[0]: 4}


async def test_takeover_puts_sending_batches_in_doubt(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """A batch whose request may have left becomes IN_DOUBT at takeover and is never begun again."""
    old = await owner(scripts, "w1")
    await producer.submit(SITE, "p1", VARIANTS[0], -2, event_id="e1")
    await fold_all(scripts, 0, old)
    begun = await scripts.begin(0, old, SITE, interval_us=1, lease_min_ms=0)
    assert await scripts.mark_sent(0, old, begun.batch_id, 0) == "OK"
    await redis_conn.delete(KEYS.key(0, "lease"))
    claim = await scripts.claim(0, "w2", 60_000)
    assert (claim.returned, claim.doubted) == (0, 1)
    new = f"w2|{claim.epoch}"
    assert (await scripts.begin(0, new, SITE, interval_us=1, lease_min_ms=0)).status == "EMPTY"
    assert await redis_conn.zrange(KEYS.key(0, "doubt"), 0, -1) == [begun.batch_id]
    assert [(o["e"], o["s"], o["c"]) for o in await outcomes(redis_conn)] == [
        ("e1", "IN_DOUBT", "TAKEOVER")
    ]
    assert await scripts.finish(0, old, begun.batch_id, "APPLIED") == "APPLIED"
    last = await producer.outcome(SITE, "e1", wait=0)
    assert last is not None and (last.status.value, last.batch_id, last.code) == (
        "APPLIED",
        begun.batch_id,
        "",
    )
    assert await redis_conn.zcard(KEYS.key(0, "doubt")) == 0


async def test_begin_takes_up_to_300_of_one_sign_and_is_idempotent(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """400 increments: one batch of 300, the rest wait; a retried begin returns the same batch."""
    token = await owner(scripts)
    for variant in VARIANTS:
        await producer.submit(SITE, "p1", variant, 1)
    await producer.submit(SITE, "p2", VARIANTS[0], -1)
    await fold_all(scripts, 0, token)
    first = await scripts.begin(0, token, SITE, interval_us=BIG, lease_min_ms=0)
    assert first.status == "BEGUN"
    assert len(first.entries) == 300
    assert len({e.net > 0 for e in first.entries}) == 1
    again = await scripts.begin(
        0, token, SITE, interval_us=BIG, lease_min_ms=0, batch_id=first.batch_id
    )
    assert again == first
    assert len(await accumulator(redis_conn)) == 101
    waiting = await scripts.begin(0, token, SITE, interval_us=BIG, lease_min_ms=0)
    assert waiting.status == "WAIT"
    assert 0 < waiting.wait_us <= BIG


async def test_begin_refuses_when_the_lease_is_too_short(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """A lease with less left than the HTTP timeout plus margin begins nothing."""
    token = await owner(scripts)
    await producer.submit(SITE, "p1", VARIANTS[0], 1)
    await fold_all(scripts, 0, token)
    refused = await scripts.begin(0, token, SITE, interval_us=1, lease_min_ms=BIG)
    assert refused.status == "LEASE"
    assert await accumulator(redis_conn) == {VARIANTS[0]: 1}


async def test_gcra_on_redis_time_agrees_with_the_pure_mirror(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """The TAT the script stores is what gcra_decide computes from the batch's begin time."""
    token = await owner(scripts)
    await producer.submit(SITE, "p1", VARIANTS[0], 1)
    await fold_all(scripts, 0, token)
    begun = await scripts.begin(0, token, SITE, interval_us=250_000, lease_min_ms=0)
    began = int(await redis_conn.hget(KEYS.batch(0, begun.batch_id), "began_us"))
    stored = int(await redis_conn.get(KEYS.site_key(0, "gcra", SITE)))
    assert stored == gcra_decide(0, began, 250_000).tat


async def test_gcra_never_allows_more_than_n_per_rolling_period(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """Begins asked for back to back: the begin times (Redis TIME) hold <= 5 in any 50 ms."""
    token = await owner(scripts)
    interval = 10_200  # 5 per 50 ms with the 2 % safety
    began: list[float] = []
    for variant in VARIANTS[:60]:
        await producer.submit(SITE, f"p{variant[-3:]}", variant, 1)
    await fold_all(scripts, 0, token)
    while len(began) < 12:
        begun = await scripts.begin(
            0, token, SITE, interval_us=interval, lease_min_ms=0, max_entries=1
        )
        if begun.status == "BEGUN":
            raw = await redis_conn.hget(KEYS.batch(0, begun.batch_id), "began_us")
            began.append(int(raw) / 1e6)
    assert max_in_window(began, 0.05) <= 5
    assert min(b - a for a, b in itertools.pairwise(began)) >= interval / 1e6


async def test_refused_batch_is_bisected_then_the_bad_entry_rejected(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """REFUSED on 4 entries returns them and halves the cap; on 1 entry it rejects that entry."""
    token = await owner(scripts)
    for variant in VARIANTS[:4]:
        await producer.submit(SITE, "p1", variant, -1, event_id=f"e{variant[-1]}")
    await fold_all(scripts, 0, token)
    sizes = []
    while True:
        begun = await scripts.begin(0, token, SITE, interval_us=1, lease_min_ms=0)
        sizes.append(len(begun.entries))
        assert await scripts.mark_sent(0, token, begun.batch_id, 0) == "OK"
        state = await scripts.finish(0, token, begun.batch_id, "REFUSED", "INSUFFICIENT_INVENTORY")
        if state == "REJECTED":
            break
    assert sizes == [4, 2, 1]
    assert len(await accumulator(redis_conn)) == 3
    rejected = [o for o in await outcomes(redis_conn) if o["s"] == "REJECTED"]
    assert [o["c"] for o in rejected] == ["INSUFFICIENT_INVENTORY"]
    assert await scripts.finish(0, token, begun.batch_id, "APPLIED") == "REJECTED"


async def test_returned_batch_nets_with_new_deltas(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """Deltas of a batch returned unsent coalesce again with what arrived meanwhile."""
    token = await owner(scripts)
    await producer.submit(SITE, "p1", VARIANTS[0], 3)
    await fold_all(scripts, 0, token)
    begun = await scripts.begin(0, token, SITE, interval_us=1, lease_min_ms=0)
    await producer.submit(SITE, "p1", VARIANTS[0], -3)
    await fold_all(scripts, 0, token)
    assert await scripts.finish(0, token, begun.batch_id, "RETURNED", "503") == "RETURNED"
    assert await accumulator(redis_conn) == {}
    assert sorted(o["s"] for o in await outcomes(redis_conn)) == ["NETTED", "NETTED"]


async def test_trim_keeps_entries_still_pending(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """Trimming removes folded entries only: entries read but not folded (by a worker of the
    version that read and folded in two steps) stay until a takeover adopts and folds them."""
    token = await owner(scripts)
    stream = KEYS.key(0, "in")
    for i in range(5):
        await producer.submit(SITE, "p1", VARIANTS[i], 1)
    await redis_conn.xgroup_create(stream, GROUP, id="0", mkstream=True)
    read: Any = await redis_conn.xreadgroup(GROUP, "old", {stream: ">"}, count=2)
    assert await fold_all(scripts, 0, token) == (3, 0)
    await scripts.trim(0, GROUP)
    left = [stream_id for stream_id, _ in await redis_conn.xrange(stream)]
    assert left[:2] == [stream_id for stream_id, _ in read[0][1]]
    adopted = await scripts.read_fold(0, token, "w1", dedup_ms=60_000, start="0-0")
    assert (adopted.read, adopted.folded, adopted.cursor) == (2, 2, "0-0")
    assert await accumulator(redis_conn) == dict.fromkeys(VARIANTS[:5], 1)
    await scripts.trim(0, GROUP)
    assert await redis_conn.xlen(stream) <= 1


async def test_read_fold_is_fenced_before_it_reads(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """Pipelined read_folds: the owner's shard is read and folded, a stale token's answer is
    FENCED and its entry stays unread for the owner."""
    token = await owner(scripts)
    await producer.submit(SITE, "p1", VARIANTS[0], 2)
    await redis_conn.xgroup_create(KEYS.key(0, "in"), GROUP, id="0", mkstream=True)
    stale, mine = await scripts.read_fold_many([(0, "w0|0"), (0, token)], "w1", dedup_ms=60_000)
    assert isinstance(stale, aioredis.ResponseError) and "FENCED" in str(stale)
    assert not isinstance(mine, aioredis.ResponseError)
    assert (mine.read, mine.folded) == (1, 1)
    assert await accumulator(redis_conn) == {VARIANTS[0]: 2}


async def test_read_fold_drops_malformed_entries(
    scripts: ShardScripts, redis_conn: aioredis.Redis
) -> None:
    """Entries no producer wrote (a field missing, a delta not an integer) are acked, named."""
    token = await owner(scripts)
    stream = KEYS.key(0, "in")
    bad = [
        await redis_conn.xadd(stream, {"e": "x1", "site": SITE, "p": "p1", "v": VARIANTS[0]}),
        await redis_conn.xadd(stream, {"e": "x2", "site": SITE, "p": "p1", "v": "v", "d": "0x1"}),
    ]
    await redis_conn.xadd(stream, {"e": "x3", "site": SITE, "p": "p1", "v": VARIANTS[1], "d": 4})
    await redis_conn.xgroup_create(stream, GROUP, id="0")
    done = await scripts.read_fold(0, token, "w1", dedup_ms=60_000)
    assert (done.read, done.folded, done.malformed) == (3, 1, tuple(bad))
    assert await accumulator(redis_conn) == {VARIANTS[1]: 4}
    assert await read_cursor(redis_conn) == await last_entry(redis_conn)  # none is read again


async def test_packed_and_field_entries_fold_alike_and_dedup_across_formats(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """Once the fleet packs ingest, a new producer writes one field per entry; entries of an
    earlier producer (separate fields) still fold beside them, with their location, and a
    retry in the other format is a duplicate."""
    token = await owner(scripts)
    await producer.submit(SITE, "p1", VARIANTS[0], 2, event_id="old1")
    await FleetAdmin(redis_conn, prefix="t", shards=1).pack_ingest()
    packed = FleetProducer(redis_conn, prefix="t", shards=1)
    await packed.submit(SITE, "p1", VARIANTS[0], 3, event_id="new1\nwith a newline")
    await packed.submit(SITE, "p1", VARIANTS[1], -4, event_id="new2", location_id=VARIANTS[9])
    await packed.submit(SITE, "p1", VARIANTS[0], 2, event_id="old1")  # a retry, repacked
    entries = [f for _, f in await redis_conn.xrange(KEYS.key(0, "in"))]
    assert [sorted(f) for f in entries] == [["d", "e", "p", "site", "v"]] + [["m"]] * 3
    assert await fold_all(scripts, 0, token) == (3, 1)
    begun = await scripts.begin(0, token, SITE, interval_us=1, lease_min_ms=0)
    second = await scripts.begin(0, token, SITE, interval_us=1, lease_min_ms=0)
    planned = {(e.variant_id, e.location_id, e.net, e.events) for e in begun.entries}
    planned |= {(e.variant_id, e.location_id, e.net, e.events) for e in second.entries}
    assert planned == {
        (VARIANTS[0], "", 5, (("old1", 2), ("new1\nwith a newline", 3))),
        (VARIANTS[1], VARIANTS[9], -4, (("new2", -4),)),
    }


async def test_packed_entries_no_producer_wrote_are_dropped_and_named(
    scripts: ShardScripts, redis_conn: aioredis.Redis
) -> None:
    """A packed entry with a delta not an integer, no event id, or no key is malformed."""
    token = await owner(scripts)
    stream = KEYS.key(0, "in")
    bad = [
        await redis_conn.xadd(stream, {"m": f"0x1\x1ee1\x1e{SITE}\np1\n{VARIANTS[0]}"}),
        await redis_conn.xadd(stream, {"m": f"1\x1e\x1e{SITE}\np1\n{VARIANTS[0]}"}),
        await redis_conn.xadd(stream, {"m": f"1\x1ee3\x1e{SITE}\np1"}),
        await redis_conn.xadd(stream, {"m": f"1234567890123456\x1ee4\x1e{SITE}\np1\nv"}),
    ]
    await redis_conn.xadd(stream, {"m": f"4\x1ee5\x1e{SITE}\np1\n{VARIANTS[1]}"})
    done = await scripts.read_fold(0, token, "w1", dedup_ms=60_000)
    assert (done.read, done.folded, done.malformed) == (5, 1, tuple(bad))
    assert await accumulator(redis_conn) == {VARIANTS[1]: 4}


async def test_every_event_of_a_big_batch_has_its_outcome(
    scripts: ShardScripts, producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """4,500 events netted into one entry and applied: each reads APPLIED by its event id
    (one settle's outcomes are written together: more than Lua can unpack in one call)."""
    token = await owner(scripts)
    events = [f"big{i}" for i in range(4500)]
    async with redis_conn.pipeline(transaction=False) as pipe:
        for event in events:
            fields = {"e": event, "site": SITE, "p": "p1", "v": VARIANTS[0], "d": 1}
            pipe.xadd(KEYS.key(0, "in"), fields)  # type: ignore[arg-type]
        await pipe.execute()
    assert await fold_all(scripts, 0, token) == (4500, 0)
    begun = await scripts.begin(0, token, SITE, interval_us=1, lease_min_ms=0)
    assert [e.net for e in begun.entries] == [4500]
    assert await scripts.finish(0, token, begun.batch_id, "APPLIED") == "APPLIED"
    found = {(await producer.outcome(SITE, e, wait=0)) for e in events[::50] + events[-3:]}
    assert {(o.status.value, o.batch_id) for o in found if o} == {("APPLIED", begun.batch_id)}
    assert None not in found


async def test_an_outcome_written_before_the_hourly_index_is_still_read(
    producer: FleetProducer, redis_conn: aioredis.Redis
) -> None:
    """An event settled by the version that kept one ``res:<event>`` key reads as it was."""
    await redis_conn.set(KEYS.key(0, "res:old1"), "REJECTED|b1|INSUFFICIENT_INVENTORY")
    last = await producer.outcome(SITE, "old1", wait=0)
    assert last is not None
    assert (last.status.value, last.batch_id, last.code) == (
        "REJECTED",
        "b1",
        "INSUFFICIENT_INVENTORY",
    )
