"""The emulator's HTTP side: an aiohttp app over the site stores, behind :class:`Emulator`.

Each Wix call runs the same short pipeline: request id, authentication, faults drawn,
latency, faults before applying, the rolling-window rate limit, decode, apply (synchronous,
so a cancelled request never half-applies), faults after applying, answer. The admin API
lives under ``/_emulator/``, outside Wix's paths, without authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Final, Protocol, Self

import msgspec
from aiohttp import web

from ..errors import ConfigurationError
from ._errors import WixApiError, application_error
from ._settings import check_settings
from .auth import Credentials
from .catalog import new_guid
from .catalogs import (
    V1_CATALOG,
    V3_CATALOG,
    Site,
    check_catalogs,
    location_ids,
    migrate,
    wrong_catalog,
)
from .faults import AFTER_APPLY, Fault, FaultInjector, FaultPlan
from .handlers import (
    Handler,
    decrement_inventory,
    get_inventory_variants,
    increment_inventory,
    query_inventory,
    update_inventory_variants,
)
from .ratelimit import RollingWindow, parse_rate, retry_after_header
from .requests import TokenBody, decode
from .store import JournalEntry, SiteStore
from .v3_handlers import V3_HANDLERS, V3Call, V3Handler
from .v3_store import V3Store

__all__ = ["Emulator", "WebhookSink"]

_encode = msgspec.json.Encoder().encode
_JSON: Final = "application/json"
_NO_FAULT: Final = Fault(None, 0.0)
_READ_PREFIXES: Final = ("/stores-reader/v2/inventoryItems", "/stores/v2/inventoryItems")
_WRITE_PREFIX: Final = "/stores/v2/inventoryItems"


class WebhookSink(Protocol):
    """What the emulator needs of a webhook sender: it attaches to each site's store."""

    def attach(self, store: SiteStore) -> None: ...
    async def start(self) -> None: ...
    async def aclose(self) -> None: ...


