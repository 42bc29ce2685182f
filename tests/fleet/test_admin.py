"""FleetAdmin and the trimming scripts against a real redis-server: batches in doubt listed and
resolved, outcome streams trimmed never past what a consumer group has not read."""

from __future__ import annotations

import io
import json

import pytest
import redis.asyncio as aioredis

from wixinv_async.cli import EXIT_CONFIG, EXIT_OK, build_parser
from wixinv_async.errors import InvalidInputError
from wixinv_async.fleet.admin import FleetAdmin
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.scripts import EntryVerdicts, ShardScripts
from wixinv_async.fleet.shards import EventStatus, KeySpace, shard_of

from .helpers import VARIANTS, fold_all

KEYS = KeySpace("adm", 2)
SITE = "site-1"  # crc32 puts it in shard 1 of 2
SHARD = 1
LOCATION = "00000000-0000-0000-0000-0000000000aa"


async def sending_batch(conn: aioredis.Redis, deltas: int) -> tuple[ShardScripts, str, str]:
    """``deltas`` folded and begun by w1, marked SENDING; returns the scripts, the token and
    the batch id."""
    scripts = ShardScripts(conn, KEYS)
    claim = await scripts.claim(SHARD, "w1", 60_000)
    token = f"w1|{claim.epoch}"
    async with FleetProducer(conn, prefix="adm", shards=2) as producer:
        for n in range(deltas):
            await producer.submit(
                SITE, "p1", VARIANTS[n], 2, event_id=f"e{n}", location_id=LOCATION
            )
    await fold_all(scripts, SHARD, token)
    begun = await scripts.begin(SHARD, token, SITE, interval_us=1, lease_min_ms=0)
    assert await scripts.mark_sent(SHARD, token, begun.batch_id, 0) == "OK"
    return scripts, token, begun.batch_id


async def taken_over(conn: aioredis.Redis, deltas: int) -> str:
    """A SENDING batch whose worker lost the shard: the new owner's claim doubts it."""
    scripts, token, batch_id = await sending_batch(conn, deltas)
    await scripts.release(SHARD, token)
    assert (await scripts.claim(SHARD, "w2", 60_000)).doubted == 1
    return batch_id


async def test_a_batch_in_doubt_is_listed_then_resolved_as_not_applied(
    redis_conn: aioredis.Redis,
) -> None:
    """in_doubt() names the batch, its site and entries; resolve(applied=False) makes every
    event REJECTED RESOLVED_NOT_APPLIED, once."""
    batch_id = await taken_over(redis_conn, 2)
    admin = FleetAdmin(redis_conn, prefix="adm", shards=2)
    [batch] = await admin.in_doubt()
    assert (batch.batch_id, batch.site, batch.code) == (batch_id, SITE, "TAKEOVER")
    assert sorted((e.variant_id, e.location_id, e.net) for e in batch.entries) == [
        (VARIANTS[0], LOCATION, 2),
        (VARIANTS[1], LOCATION, 2),
    ]
    done = await admin.resolve(batch_id, applied=False)
    assert (done.state, done.resolved) == ("REJECTED", 2)
    assert await admin.in_doubt() == []
    producer = FleetProducer(redis_conn, prefix="adm", shards=2)
    outcome = await producer.outcome(SITE, "e0", wait=1)
    assert outcome is not None
    assert (outcome.status, outcome.code) == (EventStatus.REJECTED, "RESOLVED_NOT_APPLIED")
    again = await admin.resolve(batch_id, applied=True)
    assert (again.state, again.resolved) == ("REJECTED", 0)
    records = [f for _, f in await redis_conn.xrange(KEYS.key(SHARD, "out"))]
    assert [r["s"] for r in records if r["e"] == "e0"] == ["IN_DOUBT", "REJECTED"]
    assert {r["l"] for r in records} == {LOCATION}


async def test_only_the_entries_in_doubt_of_a_v3_batch_are_resolved(
    redis_conn: aioredis.Redis,
) -> None:
    """A V3 answer with one entry applied and one unknown: the batch is in doubt for that one
    entry only, and resolving it as applied makes the batch APPLIED."""
    scripts, token, batch_id = await sending_batch(redis_conn, 2)
    settled = EntryVerdicts((("APPLIED", ""), ("IN_DOUBT", "ITEM_UNKNOWN")))
    assert await scripts.finish_each(SHARD, token, batch_id, settled) == "IN_DOUBT"
    admin = FleetAdmin(redis_conn, prefix="adm", shards=2)
    [batch] = await admin.in_doubt()
    assert len(batch.entries) == 1
    done = await admin.resolve(batch_id, applied=True)
    assert (done.state, done.resolved) == ("APPLIED", 1)


