"""A batch's request never leaves late enough to overfill a rolling window: the arithmetic of
how late it may be (pure, no event loop), and a worker that stalls past it or whose retry
would go past it sends nothing, returns the batch and delivers its deltas once, later."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async import ApiKeyAuth, RateLimit
from wixinv_async.emulator import Emulator
from wixinv_async.emulator.faults import FaultPlan, FaultRule
from wixinv_async.emulator.ratelimit import RollingWindow
from wixinv_async.errors import LateSendError
from wixinv_async.fleet import _sender
from wixinv_async.fleet.producer import FleetProducer
from wixinv_async.fleet.scripts import EntryVerdicts
from wixinv_async.fleet.shards import (
    EventStatus,
    Verdict,
    gcra_decide,
    gcra_interval_us,
    gcra_lateness_us,
    verdict_for,
)
from wixinv_async.fleet.verdicts import v1_settlement, v3_settlement
from wixinv_async.fleet.worker import FleetWorker, WorkerSettings

# --- the arithmetic -------------------------------------------------------------------------


def grants(asks: list[int], interval: int) -> list[int]:
    """When the GCRA grants each ask (microseconds on one clock): an ask refused waits for
    the wait it was told, and asks again."""
    tat, granted, now = 0, [], 0
    for ask in asks:
        now = max(now, ask)
        decision = gcra_decide(tat, now, interval)
        if not decision.allowed:
            now += decision.wait_us
            decision = gcra_decide(tat, now, interval)
        assert decision.allowed
        tat = decision.tat
        granted.append(now)
    return granted


def refused_by_strict_window(sends: list[int], requests: int, period_us: float) -> int:
    """How many of ``sends`` (microseconds) the emulator's strict rolling window refuses."""
    window = RollingWindow(requests, period_us)
    return sum(window.try_acquire(moment) is not None for moment in sorted(sends))


@settings(max_examples=300, deadline=None)
@given(
    requests=st.integers(1, 40),
    period_ms=st.integers(1, 120_000),
    safety=st.sampled_from([0.0, 0.001, 0.02, 0.1, 0.5]) | st.floats(0.0, 0.9),
    gaps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=120),
    lateness=st.lists(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0), min_size=120),
)
def test_sends_within_the_lateness_never_overfill_a_window(
    requests: int,
    period_ms: int,
    safety: float,
    gaps: list[float],
    lateness: list[float],
) -> None:
    """GCRA grants, each request sent anywhere from its grant to its grant plus
    gcra_lateness_us, in any order: no rolling window of the period holds more than the
    budget (the strict window refuses none)."""
    period = period_ms / 1000
    interval = gcra_interval_us(requests, period, safety)
    limit = gcra_lateness_us(requests, period, safety)
    asks = [round(sum(gaps[: n + 1]) * interval) for n in range(len(gaps))]
    granted = grants(asks, interval)
    sends = [
        grant + math.floor(late * limit) for grant, late in zip(granted, lateness, strict=False)
    ]
    assert limit >= 0
    assert refused_by_strict_window(sends, requests, period_ms * 1000) == 0


@pytest.mark.parametrize(
    ("requests", "period", "safety"), [(5, 1.0, 0.1), (200, 60.0, 0.02), (3, 0.5, 0.0)]
)
def test_one_microsecond_later_overfills_a_window(
    requests: int, period: float, safety: float
) -> None:
    """The bound is tight: of the budget plus one requests granted back to back, those
    granted within the lateness of the first all leave at its end, the rest on time. At the
    lateness, the strict window takes them all; one microsecond later, it refuses one."""
    interval = gcra_interval_us(requests, period, safety)
    limit = gcra_lateness_us(requests, period, safety)
    granted = grants([0] * (requests + 1), interval)

    def sent(lateness: int) -> list[int]:
        return [max(grant, granted[0] + lateness) for grant in granted]

    assert refused_by_strict_window(sent(limit), requests, period * 1e6) == 0
    assert refused_by_strict_window(sent(limit + 1), requests, period * 1e6) == 1


def test_the_lateness_is_the_safety_margin() -> None:
    """About ``period * safety``: 1.2 s at Wix's 200 a minute with 2 %, 0.1 s at the tests'
    5 a second with 10 %, none without a margin."""
    assert gcra_lateness_us(200, 60, 0.02) == pytest.approx(1_200_000, abs=200)
    assert gcra_lateness_us(5, 1, 0.1) == pytest.approx(100_000, abs=5)
    assert gcra_lateness_us(200, 60, 0.0) == 0


@pytest.mark.parametrize("settle", ["v1", "v3"])
def test_a_batch_not_sent_for_lateness_is_returned(settle: str) -> None:
    """LateSendError (nothing sent) returns every sent entry with code LATE; the entries
    refused before any request stay REJECTED."""
    late = LateSendError("POST /x: not sent", late_by=0.2, attempt=2)
    codes = ["", "AMOUNT_ABOVE_99999", ""]
    settled = v1_settlement(codes, late) if settle == "v1" else v3_settlement(codes, None, late)
    assert settled.statuses == (
        ("RETURNED", "LATE"),
        ("REJECTED", "AMOUNT_ABOVE_99999"),
        ("RETURNED", "LATE"),
    )
    assert settled.code == "LATE" and verdict_for(late) is Verdict.RETURNED


