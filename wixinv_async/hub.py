"""InventoryHub: many sites (app installations) in one process, over one shared HTTP pool.

An app installed on hundreds of sites, or an account's API key reaching many sites, needs a
client and an adjuster per site (each site has its own token and its own budget of 200
requests a minute) but not a connection pool, a session and sockets per site::

    async with InventoryHub(AppCredentials(app_id, app_secret), base_url=url) as hub:
        outcome = await hub.adjust(instance_id, product_id, variant_id, -1)
        ticket = hub.submit_nowait(instance_id, product_id, variant_id, +2)

What is shared and what is each site's own:

- shared: one aiohttp session over one ``TCPConnector`` (``connections`` in total and
  ``connections_per_host``; Wix is one host, so both bound the same sockets) and one
  :class:`~wixinv_async.transport.RateLimiter` holding a :class:`SiteLimiter` per site key;
- per site (a :class:`SiteHandle`, made on first use): its :class:`AppOAuth` token (fetched,
  single-flight, refreshed before expiry and once on a 401; kept while the hub lives, so a
  site closed for idleness and made again reuses it), its pacing and 429 pause (kept too, so a
  site made again never exceeds its budget), its :class:`InventoryClient` and its
  :class:`InventoryAdjuster`, whose held batches keep filling until the site's next slot
  (``pace=``: a site at its budget sends full batches).

Lifecycle. A site idle (nothing pending, nothing submitted) for ``idle_timeout`` seconds is
closed: its adjuster is drained first, so every delta submitted to it has its outcome. At
``max_sites`` open sites, making another one closes the least recently used open site in the
background (drained the same way) rather than making the caller wait: ``submit_nowait`` must
not wait, and a hub at its bound still serves every site. A site being closed no longer takes
deltas; a delta for it makes the site again.

One site's trouble stays its own: a revoked installation's token request and requests get 401,
and the adjuster rejects that site's deltas as retriable with the reason (``Outcome.code``,
``Outcome.error``); other sites have their own limiters, adjusters and tokens. After a refused
token request (400, 401 or 403: revoked, or an instance the app is not installed on) the site
rests: its requests are refused without being sent (and without taking a pacing slot), and
no token is asked for, for 1 s after the first refusal, doubling with each refusal in a row up
to 60 s (``_hubtoken.refused_backoff``), so a revoked site costs a token request a minute, not
one a batch; a token fetched again (the app reinstalled) ends the rest.

The app's own trouble is the app's: when the token endpoint refuses the app's credentials
(OAuth ``invalid_client``: a wrong app id or secret) the whole app rests the same way, one
token request at a time (any site's) until one is issued; every site's deltas are REJECTED
retriable with a reason naming the app id, and it is logged once (``_hubtoken.AppGate``).

Log records of a site's requests (the adjuster, client and auth loggers, and this module's)
carry ``record.site``: a site's tasks run in a context naming it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from functools import partial
from types import MappingProxyType, TracebackType
from typing import Literal, Self, TypedDict, Unpack

import aiohttp

from ._hubstats import (
    HubStats,
    HubTotals,
    SiteCounters,
    SiteStats,
    add_counters,
    site_counters,
    summed,
)
from ._hubtoken import AppGate, GuardedToken
from .adjuster import InventoryAdjuster, Ticket
from .auth import ApiKeyAuth, AppCredentials
from .catalog import CatalogVersion
from .client import DEFAULT_BASE_URL, InventoryClient, RetryPolicy
from .errors import AdjusterClosed, AdjusterFull, ConfigurationError
from .models import MAX_BATCH
from .outcomes import BatchReport, Outcome
from .settings import BatchPolicy, check_int
from .transport import LoopClock, RateLimit, RateLimiter, SiteLimiter

__all__ = [
    "DeltaFields",
    "HubStats",
    "HubTotals",
    "InventoryHub",
    "OnSiteBatch",
    "SiteCounters",
    "SiteHandle",
    "SiteStats",
]

OnSiteBatch = Callable[[str, BatchReport], None]
"""``on_batch`` of a hub: called with the site and each of its finished batches' report."""

logger = logging.getLogger("wixinv_async.hub")