class Emulator:
    """A Wix Inventory API on ``host:port`` (port 0: any free port), as an async context manager.

    ``clock`` (monotonic seconds) drives token expiry and the rate limit, so tests can move
    time without sleeping. Everything else is described in the package docstring.
    """

    def __init__(
        self,
        *,
        products: int = 100,
        variants_per_product: int = 3,
        seed: int = 0,
        api_key: str | None = None,
        site_id: str | None = None,
        extra_sites: int = 0,
        rate_limit: str | None = None,
        retry_after: bool = True,
        latency_ms: float = 0.0,
        faults: FaultPlan | None = None,
        token_lifetime: float = 14_400,
        id_distribution: str = "clustered",
        host: str = "127.0.0.1",
        port: int = 0,
        webhooks: WebhookSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        catalog: str | Sequence[str] = "v1",
        locations: int = 1,
        version_scope: bool = True,
    ) -> None:
        check_settings(
            products, variants_per_product, extra_sites, latency_ms, token_lifetime, id_distribution
        )
        catalogs = check_catalogs(catalog, extra_sites + 1, locations)
        try:
            rate = parse_rate(rate_limit) if rate_limit is not None else None
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        ids = random.Random(seed + 0x51DE)
        app_id = new_guid(ids)
        stores = [
            SiteStore(
                site_id=site_id if index == 0 and site_id is not None else new_guid(ids),
                instance_id=new_guid(ids),
                products=products,
                variants_per_product=variants_per_product,
                seed=seed + index,
                id_distribution=id_distribution,
            )
            for index in range(extra_sites + 1)
        ]
        self._sites = {
            s.site_id: Site(
                s,
                RollingWindow(*rate) if rate else None,
                catalog=catalogs[index],
                seed=seed + index,
                locations=location_ids(seed + index, locations),
            )
            for index, s in enumerate(stores)
        }
        self.version_scope = version_scope
        """``False``: the credentials lack the catalog-read scope, so the version call is 403."""
        self.store = next(iter(self._sites.values())).store
        self.site_id = self.store.site_id
        self.instance_id = self.store.instance_id
        self._credentials = Credentials(
            api_key=api_key if api_key is not None else "IST." + secrets.token_urlsafe(32),
            app_id=app_id,
            app_secret=secrets.token_urlsafe(24),
            instances={site.store.instance_id: sid for sid, site in self._sites.items()},
            token_lifetime=token_lifetime,
            clock=clock,
        )
        self.retry_after = retry_after
        self.latency = latency_ms / 1000
        self.host, self._port = host, port
        self._clock = clock
        self._webhooks = webhooks
        self._injector = FaultInjector(faults) if faults is not None else None
        self._rid_prefix = secrets.token_hex(4)
        self._rid = 0
        self._requests: dict[str, dict[str, int]] = {}
        self._faults_injected: dict[str, int] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def api_key(self) -> str:
        """The API key every site accepts (with ``wix-site-id``)."""
        return self._credentials.api_key

    @property
    def app_id(self) -> str:
        """The OAuth app's client id."""
        return self._credentials.app_id

    @property
    def app_secret(self) -> str:
        """The OAuth app's client secret."""
        return self._credentials.app_secret

    @property
    def token_lifetime(self) -> float:
        return self._credentials.token_lifetime

    def __repr__(self) -> str:
        return f"Emulator(url={self.url!r}, site_id={self.site_id!r}, sites={len(self._sites)})"

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Bind and serve; ``url`` is set when this returns."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already started")
        self._closing = asyncio.Event()
        runner = web.AppRunner(
            self._build_app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://{_url_host(host)}:{port}"
        if self._webhooks is not None:
            for site in self._sites.values():
                self._webhooks.attach(site.store)
            await self._webhooks.start()

    async def aclose(self) -> None:
        """Stop serving: stalled responses end at once, connections close."""
        self._closing.set()
        if self._webhooks is not None:
            await self._webhooks.aclose()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # --- inspection and control ----------------------------------------------------------

    @property
    def sites(self) -> list[str]:
        """Every site id, the default site first."""
        return list(self._sites)

    def site(self, site_id: str) -> SiteStore:
        """The V1 store of one site."""
        return self._site(site_id).store

    def catalog_version(self, site_id: str | None = None) -> str:
        """``V1_CATALOG`` or ``V3_CATALOG``: what the site serves now."""
        return self._site(site_id).version

    def v3_store(self, site_id: str | None = None) -> V3Store:
        """The V3 store of a site that runs V3 (``LookupError`` on a V1 site)."""
        site = self._site(site_id)
        if site.v3 is None:
            raise LookupError(f"site {site.store.site_id!r} runs V1: migrate it first")
        return site.v3

    def migrate_to_v3(self, site_id: str | None = None) -> V3Store:
        """Move a V1 site to V3 now, while it serves: from here its V1 calls answer 428.
        ``ValueError`` if it runs V3 already."""
        site = self._site(site_id)
        if site.v3 is not None:
            raise ValueError(f"site {site.store.site_id!r} runs V3 already")
        site.v3 = migrate(site.store, site.seed, site.locations, time.time())
        return site.v3

    def journal(self, site_id: str | None = None) -> list[JournalEntry]:
        """Every applied write of a site in order: its V1 journal, then (after a migration
        or on a V3 site) its V3 one. A site serves one catalog at a time, so this is the
        order they happened in."""
        site = self._site(site_id)
        v3 = site.v3.journal if site.v3 is not None else []
        return site.store.journal + v3

    def _site(self, site_id: str | None) -> Site:
        if site_id is None:
            return next(iter(self._sites.values()))
        site = self._sites.get(site_id)
        if site is None:
            raise KeyError(f"no site {site_id!r}: sites are {self.sites}")
        return site

    def set_faults(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan (``None``: no faults); its generator restarts from its seed."""
        self._injector = FaultInjector(plan) if plan is not None else None

    @property
    def faults(self) -> FaultPlan | None:
        return self._injector.plan if self._injector is not None else None

    def stats(self) -> dict[str, Any]:
        """Requests by endpoint and status, entries applied, faults injected by kind."""
        return {
            "requests": {name: dict(counts) for name, counts in self._requests.items()},
            "entries_applied": sum(
                site.store.entries_applied + (site.v3.entries_applied if site.v3 else 0)
                for site in self._sites.values()
            ),
            "faults": dict(self._faults_injected),
        }

    def reset(self) -> None:
        """Every site back to its seeded catalog; journals, stats and rate windows emptied.
        Fault plan and issued tokens are kept."""
        for site in self._sites.values():
            site.store.reset()
            site.reseed()
            if site.limiter is not None:
                site.limiter.clear()
        self._requests.clear()
        self._faults_injected.clear()

    # --- the app -------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        add = app.router.add_route
        for prefix in _READ_PREFIXES:
            add("POST", f"{prefix}/query", self._wix("queryInventory", query_inventory))
            variants = self._wix("getInventoryVariants", get_inventory_variants)
            add("POST", f"{prefix}/{{inventoryId}}/getVariants", variants)
        update = self._wix("updateInventoryVariants", update_inventory_variants)
        add("PATCH", f"{_WRITE_PREFIX}/product/{{productId}}", update)
        add(
            "POST",
            f"{_WRITE_PREFIX}/decrement",
            self._wix("decrementInventory", decrement_inventory),
        )
        add(
            "POST",
            f"{_WRITE_PREFIX}/increment",
            self._wix("incrementInventory", increment_inventory),
        )
        add("GET", "/stores/v3/provision/version", self._wix3("getCatalogVersion", None))
        for key, (method, path, v3_handler) in V3_HANDLERS.items():
            add(method, path, self._wix3(key.split(".")[0], v3_handler))
        add("POST", "/oauth2/token", self._token)
        from .admin import add_admin_routes

        add_admin_routes(app, self)
        add("*", "/{tail:.*}", self._unknown)
        return app

    def _next_request_id(self) -> str:
        self._rid += 1
        return f"{self._rid_prefix}.{self._rid}"

    def _count(self, endpoint: str, status: int | str) -> None:
        counts = self._requests.get(endpoint)
        if counts is None:
            counts = self._requests[endpoint] = {}
        key = str(status)
        counts[key] = counts.get(key, 0) + 1

    def _wix(
        self, endpoint: str, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        def apply(site: Site, request: web.Request, body: bytes, rid: str) -> bytes:
            if site.v3 is not None:
                raise wrong_catalog(site.version, V1_CATALOG)
            return handler(site.store, request.match_info, body, rid)

        return self._pipeline(endpoint, apply)

    def _wix3(
        self, endpoint: str, handler: V3Handler | None
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A V3 call (``None``: the version call, which any site answers)."""

        def apply(site: Site, request: web.Request, body: bytes, rid: str) -> bytes:
            if handler is None:
                return self._version(site)
            if site.v3 is None:
                raise wrong_catalog(site.version, V3_CATALOG)
            injector = self._injector
            fault = injector.item_faults(endpoint) if injector is not None else None
            return handler(V3Call(site.v3, request.match_info, request.query, body, rid, fault))

        return self._pipeline(endpoint, apply)

    def _version(self, site: Site) -> bytes:
        if not self.version_scope:
            text = "the credentials lack the permission to read the catalog version"
            data = {"permission": "WIX_STORES.CATALOG_VERSION_READ"}
            raise application_error(403, "FORBIDDEN", text, data)
        return _encode({"catalogVersion": site.version})

    def _pipeline(
        self, endpoint: str, apply: Callable[[Site, web.Request, bytes, str], bytes]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The pipeline of the package docstring; ``apply`` decides and applies with no await
        (the catalog version is checked there, so a migration never splits a request)."""

        async def handle(request: web.Request) -> web.StreamResponse:
            rid = self._next_request_id()
            fault = _NO_FAULT
            try:
                site = self._authenticate(request)
                if self._injector is not None:
                    fault = self._injector.decide(endpoint)
                delay = self.latency + fault.delay
                if delay:
                    if fault.delay:
                        self._note_fault("latency")
                    await asyncio.sleep(delay)
                if fault.kind is not None and fault.kind not in AFTER_APPLY:
                    return await self._fault(request, endpoint, fault.kind, rid)
                self._admit(site)
                body = await request.read()
                payload = apply(site, request, body, rid)
            except WixApiError as error:
                return self._error(endpoint, error, rid)
            if fault.kind is not None:
                return await self._fault(request, endpoint, fault.kind, rid)
            self._count(endpoint, 200)
            return web.Response(
                body=payload, headers={"x-wix-request-id": rid, "Content-Type": _JSON}
            )

        return handle

    def _error(self, endpoint: str, error: WixApiError, rid: str) -> web.Response:
        self._count(endpoint, error.status)
        headers = {"x-wix-request-id": rid, "Content-Type": _JSON, **error.headers}
        return web.Response(status=error.status, body=error.encode(), headers=headers)

    # --- auth and rate limit -------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> Site:
        headers = request.headers
        site_id = self._credentials.site_of(
            headers.get("Authorization"), headers.get("wix-site-id")
        )
        site = self._sites.get(site_id)
        if site is None:
            text = f"the API key has no access to site {site_id!r}"
            raise application_error(403, "FORBIDDEN", text)
        return site

    def _admit(self, site: Site) -> None:
        if site.limiter is None:
            return
        wait = site.limiter.try_acquire(self._clock())
        if wait is not None:
            raise _too_many(retry_after_header(wait) if self.retry_after else None)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        """``POST /oauth2/token``: faults apply only when named (``oauthToken``)."""
        rid = self._next_request_id()
        endpoint = "oauthToken"
        try:
            fault = self._injector.decide(endpoint) if self._injector is not None else _NO_FAULT
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.kind is not None:
                return await self._fault(request, endpoint, fault.kind, rid)
            answer = self._credentials.issue(decode(TokenBody, await request.read()))
        except WixApiError as error:
            return self._error(endpoint, error, rid)
        self._count(endpoint, 200)
        headers = {"x-wix-request-id": rid, "Content-Type": _JSON}
        return web.Response(body=_encode(answer), headers=headers)

    # --- faults --------------------------------------------------------------------------

    def _note_fault(self, kind: str) -> None:
        self._faults_injected[kind] = self._faults_injected.get(kind, 0) + 1

    async def _fault(
        self, request: web.Request, endpoint: str, kind: str, rid: str
    ) -> web.StreamResponse:
        self._note_fault(kind)
        if kind in ("reset_before", "reset_after"):
            return self._reset(request, endpoint)
        if kind == "stall_after":
            self._count(endpoint, "stall")
            plan = self.faults
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), plan.stall_seconds if plan else 0)
            return self._reset(request, endpoint, count=False)
        if kind == "rate_limited":
            plan = self.faults
            seconds = plan.retry_after if plan is not None else None
            error = _too_many(str(seconds) if seconds is not None and self.retry_after else None)
        else:
            status = int(kind.removeprefix("error_"))
            error = application_error(status, _SYSTEM_CODES[status], f"injected fault {kind}")
        return self._error(endpoint, error, rid)

    def _reset(
        self, request: web.Request, endpoint: str, *, count: bool = True
    ) -> web.StreamResponse:
        if count:
            self._count(endpoint, "reset")
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500)

    async def _unknown(self, request: web.Request) -> web.Response:
        rid = self._next_request_id()
        error = application_error(
            404, "NOT_FOUND", f"no such endpoint: {request.method} {request.path}"
        )
        return self._error("unknown", error, rid)


_SYSTEM_CODES: Final = {
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def _too_many(retry_after: str | None) -> WixApiError:
    error = application_error(429, "TOO_MANY_REQUESTS", "too many requests: wait and retry")
    if retry_after is not None:
        error.headers["Retry-After"] = retry_after
    return error


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
