"""FleetWorker: own some shards, fold their ingest into accumulators, send paced V1 batches.

Three loops, each a thin driver over the scripts of :mod:`~wixinv_async.fleet.scripts`:

- membership (every ``lease_ms / 3``): heartbeat in the workers set, compute this worker's
  shards by rendezvous hashing over the live workers, renew held leases, claim free target
  shards (a claim is a takeover: XAUTOCLAIM then moves the dead owner's read-but-unfolded
  entries to us), release shards that now belong to someone else once idle.
- reader: XREADGROUP over the owned shards' streams, then one fold per shard.
- one sender per owned shard: for each site with pending deltas, begin (GCRA and lease checked
  by Redis), mark_sent (the fence right before the request), send, finish. One request in
  flight per shard, so per site.

Every Redis step is idempotent, so a connection error is met by repeating the same step with
the same arguments (the same batch id for begin) until Redis answers or the shard is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..auth import ApiKeyAuth, AppOAuth
from ..client import InventoryClient, RetryPolicy
from ..errors import ApiError, ConfigurationError, WixInventoryError
from ..models import DecrementData, IncrementData
from ..transport import RateLimit
from ._redis_server import MIN_VERSION
from .producer import MAX_AMOUNT, ensure_config
from .scripts import Begun, IngestEntry, ShardScripts, parse_entry, text
from .shards import KeySpace, Verdict, assign_shards, gcra_interval_us, verdict_for

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
_T = TypeVar("_T")
AuthFor = Callable[[str], ApiKeyAuth | AppOAuth]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """``rate_limit``: one budget per site across the whole fleet (paced by GCRA on Redis's
    clock). ``lease_ms``: how long a shard stays ours without renewal (a dead worker's shards
    move after at most this). ``http_timeout`` + ``margin``: the lease time a begin needs left,
    so a healthy worker finishes every request inside its lease. ``dedup_ms``: how long an
    event id is remembered (a producer retry later than that would apply twice)."""

    prefix: str = "wixfleet"
    shards: int = 1024
    rate_limit: RateLimit = RateLimit(200, 60)  # noqa: RUF009 - frozen, so sharing is safe
    lease_ms: int = 15_000
    http_timeout: float = 5.0
    margin: float = 1.0
    dedup_ms: int = 7 * 86_400_000
    allow_weak_fsync: bool = False

    def __post_init__(self) -> None:
        if self.lease_ms < 2 * self.lease_min_ms:
            raise ConfigurationError(
                f"lease_ms={self.lease_ms} must be at least twice (http_timeout + margin) = "
                f"{2 * self.lease_min_ms} ms, so renewals keep begins possible"
            )

    @property
    def lease_min_ms(self) -> int:
        return int((self.http_timeout + self.margin) * 1000)


async def check_server(redis: aioredis.Redis, *, allow_weak_fsync: bool) -> str:
    """Refuse a server older than 6.2 (no XAUTOCLAIM) and, unless allowed, one without
    ``appendfsync always``: with ``everysec`` a crash can lose a batch-intent record whose
    request already left, and that batch would be sent again. Returns the version."""
    info: dict[str, Any] = await redis.info("server")
    version = str(info["redis_version"])
    if tuple(int(p) for p in version.split(".")[:3]) < MIN_VERSION:
        raise ConfigurationError(f"Redis {version}: the fleet needs 6.2 or later (XAUTOCLAIM)")
    try:
        raw: Any = await redis.config_get("append*")
        config = {text(k): text(v) for k, v in raw.items()}
    except ResponseError as error:  # CONFIG disabled (managed Redis)
        config = {"error": str(error)}
    durable = config.get("appendonly") == "yes" and config.get("appendfsync") == "always"
    if not durable and not allow_weak_fsync:
        raise ConfigurationError(
            f"Redis {version} has {config}: the fleet needs appendonly yes and appendfsync "
            "always for exactly-once-or-in-doubt (pass allow_weak_fsync to run anyway)"
        )
    return version


CRASH_ENV = "WIXINV_FLEET_CRASH_AT"
CRASH_POINTS = (
    "after_read",
    "after_fold",
    "after_begin",
    "after_mark_sent",
    "during_request",
    "after_answer",
)


def crash_point(step: str) -> None:
    """Fault injection for the kill matrix: with ``WIXINV_FLEET_CRASH_AT=<step>`` the worker
    process kills itself with SIGKILL (exactly what ``kill -9`` does) when it reaches that step
    (one of :data:`CRASH_POINTS`). Unset, this is one dictionary lookup."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


READ_COUNT = 500
MAX_DEFER = 1.0
"""Seconds a send may wait for the shard's reader to catch up with a backlog (see _send_loop)."""


class _Shard:
    __slots__ = ("behind_since", "event", "leaving", "number", "task", "token")

    def __init__(self, number: int, token: str) -> None:
        self.number = number
        self.token = token
        self.event = asyncio.Event()
        self.leaving = False
        self.task: asyncio.Task[None] | None = None
        # The loop time since which the reader has been behind the stream (a full read came
        # back), or None once a read came back short: the backlog has been folded.
        self.behind_since: float | None = None


