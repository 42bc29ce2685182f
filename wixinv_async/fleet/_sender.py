"""The sending half of a worker: one loop per owned shard, delivering its sites' batches.

For each site with pending deltas: know its catalog (the fleet keeps it in Redis, ``cat:<site>``,
so a takeover does not ask again; each detection request takes a GCRA slot of its own right
before it goes, so the site's budget counts it), begin (GCRA and lease checked by Redis),
refuse what can never be sent, mark_sent (the fence right before the request), send through
the hub's client of the site, finish entry by entry (:mod:`~wixinv_async.fleet.verdicts`).
One request in flight per shard, so per site.

Requests go through :class:`~wixinv_async.hub.InventoryHub`: one shared session, a token and
a client per site (catalog detection cached in it), clients of idle sites closed. The fleet's
GCRA does the pacing (the hub runs unpaced: each request took its slot in Redis first), and
the hub's clients make one attempt (a retry would go on its first attempt's slot): what
provably did not reach Wix is RETURNED and begun again on a slot of its own. The worker bounds
every request to ``http_timeout + margin / 2``, so it settles inside the lease that
``mark_sent`` checked, and a request cut off there is IN_DOUBT.

No attempt of a batch leaves later than :data:`SEND_SHARE` of its lateness after the loop
time just before its begin was sent (the grant came after it): a worker that stalled
(stopped, swapped out) does not send; the batch is RETURNED, code LATE, and its deltas
coalesce again for a new begin and a new slot. A detection request has the same deadline
from just before its own slot was asked; one not sent is detected again later.

The lateness is :func:`~wixinv_async.fleet.shards.gcra_lateness_us` plus a stretch: the worker
estimates how long its requests take from asking for a slot to leaving
(:class:`~wixinv_async.fleet.shards.SendDelay`: two Redis round trips and the wait for a core),
and when that is more than the share of the lateness allows, asks for a longer interval after
its grant (:func:`~wixinv_async.fleet.shards.gcra_stretch_us`), which allows that much more
lateness. A slow Redis or a busy machine then sends fewer requests a minute, all of them,
rather than finding every batch late and sending none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from redis.exceptions import ResponseError

from ..catalog import CatalogVersion
from ..core.bulk_results import BulkResult
from ..errors import LateSendError, WixInventoryError
from ..hub import InventoryHub
from ._config import CRASH_ENV, WorkerSettings, WorkerStop, crash_point, retry_redis
from ._connect import FleetRedis
from ._sending import send_batch
from .scripts import Begun, EntryVerdicts, PlannedEntry, ShardScripts, text
from .shards import KeySpace, SendDelay, gcra_lateness_us, gcra_stretch_us
from .verdicts import refusals, v1_settlement, v3_settlement, wrong_catalog

__all__ = ["OwnedShard", "ShardSender"]

log = logging.getLogger("wixinv_async.fleet")
_T = TypeVar("_T")

IDLE_S: Final = 5.0
"""The longest a shard's loop sleeps with nothing pending. Every delta folded wakes it (the
reader sets the shard's event), as does every verdict that gives deltas back (the loop's own
finish), so this only bounds how long a wake-up it missed would go unnoticed."""
DETECT_RETRY: Final = 1.0
"""Seconds before a failed (or late) detection is tried again."""
CATALOG_TTL_MS: Final = 7 * 86_400_000
SEND_SHARE: Final = 0.5
"""Of the lateness past its grant that keeps every rolling window within the budget, the
share a batch's request may spend before leaving; the rest is left to the network's
variation between sending and arriving."""


class OwnedShard:
    """A shard this worker holds the lease of, and its loop's state."""

    __slots__ = (
        "behind_since",
        "catalogs",
        "event",
        "last_id",
        "leaving",
        "number",
        "task",
        "token",
    )

    def __init__(self, number: int, token: str) -> None:
        self.number = number
        self.token = token
        self.event = asyncio.Event()
        self.leaving = False
        self.task: asyncio.Task[None] | None = None
        # The loop time since which the reader has been behind the stream (a full read came
        # back), or None once a read came back short: the backlog has been folded.
        self.behind_since: float | None = None
        # The id the reader's wake-up XREAD waits after (the last entry read_fold saw), or
        # None while the shard has more to read (its next read_fold goes at once).
        self.last_id: str | None = None
        self.catalogs: dict[str, CatalogVersion] = {}