async def test_resolve_refuses_a_malformed_batch_id_and_reports_a_missing_one(
    redis_conn: aioredis.Redis,
) -> None:
    """A pattern is refused by name; an unknown id is MISSING, nothing changed."""
    admin = FleetAdmin(redis_conn, prefix="adm", shards=2)
    with pytest.raises(InvalidInputError, match="batch_id"):
        await admin.resolve("*", applied=True)
    assert (await admin.resolve("nope", applied=True)).state == "MISSING"


async def test_pack_ingest_switches_new_producers_and_back(redis_conn: aioredis.Redis) -> None:
    """Producers connecting after pack_ingest() write one packed field, after
    pack_ingest(False) separate fields again, as ingest_format() says; a non-bool is refused
    by name."""
    admin = FleetAdmin(redis_conn, prefix="adm", shards=2)
    with pytest.raises(InvalidInputError, match="packed"):
        await admin.pack_ingest("yes")  # type: ignore[arg-type]
    stream = KEYS.key(shard_of("s1", 2), "in")
    formats, written = [await admin.ingest_format()], []
    for packed in (True, False):
        await admin.pack_ingest(packed)
        formats.append(await admin.ingest_format())
        await FleetProducer(redis_conn, prefix="adm", shards=2).submit("s1", "p1", VARIANTS[0], 1)
        written.append(sorted((await redis_conn.xrevrange(stream, count=1))[0][1]))
    assert formats == ["fields", "packed", "fields"]
    assert written == [["m"], ["d", "e", "p", "site", "v"]]


async def test_outcome_trim_keeps_what_any_group_has_not_read_or_acknowledged(
    redis_conn: aioredis.Redis,
) -> None:
    """Group a read 6 and acknowledged 4, group b read 3: trimming keeps from b's third on;
    once both acknowledged everything, from the last one delivered to a."""
    out = KEYS.key(0, "out")
    ids = [await redis_conn.xadd(out, {"n": n}) for n in range(10)]
    for group in ("a", "b"):
        await redis_conn.xgroup_create(out, group, id="0")
    read_a = (await redis_conn.xreadgroup("a", "c", {out: ">"}, count=6))[0][1]
    await redis_conn.xack(out, "a", *[i for i, _ in read_a[:4]])
    read_b = (await redis_conn.xreadgroup("b", "c", {out: ">"}, count=3))[0][1]
    await redis_conn.xack(out, "b", *[i for i, _ in read_b])
    scripts = ShardScripts(redis_conn, KEYS)
    assert await scripts.trim_outcomes(0, "9999999999999-0") == (2, ids[2])
    await redis_conn.xack(out, "a", *[i for i, _ in read_a])
    assert await scripts.trim_outcomes(0, "9999999999999-0") == (0, ids[2])  # b read 3 only
    rest_b = (await redis_conn.xreadgroup("b", "c", {out: ">"}, count=10))[0][1]
    await redis_conn.xack(out, "b", *[i for i, _ in rest_b])
    assert await scripts.trim_outcomes(0, "9999999999999-0") == (3, ids[5])
    assert [i for i, _ in await redis_conn.xrange(out)] == ids[5:]


async def test_outcome_trim_without_groups_drops_only_what_is_older_than_kept(
    redis_conn: aioredis.Redis,
) -> None:
    """With no consumer group, entries below the age floor go and newer ones stay."""
    out = KEYS.key(0, "out")
    for stream_id in ("1-0", "2-0", "5-0"):
        await redis_conn.xadd(out, {"n": 1}, id=stream_id)
    scripts = ShardScripts(redis_conn, KEYS)
    assert await scripts.trim_outcomes(0, "3-0") == (2, "3-0")
    assert [i for i, _ in await redis_conn.xrange(out)] == ["5-0"]
    assert await scripts.trim_outcomes(1, "3-0") == (0, "")  # no stream at all


def test_fleet_resolve_command_settles_a_batch_and_status_shows_it_first(
    redis_url: str,
) -> None:
    """``fleet status`` lists the batch in doubt with its events; ``fleet resolve --applied``
    settles it (exit 0); a second time it exits 2, the batch no longer in doubt."""
    import asyncio

    async def make() -> str:
        conn = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await taken_over(conn, 1)
        finally:
            await conn.aclose()

    batch_id = asyncio.run(make())
    common = ["--redis", redis_url, "--prefix", "adm", "--shards", "2"]
    status = build_parser().parse_args(["fleet", "status", *common])
    out = io.StringIO()
    assert status.func(status, out) == EXIT_OK
    [doubt] = json.loads(out.getvalue())["active_shards"][0]["in_doubt"]
    assert doubt["batch"] == batch_id
    assert doubt["entries"][0]["events"] == ["e0"]
    resolve = build_parser().parse_args(["fleet", "resolve", *common, batch_id, "--applied"])
    out = io.StringIO()
    assert resolve.func(resolve, out) == EXIT_OK
    assert json.loads(out.getvalue()) == {"batch": batch_id, "state": "APPLIED", "resolved": 1}
    assert resolve.func(resolve, io.StringIO()) == EXIT_CONFIG
