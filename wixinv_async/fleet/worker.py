"""FleetWorker: own some shards, fold their ingest into accumulators, send paced batches.

Three loops, each a thin driver over the scripts of :mod:`~wixinv_async.fleet.scripts`:

- membership (every ``lease_ms / 3``): heartbeat in the workers set, compute this worker's
  shards by rendezvous hashing over the live workers, renew held leases, claim free target
  shards (a takeover: the shard's read cursor is in Redis, so reading goes on where the dead
  owner's last fold left it), release shards that now belong to someone else once idle.
- reader: one ``read_fold`` script per owned shard with entries to read (pipelined in one
  round trip), which reads, folds and moves the read cursor inside Redis, so the worker never
  parses an entry; while every shard is caught up, one blocking XREAD (COUNT 1, after each shard's
  last id: it consumes nothing) waits for the next entry of any of them. On a Redis Cluster
  one XREAD cannot name streams of many slots, so each owned stream is polled instead (a
  non-blocking XREAD COUNT 1 per shard, pipelined per node), and a stream polled empty is not
  polled again until its node's doorbell (client tracking) says it was written:
  :mod:`~wixinv_async.fleet._wakeup`.
- one sender per owned shard (:mod:`~wixinv_async.fleet._sender`): for each site with pending
  deltas, begin (GCRA and lease checked by Redis), mark_sent (the fence right before the
  request), send through the hub (V1 atomic calls or V3 bulk calls, by the site's catalog),
  finish entry by entry. One request in flight per shard, so per site. Every ``trim_every``
  membership ticks, the owned shards' streams are trimmed (never past an unread entry).

Every Redis step is idempotent, so a connection error is met by repeating the same step with
the same arguments (the same batch id for begin) until Redis answers or the shard is lost
(after a stop, for a lease at most). Membership claims every shard in one pipeline per tick,
each answered on its own, so on a cluster a node that is down costs only its own shards their
leases. A shard's loop that fails is given up (its lease
released) and claimed again with a new loop; a reader that fails stops the worker, which
raises the error: crash-only, never up and serving nothing.
What ``run()`` raises is ours (:mod:`~wixinv_async.fleet._boundary`): ``ConfigurationError``
for a server it refuses, ``FleetUnavailable`` when Redis is gone at start (after one more
try) or at the final release, ``FleetError`` for a step Redis refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from functools import partial
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from ..auth import ApiKeyAuth, AppCredentials
from ..client import RetryPolicy
from ..errors import Applied, ConfigurationError
from ..hub import InventoryHub
from ._boundary import REDIS_ERRORS, answered, fleet_error, redis_call, unavailable
from ._config import (
    CRASH_ENV,
    CRASH_POINTS,
    WorkerSettings,
    WorkerStop,
    check_server,
    crash_point,
    judge_server,
    retry_redis,
)
from ._connect import FleetRedis, connect
from ._sender import OwnedShard, ShardSender
from ._wakeup import ClusterWakeup
from .producer import ensure_config
from .scripts import GROUP, READ_COUNT, Claim, ReadFold, ShardScripts, text
from .shards import KeySpace, assign_shards, gcra_interval_us

__all__ = [
    "CRASH_ENV",
    "CRASH_POINTS",
    "FleetWorker",
    "WorkerSettings",
    "check_server",
    "crash_point",
    "judge_server",
]

log = logging.getLogger("wixinv_async.fleet")
WAKE_MS = 100
"""How long the reader's wake-up XREAD blocks before it looks at the stop flag again."""
IDLE_S = 1.0
"""On a cluster, the longest the reader waits for a doorbell before it looks again (a new
entry rings at once; the stop flag is waited on too)."""


