"""Fixtures of the client tests: a virtual event-loop clock, a scripted server and builders."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import math
import selectors
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.errors import ConnectError, TransportError
from wixinv_async.models import DEFAULT_VARIANT_ID, DecrementData
from wixinv_async.transport import HttpRequest, HttpResponse, MockTransport, VirtualClock

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


Answer = HttpResponse | Awaitable[HttpResponse]
Callback = Callable[[HttpRequest], Answer]


@dataclasses.dataclass
class _Route:
    method: str
    url: str
    answer: Callback
    uses: float  # math.inf: for ever


class Routes:
    """A scripted server behind the project's own ``MockTransport``.

    Answers are registered per method and URL and used in registration order, each once, ``n``
    times (``repeat=n``) or for ever (``repeat=True``), as aioresponses does; an answer may be a
    status with a JSON ``payload`` or raw ``body``, one of our transport errors to raise (what
    ``AiohttpTransport`` turns aiohttp's failures into, tested in test_transport.py), or a
    ``callback(request)``. A request nothing answers fails the test's client with ConnectError.
    """

    def __init__(self) -> None:
        self.transport = MockTransport(self._answer)
        self._routes: list[_Route] = []

    def post(
        self,
        url: str,
        *,
        status: int = 200,
        payload: Any = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        exception: TransportError | None = None,
        callback: Callback | None = None,
        repeat: bool | int = False,
    ) -> None:
        """Answer the next POSTs to ``url`` (see the class docstring)."""
        content = body if payload is None else msgspec.json.encode(payload)
        response = HttpResponse(status, content, dict(headers or {}))

        def answer(request: HttpRequest) -> Answer:
            if exception is not None:
                raise copy.copy(exception)  # a fresh one each time: no traceback piles up
            return response if callback is None else callback(request)

        uses = math.inf if repeat is True else max(int(repeat), 1)
        self._routes.append(_Route("POST", url, answer, uses))

    def requests_to(self, method: str, url: str) -> list[HttpRequest]:
        """The requests received for ``method url``, in order."""
        return [r for r in self.transport.requests if (r.method, r.url) == (method, url)]

    def _answer(self, request: HttpRequest) -> Answer:
        for route in self._routes:
            if (route.method, route.url) == (request.method, request.url):
                route.uses -= 1
                if route.uses <= 0:
                    self._routes.remove(route)
                return route.answer(request)
        raise ConnectError(f"nothing answers {request.method} {request.url}")


@pytest.fixture
def http() -> Routes:
    """The scripted server every client made by ``new_client`` or ``client`` talks to."""
    return Routes()


@pytest.fixture
def new_client(clock: VirtualClock, http: Routes) -> Callable[..., InventoryClient]:
    """Make an API-key client for site SITE over ``http``: seeded retries, no pacing, the
    virtual clock."""

    def make(**options: Any) -> InventoryClient:
        options.setdefault("transport", http.transport)
        options.setdefault("rate_limit", None)
        options.setdefault("retry", RetryPolicy(seed=7))
        options.setdefault("clock", clock)
        auth = options.pop("auth", None) or ApiKeyAuth("KEY", site_id="SITE")
        return InventoryClient(auth, **options)

    return make


@pytest.fixture
async def client(new_client: Callable[..., InventoryClient]) -> AsyncIterator[InventoryClient]:
    """An API-key client answered by ``http``, closed after the test."""
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
def sent() -> Callable[[Routes, str, str], list[Any]]:
    """The JSON bodies the client sent to ``method url``, in order."""

    def bodies(routes: Routes, method: str, url: str) -> list[Any]:
        return [request.json() for request in routes.requests_to(method, url)]

    return bodies
