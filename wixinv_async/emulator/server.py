"""The emulator's HTTP side: an aiohttp app over the site stores, behind :class:`Emulator`.

Each Wix call runs the same short pipeline: request id, authentication, faults drawn,
latency, faults before applying, the rolling-window rate limit, decode, apply (synchronous,
so a cancelled request never half-applies), faults after applying, answer. The admin API
lives under ``/_emulator/``, outside Wix's paths, without authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, NamedTuple, Protocol, Self

import msgspec
from aiohttp import web

from ..errors import ConfigurationError
from ..models import TokenResponse
from ._errors import WixApiError, application_error, validation_error
from .catalog import ID_DISTRIBUTIONS, new_guid
from .faults import AFTER_APPLY, Fault, FaultInjector, FaultPlan
from .query import compile_query
from .ratelimit import RollingWindow, parse_rate, retry_after_header
from .requests import (
    DecrementBody,
    GetVariantsBody,
    IncrementBody,
    QueryBody,
    TokenBody,
    UpdateBody,
    decode,
)
from .store import SiteStore

__all__ = ["Emulator", "WebhookSink"]

_encode = msgspec.json.Encoder().encode
_JSON: Final = "application/json"
_EMPTY: Final = b"{}"
_NO_FAULT: Final = Fault(None, 0.0)
_READ_PREFIXES: Final = ("/stores-reader/v2/inventoryItems", "/stores/v2/inventoryItems")
_WRITE_PREFIX: Final = "/stores/v2/inventoryItems"

Handler = Callable[["_Site", web.Request, bytes, str], bytes]


class WebhookSink(Protocol):
    """What the emulator needs of a webhook sender: it attaches to each site's store."""

    def attach(self, store: SiteStore) -> None: ...
    async def start(self) -> None: ...
    async def aclose(self) -> None: ...


class _Site:
    __slots__ = ("limiter", "store")

    def __init__(self, store: SiteStore, limiter: RollingWindow | None) -> None:
        self.store = store
        self.limiter = limiter


