"""The one seam between wixinv_async and HTTP, plus the clocks and the per-site rate limiter.

Everything above this module speaks :class:`HttpRequest` and :class:`HttpResponse`. A
:class:`Transport` turns one into the other with a single async method; :class:`AiohttpTransport`
does it over aiohttp and translates every aiohttp and timeout exception into
:mod:`wixinv_async.errors`, keeping apart what was provably never sent (``ConnectError``,
``RequestTimeoutError(sent=False)``) from what the server may have processed
(``ConnectionLostError``, ``RequestTimeoutError(sent=True)``). :class:`MockTransport` answers
from a handler function, for tests (httpx's ``MockTransport`` in spirit).

Pacing (:class:`RateLimiter`) waits for slots of a pure
:class:`~wixinv_async.core.ratelimit.SlotSchedule` on the event loop's clock; waits for 429
pauses and backoff go through a :class:`Clock`, so tests can pass a :class:`VirtualClock` and
have them complete instantly while recording how long they would have lasted.

Pacing used to be ``aiolimiter.AsyncLimiter(1, interval)``. A bucket with more capacity bursts
past a rolling-window limit (see :mod:`wixinv_async.core.ratelimit`), and a capacity-1 bucket
spaces every grant from the previous *actual* grant, so each late wake-up of the event loop is
lost for good: 0.94 of a 50 requests/s limit was measured. Slots fixed in advance, with a
bounded catch-up, keep the same rolling-window guarantee (proved by a property test) at the
full paced rate, so aiolimiter no longer has a role in the library.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
import msgspec
from multidict import CIMultiDict, CIMultiDictProxy

from .core.ratelimit import (
    SlotSchedule,
    ThrottleState,
    catch_up_budget,
    check_rate,
    pacing_interval,
)
from .errors import (
    ConfigurationError,
    ConnectError,
    ConnectionLostError,
    RequestTimeoutError,
)

__all__ = [
    "AiohttpTransport",
    "Clock",
    "HttpRequest",
    "HttpResponse",
    "LoopClock",
    "MockTransport",
    "RateLimit",
    "RateLimiter",
    "SiteLimiter",
    "Transport",
    "VirtualClock",
]


@dataclasses.dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request. ``repr`` shows neither headers (credentials) nor the body.

    ``not_after``: the event-loop time after which it must not leave (``None``: no deadline).
    The client refuses an attempt past it right before handing it to the transport;
    :class:`AiohttpTransport` also gives a new connection no longer than what remains of it.
    """

    method: str
    url: str
    body: bytes = b""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    not_after: float | None = None

    @property
    def path(self) -> str:
        """The URL's path, e.g. ``/stores/v2/inventoryItems/decrement``."""
        return urlsplit(self.url).path

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)

    def without_headers(self) -> HttpRequest:
        """This request with its headers dropped: safe to keep in errors and logs."""
        return dataclasses.replace(self, headers={})

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {self.path}, {len(self.body)} bytes)"


@dataclasses.dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP response: status, headers (looked up case-insensitively by ``header``), body."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(
        cls, status: int, content: Any, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        """A response whose body is ``content`` encoded as JSON."""
        return cls(status, msgspec.json.encode(content), dict(headers or {}))

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or ``None``."""
        value = self.headers.get(name)
        if value is not None:
            return value
        lowered = name.lower()
        for key, candidate in self.headers.items():
            if key.lower() == lowered:
                return candidate
        return None

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)

    def __repr__(self) -> str:
        return f"HttpResponse({self.status}, {len(self.body)} bytes)"


@runtime_checkable
class Transport(Protocol):
    """Sends one request and returns its response, or raises a :class:`TransportError`."""

    async def handle_request(self, request: HttpRequest) -> HttpResponse: ...


Handler = Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]


_LEAST_CONNECT = 1e-6
"""Seconds: the connect timeout of a request whose deadline passed in the microseconds since
the client's last check."""


