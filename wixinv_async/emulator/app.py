"""The Wix side of the emulator's HTTP server: routes, the request pipeline, faults, tokens.

Each Wix call runs the same short pipeline: request id, authentication (which names the
site), the site's faults drawn, latency, faults before applying, the site's rolling-window
rate limit, decode, apply (synchronous, so a cancelled request never half-applies) or hand
it to the late applies, faults after applying, answer. :class:`WixApp` is composed into
:class:`~wixinv_async.emulator.Emulator`, which adds the admin API and owns the lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, NamedTuple

import msgspec
from aiohttp import web

from ._errors import WixApiError, application_error
from .auth import Credentials
from .catalogs import V1_CATALOG, V3_CATALOG, wrong_catalog
from .faults import AFTER_APPLY, APPLIED_LATE, Fault, FaultPlan
from .handlers import (
    Handler,
    decrement_inventory,
    get_inventory_variants,
    get_product,
    increment_inventory,
    query_inventory,
    update_inventory_variants,
)
from .late import LateApplies
from .ratelimit import retry_after_header
from .requests import TokenBody, decode
from .sites import Site, SiteTable
from .v3_handlers import V3_HANDLERS, V3Call, V3Handler

__all__ = ["Call", "WixApp"]

_encode = msgspec.json.Encoder().encode
_JSON: Final = "application/json"
_NO_FAULT: Final = Fault(None, 0.0)
_READ_PREFIXES: Final = ("/stores-reader/v2/inventoryItems", "/stores/v2/inventoryItems")
_WRITE_PREFIX: Final = "/stores/v2/inventoryItems"
_AFTER_ADMISSION: Final = AFTER_APPLY | APPLIED_LATE
"""Faults decided after the rate limit has admitted the request (they count in its window)."""
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WixApp:
    """The Wix calls of one emulator over its sites, credentials and late applies."""

    def __init__(
        self,
        sites: SiteTable,
        credentials: Credentials,
        *,
        clock: Callable[[], float],
        version_scope: bool,
        retry_after: bool,
        latency: float,
    ) -> None:
        self._sites = sites
        self._credentials = credentials
        self._clock = clock
        self.version_scope = version_scope
        self.retry_after = retry_after
        self.latency = latency
        self.late = LateApplies()
        self.requests: dict[str, dict[str, int]] = {}
        """Requests by endpoint and status, every site."""
        self.faults_injected: dict[str, int] = {}
        self.closing = asyncio.Event()
        """Set at shutdown: stalls end."""
        self._rid_prefix = secrets.token_hex(4)
        self._rid = 0

    def __repr__(self) -> str:
        return f"WixApp(sites={len(self._sites)}, late={self.late!r})"

    def clear_stats(self) -> None:
        self.requests.clear()
        self.faults_injected.clear()

    def build(self, admin: Callable[[web.Application], None]) -> web.Application:
        """The aiohttp app: the Wix routes, ``admin``'s, then 404 for anything else."""
        app = web.Application(client_max_size=16 * 1024 * 1024)
        add = app.router.add_route
        for prefix in _READ_PREFIXES:
            add("POST", f"{prefix}/query", self._wix("queryInventory", query_inventory))
            variants = self._wix("getInventoryVariants", get_inventory_variants)
            add("POST", f"{prefix}/{{inventoryId}}/getVariants", variants)
        product = self._wix("getProduct", get_product)
        for prefix in ("/stores-reader/v1/products", "/stores/v1/products"):
            add("GET", f"{prefix}/{{productId}}", product)
        update = self._wix("updateInventoryVariants", update_inventory_variants)
        add("PATCH", f"{_WRITE_PREFIX}/product/{{productId}}", update)
        decrement = self._wix("decrementInventory", decrement_inventory)
        add("POST", f"{_WRITE_PREFIX}/decrement", decrement)
        increment = self._wix("incrementInventory", increment_inventory)
        add("POST", f"{_WRITE_PREFIX}/increment", increment)
        add("GET", "/stores/v3/provision/version", self._wix3("getCatalogVersion", None))
        for key, (method, path, v3_handler) in V3_HANDLERS.items():
            add(method, path, self._wix3(key.split(".")[0], v3_handler))
        add("POST", "/oauth2/token", self._token)
        admin(app)
        add("*", "/{tail:.*}", self._unknown)
        return app

    def _next_request_id(self) -> str:
        self._rid += 1
        return f"{self._rid_prefix}.{self._rid}"

    def _count(self, site: Site | None, endpoint: str, status: int | str) -> None:
        key = str(status)
        counts = self.requests.setdefault(endpoint, {})
        counts[key] = counts.get(key, 0) + 1
        if site is not None:
            site.count(endpoint, key)

    def _wix(self, endpoint: str, handler: Handler) -> Route:
        def apply(site: Site, call: Call) -> bytes:
            if site.v3 is not None:
                raise wrong_catalog(site.version, V1_CATALOG)
            return handler(site.store, call.path, call.body, call.rid)

        return self._pipeline(endpoint, apply)

    def _wix3(self, endpoint: str, handler: V3Handler | None) -> Route:
        """A V3 call (``None``: the version call, which any site answers)."""

        def apply(site: Site, call: Call) -> bytes:
            if handler is None:
                return self._version(site)
            if site.v3 is None:
                raise wrong_catalog(site.version, V3_CATALOG)
            injector = site.injector
            late = call.late
            fault = injector.item_faults(endpoint) if injector is not None and not late else None
            return handler(V3Call(site.v3, call.path, call.query, call.body, call.rid, fault))

        return self._pipeline(endpoint, apply)

    def _version(self, site: Site) -> bytes:
        if not self.version_scope:
            text = "the credentials lack the permission to read the catalog version"
            data = {"permission": "WIX_STORES.CATALOG_VERSION_READ"}
            raise application_error(403, "FORBIDDEN", text, data)
        return _encode({"catalogVersion": site.version})

    def _pipeline(self, endpoint: str, apply: Apply) -> Route:
        """The pipeline of the package docstring; ``apply`` decides and applies with no await
        (the catalog version is checked there, so a migration never splits a request)."""

        async def handle(request: web.Request) -> web.StreamResponse:
            rid = self._next_request_id()
            fault = _NO_FAULT
            site: Site | None = None
            try:
                site = self._authenticate(request)
                plan = site.plan  # the plan that draws this request's fault performs it
                fault = site.decide(endpoint)
                delay = self.latency + fault.delay
                if delay:
                    if fault.delay:
                        self._note_fault(site, "latency")
                    await asyncio.sleep(delay)
                if fault.kind is not None and fault.kind not in _AFTER_ADMISSION:
                    return await self._fault(request, site, endpoint, fault.kind, rid, plan)
                self._admit(site)
                body = await request.read()
                call = Call(request.match_info, request.query, body, rid, False)
                if fault.kind in APPLIED_LATE:
                    return await self._late_fault(request, site, endpoint, fault, apply, call, plan)
                payload = apply(site, call)
            except WixApiError as error:
                return self._error(site, endpoint, error, rid)
            if fault.kind is not None:
                return await self._fault(request, site, endpoint, fault.kind, rid, plan)
            self._count(site, endpoint, 200)
            return web.Response(
                body=payload, headers={"x-wix-request-id": rid, "Content-Type": _JSON}
            )

        return handle

    def _error(
        self, site: Site | None, endpoint: str, error: WixApiError, rid: str
    ) -> web.Response:
        self._count(site, endpoint, error.status)
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
        """``POST /oauth2/token``: faults apply only when named (``oauthToken``), drawn from
        the default site's plan (the token endpoint belongs to no site)."""
        rid = self._next_request_id()
        endpoint = "oauthToken"
        try:
            site = self._sites.first()
            fault = site.decide(endpoint)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.kind is not None:
                return await self._fault(request, None, endpoint, fault.kind, rid, site.plan)
            answer = self._credentials.issue(decode(TokenBody, await request.read()))
        except WixApiError as error:
            return self._error(None, endpoint, error, rid)
        self._count(None, endpoint, 200)
        headers = {"x-wix-request-id": rid, "Content-Type": _JSON}
        return web.Response(body=_encode(answer), headers=headers)

    # --- faults --------------------------------------------------------------------------

    def _note_fault(self, site: Site | None, kind: str) -> None:
        self.faults_injected[kind] = self.faults_injected.get(kind, 0) + 1
        if site is not None:
            site.note_fault(kind)

    async def _fault(
        self,
        request: web.Request,
        site: Site | None,
        endpoint: str,
        kind: str,
        rid: str,
        plan: FaultPlan | None,
    ) -> web.StreamResponse:
        """Perform ``kind``, drawn from ``plan``, on a request of ``site`` (``None``: the
        token endpoint, which belongs to no site)."""
        self._note_fault(site, kind)
        if kind in ("reset_before", "reset_after", "late_reset"):
            return self._reset(request, site, endpoint)
        if kind in ("stall_after", "late_stall"):
            self._count(site, endpoint, "stall")
            await self._stall(plan.stall_seconds if plan is not None else 0)
            return self._reset(request, site, endpoint, count=False)
        if kind == "rate_limited":
            seconds = plan.retry_after if plan is not None else None
            error = _too_many(str(seconds) if seconds is not None and self.retry_after else None)
        else:
            status = int(kind.removeprefix("error_").removeprefix("late_"))
            error = application_error(status, _SYSTEM_CODES[status], f"injected fault {kind}")
        return self._error(site, endpoint, error, rid)

    async def _stall(self, seconds: float) -> None:
        """Until the client gives up (the handler is cancelled), ``seconds`` pass or the
        emulator closes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), seconds)

    async def _late_fault(
        self,
        request: web.Request,
        site: Site,
        endpoint: str,
        fault: Fault,
        apply: Apply,
        call: Call,
        plan: FaultPlan | None,
    ) -> web.StreamResponse:
        """Answer ambiguously without applying; apply ``fault.late`` seconds after the answer
        (after the stall, however it ended)."""
        assert fault.kind is not None
        late_call = call._replace(path=dict(call.path), query=dict(call.query), late=True)

        def late_apply() -> None:
            store = site.v3 if site.v3 is not None else site.store
            store.source = "late"
            try:
                apply(site, late_call)
            finally:
                store.source = "api"

        self.late.expect()
        try:
            return await self._fault(request, site, endpoint, fault.kind, call.rid, plan)
        finally:
            self.late.schedule(fault.late, late_apply)

    def _reset(
        self, request: web.Request, site: Site | None, endpoint: str, *, count: bool = True
    ) -> web.StreamResponse:
        if count:
            self._count(site, endpoint, "reset")
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500)

    async def _unknown(self, request: web.Request) -> web.Response:
        rid = self._next_request_id()
        error = application_error(
            404, "NOT_FOUND", f"no such endpoint: {request.method} {request.path}"
        )
        return self._error(None, "unknown", error, rid)


class Call(NamedTuple):
    """One Wix request as ``apply`` sees it (``late``: applied by a late fault)."""

    path: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    rid: str
    late: bool


Apply = Callable[[Site, Call], bytes]
"""Decide and apply one request synchronously; the answer's body."""


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