class _Grant(NamedTuple):
    site: _Site
    expires_at: float


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
    ) -> None:
        _check_settings(
            products, variants_per_product, extra_sites, latency_ms, token_lifetime, id_distribution
        )
        try:
            self._rate = parse_rate(rate_limit) if rate_limit is not None else None
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        ids = random.Random(seed + 0x51DE)
        self.api_key = api_key if api_key is not None else "IST." + secrets.token_urlsafe(32)
        self.app_id = new_guid(ids)
        self.app_secret = secrets.token_urlsafe(24)
        self.retry_after = retry_after
        self.latency = latency_ms / 1000
        self.token_lifetime = token_lifetime
        self.host, self._port = host, port
        self._clock = clock
        self._webhooks = webhooks
        self._sites: dict[str, _Site] = {}
        self._by_instance: dict[str, _Site] = {}
        for index in range(extra_sites + 1):
            sid = site_id if index == 0 and site_id is not None else new_guid(ids)
            store = SiteStore(
                site_id=sid,
                instance_id=new_guid(ids),
                products=products,
                variants_per_product=variants_per_product,
                seed=seed + index,
                id_distribution=id_distribution,
            )
            site = _Site(store, RollingWindow(*self._rate) if self._rate else None)
            self._sites[sid] = site
            self._by_instance[store.instance_id] = site
        first = next(iter(self._sites.values()))
        self.site_id = first.store.site_id
        self.instance_id = first.store.instance_id
        self.store = first.store
        self._tokens: dict[str, _Grant] = {}
        self._injector = FaultInjector(faults) if faults is not None else None
        self._rid_prefix = secrets.token_hex(4)
        self._rid = 0
        self._requests: dict[str, dict[str, int]] = {}
        self._faults_injected: dict[str, int] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

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
        self._runner = runner
        await web.TCPSite(runner, self.host, self._port).start()
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
        """The store of one site."""
        site = self._sites.get(site_id)
        if site is None:
            raise KeyError(f"no site {site_id!r}: sites are {self.sites}")
        return site.store

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
            "entries_applied": sum(site.store.entries_applied for site in self._sites.values()),
            "faults": dict(self._faults_injected),
        }

    def reset(self) -> None:
        """Every site back to its seeded catalog; journals, stats and rate windows emptied.
        Fault plan and issued tokens are kept."""
        for site in self._sites.values():
            site.store.reset()
            if site.limiter is not None:
                site.limiter.clear()
        self._requests.clear()
        self._faults_injected.clear()

    # --- the app -------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        add = app.router.add_route
        for prefix in _READ_PREFIXES:
            add("POST", f"{prefix}/query", self._wix("queryInventory", self._query))
            add(
                "POST",
                f"{prefix}/{{inventoryId}}/getVariants",
                self._wix("getInventoryVariants", self._get_variants),
            )
        add(
            "PATCH",
            f"{_WRITE_PREFIX}/product/{{productId}}",
            self._wix("updateInventoryVariants", self._update),
        )
        add("POST", f"{_WRITE_PREFIX}/decrement", self._wix("decrementInventory", self._decrement))
        add("POST", f"{_WRITE_PREFIX}/increment", self._wix("incrementInventory", self._increment))
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
                payload = handler(site, request, await request.read(), rid)
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

    def _authenticate(self, request: web.Request) -> _Site:
        header = request.headers.get("Authorization")
        if not header:
            raise _unauthorized("missing Authorization header")
        token = header[7:] if header[:7].lower() == "bearer " else header
        if token == self.api_key:
            site_id = request.headers.get("wix-site-id")
            if not site_id:
                raise validation_error([("wix-site-id", "header required with an API key")])
            site = self._sites.get(site_id)
            if site is None:
                raise application_error(
                    403, "FORBIDDEN", f"the API key has no access to site {site_id!r}"
                )
            return site
        grant = self._tokens.get(token)
        if grant is None:
            raise _unauthorized("invalid API key or access token")
        if grant.expires_at <= self._clock():
            raise _unauthorized("access token expired")
        return grant.site

    def _admit(self, site: _Site) -> None:
        if site.limiter is None:
            return
        wait = site.limiter.try_acquire(self._clock())
        if wait is not None:
            raise _too_many(retry_after_header(wait) if self.retry_after else None)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        rid = self._next_request_id()
        endpoint = "oauthToken"
        try:
            fault = self._injector.decide(endpoint) if self._injector is not None else _NO_FAULT
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.kind is not None:
                return await self._fault(request, endpoint, fault.kind, rid)
            site = self._grant(decode(TokenBody, await request.read()))
        except WixApiError as error:
            return self._error(endpoint, error, rid)
        token = secrets.token_urlsafe(32)
        now = self._clock()
        self._tokens = {t: g for t, g in self._tokens.items() if g.expires_at > now}
        self._tokens[token] = _Grant(site, now + self.token_lifetime)
        self._count(endpoint, 200)
        answer = TokenResponse(access_token=token, expires_in=math.floor(self.token_lifetime))
        return web.Response(
            body=_encode(answer), headers={"x-wix-request-id": rid, "Content-Type": _JSON}
        )

    def _grant(self, body: TokenBody) -> _Site:
        if body.grant_type != "client_credentials":
            raise validation_error(
                [("grant_type", f"must be client_credentials, got {body.grant_type!r}")]
            )
        if body.client_id != self.app_id or body.client_secret != self.app_secret:
            raise _unauthorized("wrong client_id or client_secret")
        site = self._by_instance.get(body.instance_id)
        if site is None:
            raise validation_error([("instance_id", f"unknown instance {body.instance_id!r}")])
        return site

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

    # --- the five calls ------------------------------------------------------------------

    def _query(self, site: _Site, request: web.Request, body: bytes, rid: str) -> bytes:
        query = decode(QueryBody, body or _EMPTY).query
        paging = query.paging if query is not None else None
        compiled = compile_query(
            query.filter if query is not None else None,
            query.sort if query is not None else None,
            paging.limit if paging is not None else None,
            paging.offset if paging is not None else None,
        )
        page = site.store.query(compiled)
        items = b",".join([item.wire_json() for item in page.items])
        tail = f'],"metadata":{{"items":{len(page.items)},"offset":{compiled.offset}}},'
        return b'{"inventoryItems":[' + items + f'{tail}"totalResults":{page.total}}}'.encode()

    def _get_variants(self, site: _Site, request: web.Request, body: bytes, rid: str) -> bytes:
        wanted = decode(GetVariantsBody, body or _EMPTY)
        path_id = request.match_info["inventoryId"]
        if wanted.inventory_id is not None and wanted.inventory_id != path_id:
            raise validation_error(
                [("inventoryId", f"{wanted.inventory_id!r} differs from the path's {path_id!r}")]
            )
        inventory_id = None if wanted.product_id is not None else path_id
        item = site.store.get_variants(inventory_id, wanted.product_id, wanted.variant_ids)
        return _encode({"inventoryItem": item})

    def _update(self, site: _Site, request: web.Request, body: bytes, rid: str) -> bytes:
        update = decode(UpdateBody, body)
        site.store.update(request.match_info["productId"], update.inventory_item, rid)
        return _EMPTY

    def _decrement(self, site: _Site, request: web.Request, body: bytes, rid: str) -> bytes:
        site.store.decrement(decode(DecrementBody, body).decrement_data, rid, raw=body)
        return _EMPTY

    def _increment(self, site: _Site, request: web.Request, body: bytes, rid: str) -> bytes:
        site.store.increment(decode(IncrementBody, body).increment_data, rid, raw=body)
        return _EMPTY

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


def _unauthorized(text: str) -> WixApiError:
    return application_error(401, "UNAUTHENTICATED", text)


def _too_many(retry_after: str | None) -> WixApiError:
    error = application_error(429, "TOO_MANY_REQUESTS", "too many requests: wait and retry")
    if retry_after is not None:
        error.headers["Retry-After"] = retry_after
    return error


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_settings(
    products: int,
    variants_per_product: int,
    extra_sites: int,
    latency_ms: float,
    token_lifetime: float,
    id_distribution: str,
) -> None:
    problems = [
        (products >= 0, f"products={products!r}: must be >= 0"),
        (variants_per_product >= 1, f"variants_per_product={variants_per_product!r}: must be >= 1"),
        (extra_sites >= 0, f"extra_sites={extra_sites!r}: must be >= 0"),
        (math.isfinite(latency_ms) and latency_ms >= 0, f"latency_ms={latency_ms!r}: must be >= 0"),
        (token_lifetime > 0, f"token_lifetime={token_lifetime!r}: must be > 0"),
        (
            id_distribution in ID_DISTRIBUTIONS,
            f"id_distribution={id_distribution!r}: one of {ID_DISTRIBUTIONS}",
        ),
    ]
    for ok, text in problems:
        if not ok:
            raise ConfigurationError(text)