current_site: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "wixinv_async_site", default=None
)
"""The site whose work the running task does (``None`` outside a hub's site)."""


class _SiteFilter(logging.Filter):
    """Stamps ``record.site`` with the site of the task that logs (``None`` outside a site),
    unless the record names one itself (``extra={"site": ...}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "site" not in record.__dict__:
            record.site = current_site.get()
        return True


SITE_LOGGERS = ("wixinv_async.adjuster", "wixinv_async.auth", "wixinv_async.client", logger.name)
"""The loggers a hub's sites log through; each record of theirs has ``record.site``. A logger
filter sees only the records made by that logger (not those a child logger propagates), so
every module a site runs logs through one of these names (a test holds the list complete)."""
_SITE_FILTER = _SiteFilter()
for _name in SITE_LOGGERS:
    logging.getLogger(_name).addFilter(_SITE_FILTER)


class DeltaFields(TypedDict, total=False):
    """The optional fields of a hub's delta, as :meth:`InventoryAdjuster.submit_nowait` takes
    them (keywords; each defaults as there)."""

    inventory_id: str | None
    """On V1 an inventory id, on V3 an inventory item id."""
    location_id: str | None
    """V3: the location's stock (``None``: the site's default location)."""
    sku: str | None
    """V3: instead of ``product_id`` and ``variant_id`` (give ``None`` for both)."""
    preorder: bool
    tag: object
    """Handed back with the delta's entry (``on_settle``, ``on_batch``, in-doubt entries)."""


_LOOKS = 4
"""The idle sweep looks at the sites every ``idle_timeout / _LOOKS`` seconds."""


class SiteHandle:
    """One site of a hub: its client, adjuster, pacing (``limiter``: its slots and 429 pause,
    kept while the hub lives) and (once detected) catalog."""

    __slots__ = (
        "_closed",
        "_sink",
        "adjuster",
        "catalog",
        "client",
        "closing",
        "context",
        "idle",
        "limiter",
        "site",
        "submit",
        "used",
    )

    def __init__(
        self,
        site: str,
        client: InventoryClient,
        adjuster: InventoryAdjuster,
        limiter: SiteLimiter,
    ) -> None:
        self.site = site
        self.limiter = limiter
        self.context = contextvars.copy_context()
        """Names the site: the hub starts the adjuster in it, so its dispatcher task and every
        request that task starts copy it."""
        self.context.run(current_site.set, site)
        self.client = client
        self.adjuster = adjuster
        self._sink = adjuster.positional_sink()
        self.submit = self._sink.submit
        """The adjuster's submit for deltas without a location or a SKU, fields by position."""
        self.catalog: CatalogVersion | None = None
        self.used = True
        """Whether the site was used (a delta, ``hub.site()``) since the idle sweep last
        looked: a flag, not a clock read, since it is stamped on every delta."""
        self.idle = 0
        """Sweeps in a row that found the site unused."""
        self.closing = False
        self._closed: asyncio.Event | None = None  # made only when someone waits for it

    async def catalog_version(self) -> CatalogVersion:
        """The site's catalog, detected once (:meth:`InventoryClient.catalog_version`)."""
        token = current_site.set(self.site)
        try:
            self.catalog = await self.client.catalog_version()
        finally:
            current_site.reset(token)
        return self.catalog

    async def wait_closed(self) -> None:
        """Wait until the hub has closed this site (idle, evicted or the hub closing), every
        one of its deltas with its outcome."""
        if self._closed is None:
            self._closed = asyncio.Event()
        await self._closed.wait()

    def _mark_closed(self) -> None:
        if self._closed is None:
            self._closed = asyncio.Event()
        self._closed.set()

    def stats(self) -> SiteStats:
        return SiteStats(self.site, self.catalog, self.adjuster.stats(), self.client.stats())

    def __repr__(self) -> str:
        state = "closing" if self.closing else "open"
        return f"<SiteHandle {self.site!r} {state} {self.adjuster!r}>"


