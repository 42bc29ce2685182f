"""A batch's request never leaves late enough to overfill a rolling window: the arithmetic of
how late it may be, stretched or not (pure, no event loop); a worker that stalls past it
sends nothing, returns the batch and delivers its deltas once, later; a refused request is
not retried on its slot."""

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
    SendDelay,
    Verdict,
    gcra_decide,
    gcra_interval_us,
    gcra_lateness_us,
    gcra_stretch_us,
    verdict_for,
)
from wixinv_async.fleet.verdicts import v1_settlement, v3_settlement
from wixinv_async.fleet.worker import FleetWorker, WorkerSettings

# --- the arithmetic -------------------------------------------------------------------------


def grants(asks: list[int], interval: int | list[int]) -> list[int]:
    """When the GCRA grants each ask (microseconds on one clock), each with its own interval
    when given a list: an ask refused waits for the wait it was told, and asks again."""
    intervals = interval if isinstance(interval, list) else [interval] * len(asks)
    tat, granted, now = 0, [], 0
    for ask, each in zip(asks, intervals, strict=True):
        now = max(now, ask)
        decision = gcra_decide(tat, now, each)
        if not decision.allowed:
            now += decision.wait_us
            decision = gcra_decide(tat, now, each)
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


@settings(max_examples=120, deadline=None)
@given(
    requests=st.integers(1, 40),
    period_ms=st.integers(1, 120_000),
    safety=st.sampled_from([0.0, 0.02, 0.1]) | st.floats(0.0, 0.9),
    gaps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=120),
    delays=st.lists(st.sampled_from([0.0, 1.0, 5.0]) | st.floats(0.0, 5.0), min_size=120),
    lateness=st.lists(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0), min_size=120),
    share=st.sampled_from([0.5, 1.0]) | st.floats(0.01, 1.0),
)
def test_stretched_sends_never_overfill_a_window(
    requests: int,
    period_ms: int,
    safety: float,
    gaps: list[float],
    delays: list[float],
    lateness: list[float],
    share: float,
) -> None:
    """Each request stretched for a delay of its own (up to five intervals, zero for some),
    with the lateness that stretch allows: anywhere from its grant to its grant plus
    ``lateness + stretch``, in any order. No rolling window holds more than the budget, and
    ``share`` of that lateness covers the delay."""
    period = period_ms / 1000
    interval = gcra_interval_us(requests, period, safety)
    limit = gcra_lateness_us(requests, period, safety)
    n = len(gaps)
    delay_us = [d * interval for d in delays[:n]]
    stretch = [gcra_stretch_us(d, limit, share) for d in delay_us]
    asks = [round(sum(gaps[: k + 1]) * interval) for k in range(n)]
    granted = grants(asks, [interval + extra for extra in stretch])
    sends = [
        grant + math.floor(late * (limit + extra))
        for grant, late, extra in zip(granted, lateness, stretch, strict=False)
    ]
    assert all(share * (limit + e) >= d - 1 for e, d in zip(stretch, delay_us, strict=True))
    assert refused_by_strict_window(sends, requests, period_ms * 1000) == 0


def test_no_stretch_while_the_share_covers_the_delay() -> None:
    """A delay within the share of the lateness asks for nothing more; past it, just enough:
    at 5 a second with 10 % (100 ms of lateness, half of it for the delay), a 30 ms delay
    adds nothing and an 80 ms one adds 60 ms."""
    limit = gcra_lateness_us(5, 1.0, 0.1)
    assert gcra_stretch_us(30_000, limit, 0.5) == 0
    assert gcra_stretch_us(80_000, limit, 0.5) == 160_000 - limit
    assert gcra_stretch_us(80_000, 0, 0.5) == 160_000


def test_the_send_delay_estimate_follows_what_it_sees() -> None:
    """Nothing seen: no delay. A steady delay is covered with room to spare; a burst raises
    the estimate, which comes back near the steady delay within a few dozen requests; one
    stall counts for at most the cap, and a long delay that stays is reached all the same."""
    delay = SendDelay()
    assert delay.expected() == 0.0
    for _ in range(50):
        delay.observe(0.040)
    assert 0.040 <= delay.expected() < 0.045
    delay.observe(0.2)
    raised = delay.expected()
    assert raised > 0.2
    for _ in range(40):
        delay.observe(0.040)
    assert delay.expected() < 0.05
    stalled = SendDelay()
    stalled.observe(30.0)
    assert stalled.expected() <= 3 * SendDelay.CAP
    slow = SendDelay()
    for _ in range(12):
        slow.observe(5.0)
    assert slow.expected() >= 5.0  # a delay past the cap that stays is still covered


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


async def test_a_refused_request_is_not_retried_on_its_slot(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """The first request is answered 429: the worker's client does not retry it (a retry
    would reach Wix on the refused attempt's slot); the batch is RETURNED (nothing was
    applied) and a later batch, begun on a slot of its own, applies the delta once."""

    def arrange(worker: FleetWorker, finishes: Finishes) -> None:
        finish = worker.scripts.finish_each

        async def heal(*args: Any) -> str:
            emulator.set_faults(None)  # only the first request is refused
            return await finish(*args)

        worker.scripts.finish_each = heal  # type: ignore[method-assign]

    plan = FaultPlan({"incrementInventory": FaultRule(rate_limited=1.0)}, retry_after=0)
    async with Emulator(products=0, rate_limit="5/1", faults=plan) as emulator:
        status, finishes, quantity = await deliver_one(redis_url, redis_conn, emulator, arrange)
        assert status is EventStatus.APPLIED and quantity == 13
        assert answered(emulator, "incrementInventory") == {"429": 1, "200": 1}
    verdicts = [(settled.statuses, state) for settled, state in finishes.done]
    assert verdicts == [
        ((("RETURNED", "TOO_MANY_REQUESTS"),), "RETURNED"),
        ((("APPLIED", ""),), "APPLIED"),
    ]


async def test_a_worker_slower_than_the_share_stretches_its_slots_and_delivers(
    redis_url: str, redis_conn: aioredis.Redis
) -> None:
    """Every mark_sent takes 80 ms (a slow Redis), more than the 50 ms share of the
    lateness at 5 a second: without a stretch every batch would come back LATE and none
    would ever be sent. The worker learns the delay, asks for longer intervals, and delivers
    every delta once, the emulator's strict window refusing none."""

    def arrange(worker: FleetWorker, finishes: Finishes) -> None:
        mark_sent = worker.scripts.mark_sent

        async def slow(*args: Any) -> str:
            await asyncio.sleep(0.08)
            return await mark_sent(*args)

        worker.scripts.mark_sent = slow  # type: ignore[method-assign]

    async with Emulator(products=0, rate_limit="5/1") as emulator:
        status, finishes, quantity = await deliver_one(redis_url, redis_conn, emulator, arrange)
        assert status is EventStatus.APPLIED and quantity == 13
        assert answered(emulator, "incrementInventory") == {"200": 1}
    late = [state for settled, state in finishes.done if settled.code == "LATE"]
    assert len(late) <= 1  # at most the one that taught it the delay
    assert finishes.done[-1][1] == "APPLIED"