# --- the worker -----------------------------------------------------------------------------

PREFIX = "late"
RATE = RateLimit(5, 1.0, safety=0.1)  # the fleet tests' rate: a send may be 50 ms late


class Finishes:
    """Every batch the worker finished: its verdicts and the state the finish answered."""

    def __init__(self, worker: FleetWorker) -> None:
        self.done: list[tuple[EntryVerdicts, str]] = []
        finish = worker.scripts.finish_each

        async def recorded(shard: int, token: str, batch_id: str, settled: EntryVerdicts) -> str:
            state = await finish(shard, token, batch_id, settled)
            self.done.append((settled, state))
            return state

        worker.scripts.finish_each = recorded  # type: ignore[method-assign]


async def deliver_one(
    redis_url: str,
    redis_conn: aioredis.Redis,
    emulator: Emulator,
    arrange: Callable[[FleetWorker, Finishes], None],
) -> tuple[EventStatus, Finishes, int]:
    """One increment of 3 submitted to a fresh worker (``arrange`` sets up its trouble); its
    outcome, the worker's finishes and the variant's quantity once it is out."""
    item = emulator.store.add_product(variants=1, quantity=10, track=True)
    variant = item.variants[0].variant_id
    settings = WorkerSettings(prefix=PREFIX, shards=2, rate_limit=RATE)
    worker = FleetWorker(
        redis_url, ApiKeyAuth(emulator.api_key), base_url=emulator.url, settings=settings
    )
    finishes = Finishes(worker)
    arrange(worker, finishes)
    running = asyncio.create_task(worker.run())
    try:
        producer = FleetProducer(redis_conn, prefix=PREFIX, shards=2)
        await producer.submit(emulator.site_id, item.product_id, variant, 3, event_id="e1")
        outcome = await producer.outcome(emulator.site_id, "e1", wait=30)
    finally:
        worker.stop()
        await running
    assert outcome is not None
    return outcome.status, finishes, emulator.store.quantity(item.product_id, variant) or 0


def answered(emulator: Emulator, endpoint: str) -> dict[str, int]:
    """How the emulator answered ``endpoint``, count by status."""
    return dict(emulator.stats()["requests"].get(endpoint, {}))


async def test_a_worker_stalled_after_mark_sent_sends_nothing_and_delivers_later(
    redis_url: str,
    redis_conn: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The whole process stalls right after mark_sent (the loop blocked, as SIGSTOP does)
    past the lateness a window allows: the request never reaches the emulator, the batch is
    RETURNED (LATE, logged once), and a later batch applies the delta exactly once."""
    stalled: list[str] = []

    def stall_once(step: str) -> None:
        if step == "after_mark_sent" and not stalled:
            stalled.append(step)
            time.sleep(0.3)  # blocks the event loop: nothing runs, as under SIGSTOP

    def arrange(worker: FleetWorker, finishes: Finishes) -> None:
        monkeypatch.setattr(_sender, "crash_point", stall_once)

    caplog.set_level(logging.WARNING, logger="wixinv_async.fleet")
    async with Emulator(products=0, rate_limit="5/1") as emulator:
        status, finishes, quantity = await deliver_one(redis_url, redis_conn, emulator, arrange)
        assert stalled
        assert status is EventStatus.APPLIED and quantity == 13
        assert len(emulator.store.journal) == 1  # the stalled batch's request never came
        assert answered(emulator, "incrementInventory") == {"200": 1}
    (first, state), *later = finishes.done
    assert state == "RETURNED" and first.statuses == (("RETURNED", "LATE"),)
    assert [s for settled, s in later] == ["APPLIED"]
    late = [r for r in caplog.records if "not sent" in r.getMessage()]
    assert len(late) == 1 and late[0].levelno == logging.WARNING


async def test_a_retry_that_would_go_past_the_deadline_is_not_sent(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """The first request is answered 429 (Retry-After 1 s): its retry would leave a second
    after its grant, so it is not sent; the batch is RETURNED (nothing was applied) and a
    later batch, with a slot of its own, applies the delta once."""

    def arrange(worker: FleetWorker, finishes: Finishes) -> None:
        finish = worker.scripts.finish_each

        async def heal(*args: Any) -> str:
            emulator.set_faults(None)  # only the first request is refused
            return await finish(*args)

        worker.scripts.finish_each = heal  # type: ignore[method-assign]

    plan = FaultPlan({"incrementInventory": FaultRule(rate_limited=1.0)}, retry_after=1)
    async with Emulator(products=0, rate_limit="5/1", faults=plan) as emulator:
        status, finishes, quantity = await deliver_one(redis_url, redis_conn, emulator, arrange)
        assert status is EventStatus.APPLIED and quantity == 13
        assert answered(emulator, "incrementInventory") == {"429": 1, "200": 1}
    verdicts = [(settled.statuses, state) for settled, state in finishes.done]
    assert verdicts[0] == ((("RETURNED", "LATE"),), "RETURNED")
    assert verdicts[-1] == ((("APPLIED", ""),), "APPLIED")
    assert all(state in ("RETURNED", "APPLIED") for _, state in verdicts)
