"""Pacing under virtual time: no rolling window ever holds more than the budget."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from aiolimiter import AsyncLimiter

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.core.ratelimit import max_in_window
from wixinv_async.errors import ConfigurationError
from wixinv_async.models import DecrementData
from wixinv_async.transport import HttpRequest, HttpResponse, MockTransport, RateLimit, RateLimiter

Entries = Callable[..., list[DecrementData]]


class Server:
    """A mock Wix that records when each request arrived, per site."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.throttle_next: dict[str, str | None] = {}

    async def handle(self, request: HttpRequest) -> HttpResponse:
        site = request.headers["wix-site-id"]
        self.arrivals.append((asyncio.get_running_loop().time(), site))
        await asyncio.sleep(0.05)  # latency: other senders queue for slots meanwhile
        if site in self.throttle_next:
            retry_after = self.throttle_next.pop(site)
            return HttpResponse(429, b"", {"retry-after": retry_after} if retry_after else {})
        return HttpResponse.from_json(200, {})

    def times(self, site: str) -> list[float]:
        return [t for t, s in self.arrivals if s == site]


def client_for(server: Server, site: str, rate_limit: Any) -> InventoryClient:
    return InventoryClient(
        ApiKeyAuth("KEY", site_id=site),
        transport=MockTransport(server.handle),
        rate_limit=rate_limit,
        retry=RetryPolicy(seed=3),
    )


async def acquire_all(limiter: Any, count: int) -> list[float]:
    """Acquire ``count`` slots concurrently; the loop time of each grant."""
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(loop.time())

    await asyncio.gather(*(one() for _ in range(count)))
    return times


async def test_default_pacing_never_exceeds_200_in_any_minute(virtual_time: Any) -> None:
    """600 concurrent senders: at most 200 grants in any 60 s window, at >= 97 % of the rate."""
    site = RateLimiter().site("SITE")
    times = await acquire_all(site, 600)
    assert max_in_window(times, 60.0) <= 200
    rate = (len(times) - 1) / (max(times) - min(times))
    assert rate >= 0.97 * 200 / 60


def start_hogging(virtual_time: Any, most: float) -> asyncio.Task[None]:
    """A task whose callbacks hold the loop for up to ``most`` seconds, every 3 ms: every
    timer fires late by as much."""
    rng = random.Random(7)

    async def hog() -> None:
        while True:
            await asyncio.sleep(0.003)
            virtual_time.now += rng.uniform(0.0, most)

    return asyncio.create_task(hog())


async def test_a_late_event_loop_keeps_the_rate_and_the_window(virtual_time: Any) -> None:
    """Wake-ups up to 8 ms late still pace 50/s at >= 97 % of the limit, at most 50 a second."""
    hogging = start_hogging(virtual_time, 0.008)
    times = await acquire_all(RateLimiter(RateLimit(50, 1.0)).site("S"), 400)
    hogging.cancel()
    assert max_in_window(times, 1.0) <= 50
    assert (len(times) - 1) / (max(times) - min(times)) >= 0.97 * 50


async def test_a_capacity_one_bucket_would_lose_the_lateness(virtual_time: Any) -> None:
    """The contrast: AsyncLimiter(1, interval) spaces grants from the late ones, below 95 %."""
    hogging = start_hogging(virtual_time, 0.008)
    times = await acquire_all(AsyncLimiter(1, RateLimit(50, 1.0).interval), 400)
    hogging.cancel()
    assert (len(times) - 1) / (max(times) - min(times)) < 0.95 * 50


async def test_a_bursting_leaky_bucket_would_break_the_window(virtual_time: Any) -> None:
    """The contrast: AsyncLimiter(200, 60) puts about 400 into the first minute."""
    times = await acquire_all(AsyncLimiter(200, 60), 600)
    assert max_in_window(times, 60.0) > 390


@pytest.mark.parametrize(("requests", "period"), [(1, 1.0), (5, 2.0), (60, 60.0), (1000, 10.0)])
async def test_any_budget_holds_in_every_window(
    virtual_time: Any, requests: int, period: float
) -> None:
    """Whatever the budget, no window of the period holds more than it."""
    site = RateLimiter(RateLimit(requests, period)).site("S")
    times = await acquire_all(site, 3 * requests + 1)
    assert max_in_window(times, period) <= requests


async def test_client_requests_arrive_paced(virtual_time: Any, decrements: Entries) -> None:
    """400 concurrent decrements reach the server at most 200 per rolling minute."""
    server = Server()
    async with client_for(server, "S", RateLimit(200, 60)) as client:
        await asyncio.gather(*(client.decrement_inventory(decrements()) for _ in range(400)))
    assert len(server.arrivals) == 400
    assert max_in_window(server.times("S"), 60.0) <= 200


async def test_clients_sharing_a_limiter_share_the_budget(
    virtual_time: Any, decrements: Entries
) -> None:
    """Two clients of one site given one RateLimiter stay within one budget together."""
    server, shared = Server(), RateLimiter(RateLimit(20, 10))
    async with client_for(server, "S", shared) as a, client_for(server, "S", shared) as b:
        await asyncio.gather(
            *(c.decrement_inventory(decrements()) for c in [a, b] for _ in range(40))
        )
    assert max_in_window(server.times("S"), 10.0) <= 20