class ShardSender:
    """Delivers the owned shards' batches (see the module doc). ``drop(shard, why)`` is
    called when a step finds the shard's lease lost."""

    def __init__(
        self,
        redis: FleetRedis,
        scripts: ShardScripts,
        settings: WorkerSettings,
        hub: InventoryHub,
        interval_us: int,
        drop: Callable[[OwnedShard, str], None],
        stop: WorkerStop,
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.keys: KeySpace = scripts.keys
        self.settings = settings
        self.hub = hub
        self._interval_us = interval_us
        rate = settings.rate_limit
        self._lateness_us = gcra_lateness_us(rate.requests, rate.period, rate.safety)
        self._delay = SendDelay()
        self._drop = drop
        self._stop = stop
        self.sent = 0
        """Requests that left (batches and detections)."""

    async def _retry(self, step: Callable[[], Awaitable[_T]]) -> _T:
        return await retry_redis(step, self._stop)

    async def run(self, shard: OwnedShard, stopping: asyncio.Event) -> None:
        """Send the shard's batches until it is leaving or the worker stops."""
        sites_key = self.keys.key(shard.number, "sites")
        while not shard.leaving and not stopping.is_set():
            shard.event.clear()
            if self._deferring(shard):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shard.event.wait(), 0.05)
                continue
            sites = await self._retry(lambda: self.redis.zrange(sites_key, 0, -1))
            pending: list[float] = []
            for site in sites:
                if shard.leaving or stopping.is_set():  # hand over without starting another
                    return
                wait = await self._send_one(shard, text(site))
                if wait is not None:
                    pending.append(wait)
            if pending and min(pending) == 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shard.event.wait(), min(pending, default=IDLE_S))

    def _slot(self) -> tuple[int, float]:
        """The GCRA interval to ask for the next request, and the seconds it may take from
        asking to leaving (see the module doc)."""
        extra = gcra_stretch_us(self._delay.expected() * 1e6, self._lateness_us, SEND_SHARE)
        return self._interval_us + extra, (self._lateness_us + extra) * SEND_SHARE / 1e6

    def _left(self, asked: float) -> None:
        """A request asked for its slot at ``asked`` (loop time) and leaves now, or found
        itself too late to."""
        self._delay.observe(asyncio.get_running_loop().time() - asked)

    def _deferring(self, shard: OwnedShard) -> bool:
        """While the reader still folds a backlog, deltas of the same keys are on their way:
        a send now would need a second request for them. Wait for the reader, but at most
        ``max_defer`` seconds, so a stream that stays full still delivers."""
        since, most = shard.behind_since, self.settings.max_defer
        return since is not None and asyncio.get_running_loop().time() - since < most

    async def _send_one(self, shard: OwnedShard, site: str) -> float | None:
        """One begin-send-finish for ``site``; the seconds to wait before the next, ``None``
        when nothing is pending."""
        catalog = await self._catalog(shard, site)
        if not isinstance(catalog, CatalogVersion):
            return catalog
        batch_id = uuid.uuid4().hex
        interval_us, send_within = self._slot()
        # Before begin leaves: its grant comes later, so this bounds how long ago it was.
        asked = asyncio.get_running_loop().time()
        try:
            begun: Begun = await self._retry(
                lambda: self.scripts.begin(
                    shard.number,
                    shard.token,
                    site,
                    interval_us=interval_us,
                    lease_min_ms=self.settings.lease_min_ms,
                    batch_id=batch_id,
                )
            )
        except ResponseError as error:
            self._drop(shard, f"fenced at begin ({error})")
            return None
        if begun.status == "WAIT":
            return begun.wait_us / 1e6
        if begun.status == "LEASE":
            return 0.05
        if begun.status != "BEGUN":
            return None
        crash_point("after_begin")
        settled = await self._deliver(shard, site, catalog, begun, asked, asked + send_within)
        await self._retry(
            lambda: self.scripts.finish_each(shard.number, shard.token, batch_id, settled)
        )
        return 0.0

    # --- the site's catalog ----------------------------------------------------------------

    async def _catalog(self, shard: OwnedShard, site: str) -> CatalogVersion | float | None:
        """The site's catalog: known to this shard's loop, kept in Redis, or detected now;
        else the seconds to wait (pacing, a failed detection), ``None`` when fenced."""
        known = shard.catalogs.get(site)
        if known is not None:
            return known
        key = self.keys.site_key(shard.number, "cat", site)
        stored = text(await self._retry(lambda: self.redis.get(key)))
        if stored in (CatalogVersion.V1_CATALOG.value, CatalogVersion.V3_CATALOG.value):
            shard.catalogs[site] = CatalogVersion(stored)
            return shard.catalogs[site]
        return await self._detect(shard, site, key)

    async def _detect(
        self, shard: OwnedShard, site: str, key: str
    ) -> CatalogVersion | float | None:
        """Detect the site's catalog, each request on a slot of its own (:class:`_Slots`);
        stored only from an answer."""
        slots = _Slots(self, shard, site)
        try:
            async with asyncio.timeout(self._deadline):
                version = await self.hub.site(site).client.catalog_version(pace=slots)
        except _NotPaced as refused:
            self.sent += slots.granted
            return refused.wait
        except Exception as error:  # a read: nothing to settle, try again later
            self.sent += slots.granted - isinstance(error, LateSendError)
            log.warning("site %s: catalog detection failed (%r)", site, error)
            return DETECT_RETRY
        self.sent += slots.granted
        if version is not CatalogVersion.STORES_NOT_INSTALLED:
            await self._retry(lambda: self.redis.set(key, version.value, px=CATALOG_TTL_MS))
            shard.catalogs[site] = version
            log.info("site %s runs %s", site, version.value)
        return version

    async def _pace(self, shard: OwnedShard, site: str, interval_us: int) -> tuple[str, int]:
        """One slot of the site's pacing for a detection request; :class:`_NotPaced` (the
        shard dropped) when fenced."""
        try:
            return await self._retry(
                lambda: self.scripts.pace(
                    shard.number,
                    shard.token,
                    site,
                    interval_us=interval_us,
                    lease_min_ms=self.settings.lease_min_ms,
                    slots=1,
                )
            )
        except ResponseError as error:
            self._drop(shard, f"fenced at pace ({error})")
            raise _NotPaced(None) from error

    async def _forget_catalog(self, shard: OwnedShard, site: str) -> None:
        """The site was refused for the wrong catalog (it moved): detect it again."""
        shard.catalogs.pop(site, None)
        key = self.keys.site_key(shard.number, "cat", site)
        await self._retry(lambda: self.redis.delete(key))
        log.warning("site %s: refused for the wrong catalog; detecting it again", site)

    # --- one batch --------------------------------------------------------------------------

    @property
    def _deadline(self) -> float:
        return self.settings.http_timeout + self.settings.margin / 2

    async def _deliver(
        self,
        shard: OwnedShard,
        site: str,
        catalog: CatalogVersion,
        begun: Begun,
        asked: float,
        not_after: float,
    ) -> EntryVerdicts:
        """Send the begun batch (its slot asked for at ``asked``), no attempt after
        ``not_after`` (loop time); its verdicts."""
        codes = refusals(begun.entries, catalog)
        sending = [e for e, code in zip(begun.entries, codes, strict=True) if not code]
        v3 = catalog is CatalogVersion.V3_CATALOG
        if not sending:
            return v3_settlement(codes, None, None) if v3 else v1_settlement(codes, None)
        gate = await self._retry(
            lambda: self.scripts.mark_sent(
                shard.number, shard.token, begun.batch_id, self.settings.lease_min_ms
            )
        )
        if gate != "OK":  # fenced or lease short: the request never leaves
            unsent = tuple(("REJECTED", c) if c else ("RETURNED", gate) for c in codes)
            return EntryVerdicts(unsent, code=gate)
        crash_point("after_mark_sent")
        self._left(asked)
        result, error = await self._request(site, catalog, begun.kind, sending, not_after)
        crash_point("after_answer")
        if isinstance(error, LateSendError):
            self._left(asked)
            log.warning("site %s: batch %s returned, not sent (%s)", site, begun.batch_id, error)
        else:
            self.sent += 1
        if wrong_catalog(error):
            await self._forget_catalog(shard, site)
        return v3_settlement(codes, result, error) if v3 else v1_settlement(codes, error)

    async def _request(
        self,
        site: str,
        catalog: CatalogVersion,
        kind: str,
        entries: list[PlannedEntry],
        not_after: float,
    ) -> tuple[BulkResult | None, BaseException | None]:
        """Send, bounded by the deadline, no attempt after ``not_after``; the answer, or what
        it raised instead."""
        try:
            async with asyncio.timeout(self._deadline):
                if os.environ.get(CRASH_ENV) == "during_request":
                    return await self._crash_during(site, catalog, kind, entries), None
                client = self.hub.site(site).client
                return await send_batch(client, catalog, kind, entries, not_after=not_after), None
        except Exception as error:  # every failure is data: the verdict tables decide
            if not isinstance(error, WixInventoryError | TimeoutError):
                log.exception("site %s: unexpected error from the request (in doubt)", site)
            return None, error

    async def _crash_during(
        self, site: str, catalog: CatalogVersion, kind: str, entries: list[PlannedEntry]
    ) -> BulkResult | None:
        request = asyncio.ensure_future(
            send_batch(self.hub.site(site).client, catalog, kind, entries)
        )
        await asyncio.wait([request], timeout=0.05)  # the request is on the wire by now
        crash_point("during_request")
        return await request