class InventoryHub:
    """Many sites' adjusters over one HTTP pool (see the module doc).

    ``auth``: :class:`AppCredentials` (a site is an app instance id) or :class:`ApiKeyAuth`
    without a site (a site is a site id). ``rate_limit``: each site's budget, or ``None``: no
    pacing (something else paces, e.g. a fleet's shared budget, or a local emulator without
    limits); a 429 still pauses that site's senders.
    ``idle_timeout``: seconds without deltas after which a site is drained and closed.
    ``max_sites``: open sites at most (the least recently used is closed to make room).
    ``connections``, ``connections_per_host``: the shared pool's bounds (Wix is one host, so
    the lower one binds). A site keeps ``budget * latency`` requests on the wire (200 a minute
    at a few tenths of a second a request: one or two) and never more than ``max_in_flight``.
    The defaults (4096) hold 1024 sites at ``max_in_flight`` each, so hundreds of busy sites
    never wait for a connection, not even while Wix answers slowly and every site has all its
    requests out, and slow sites cannot take every connection from the others. Sockets are
    opened only when requests need them; each is a file descriptor, so more than about a
    thousand at once needs a higher open-files limit (``ulimit -n``). ``timeout``: the
    clients' connect and read timeout. ``max_batch``, ``linger``, ``max_in_flight``,
    ``max_pending``, ``on_ambiguous``, ``batch_policy``: each site's :class:`InventoryAdjuster`
    settings. ``retry``: each site's :class:`InventoryClient` retry policy (429, 503, ...).
    ``on_batch``: called with the site and the :class:`BatchReport` of each batch of it whose
    entries all have outcomes (each site adjuster's ``on_batch``).
    """

    def __init__(
        self,
        auth: AppCredentials | ApiKeyAuth,
        *,
        base_url: str = DEFAULT_BASE_URL,
        rate_limit: RateLimit | None = RateLimit(),  # noqa: B008 - frozen, immutable
        idle_timeout: float = 300.0,
        max_sites: int = 10_000,
        connections: int = 4096,
        connections_per_host: int = 4096,
        timeout: float = 30.0,
        max_batch: int = MAX_BATCH,
        linger: float = 0.05,
        max_in_flight: int = 4,
        max_pending: int = 100_000,
        on_ambiguous: Literal["report", "retry"] = "report",
        batch_policy: BatchPolicy = BatchPolicy(),  # noqa: B008 - frozen, immutable
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, immutable
        on_batch: OnSiteBatch | None = None,
    ) -> None:
        if not isinstance(auth, AppCredentials | ApiKeyAuth):
            raise ConfigurationError(f"auth must be AppCredentials or ApiKeyAuth, got {auth!r}")
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise ConfigurationError(f"rate_limit must be a RateLimit or None, got {rate_limit!r}")
        if not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r}")
        if not isinstance(batch_policy, BatchPolicy):
            raise ConfigurationError(f"batch_policy must be a BatchPolicy, got {batch_policy!r}")
        if isinstance(idle_timeout, bool) or not (
            isinstance(idle_timeout, int | float) and idle_timeout > 0
        ):
            raise ConfigurationError(f"idle_timeout must be seconds > 0, got {idle_timeout!r}")
        check_int("max_sites", max_sites, 1)
        check_int("connections", connections, 1)
        check_int("connections_per_host", connections_per_host, 1)
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url must start with http:// or https://: {base_url!r}")
        self._auth = auth
        self._base_url = base_url
        self._clock = LoopClock()
        self._limiter = RateLimiter(rate_limit, clock=self._clock, unpaced=rate_limit is None)
        self._gate = AppGate(auth.app_id, self._clock) if isinstance(auth, AppCredentials) else None
        self._retry = retry
        self._batch_policy = batch_policy
        self.idle_timeout = float(idle_timeout)
        self.max_sites = max_sites
        self._pool = (connections, connections_per_host)
        self._timeout = timeout
        self._adjuster_settings: tuple[int, float, int, int, Literal["report", "retry"]] = (
            max_batch,
            linger,
            max_in_flight,
            max_pending,
            on_ambiguous,
        )
        self._session: aiohttp.ClientSession | None = None
        self._sites: dict[str, SiteHandle] = {}  # open sites, least recently made first
        self._tokens: dict[str, GuardedToken | ApiKeyAuth] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._on_batch = on_batch
        self._past: dict[str, SiteCounters] = {}
        """Each closed site's counters over the times it was open (a site made again adds
        its new ones when it closes again)."""
        self._made = 0
        self._janitor: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<InventoryHub {self._base_url} {state} sites={len(self._sites)}>"

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _start(self) -> aiohttp.ClientSession:
        if self._closed:
            raise AdjusterClosed("the hub is closed")
        if self._session is None:
            total, per_host = self._pool
            connector = aiohttp.TCPConnector(limit=total, limit_per_host=per_host)
            self._session = aiohttp.ClientSession(connector=connector)
            self._janitor = asyncio.get_running_loop().create_task(
                self._sweep(), name="hub-janitor"
            )
        return self._session

    async def close(self) -> None:
        """Refuse new deltas, drain and close every site (each delta gets its outcome), then
        close the shared session. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._janitor is not None:
            self._janitor.cancel()
        for site in list(self._sites):
            self._retire(site)
        while self._closing:
            await asyncio.wait(list(self._closing))
        if self._session is not None:
            await self._session.close()

    # --- sites ---------------------------------------------------------------------------

    def site(self, site: str) -> SiteHandle:
        """The open handle of ``site`` (an instance id, or a site id with an API key), made
        now if it is not open."""
        handle = self._sites.get(site)
        if handle is None:
            handle = self._open(site)
        handle.used = True
        return handle

    def _open(self, site: str) -> SiteHandle:
        if not isinstance(site, str) or not site.strip():
            raise ConfigurationError(f"site must be a non-empty string, got {site!r}")
        session = self._start()
        auth = self._tokens.get(site)
        if auth is None:
            auth = self._tokens[site] = self._site_auth(site)
        client = InventoryClient(
            auth,
            base_url=self._base_url,
            session=session,
            rate_limit=self._limiter,
            timeout=self._timeout,
            retry=self._retry,
        )
        limiter = self._limiter.site(auth.site_key)
        max_batch, linger, max_in_flight, max_pending, on_ambiguous = self._adjuster_settings
        adjuster = InventoryAdjuster(
            client,
            max_batch=max_batch,
            linger=linger,
            max_in_flight=max_in_flight,
            max_pending=max_pending,
            on_ambiguous=on_ambiguous,
            batch_policy=self._batch_policy,
            pace=limiter.next_slot,
            on_batch=None if self._on_batch is None else partial(self._on_batch, site),
        )
        while len(self._sites) >= self.max_sites:
            self._retire(max(self._sites.values(), key=_staleness).site)
        handle = self._sites[site] = SiteHandle(site, client, adjuster, limiter)
        handle.context.run(adjuster.start)
        self._made += 1
        logger.debug("opened site %s", site, extra={"site": site})
        return handle

    def _site_auth(self, site: str) -> GuardedToken | ApiKeyAuth:
        if isinstance(self._auth, AppCredentials):
            return GuardedToken(self._auth.for_instance(site), self._clock, self._gate)
        return self._auth.for_site(site)

    def _retire(self, site: str) -> None:
        """Stop giving ``site`` deltas and drain and close it in the background."""
        handle = self._sites.pop(site)
        handle.closing = True
        task = asyncio.get_running_loop().create_task(self._close_site(handle))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_site(self, handle: SiteHandle) -> None:
        try:
            await handle.adjuster.close()
        finally:
            site = handle.site
            final = site_counters(site, handle.adjuster.stats())
            self._past[site] = add_counters(self._past.get(site), final)._replace(
                in_flight=0, pending=0
            )
            await handle.client.aclose()
            handle._mark_closed()
            logger.debug("closed site %s", handle.site, extra={"site": handle.site})

    async def _sweep(self) -> None:
        """Close the sites idle for ``idle_timeout``: every quarter of it, a site found unused
        since the last look for the fourth time in a row (its last use at least
        ``idle_timeout`` ago, at most a quarter more) is idle."""
        while True:
            await asyncio.sleep(self.idle_timeout / _LOOKS)
            idle = []
            for handle in self._sites.values():
                if handle.used:
                    handle.used, handle.idle = False, 0
                else:
                    handle.idle += 1
                    if handle.idle >= _LOOKS:
                        idle.append(handle.site)
            for site in idle:
                self._retire(site)

    # --- producers -----------------------------------------------------------------------

    def submit_nowait(
        self,
        site: str,
        product_id: str | None,
        variant_id: str | None,
        delta: int,
        inventory_id: str | None = None,
        location_id: str | None = None,
        sku: str | None = None,
        preorder: bool = False,
        tag: object = None,
    ) -> Ticket:
        """Add a delta for ``site`` and return its ticket at once: that site's
        :meth:`InventoryAdjuster.submit_nowait`, with the same fields (:class:`DeltaFields`),
        checks and errors (:class:`AdjusterFull` when the site has ``max_pending`` keys)."""
        try:
            handle = self._sites[site]
        except (KeyError, TypeError):  # not open (or not a site: _open says so)
            handle = self._open(site)  # a closed hub has no open sites and refuses
        handle.used = True
        # Forwarding keywords and the adjuster's keyword-only defaults are a large share of a
        # delta's cost, hence a delta without a location or a SKU goes by position to the
        # adjuster's positional submit (the table's own, one call less), and the fields may
        # also be given by position here (give them by keyword). The sink's method is called,
        # not the bound method kept in handle.submit: CPython calls a method for less.
        if location_id is None and sku is None:
            return handle._sink.submit(product_id, inventory_id, variant_id, preorder, delta, tag)
        return handle.adjuster.submit_nowait(
            product_id,
            variant_id,
            delta,
            inventory_id=inventory_id,
            location_id=location_id,
            sku=sku,
            preorder=preorder,
            tag=tag,
        )

    async def submit(
        self,
        site: str,
        product_id: str | None,
        variant_id: str | None,
        delta: int,
        **fields: Unpack[DeltaFields],
    ) -> Ticket:
        """Add a delta for ``site``, waiting while that site's adjuster is full
        (:meth:`InventoryAdjuster.submit`)."""
        try:
            return self.submit_nowait(site, product_id, variant_id, delta, **fields)
        except AdjusterFull:
            return await self.site(site).adjuster.submit(product_id, variant_id, delta, **fields)

    async def adjust(
        self,
        site: str,
        product_id: str | None,
        variant_id: str | None,
        delta: int,
        **fields: Unpack[DeltaFields],
    ) -> Outcome:
        """Submit a delta for ``site`` and wait for its outcome."""
        return await (await self.submit(site, product_id, variant_id, delta, **fields))

    async def flush(self) -> None:
        """Send everything pending on every open site and wait for the outcomes."""
        await asyncio.gather(*(h.adjuster.flush() for h in list(self._sites.values())))

    # --- reports -------------------------------------------------------------------------

    def stats(self) -> HubStats:
        """Each open site's counters, and totals over every site since the hub started."""
        sites = {site: handle.stats() for site, handle in self._sites.items()}
        now = [site_counters(site, entry.adjuster) for site, entry in sites.items()]
        sums = summed([*self._past.values(), *now])
        requests = sums["requests"]
        max_batch = self._adjuster_settings[0]
        total = HubTotals(
            open_sites=len(sites),
            sites_made=self._made,
            sites_closed=self._made - len(sites),
            pending=sum(entry.adjuster.pending for entry in sites.values()),
            batch_fill=sums["entries_sent"] / requests / max_batch if requests else 0.0,
            token_fetches=sum(
                a.fetches for a in self._tokens.values() if isinstance(a, GuardedToken)
            ),
            app_refusals=0 if self._gate is None else self._gate.refusals,
            **sums,
        )
        return HubStats(MappingProxyType(sites), total)

    def counters(self) -> dict[str, SiteCounters]:
        """Every site's counters since the hub started, over all the times it was open (never
        going down: what a metrics exporter such as :mod:`wixinv_async.otel` reads)."""
        counters = dict(self._past)
        for site, handle in self._sites.items():
            counters[site] = add_counters(
                counters.get(site), site_counters(site, handle.adjuster.stats())
            )
        return counters


def _staleness(handle: SiteHandle) -> tuple[int, bool]:
    """Least recently used first, as the idle sweep sees it (unused sweeps, then unused since
    the last one); among equals ``max`` takes the earliest made."""
    return handle.idle, not handle.used
