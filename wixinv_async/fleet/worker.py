"""FleetWorker: own some shards, fold their ingest into accumulators, send paced batches.

Three loops, each a thin driver over the scripts of :mod:`~wixinv_async.fleet.scripts`:

- membership (every ``lease_ms / 3``): heartbeat in the workers set, compute this worker's
  shards by rendezvous hashing over the live workers, renew held leases, claim free target
  shards (a claim is a takeover: XAUTOCLAIM then moves the dead owner's read-but-unfolded
  entries to us), release shards that now belong to someone else once idle.
- reader: XREADGROUP over the owned shards' streams, then one fold per shard.
- one sender per owned shard (:mod:`~wixinv_async.fleet._sender`): for each site with pending
  deltas, begin (GCRA and lease checked by Redis), mark_sent (the fence right before the
  request), send through the hub (V1 atomic calls or V3 bulk calls, by the site's catalog),
  finish entry by entry. One request in flight per shard, so per site. Every ``trim_every``
  membership ticks, the owned shards' streams are trimmed (never past an unread entry).

Every Redis step is idempotent, so a connection error is met by repeating the same step with
the same arguments (the same batch id for begin) until Redis answers or the shard is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..auth import ApiKeyAuth, AppCredentials
from ..errors import ConfigurationError
from ..hub import InventoryHub
from ..transport import RateLimit
from ._config import (
    CRASH_ENV,
    CRASH_POINTS,
    WorkerSettings,
    check_server,
    crash_point,
    retry_redis,
)
from ._sender import OwnedShard, ShardSender
from .producer import ensure_config
from .scripts import IngestEntry, ShardScripts, parse_entry, text
from .shards import KeySpace, assign_shards, gcra_interval_us

__all__ = [
    "CRASH_ENV",
    "CRASH_POINTS",
    "FleetWorker",
    "WorkerSettings",
    "check_server",
    "crash_point",
]

log = logging.getLogger("wixinv_async.fleet")
GROUP = "workers"
READ_COUNT = 500


class FleetWorker:
    """One worker process's share of the fleet. ``await worker.run()`` until ``stop()``.

    ``auth``: the app's :class:`AppCredentials` (a site is an app instance id) or an
    account-level :class:`ApiKeyAuth` (a site is a site id), as for
    :class:`~wixinv_async.hub.InventoryHub`, which makes each site's token and client.
    """

    def __init__(
        self,
        redis: str,
        auth: AppCredentials | ApiKeyAuth,
        *,
        base_url: str = "https://www.wixapis.com",
        settings: WorkerSettings | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings = settings or WorkerSettings()
        self.keys = KeySpace(settings.prefix, settings.shards)
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.redis: aioredis.Redis = aioredis.Redis.from_url(redis, decode_responses=True)
        self.scripts = ShardScripts(self.redis, self.keys)
        self._owned: dict[int, OwnedShard] = {}
        self._stopping = asyncio.Event()
        rate = settings.rate_limit
        self._interval_us = gcra_interval_us(rate.requests, rate.period, rate.safety)
        # The fleet's GCRA paces; the hub's limiter, at twice that rate, never holds back a
        # request the fleet allowed.
        self.hub = InventoryHub(
            auth,
            base_url=base_url,
            rate_limit=RateLimit(rate.requests * 2, rate.period, 0.0),
            idle_timeout=settings.idle_timeout,
            timeout=settings.http_timeout,
        )
        self.sender = ShardSender(
            self.redis, self.scripts, settings, self.hub, self._interval_us, self._drop
        )
        self._ticks = 0

    @property
    def sent(self) -> int:
        """Requests this worker sent (batches and catalog detections)."""
        return self.sender.sent

    def __repr__(self) -> str:
        return f"FleetWorker({self.worker_id}, shards={sorted(self._owned)})"

    @property
    def owned(self) -> list[int]:
        return sorted(self._owned)

    def stop(self) -> None:
        """Graceful stop: finish requests in flight, settle them, release every lease."""
        self._stopping.set()

    async def run(self) -> None:
        try:
            await check_server(self.redis, allow_weak_fsync=self.settings.allow_weak_fsync)
            await ensure_config(self.redis, self.keys)
            await self._ensure_same_budget()
            reader = asyncio.create_task(self._read_loop())
            try:
                await self._membership_loop()
            finally:
                # Not reader.cancel(): a cancelled blocking XREADGROUP was seen to hang redis-py
                # (the task stuck "cancelling" for good). The read blocks 100 ms, then sees the
                # stop flag.
                self._stopping.set()
                await reader
                await self._release_all()
        finally:
            await self.hub.close()
            await self.redis.aclose()

    async def _ensure_same_budget(self) -> None:
        """One budget per site needs one pacing interval: the first worker records its own and
        a worker started with another ``rate_limit`` is refused (``fleet status`` shows it)."""
        await self.redis.hsetnx(self.keys.config, "interval_us", self._interval_us)
        stored = text(await self.redis.hget(self.keys.config, "interval_us"))
        if int(stored) != self._interval_us:
            raise ConfigurationError(
                f"rate_limit={self.settings.rate_limit}: paces every {self._interval_us} us, "
                f"the fleet under prefix {self.keys.prefix!r} paces every {stored} us"
            )

    # --- membership ---------------------------------------------------------------------

    async def _membership_loop(self) -> None:
        tick = self.settings.lease_ms / 3000
        while not self._stopping.is_set():
            await retry_redis(self._membership_tick)
            self._ticks += 1
            if self._ticks % self.settings.trim_every == 0:
                await retry_redis(self._trim)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), tick)

    async def _membership_tick(self) -> None:
        seconds, micros = await self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        await self.redis.zadd(self.keys.workers, {self.worker_id: now_ms})
        await self.redis.zremrangebyscore(
            self.keys.workers, "-inf", now_ms - self.settings.lease_ms
        )
        live = await self.redis.zrange(self.keys.workers, 0, -1)
        target = assign_shards(self.keys.shards, [*map(text, live), self.worker_id])
        mine = target[self.worker_id]
        for number in range(self.keys.shards):
            shard = self._owned.get(number)
            if shard is not None and number not in mine:
                shard.leaving = True
                shard.event.set()
            if shard is not None or number in mine:
                await self._claim(number)

    async def _claim(self, number: int) -> None:
        claim = await self.scripts.claim(number, self.worker_id, self.settings.lease_ms)
        shard = self._owned.get(number)
        if not claim.mine:
            if shard is not None:
                self._drop(number, "lease taken by " + claim.owner)
            return
        if shard is not None:
            # A stale worker's blocked XREADGROUP can still be handed entries after we took
            # over (delivery is not fenced, folding is); adopt those once they sit idle.
            await self._adopt_pending(shard, min_idle_ms=self.settings.lease_ms)
            return
        if claim.returned or claim.doubted:
            log.warning(
                "took over shard %d: %d batches returned, %d in doubt",
                number,
                claim.returned,
                claim.doubted,
            )
        shard = OwnedShard(number, f"{self.worker_id}|{claim.epoch}")
        self._owned[number] = shard
        await self._adopt_pending(shard, min_idle_ms=0)
        shard.task = asyncio.create_task(self._serve(shard))

    async def _adopt_pending(self, shard: OwnedShard, *, min_idle_ms: int) -> None:
        """Create the group, then XAUTOCLAIM every entry others read but did not fold (their
        fold is fenced now) and fold them. At takeover no idle time is needed; afterwards only
        entries idle for ``min_idle_ms`` are taken, not the ones our own reader is folding
        (taking those would be harmless, the fold drops their event ids, but wasted)."""
        stream = self.keys.key(shard.number, "in")
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        start = "0-0"
        while True:
            reply: Any = await self.redis.xautoclaim(
                stream, GROUP, self.worker_id, min_idle_ms, start, 500
            )
            records = [(sid, fields) for sid, fields in reply[1] if fields]
            await self._fold(shard, records)
            start = reply[0]
            if start == "0-0":
                return

    def _drop(self, number: int, why: str) -> None:
        shard = self._owned.pop(number, None)
        if shard is not None:
            log.info("shard %d dropped: %s", number, why)
            shard.leaving = True
            shard.event.set()

    async def _release_all(self) -> None:
        for shard in list(self._owned.values()):
            shard.leaving = True
            shard.event.set()
        tasks = [s.task for s in self._owned.values() if s.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        for number, shard in list(self._owned.items()):
            await self.scripts.release(number, shard.token)
        self._owned.clear()
        await self.redis.zrem(self.keys.workers, self.worker_id)

    # --- ingest -------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while not self._stopping.is_set():
            by_stream = {self.keys.key(n, "in"): s for n, s in self._owned.items() if not s.leaving}
            if not by_stream:
                await asyncio.sleep(0.05)
                continue
            try:
                replies: Any = await self.redis.xreadgroup(
                    GROUP,
                    self.worker_id,
                    dict.fromkeys(by_stream, ">"),
                    count=READ_COUNT,
                    block=100,
                )
            except (RedisConnectionError, RedisTimeoutError, ResponseError) as error:
                log.warning("read failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            if replies:
                crash_point("after_read")
            now = asyncio.get_running_loop().time()
            full = {text(stream) for stream, records in replies or [] if len(records) >= READ_COUNT}
            for stream, owned in by_stream.items():
                if stream not in full:
                    owned.behind_since = None
                elif owned.behind_since is None:
                    owned.behind_since = now
            for stream, records in replies or []:
                shard = by_stream.get(text(stream))
                if shard is not None:
                    await self._fold_retrying(shard, records)

    async def _fold_retrying(self, shard: OwnedShard, records: list[Any]) -> None:
        await retry_redis(lambda: self._fold(shard, records))

    async def _fold(self, shard: OwnedShard, records: list[Any]) -> None:
        entries: list[IngestEntry] = []
        for stream_id, fields in records:
            entry = parse_entry(stream_id, fields)
            if entry is None:
                log.error(
                    "shard %d: malformed entry %s dropped: %r", shard.number, stream_id, fields
                )
                await self.redis.xack(self.keys.key(shard.number, "in"), GROUP, stream_id)
            else:
                entries.append(entry)
        if not entries:
            return
        try:
            await self.scripts.fold(
                shard.number, shard.token, GROUP, entries, self.settings.dedup_ms
            )
        except ResponseError as error:
            if "FENCED" not in str(error):
                raise
            self._drop(shard.number, "fenced at fold")
            return
        crash_point("after_fold")
        shard.event.set()

    # --- sending and trimming -----------------------------------------------------------

    async def _serve(self, shard: OwnedShard) -> None:
        await self.sender.run(shard, self._stopping)
        if shard.leaving and self._owned.get(shard.number) is shard and not self._stopping.is_set():
            self._owned.pop(shard.number, None)
            await retry_redis(lambda: self.scripts.release(shard.number, shard.token))

    async def _trim(self) -> None:
        """Trim each owned shard's ingest stream below its oldest pending entry, and its
        outcome stream below what every consumer group has read and acknowledged (without
        groups: below what is older than the outcomes are kept)."""
        seconds, _ = await self.redis.time()
        floor = f"{max(0, seconds * 1000 - self.scripts.keep_ms)}-0"
        for number in list(self._owned):
            with contextlib.suppress(ResponseError):  # no group yet: nothing to trim
                await self.scripts.trim(number, GROUP)
            await self.scripts.trim_outcomes(number, floor)
