"""A worker detecting the catalog of a site whose app lacks the catalog-read scope sends the
version call and the V3 probe each on a pacing slot of its own (never back to back), with the
send deadline a batch has: a probe that would leave late is not sent, and detection is tried
again later. Then the site's batch is delivered, with no 429 under the strict window."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from wixinv_async import ApiKeyAuth, RateLimit
from wixinv_async.emulator import Emulator, SiteSpec
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.shards import EventStatus, gcra_interval_us
from wixinv_async.fleet.worker import FleetWorker, WorkerSettings

PREFIX = "detect"
RATE = RateLimit(5, 1.0, safety=0.1)  # the fleet tests' rate: slots 0.22 s apart
INTERVAL = gcra_interval_us(RATE.requests, RATE.period, RATE.safety) / 1e6


class Admissions:
    """The emulator's clock, noting each moment it is read: with an API key it is read only
    to admit a request into the site's rate window, so these are the requests' arrivals."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self) -> float:
        now = time.monotonic()
        self.times.append(now)
        return now


def a_key(emulator: Emulator, catalog: str) -> tuple[str, str, str]:
    """A tracked variant of the site: (product, variant, location; "" for the default)."""
    site = emulator.sites[0]
    if catalog == "v1":
        item = emulator.site(site).add_product(variants=1, quantity=10, track=True)
        return item.product_id, item.variants[0].variant_id, ""
    store = emulator.v3_store(site)
    record = next(
        r
        for r in store.records()
        if r.track and r.variant_id != "00000000-0000-0000-0000-000000000000"
    )
    location = "" if record.location_id == store.default_location else record.location_id
    return record.product_id, record.variant_id, location


async def deliver_one(
    redis_url: str,
    redis_conn: aioredis.Redis,
    emulator: Emulator,
    catalog: str,
    arrange: Callable[[FleetWorker], None] = lambda worker: None,
) -> EventStatus:
    """One increment submitted to a fresh worker (``arrange`` sets up its trouble); its
    outcome once it is out."""
    product, variant, location = a_key(emulator, catalog)
    settings = WorkerSettings(prefix=PREFIX, shards=2, rate_limit=RATE)
    worker = FleetWorker(
        redis_url, ApiKeyAuth(emulator.api_key), base_url=emulator.url, settings=settings
    )
    arrange(worker)
    running = asyncio.create_task(worker.run())
    try:
        producer = FleetProducer(redis_conn, prefix=PREFIX, shards=2)
        site = emulator.sites[0]
        await producer.submit(
            site, product, variant, 3, event_id="e1", location_id=location or None
        )
        outcome = await producer.outcome(site, "e1", wait=30)
    finally:
        worker.stop()
        await running
    assert outcome is not None
    return outcome.status


def answered(emulator: Emulator) -> dict[str, dict[str, int]]:
    """How the emulator answered each endpoint, count by status."""
    return {name: dict(counts) for name, counts in emulator.stats()["requests"].items()}


def scopeless(catalog: str, clock: Admissions) -> Emulator:
    spec = SiteSpec(catalog=catalog, products=2, variants_per_product=2)
    return Emulator(sites=[spec], rate_limit="5/1", version_scope=False, clock=clock)


@pytest.mark.parametrize(("catalog", "probed"), [("v1", "428"), ("v3", "200")])
async def test_the_version_call_and_the_probe_each_wait_for_their_own_slot(
    redis_url: str, redis_conn: aioredis.Redis, catalog: str, probed: str
) -> None:
    """The version call (403) and the probe that decides reach the emulator at least half a
    pacing interval apart (back to back before: milliseconds), the version call asked once;
    the batch follows on a slot of its own; no 429."""
    clock = Admissions()
    async with scopeless(catalog, clock) as emulator:
        status = await deliver_one(redis_url, redis_conn, emulator, catalog)
        requests = answered(emulator)
    assert status is EventStatus.APPLIED
    assert requests["getCatalogVersion"] == {"403": 1}
    assert requests["queryInventoryItems"] == {probed: 1}
    reads = ("getCatalogVersion", "queryInventoryItems")
    assert [v for k, v in requests.items() if k not in reads] == [{"200": 1}]  # the batch
    assert len(clock.times) == 3  # the version call, the probe, the batch
    gaps = [later - earlier for earlier, later in itertools.pairwise(clock.times)]
    assert min(gaps) >= INTERVAL / 2, gaps


async def test_a_probe_that_would_leave_late_is_not_sent_and_detection_is_tried_again(
    redis_url: str, redis_conn: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker stalls (the event loop blocked) right after the probe's slot is granted,
    past its send deadline: the probe never reaches the emulator; detection is tried again
    from the version call, and the batch is delivered once; no 429."""
    stalled: list[bool] = []

    def stall() -> None:
        stalled.append(True)
        time.sleep(0.3)  # blocks the event loop: nothing runs, as under SIGSTOP

    def arrange(worker: FleetWorker) -> None:
        pace = worker.scripts.pace
        granted: list[tuple[str, int]] = []

        async def stall_after_the_second_grant(*args: Any, **kwargs: Any) -> tuple[str, int]:
            reply = await pace(*args, **kwargs)
            if reply[0] == "OK":
                granted.append(reply)
                if len(granted) == 2:
                    stall()
            return reply

        worker.scripts.pace = stall_after_the_second_grant  # type: ignore[method-assign]

    caplog.set_level(logging.WARNING, logger="wixinv_async.fleet")
    clock = Admissions()
    async with scopeless("v1", clock) as emulator:
        status = await deliver_one(redis_url, redis_conn, emulator, "v1", arrange)
        requests = answered(emulator)
    assert stalled and status is EventStatus.APPLIED
    assert requests["getCatalogVersion"] == {"403": 2}  # asked again after the late probe
    assert requests["queryInventoryItems"] == {"428": 1}  # the late one never came
    assert requests["incrementInventory"] == {"200": 1}
    failed = [r.getMessage() for r in caplog.records if "detection failed" in r.getMessage()]
    assert len(failed) == 1 and "LateSendError" in failed[0]