class MockTransport:
    """A transport that answers every request with ``handler(request)`` (sync or async).

    The handler may raise :class:`~wixinv_async.errors.TransportError` subclasses to play
    network failures. ``requests`` keeps every request received, in order.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[HttpRequest] = []

    async def handle_request(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        result = self._handler(request)
        if inspect.isawaitable(result):
            return await result
        return result

    def __repr__(self) -> str:
        return f"<MockTransport requests={len(self.requests)}>"


class AiohttpTransport:
    """Sends requests with an aiohttp session, its own (closed by ``aclose``) or a borrowed one.

    ``timeout`` bounds connecting (including waiting for a pooled connection) and each read
    separately, so a timeout tells whether the request can have been sent.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None, *, timeout: float = 30.0):
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0, got {timeout!r}")
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        self._connect = timeout

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ConfigurationError("the transport is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        elif self._session.closed:
            raise ConfigurationError("the aiohttp session given to the client is closed")
        return self._session

    async def handle_request(self, request: HttpRequest) -> HttpResponse:
        session = self._get_session()
        status: int | None = None  # once the status line and headers have arrived
        # Read-only and looked up case-insensitively as they came, never copied on success.
        headers: Mapping[str, str] = {}
        try:
            async with session.request(
                request.method,
                request.url,
                data=request.body or None,  # b"" would add a Content-Type to a GET
                headers=request.headers,
                timeout=self._timeout_of(request),
            ) as response:
                headers = response.headers
                status = response.status
                return HttpResponse(status, await response.read(), headers)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if status is None:
                error = _translated(exc, request)
            else:
                error = _body_lost(exc, request, status, headers)
            cause = _without_credentials(exc)
        raise error from cause  # outside the handler: no __context__ holding aiohttp's error

    def _timeout_of(self, request: HttpRequest) -> aiohttp.ClientTimeout:
        """The timeouts of one request. A request with a deadline may connect (or wait for a
        pooled connection) only until then: aiohttp writes the request as soon as it has the
        connection, so one made past the deadline would carry it late. Timing out
        there is a connect timeout, provably unsent (a pooled connection ready at once is
        taken without one)."""
        if request.not_after is None:
            return self._timeout
        left = request.not_after - asyncio.get_running_loop().time()
        # aiohttp reads a connect timeout of 0 or less as none at all.
        connect = min(self._connect, max(left, _LEAST_CONNECT))
        return aiohttp.ClientTimeout(total=None, connect=connect, sock_read=self._connect)

    async def aclose(self) -> None:
        """Close the session if this transport created it; later requests are refused (a
        request still retrying would otherwise open a session nothing closes)."""
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        owner = "own" if self._owns_session else "borrowed"
        return f"<AiohttpTransport {owner} session>"


def _translated(exc: BaseException, request: HttpRequest) -> Exception:
    """Our error for an aiohttp or timeout exception; it never includes headers or body."""
    what = f"{request.method} {request.path}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return RequestTimeoutError(f"{what}: timed out connecting", sent=False)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return RequestTimeoutError(f"{what}: timed out waiting for the response", sent=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(f"{what}: could not connect ({type(exc).__name__})")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return ConfigurationError(f"{what}: invalid URL")
    if isinstance(exc, TimeoutError):
        return RequestTimeoutError(f"{what}: timed out", sent=True)
    return ConnectionLostError(f"{what}: connection lost ({type(exc).__name__})")


def _body_lost(
    exc: BaseException, request: HttpRequest, status: int, headers: Mapping[str, str]
) -> ConnectionLostError:
    """The answer's status line and headers arrived, then reading its body failed. The error
    keeps the headers as a plain dict with lower-case names (errors must pickle)."""
    what = f"{request.method} {request.path}: HTTP {status} answered, then its body was lost"
    lowered = {key.lower(): value for key, value in headers.items()}
    return ConnectionLostError(f"{what} ({type(exc).__name__})", status=status, headers=lowered)


def _without_credentials(exc: BaseException) -> BaseException:
    """``exc``, or, for aiohttp's response errors, whose ``request_info`` (in their repr and
    args) holds the request headers and so the credentials, a copy without those headers."""
    if not isinstance(exc, aiohttp.ClientResponseError):
        return exc
    info = exc.request_info
    no_headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
    bare = aiohttp.RequestInfo(info.url, info.method, no_headers, info.real_url)
    copy = type(exc)(bare, (), status=exc.status, message=exc.message, headers=exc.headers)
    copy.__cause__ = exc.__cause__
    return copy.with_traceback(exc.__traceback__)


# --- Clocks ---------------------------------------------------------------------------


class Clock(Protocol):
    """Where the client reads the time and waits, for retries and 429 pauses."""

    def time(self) -> float: ...

    async def sleep(self, delay: float) -> None: ...


class LoopClock:
    """The running event loop's clock and ``asyncio.sleep``: the default."""

    __slots__ = ()

    def time(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # no running loop (a repr, say): the loop's default time source
            return time.monotonic()

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)

    def __repr__(self) -> str:
        return "LoopClock()"


class VirtualClock:
    """A clock for tests: ``sleep`` returns at once, advancing ``time`` by the delay.

    Pass it as ``InventoryClient(..., clock=VirtualClock())`` so backoff, ``Retry-After`` and
    429 pauses cost no real time; ``slept`` records every wait, to assert on.
    """

    __slots__ = ("_now", "slept")

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self._now

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        self._now += max(delay, 0.0)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"VirtualClock(time={self._now!r}, sleeps={len(self.slept)})"


# --- Rate limiting ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimit:
    """A per-site request budget: at most ``requests`` in any rolling ``period`` seconds.

    ``safety`` widens the spacing between requests by that fraction (see
    :mod:`wixinv_async.core.ratelimit`): slack against network jitter, at that cost in
    throughput. Wix documents 200 requests per minute per app instance.
    """

    requests: int = 200
    period: float = 60.0
    safety: float = 0.02

    def __post_init__(self) -> None:
        if isinstance(self.requests, bool) or not isinstance(self.requests, int):
            raise ConfigurationError(f"RateLimit.requests must be an int, got {self.requests!r}")
        if self.requests < 1 or not self.period > 0 or not 0 <= self.safety < 1:
            raise ConfigurationError(
                f"bad RateLimit: requests={self.requests!r} (>= 1), period={self.period!r} "
                f"(> 0), safety={self.safety!r} (0 to 1)"
            )
        check_rate(self.requests, self.period, source="RateLimit")

    @property
    def interval(self) -> float:
        """Seconds between two requests of one site."""
        return pacing_interval(self.requests, self.period, self.safety)


class SiteLimiter:
    """Pacing and the 429 pause of one site, shared by every sender of that site.

    Senders queue first come, first served; only the first in line waits for the next slot.
    ``rate=None``: no pacing, only the shared 429 pause (a client made with ``rate_limit=None``).
    """

    __slots__ = ("_clock", "_line", "_slots", "_throttle", "key", "rate", "waiting")

    def __init__(self, key: str, rate: RateLimit | None, clock: Clock) -> None:
        self.key = key
        self.rate = rate
        self._clock = clock
        self._slots = (
            None
            if rate is None
            else SlotSchedule(rate.interval, catch_up_budget(rate.period, rate.safety))
        )
        self._throttle = ThrottleState()
        self._line = asyncio.Lock()
        self.waiting = 0
        """Senders in :meth:`acquire` now (waiting for a pause, their slot or their turn)."""

    async def acquire(self) -> float | None:
        """Wait for any 429 pause, then for this site's next paced slot; the slot (for
        :meth:`unused`), ``None`` when unpaced.

        The slot is taken in the same step as the pause is checked, so none is used during a
        pause; after one, slots restart from now with no catch-up, so the senders released by
        a pause still leave one interval apart.
        """
        if not self.waiting and self._take_if_due():  # nobody in line: no lock needed
            return None if self._slots is None else self._slots.last
        self.waiting += 1
        try:
            return await self._acquire()
        finally:
            self.waiting -= 1

    def _take_if_due(self) -> bool:
        """Grant a sender with nobody ahead of it what :meth:`_acquire` would at once (no
        pause on, the next slot due: taken), or ``False`` if it would have to wait."""
        if self._throttle.remaining(self._clock.time()) > 0:
            return False
        slots = self._slots
        return slots is None or not slots.take(asyncio.get_running_loop().time())

    def next_slot(self) -> float:
        """The event-loop time at which a sender arriving now would get its slot: after the
        senders already waiting and any 429 pause (``-inf`` when unpaced and not paused).
        An estimate for holding a batch open until it can leave, never a grant."""
        paused_until = self._throttle.paused_until
        slots = self._slots
        if slots is None:
            return paused_until
        return max(slots.last + slots.interval * (1 + self.waiting), paused_until)

    async def _acquire(self) -> float | None:
        async with self._line:
            loop = asyncio.get_running_loop()
            slots, throttle, clock = self._slots, self._throttle, self._clock
            catch_up = True
            while True:
                while (pause := throttle.remaining(clock.time())) > 0:
                    catch_up = False
                    await clock.sleep(pause)
                if slots is None:
                    return None
                wait = slots.take(loop.time(), catch_up=catch_up)
                if not wait:
                    return slots.last
                await asyncio.sleep(wait)

    def unused(self, slot: float | None) -> None:
        """The slot an :meth:`acquire` returned was not used: nothing was sent in it (its
        sender was refused a token), so it goes back, if no later one was taken since."""
        if self._slots is not None and slot is not None:
            self._slots.give_back(slot)

    def throttled(self, delay: float) -> float:
        """Pause every sender of this site for ``delay`` seconds from now; the pause length."""
        now = self._clock.time()
        return self._throttle.throttled(now, delay) - now

    def succeeded(self) -> None:
        """A request was answered without a 429: the next pause starts small again."""
        self._throttle.succeeded()

    @property
    def streak(self) -> int:
        """429s in a row for this site."""
        return self._throttle.streak

    def __repr__(self) -> str:
        paused = self._throttle.remaining(self._clock.time())
        rate = "unpaced" if self.rate is None else f"{self.rate.requests}/{self.rate.period}s"
        return (
            f"<SiteLimiter {self.key!r} {rate} paused={paused:.3f}s streak={self._throttle.streak}>"
        )


class RateLimiter:
    """Per-site pacing for every client given this object (no globals).

    Several clients of one site (say a crawler and an adjuster) share one budget when they
    share one ``RateLimiter``; each site gets its own :class:`SiteLimiter` on first use.
    ``unpaced=True``: the sites' limiters do not pace, they only share each site's 429 pause
    (an :class:`~wixinv_async.hub.InventoryHub` made with ``rate_limit=None``).
    Bind it to one event loop.
    """

    __slots__ = ("_clock", "_sites", "rate")

    def __init__(
        self, rate: RateLimit | None = None, *, clock: Clock | None = None, unpaced: bool = False
    ) -> None:
        if unpaced and rate is not None:
            raise ConfigurationError(f"give a rate or unpaced=True, not both (rate={rate!r})")
        self.rate: RateLimit | None = None if unpaced else rate if rate is not None else RateLimit()
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._sites: dict[str, SiteLimiter] = {}

    def site(self, key: str) -> SiteLimiter:
        """The limiter of site ``key`` (a site id, account id or app instance id)."""
        limiter = self._sites.get(key)
        if limiter is None:
            limiter = self._sites[key] = SiteLimiter(key, self.rate, self._clock)
        return limiter

    def __repr__(self) -> str:
        rate = "unpaced" if self.rate is None else f"{self.rate.requests}/{self.rate.period}s"
        return f"<RateLimiter {rate} sites={len(self._sites)}>"