class FleetWorker:
    """One worker process's share of the fleet. ``await worker.run()`` until ``stop()``.

    ``auth``: the app's :class:`AppCredentials` (a site is an app instance id) or an
    account-level :class:`ApiKeyAuth` (a site is a site id), as for
    :class:`~wixinv_async.hub.InventoryHub`, which makes each site's token and client.
    ``cluster``: ``redis`` is any node of a Redis Cluster (see
    :mod:`~wixinv_async.fleet._connect`).
    """

    def __init__(
        self,
        redis: str,
        auth: AppCredentials | ApiKeyAuth,
        *,
        base_url: str = "https://www.wixapis.com",
        settings: WorkerSettings | None = None,
        worker_id: str | None = None,
        cluster: bool = False,
    ) -> None:
        self.settings = settings = settings or WorkerSettings()
        self.keys = KeySpace(settings.prefix, settings.shards)
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.redis: FleetRedis = connect(redis, cluster=cluster)
        self.cluster = cluster
        self.scripts = ShardScripts(self.redis, self.keys)
        self._owned: dict[int, OwnedShard] = {}
        self._stop = WorkerStop(settings.lease_ms)
        rate = settings.rate_limit
        self._interval_us = gcra_interval_us(rate.requests, rate.period, rate.safety)
        # No local pacing and one attempt: every request a worker makes took its GCRA slot in
        # Redis first (begin for a batch, pace for a detection), one budget per site for the
        # whole fleet; a local limiter could only delay what the fleet allowed, and a retry
        # inside the client would reach Wix on its first attempt's slot (Wix may count the
        # refused attempt). What provably did not apply is RETURNED and begun again on a slot
        # of its own. A 401 is still answered by one attempt with a refreshed token: it is
        # the client's only way to learn that a token expired, and the emulator refuses it
        # before counting it (what Wix counts is not known).
        self.hub = InventoryHub(
            auth,
            base_url=base_url,
            rate_limit=None,
            retry=RetryPolicy(max_attempts=1),
            idle_timeout=settings.idle_timeout,
            timeout=settings.http_timeout,
        )
        self.sender = ShardSender(
            self.redis, self.scripts, settings, self.hub, self._interval_us, self._drop, self._stop
        )
        self._releases: set[asyncio.Task[None]] = set()
        self._live: list[str] = []
        self._wakeup = ClusterWakeup(self.redis) if isinstance(self.redis, RedisCluster) else None

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
        """Graceful stop: finish requests in flight, settle them, release every lease. With
        Redis unreachable, its steps are retried for a lease at most; run() then raises
        FleetUnavailable (the leases run out on their own)."""
        self._stop.set()

    async def run(self) -> None:
        try:
            await redis_call(self.redis, "worker start", self._start, repeatable=True)
            reader = asyncio.create_task(self._read_loop(), name="fleet-reader")
            reader.add_done_callback(self._reader_ended)
            trimmer = asyncio.create_task(self._trim_loop(), name="fleet-trimmer")
            try:
                await self._membership_loop()
            finally:
                # Not reader.cancel(): a cancelled blocking read was seen to hang redis-py (the
                # task stuck "cancelling" for good). The wake-up read blocks WAKE_MS, then sees
                # the stop flag; the trimmer sees it between shards.
                self._stop.set()
                try:
                    await trimmer
                    await reader  # raises what ended it, after the leases are released
                finally:
                    await redis_call(self.redis, "worker stop", self._release_all, repeatable=True)
        except REDIS_ERRORS as error:  # a step Redis refused outside the retried ones
            raise fleet_error(error, "worker run", self.redis, applied=Applied.NO) from error
        finally:
            await self.hub.close()
            await self.redis.aclose()

    def _reader_ended(self, reader: asyncio.Task[None]) -> None:
        """A reader that ended on an error stops the worker (crash-only): a worker that stays up
        without reading holds its shards' leases and serves nothing."""
        if reader.cancelled() or reader.exception() is None:
            return
        log.error("reader failed; stopping the worker", exc_info=reader.exception())
        self._stop.set()

    async def _start(self) -> None:
        await check_server(self.redis, allow_weak_fsync=self.settings.allow_weak_fsync)
        await ensure_config(self.redis, self.keys)
        await self._ensure_same_budget()

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

    @property
    def _tick(self) -> float:
        return self.settings.lease_ms / 3000

    async def _membership_loop(self) -> None:
        while not self._stop.is_set():
            await self._membership_tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.event.wait(), self._tick)

    async def _trim_loop(self) -> None:
        """Trim every ``trim_every`` ticks, in a task of its own: a pass over many shards on a
        slow Redis must not hold back the heartbeat and the lease renewals."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stop.event.wait(), self._tick * self.settings.trim_every
                )
            if not self._stop.is_set():
                await self._trim()

    async def _membership_tick(self) -> None:
        """Heartbeat, then every shard's claim in one pipeline, each answered on its own: a
        claim Redis cannot answer (on a cluster, its node down) is logged and tried on the next
        tick, and costs no other shard its renewal. The leases are renewed even when the
        heartbeat fails, against the workers last heard of."""
        live = await answered(
            lambda: self.scripts.heartbeat(self.worker_id, self.settings.lease_ms)
        )
        if isinstance(live, Exception):
            log.warning("heartbeat failed (%r); renewing the leases held", live)
        else:
            self._live = live
        target = assign_shards(self.keys.shards, [*self._live, self.worker_id])
        mine = target[self.worker_id]
        for number, shard in self._owned.items():
            if number not in mine:
                shard.leaving = True
                shard.event.set()
        wanted = sorted(set(self._owned) | set(mine))
        if not wanted:
            return
        claims = await answered(
            lambda: self.scripts.claim_many(wanted, self.worker_id, self.settings.lease_ms)
        )
        if isinstance(claims, Exception):
            log.warning("claims failed (%r); trying on the next tick", claims)
            return
        failed: list[tuple[int, Exception]] = []
        for number, claim in zip(wanted, claims, strict=True):
            if not isinstance(claim, Exception):
                self._claimed(number, claim, number in mine)
            elif unavailable(claim):
                failed.append((number, claim))
            else:
                raise claim
        if failed:
            numbers = ", ".join(str(n) for n, _ in failed)
            log.warning("claim of shard %s failed (%r); the others renewed", numbers, failed[0][1])

    def _claimed(self, number: int, claim: Claim, targeted: bool) -> None:
        """Serve, keep serving or give up shard ``number`` by what its claim answered
        (``targeted``: this worker is the shard's owner by the assignment)."""
        shard = self._owned.get(number)
        token = f"{self.worker_id}|{claim.epoch}"
        if not claim.mine:
            if shard is not None:
                self._drop(shard, "lease taken by " + claim.owner)
            return
        if shard is not None and shard.token == token:
            return
        if shard is None and not targeted:
            # Handed over while the claim was on its way (the loop ended and released the
            # lease, which the claim then took again): give it back rather than serve it.
            self._release_later(OwnedShard(number, token))
            return
        if shard is not None:  # the lease ran out and was taken again: the old loop is fenced
            self._drop(shard, "lease lost and taken again")
        if claim.returned or claim.doubted:
            log.warning(
                "took over shard %d: %d batches returned, %d in doubt",
                number,
                claim.returned,
                claim.doubted,
            )
        shard = OwnedShard(number, token)
        # Read through the wake-up XREAD first (from the start: it returns at once when the
        # stream holds anything), so every read is seen by it before it is folded.
        shard.last_id = "0-0"
        self._owned[number] = shard
        shard.task = asyncio.create_task(self._serve(shard), name=f"fleet-shard-{number}")
        shard.task.add_done_callback(lambda task: self._shard_ended(shard, task))

    def _shard_ended(self, shard: OwnedShard, task: asyncio.Task[None]) -> None:
        """A shard's loop that ended on an error gives the shard up (its lease released: the
        next claim is a takeover, which settles the batches the loop left open); the next
        membership tick claims it again with a new loop."""
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        if self._stop.is_set() and unavailable(error):
            log.warning(
                "shard %d: given up at the stop, Redis unreachable (%r)", shard.number, error
            )
            self._drop(shard, "given up at the stop")
            return
        log.error("shard %d: its loop failed", shard.number, exc_info=error)
        self._drop(shard, "its loop failed")
        self._release_later(shard)

    def _release_later(self, shard: OwnedShard) -> None:
        release = asyncio.create_task(self._release(shard))
        self._releases.add(release)  # held until done: the loop keeps only weak references
        release.add_done_callback(self._releases.discard)

    async def _release(self, shard: OwnedShard) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self.scripts.release(shard.number, shard.token)

    async def _adopt_pending(self, shard: OwnedShard) -> bool:
        """Take over and fold every entry a worker of an earlier version (which read through
        a consumer group, then folded in a second step) read and never folded; a stream
        without that group has none. Reading and folding are one script now, moving the
        shard's read cursor, so no entry read is left unfolded. False when fenced."""
        cursor = "0-0"
        while True:
            done = await self._read_fold(shard, cursor)
            if done is None:
                return False
            if done.cursor == "0-0":
                return True
            cursor = done.cursor

    def _drop(self, shard: OwnedShard, why: str) -> None:
        """Stop serving ``shard`` (a loop of an older token finding itself fenced drops only
        itself, never the shard's newer loop)."""
        if self._owned.get(shard.number) is shard:
            del self._owned[shard.number]
            log.info("shard %d dropped: %s", shard.number, why)
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
        try:
            await self._read_until_stopped()
        finally:
            if self._wakeup is not None:
                await self._wakeup.close()

    async def _read_until_stopped(self) -> None:
        while not self._stop.is_set():
            owned = [s for s in self._owned.values() if not s.leaving]
            try:
                if not owned:
                    await asyncio.sleep(0.05)
                elif any(s.last_id is None for s in owned):
                    await self._read_ready([s for s in owned if s.last_id is None])
                elif self.cluster:
                    await self._poll_for_entries(owned)
                else:
                    await self._wait_for_entries(owned)
            except Exception as error:
                if not unavailable(error):
                    raise
                log.warning("read failed: %r", error)
                await asyncio.sleep(0.1)

    async def _wait_for_entries(self, owned: list[OwnedShard]) -> None:
        """Block until any owned stream has an entry after the last one read (XREAD COUNT 1:
        nothing is consumed); mark those shards to be read."""
        streams = {self.keys.key(s.number, "in"): s for s in owned}
        replies: Any = await self.redis.xread(
            {stream: s.last_id or "0-0" for stream, s in streams.items()}, count=1, block=WAKE_MS
        )
        if replies:
            crash_point("after_read")
        for stream, _ in replies or []:
            shard = streams.get(text(stream))
            if shard is not None:
                shard.last_id = None

    async def _poll_for_entries(self, owned: list[OwnedShard]) -> None:
        """:meth:`_wait_for_entries` on a cluster (:mod:`~wixinv_async.fleet._wakeup`): the
        owned streams not known to be caught up are polled, and while none has anything new
        the reader waits for a node's doorbell, at most ``IDLE_S``."""
        assert self._wakeup is not None
        news = await self._wakeup.ready(
            [(self.keys.key(s.number, "in"), s.last_id or "0-0") for s in owned],
            IDLE_S,
            self._stop.event,
        )
        ready = [s for s, new in zip(owned, news, strict=True) if new]
        if ready:
            crash_point("after_read")
        for shard in ready:
            shard.last_id = None

    async def _read_ready(self, ready: list[OwnedShard]) -> None:
        """One read_fold per shard, pipelined; a shard whose read came back full stays ready,
        and so does one whose read failed (after a pause: its node may be down)."""
        answers = await self.scripts.read_fold_many(
            [(s.number, s.token) for s in ready], self.worker_id, dedup_ms=self.settings.dedup_ms
        )
        now = asyncio.get_running_loop().time()
        failed: list[tuple[int, Exception]] = []
        for shard, answer in zip(ready, answers, strict=True):
            if isinstance(answer, Exception):
                if "FENCED" in str(answer):
                    self._drop(shard, "fenced at read_fold")
                else:
                    failed.append((shard.number, answer))
                continue
            self._folded(shard, answer)
            if answer.read < READ_COUNT:
                shard.last_id, shard.behind_since = answer.last_id, None
            elif shard.behind_since is None:
                shard.behind_since = now
        if failed:
            numbers = ", ".join(str(number) for number, _ in failed)
            log.warning("read_fold of shard %s failed (%r)", numbers, failed[0][1])
            await asyncio.sleep(0.1)

    async def _read_fold(self, shard: OwnedShard, cursor: str) -> ReadFold | None:
        """Adopt (fold) up to READ_COUNT entries from ``cursor``; None when fenced."""
        try:
            return self._folded(
                shard,
                await retry_redis(
                    lambda: self.scripts.read_fold(
                        shard.number,
                        shard.token,
                        self.worker_id,
                        dedup_ms=self.settings.dedup_ms,
                        start=cursor,
                    ),
                    self._stop,
                ),
            )
        except ResponseError as error:
            if "FENCED" not in str(error):
                raise
            self._drop(shard, "fenced at read_fold")
            return None

    def _folded(self, shard: OwnedShard, answer: ReadFold) -> ReadFold:
        if answer.malformed:
            log.error("shard %d: malformed entries dropped: %s", shard.number, answer.malformed)
        if answer.folded:
            crash_point("after_fold")
            shard.event.set()
        return answer

    # --- sending and trimming -----------------------------------------------------------

    async def _serve(self, shard: OwnedShard) -> None:
        if not await self._adopt_pending(shard):
            return
        await self.sender.run(shard, self._stop.event)
        if shard.leaving and self._owned.get(shard.number) is shard and not self._stop.is_set():
            self._owned.pop(shard.number, None)
            await retry_redis(lambda: self.scripts.release(shard.number, shard.token), self._stop)

    async def _trim(self) -> None:
        """Trim each owned shard's ingest stream below its read cursor, and its
        outcome stream below what every consumer group has read and acknowledged (without
        groups: below what is older than the outcomes are kept). Best effort: a shard Redis
        cannot answer for is trimmed on a later tick."""
        now = await answered(self.redis.time)
        if isinstance(now, Exception):
            log.warning("trim skipped (%r)", now)
            return
        floor = f"{max(0, now[0] * 1000 - self.scripts.keep_ms)}-0"
        for number in list(self._owned):
            if self._stop.is_set():
                return
            done = await answered(partial(self._trim_shard, number, floor))
            if isinstance(done, Exception):
                log.warning("trim of shard %d failed (%r)", number, done)

    async def _trim_shard(self, number: int, floor: str) -> None:
        await self.scripts.trim(number, GROUP)
        await self.scripts.trim_outcomes(number, floor)
