"""The emulator's public face: :class:`Emulator`, its sites, lifecycle, inspection and control.

The Wix calls are served by :class:`~wixinv_async.emulator.app.WixApp` (composed here); the
admin API lives under ``/_emulator/`` (``admin.py``), outside Wix's paths, without
authentication.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Final, Protocol, Self

from aiohttp import web

from ..errors import ConfigurationError
from ._settings import check_settings
from .admin import add_admin_routes
from .app import WixApp
from .auth import Credentials
from .catalog import new_guid
from .catalogs import migrate
from .faults import FaultPlan
from .ratelimit import parse_rate
from .sites import Defaults, Site, SiteSpec, SiteTable, catalogs_for
from .store import JournalEntry, SiteStore
from .v3_store import V3Store

__all__ = ["Emulator", "WebhookSink"]


class WebhookSink(Protocol):
    """What the emulator needs of a webhook sender: it attaches to each site's store."""

    def attach(self, store: SiteStore) -> None: ...
    async def start(self) -> None: ...
    async def aclose(self) -> None: ...


class Emulator:
    """A Wix Inventory API on ``host:port`` (port 0: any free port), as an async context manager.

    ``sites``: how many sites (each with its own id, app instance, seeded catalog, rate window,
    fault generator, journal and stats), or one :class:`SiteSpec` per site; ``extra_sites``
    (older spelling) adds that many to one site. ``clock`` (monotonic seconds) drives token
    expiry and the rate limit, so tests can move time without sleeping. Everything else is
    described in the package docstring.
    """

    def __init__(
        self,
        *,
        sites: int | Sequence[SiteSpec] = 1,
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
        specs = _site_specs(sites, extra_sites, site_id)
        catalogs = catalogs_for(catalog, len(specs))
        if locations < 1:
            raise ConfigurationError(f"locations={locations!r}: must be >= 1")
        try:
            rate = parse_rate(rate_limit) if rate_limit is not None else None
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        ids = random.Random(seed + 0x51DE)
        app_id = new_guid(ids)
        defaults = Defaults(
            products, variants_per_product, seed, id_distribution, locations, rate, faults
        )
        self._sites = SiteTable(specs, catalogs, defaults, ids)
        self._defaults = defaults
        self.store = self._sites.first().store
        self.site_id = self.store.site_id
        self.instance_id = self.store.instance_id
        self._credentials = Credentials(
            api_key=api_key if api_key is not None else "IST." + secrets.token_urlsafe(32),
            app_id=app_id,
            app_secret=secrets.token_urlsafe(24),
            instances=dict(zip(self._sites.instance_ids, self._sites.site_ids, strict=True)),
            token_lifetime=token_lifetime,
            clock=clock,
        )
        self._http = WixApp(
            self._sites,
            self._credentials,
            clock=clock,
            version_scope=version_scope,
            retry_after=retry_after,
            latency=latency_ms / 1000,
        )
        self.host, self._port = host, port
        self._webhooks = webhooks
        self._late = self._http.late
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

    @property
    def version_scope(self) -> bool:
        """``False``: the credentials lack the catalog-read scope, so the version call is 403
        (settable while serving)."""
        return self._http.version_scope

    @version_scope.setter
    def version_scope(self, value: bool) -> None:
        self._http.version_scope = value

    @property
    def retry_after(self) -> bool:
        """Whether a 429 carries ``Retry-After`` (settable while serving)."""
        return self._http.retry_after

    @retry_after.setter
    def retry_after(self, value: bool) -> None:
        self._http.retry_after = value

    @property
    def latency(self) -> float:
        """Seconds added to every Wix call (settable while serving)."""
        return self._http.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._http.latency = value

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
        self._http.closing = asyncio.Event()
        app = self._http.build(lambda app: add_admin_routes(app, self))
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
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
            sink = self._webhooks
            for site in self._sites.live():
                sink.attach(site.store)
            self._sites.on_create = lambda site: sink.attach(site.store)
            await sink.start()

    async def aclose(self) -> None:
        """Stop serving: stalled responses end at once, connections close, late applies not
        yet made are dropped."""
        self._http.closing.set()
        if self._webhooks is not None:
            await self._webhooks.aclose()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._late.drop_all()

    # --- inspection and control ----------------------------------------------------------

    @property
    def sites(self) -> list[str]:
        """Every site id, the default site first."""
        return list(self._sites.site_ids)

    @property
    def instances(self) -> list[str]:
        """Every site's app instance id, in the order of :attr:`sites`."""
        return list(self._sites.instance_ids)

    def make_sites(self) -> None:
        """Make every site now (seed each catalog) instead of on first use: a benchmark's
        first requests then pay no seeding. Costs time and memory in proportion to sites."""
        for site_id in self._sites.site_ids:
            self._sites.get(site_id)

    def has_site(self, site_id: str) -> bool:
        """Whether the emulator serves ``site_id`` (cheap: the site is not made)."""
        return site_id in self._sites

    def instance_of(self, site_id: str) -> str:
        """The app instance id of a site (``KeyError`` for an unknown site); cheap: the site's
        catalog is not made."""
        if site_id not in self._sites:
            raise KeyError(f"no site {site_id!r}")
        return self._sites.instance_of(site_id)

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

    def edit_quantity(
        self,
        item: str,
        variant_id: str | None = None,
        *,
        quantity: int | None = None,
        delta: int = 0,
        site_id: str | None = None,
    ) -> tuple[int, int]:
        """A third party's out-of-band edit of one variant's quantity (``quantity`` set, or
        ``delta`` added), journaled as ``thirdPartyEdit``: on a V1 site ``item`` is the
        product id and ``variant_id`` the variant; on a V3 site ``item`` is the inventory
        item id. Returns (before, after); ``KeyError``/``ValueError`` for a bad target."""
        site = self._site(site_id)
        if site.v3 is not None:
            return site.v3.edit_quantity(item, quantity=quantity, delta=delta)
        if variant_id is None:
            raise ValueError("variant_id is required on a V1 site")
        return site.store.edit_quantity(item, variant_id, quantity=quantity, delta=delta)

    def revoke(self, instance_id: str) -> None:
        """Remove the app from the instance's site: its tokens get 401 from now on and new
        token requests for it are refused (401). The API key still reaches the site."""
        self._credentials.revoke(instance_id)

    def reinstate(self, instance_id: str) -> None:
        """Install the app again on a revoked instance: new tokens can be fetched."""
        self._credentials.reinstate(instance_id)

    def is_revoked(self, instance_id: str) -> bool:
        return self._credentials.is_revoked(instance_id)

    def reset_app_secret(self, secret: str) -> None:
        """The app's secret is reset (as in Wix's dev center): token requests with the old one
        are refused 401 ``invalid_client``; tokens already issued keep working."""
        self._credentials.app_secret = secret

    async def wait_late_applies(self) -> None:
        """Until every request that drew a ``late_`` fault so far has been applied (or
        refused, or dropped at shutdown): lets a test wait for late applies without sleeping."""
        await self._late.wait()

    def _site(self, site_id: str | None) -> Site:
        if site_id is None:
            return self._sites.first()
        site = self._sites.get(site_id)
        if site is None:
            raise KeyError(f"no site {site_id!r}: the emulator has {len(self._sites)} sites")
        return site

    def set_faults(self, plan: FaultPlan | None, *, site_id: str | None = None) -> None:
        """Replace the fault plan (``None``: no faults) of one site, or of every site (each
        drawing from its own generator, ``plan.seed`` plus the site's index), site plans
        included; generators restart from their seeds."""
        if site_id is not None:
            self._site(site_id).set_faults(plan, shared=False)
            return
        self._defaults = self._defaults._replace(faults=plan)
        self._sites.set_defaults(self._defaults, forget_site_plans=True)
        for site in self._sites.live():
            site.set_faults(plan, shared=True)

    @property
    def faults(self) -> FaultPlan | None:
        """The default site's fault plan."""
        return self.faults_of(None)

    def faults_of(self, site_id: str | None) -> FaultPlan | None:
        injector = self._site(site_id).injector
        return injector.plan if injector is not None else None

    def stats(self) -> dict[str, Any]:
        """Requests by endpoint and status, entries applied, faults injected by kind (all
        sites), late applies, tokens issued by instance id, and under ``sites`` each site made
        so far (untouched lazy sites
        have nothing to report): see :meth:`site_stats`."""
        live = list(self._sites.live())
        late = self._late
        return {
            "requests": {name: dict(counts) for name, counts in self._http.requests.items()},
            "entries_applied": sum(
                site.store.entries_applied + (site.v3.entries_applied if site.v3 else 0)
                for site in live
            ),
            "faults": dict(self._http.faults_injected),
            "late": {
                "pending": late.pending,
                "applied": late.applied,
                "refused": late.refused,
                "dropped": late.dropped,
            },
            "sites_total": len(self._sites),
            "tokens_issued": dict(self._credentials.issued),
            "sites": {site.store.site_id: self._site_stats(site) for site in live},
        }

    def site_stats(self, site_id: str | None = None) -> dict[str, Any]:
        """One site's requests by endpoint and status, entries applied, faults by kind,
        catalog version, rate limit and the most requests it ever had in one window, whether
        its app instance is revoked and how many tokens were issued for it."""
        return self._site_stats(self._site(site_id))

    def _site_stats(self, site: Site) -> dict[str, Any]:
        stats = site.stats()
        instance = site.store.instance_id
        stats["revoked"] = self._credentials.is_revoked(instance)
        stats["tokens_issued"] = self._credentials.issued.get(instance, 0)
        return stats

    def reset(self) -> None:
        """Every site made back to its seeded catalog; journals, stats (token counts too) and
        rate windows emptied. Fault plans, issued tokens and revocations are kept."""
        for site in self._sites.live():
            site.store.reset()
            site.reseed()
            site.clear_stats()
            if site.limiter is not None:
                site.limiter.clear()
        self._http.clear_stats()
        self._credentials.issued.clear()


def _site_specs(
    sites: int | Sequence[SiteSpec], extra_sites: int, site_id: str | None
) -> Sequence[SiteSpec]:
    """One spec per site; ``site_id`` names the first site unless its spec does."""
    if isinstance(sites, int):
        if sites < 1:
            raise ConfigurationError(f"sites={sites!r}: must be >= 1 (or a list of SiteSpec)")
        if extra_sites and sites != 1:
            raise ConfigurationError("give sites=N or extra_sites, not both")
        specs: list[SiteSpec] = [_DEFAULT_SPEC] * (sites + extra_sites)
    else:
        specs = list(sites)
        if not specs or not all(isinstance(spec, SiteSpec) for spec in specs):
            raise ConfigurationError(f"sites={sites!r}: a count or a non-empty list of SiteSpec")
        if extra_sites:
            raise ConfigurationError("give sites=[SiteSpec, ...] or extra_sites, not both")
    if site_id is not None:
        if specs[0].site_id is not None and specs[0].site_id != site_id:
            raise ConfigurationError(f"site_id={site_id!r} differs from sites[0].site_id")
        specs[0] = replace(specs[0], site_id=site_id)
    return specs


_DEFAULT_SPEC: Final = SiteSpec()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