class _NotPaced(Exception):
    """A detection request got no slot: its detection ends, and the loop waits ``wait``
    seconds for the site (``None``: the shard was dropped). Never leaves this module."""

    def __init__(self, wait: float | None) -> None:
        super().__init__(wait)
        self.wait = wait


class _Slots:
    """Paces one detection of a site (the client's :class:`~wixinv_async.client.DetectionPacer`):
    a GCRA slot of the site for each request, taken right before it, and the request's send
    deadline reckoned as a batch's (the loop time before the slot was asked, plus the share).

    A first slot refused ends the detection with the wait (nothing was asked yet: the loop
    goes on to other sites). A later one (the probe after the version call's 403) is waited
    for here, so the answer in hand is not asked again. A lease too short ends it."""

    __slots__ = ("_sender", "_shard", "_site", "granted")

    def __init__(self, sender: ShardSender, shard: OwnedShard, site: str) -> None:
        self._sender, self._shard, self._site = sender, shard, site
        self.granted = 0

    async def __call__(self) -> float:
        loop = asyncio.get_running_loop()
        while True:
            interval_us, send_within = self._sender._slot()
            asked = loop.time()
            status, wait = await self._sender._pace(self._shard, self._site, interval_us)
            if status == "OK":
                self.granted += 1
                self._sender._left(asked)  # the request leaves as this returns
                return asked + send_within
            if status != "WAIT":
                raise _NotPaced(0.05)
            if not self.granted or self._shard.leaving:
                raise _NotPaced(wait / 1e6)
            await asyncio.sleep(wait / 1e6)
