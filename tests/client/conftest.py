"""Fixtures of the client tests: a virtual event-loop clock, mocked HTTP and small builders."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from unittest import mock

import aiohttp
import aioresponses.core as aioresponses_core
import msgspec
import pytest
from aioresponses import aioresponses
from yarl import URL

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.models import DEFAULT_VARIANT_ID, DecrementData
from wixinv_async.transport import VirtualClock

V0 = DEFAULT_VARIANT_ID


class VirtualTime:
    """The patched loop's clock: it jumps to the next timer instead of waiting for it."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now


@pytest.fixture
async def virtual_time() -> AsyncIterator[VirtualTime]:
    """Run the test's event loop on virtual time (as aiolimiter's tests patch ``loop.time``).

    When the loop would block waiting for a timer with nothing else ready, the clock jumps to
    that timer instead, so limiter pacing and sleeps of minutes cost no real time.
    """
    loop = asyncio.get_running_loop()
    selector: selectors.BaseSelector = loop._selector  # type: ignore[attr-defined]
    real_select = selector.select
    clock = VirtualTime(1_000.0)

    def select(timeout: float | None = None) -> list[Any]:
        events = real_select(0)
        if events:
            return events
        if timeout is None:
            return real_select(None)
        if timeout <= 0 and not loop._ready:  # type: ignore[attr-defined]
            # A timer due "now" that keeps rescheduling itself a few ulps ahead (aiolimiter
            # does when float rounding leaves a sliver of level): real time would move on.
            timeout = 1e-6
        clock.now += max(timeout, 0.0)
        return []

    loop.time = clock.time  # type: ignore[method-assign]
    selector.select = select  # type: ignore[method-assign]
    try:
        yield clock
    finally:
        del loop.time
        selector.select = real_select  # type: ignore[method-assign]


@pytest.fixture
def clock() -> VirtualClock:
    """A client clock whose sleeps return at once and are recorded."""
    return VirtualClock()


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` aiohttp 3.14 needs."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", mock.Mock(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aiohttp with every request answered from registered mocks."""
    monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)
    with aioresponses() as mocked:
        yield mocked


@pytest.fixture
def new_client(clock: VirtualClock) -> Callable[..., InventoryClient]:
    """Make an API-key client for site SITE: seeded retries, no pacing, the virtual clock."""

    def make(**options: Any) -> InventoryClient:
        options.setdefault("rate_limit", None)
        options.setdefault("retry", RetryPolicy(seed=7))
        options.setdefault("clock", clock)
        auth = options.pop("auth", None) or ApiKeyAuth("KEY", site_id="SITE")
        return InventoryClient(auth, **options)

    return make


@pytest.fixture
async def client(new_client: Callable[..., InventoryClient]) -> AsyncIterator[InventoryClient]:
    """An API-key client over real aiohttp (mock it with ``http``), closed after the test."""
    async with new_client() as made:
        yield made


@pytest.fixture
def decrements() -> Callable[..., list[DecrementData]]:
    """Build ``count`` valid decrement entries for distinct products."""

    def build(count: int = 1, *, by: int = 1) -> list[DecrementData]:
        return [
            DecrementData(product_id=f"p{i}", variant_id=V0, decrement_by=by) for i in range(count)
        ]

    return build


@pytest.fixture
def sent() -> Callable[[aioresponses, str, str], list[Any]]:
    """The JSON bodies aiohttp sent to ``method url``, in order."""

    def bodies(mocked: aioresponses, method: str, url: str) -> list[Any]:
        calls = mocked.requests.get((method, URL(url)), [])
        return [msgspec.json.decode(call.kwargs["data"]) for call in calls]

    return bodies