class FleetWorker:
    """One worker process's share of the fleet. ``await worker.run()`` until ``stop()``."""

    def __init__(
        self,
        redis: str,
        auth_for: AuthFor,
        *,
        base_url: str = "https://www.wixapis.com",
        settings: WorkerSettings = WorkerSettings(),
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.keys = KeySpace(settings.prefix, settings.shards)
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.redis: aioredis.Redis = aioredis.Redis.from_url(redis, decode_responses=True)
        self.scripts = ShardScripts(self.redis, self.keys)
        self._auth_for = auth_for
        self._base_url = base_url
        self._clients: dict[str, InventoryClient] = {}
        self._owned: dict[int, _Shard] = {}
        self._stopping = asyncio.Event()
        rate = settings.rate_limit
        self._interval_us = gcra_interval_us(rate.requests, rate.period, rate.safety)
        self.sent = 0

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
            for client in self._clients.values():
                await client.aclose()
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
            await self._retry(self._membership_tick)
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
        shard = _Shard(number, f"{self.worker_id}|{claim.epoch}")
        self._owned[number] = shard
        await self._adopt_pending(shard, min_idle_ms=0)
        shard.task = asyncio.create_task(self._send_loop(shard))

    async def _adopt_pending(self, shard: _Shard, *, min_idle_ms: int) -> None:
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

    async def _fold_retrying(self, shard: _Shard, records: list[Any]) -> None:
        await self._retry(lambda: self._fold(shard, records))

    async def _fold(self, shard: _Shard, records: list[Any]) -> None:
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

    # --- sending ------------------------------------------------------------------------

    async def _send_loop(self, shard: _Shard) -> None:
        sites_key = self.keys.key(shard.number, "sites")
        while not shard.leaving and not self._stopping.is_set():
            shard.event.clear()
            if self._deferring(shard):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shard.event.wait(), 0.05)
                continue
            sites = await self._retry(lambda: self.redis.zrange(sites_key, 0, -1))
            waits = [await self._send_one(shard, text(site)) for site in sites]
            pending = [w for w in waits if w is not None]
            if pending and min(pending) == 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shard.event.wait(), min(pending, default=0.5))
        if shard.leaving and self._owned.get(shard.number) is shard and not self._stopping.is_set():
            self._owned.pop(shard.number, None)
            await self._retry(lambda: self.scripts.release(shard.number, shard.token))

    def _deferring(self, shard: _Shard) -> bool:
        """While the reader still folds a backlog, deltas of the same keys are on their way:
        a send now would need a second request for them. Wait for the reader, but at most
        MAX_DEFER seconds, so a stream that stays full still delivers."""
        since = shard.behind_since
        return since is not None and asyncio.get_running_loop().time() - since < MAX_DEFER

    async def _send_one(self, shard: _Shard, site: str) -> float | None:
        """One begin-send-finish for ``site``; the seconds to wait before the next, ``None``
        when nothing is pending."""
        batch_id = uuid.uuid4().hex
        try:
            begun: Begun = await self._retry(
                lambda: self.scripts.begin(
                    shard.number,
                    shard.token,
                    site,
                    interval_us=self._interval_us,
                    lease_min_ms=self.settings.lease_min_ms,
                    batch_id=batch_id,
                )
            )
        except ResponseError as error:
            self._drop(shard.number, f"fenced at begin ({error})")
            return None
        if begun.status == "WAIT":
            return begun.wait_us / 1e6
        if begun.status == "LEASE":
            return 0.05
        if begun.status != "BEGUN":
            return None
        crash_point("after_begin")
        verdict, code = await self._deliver(shard, site, begun)
        await self._retry(
            lambda: self.scripts.finish(shard.number, shard.token, batch_id, verdict.value, code)
        )
        return 0.0

    async def _deliver(self, shard: _Shard, site: str, begun: Begun) -> tuple[Verdict, str]:
        if any(abs(e.net) > MAX_AMOUNT for e in begun.entries):
            return Verdict.REFUSED, "AMOUNT_ABOVE_99999"
        gate = await self._retry(
            lambda: self.scripts.mark_sent(
                shard.number, shard.token, begun.batch_id, self.settings.lease_min_ms
            )
        )
        if gate != "OK":  # fenced or lease short: the request never leaves
            return Verdict.RETURNED, gate
        crash_point("after_mark_sent")
        error: BaseException | None = None
        try:
            await self._request(site, begun)
        except WixInventoryError as failure:
            error = failure
        crash_point("after_answer")
        self.sent += 1
        code = ""
        if isinstance(error, ApiError):
            code = error.code or str(error.status)
        elif error is not None:
            code = type(error).__name__
        return verdict_for(error), code

    async def _request(self, site: str, begun: Begun) -> None:
        if os.environ.get(CRASH_ENV) == "during_request":
            request = asyncio.ensure_future(self._send_request(site, begun))
            await asyncio.wait([request], timeout=0.05)  # the request is on the wire by now
            crash_point("during_request")
            return await request
        return await self._send_request(site, begun)

    async def _send_request(self, site: str, begun: Begun) -> None:
        client = self._client(site)
        if begun.kind == "inc":
            increments = [
                IncrementData(product_id=e.product_id, variant_id=e.variant_id, increment_by=e.net)
                for e in begun.entries
            ]
            await client.increment_inventory(increments)
        else:
            decrements = [
                DecrementData(product_id=e.product_id, variant_id=e.variant_id, decrement_by=-e.net)
                for e in begun.entries
            ]
            await client.decrement_inventory(decrements)

    def _client(self, site: str) -> InventoryClient:
        client = self._clients.get(site)
        if client is None:
            # No client-side pacing (the fleet's GCRA paces) and one attempt: a request that
            # provably did not reach Wix goes back to Redis and waits for its next GCRA slot.
            client = self._clients[site] = InventoryClient(
                self._auth_for(site),
                base_url=self._base_url,
                rate_limit=None,
                retry=RetryPolicy(max_attempts=1),
                timeout=self.settings.http_timeout,
            )
        return client

    async def _retry(self, step: Callable[[], Any]) -> Any:
        """Repeat an idempotent Redis step after a connection error, until it answers."""
        delay = 0.05
        while True:
            try:
                return await step()
            except (RedisConnectionError, RedisTimeoutError) as error:
                log.warning("redis unavailable (%s); retrying in %.2fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