async def test_separate_budgets_would_double_the_rate(
    virtual_time: Any, decrements: Entries
) -> None:
    """The contrast: two private budgets for one site send twice the limit."""
    server = Server()
    async with (
        client_for(server, "S", RateLimit(20, 10)) as a,
        client_for(server, "S", RateLimit(20, 10)) as b,
    ):
        await asyncio.gather(
            *(c.decrement_inventory(decrements()) for c in [a, b] for _ in range(40))
        )
    assert max_in_window(server.times("S"), 10.0) > 20


async def test_a_429_pauses_every_sender_of_that_site_only(
    virtual_time: Any, decrements: Entries
) -> None:
    """After a 429 with Retry-After: 10, site S sends nothing for 10 s; site T carries on."""
    server, shared = Server(), RateLimiter(RateLimit(60, 60))
    server.throttle_next["S"] = "10"
    async with client_for(server, "S", shared) as s, client_for(server, "T", shared) as t:
        await asyncio.gather(
            *(c.decrement_inventory(decrements()) for c in [s, t] for _ in range(10))
        )
    throttled_at = server.times("S")[0]
    s_after = [x - throttled_at for x in server.times("S")[1:]]
    t_during = [x for x in server.times("T") if throttled_at < x < throttled_at + 10]
    assert min(s_after) >= 10.0
    assert t_during
    assert len(server.times("S")) == 11


async def test_without_pacing_a_429_still_pauses_every_sender(
    virtual_time: Any, decrements: Entries
) -> None:
    """rate_limit=None turns pacing off, not the shared 429 pause: after Retry-After: 10, the
    site's other senders send nothing for 10 s either."""
    server = Server()
    server.throttle_next["S"] = "10"
    async with client_for(server, "S", None) as client:
        first = asyncio.create_task(client.decrement_inventory(decrements()))
        await asyncio.sleep(1.0)  # (virtual time) its 429 came back at 0.05 s: the site pauses
        others = [client.decrement_inventory(decrements()) for _ in range(3)]
        await asyncio.gather(first, *others)
    throttled_at, *later = server.times("S")
    assert len(later) == 4 and min(later) - throttled_at >= 10.0


async def test_a_retry_after_too_long_to_wait_still_pauses_the_site(
    virtual_time: Any, decrements: Entries
) -> None:
    """A Retry-After beyond max_retry_after raises for the call that got it, and the site's
    other senders still hold off for that long instead of collecting 429s."""
    server = Server()
    server.throttle_next["S"] = "600"
    async with client_for(server, "S", RateLimiter(RateLimit(60, 60))) as client:
        results = await asyncio.gather(
            *(client.decrement_inventory(decrements()) for _ in range(5)),
            return_exceptions=True,
        )
    assert [type(r).__name__ for r in results].count("RateLimitedError") == 1
    throttled_at = server.times("S")[0]
    assert min(t - throttled_at for t in server.times("S")[1:]) >= 600.0


async def test_senders_released_by_a_pause_leave_one_interval_apart(
    virtual_time: Any, decrements: Entries
) -> None:
    """A pause does not bank a burst: after it, requests are still spaced by the interval."""
    server, rate = Server(), RateLimit(30, 30)
    server.throttle_next["S"] = None  # a 429 without Retry-After: backoff with jitter
    async with client_for(server, "S", rate) as client:
        await asyncio.gather(*(client.decrement_inventory(decrements()) for _ in range(20)))
    times = server.times("S")
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= rate.interval - 1e-9
    assert len(times) == 21


async def test_no_rate_limit_means_no_pacing(virtual_time: Any, decrements: Entries) -> None:
    """rate_limit=None sends everything at once."""
    server = Server()
    async with client_for(server, "S", None) as client:
        await asyncio.gather(*(client.decrement_inventory(decrements()) for _ in range(50)))
    assert len(set(server.times("S"))) == 1


@pytest.mark.parametrize(
    "settings",
    [
        {"requests": 0},
        {"period": 0},
        {"safety": -0.1},
        {"safety": 1.0},
        {"requests": 2.5},
        {"period": math.inf},
        {"period": math.nan},
        {"requests": 10**30, "period": 1},
        {"period": 1e-300},
        {"requests": 1, "period": 1e308},
    ],
)
def test_bad_rate_limits_are_refused(settings: dict[str, Any]) -> None:
    """A RateLimit that cannot work or means nothing is a ConfigurationError naming the field."""
    with pytest.raises(ConfigurationError, match=r"RateLimit.*(requests|period|safety)"):
        RateLimit(**settings)


async def test_limiter_repr_shows_live_state(virtual_time: Any) -> None:
    """The repr tells the site, the budget, the pause left and the 429 streak."""
    site = RateLimiter(RateLimit(10, 1)).site("S")
    site.throttled(5.0)
    assert repr(site) == "<SiteLimiter 'S' 10/1s paused=5.000s streak=1>"


def test_limiter_repr_works_outside_an_event_loop() -> None:
    """A repr needs no running loop."""
    site = RateLimiter().site("S")
    assert repr(site) == "<SiteLimiter 'S' 200/60.0s paused=0.000s streak=0>"
    assert repr(RateLimiter()) == "<RateLimiter 200/60.0s sites=0>"
