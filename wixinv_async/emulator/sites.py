"""The sites of one emulator: what each is (:class:`SiteSpec`), and each one made on first use.

An emulator may serve thousands of sites. Each site's identity (site id, app instance id)
is drawn at construction, which is cheap; its catalog, rate window and fault generator are
made the first time something touches the site (a request authenticated for it, an admin
call naming it, ``Emulator.site``). A site made late is the same as one made early: its
catalog comes from its own seed, never from the order sites were touched in.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import ConfigurationError
from .catalog import new_guid
from .catalogs import CATALOGS, V1_CATALOG, V3_CATALOG, location_ids, seed_v3
from .faults import Fault, FaultInjector, FaultPlan
from .ratelimit import RollingWindow, parse_rate
from .store import SiteStore
from .v3_store import V3Store

__all__ = ["Defaults", "Site", "SiteSpec", "SiteTable", "catalogs_for"]

_NO_FAULT = Fault(None, 0.0)


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """One site of an emulator. Every field left ``None`` takes the emulator's setting.

    - ``site_id``: the site's id (default: a GUID drawn from the emulator's seed).
    - ``catalog``: ``"v1"`` or ``"v3"``.
    - ``products``, ``variants_per_product``, ``locations``: the seeded catalog's size.
    - ``seed``: the catalog's seed (default: the emulator's seed plus the site's index).
    - ``rate_limit``: ``"200/60"`` (a strict rolling window of its own), or ``"off"``.
    - ``faults``: the site's own fault plan, drawn from its own seed.
    """

    site_id: str | None = None
    catalog: str | None = None
    products: int | None = None
    variants_per_product: int | None = None
    locations: int | None = None
    seed: int | None = None
    rate_limit: str | None = None
    faults: FaultPlan | None = None

    def __post_init__(self) -> None:
        problems = [
            (self.site_id is None or bool(self.site_id.strip()), "site_id", "must not be empty"),
            (self.catalog is None or self.catalog in CATALOGS, "catalog", f"one of {CATALOGS}"),
            (self.products is None or self.products >= 0, "products", "must be >= 0"),
            (
                self.variants_per_product is None or self.variants_per_product >= 1,
                "variants_per_product",
                "must be >= 1",
            ),
            (self.locations is None or self.locations >= 1, "locations", "must be >= 1"),
        ]
        for ok, name, text in problems:
            if not ok:
                raise ConfigurationError(f"SiteSpec.{name}={getattr(self, name)!r}: {text}")
        if self.rate_limit is not None and self.rate_limit != "off":
            try:
                parse_rate(self.rate_limit)
            except ValueError as exc:
                raise ConfigurationError(f"SiteSpec.{exc}") from None


class Defaults(NamedTuple):
    """The emulator-wide settings a :class:`SiteSpec` falls back on."""

    products: int
    variants_per_product: int
    seed: int
    id_distribution: str
    locations: int
    rate: tuple[int, float] | None
    faults: FaultPlan | None


class Site:
    """One materialized site: its V1 store, its V3 store while it runs V3, its rate window,
    its fault generator and its counters."""

    __slots__ = (
        "catalog",
        "faults_injected",
        "index",
        "injector",
        "limiter",
        "locations",
        "requests",
        "seed",
        "store",
        "v3",
    )

    def __init__(
        self,
        store: SiteStore,
        limiter: RollingWindow | None,
        *,
        catalog: str,
        seed: int,
        locations: list[str],
        index: int = 0,
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.catalog = catalog
        self.seed = seed
        self.locations = locations
        self.index = index
        self.injector: FaultInjector | None = None
        self.requests: dict[str, dict[str, int]] = {}
        self.faults_injected: dict[str, int] = {}
        self.v3: V3Store | None = None
        self.reseed()

    def __repr__(self) -> str:
        return f"Site({self.store.site_id!r}, {self.version}, limiter={self.limiter!r})"

    def reseed(self) -> None:
        """Back to the seeded catalog version (a migrated site is V1 again)."""
        self.v3 = seed_v3(self.store, self.seed, self.locations) if self.catalog == "v3" else None

    @property
    def version(self) -> str:
        return V3_CATALOG if self.v3 is not None else V1_CATALOG

    def set_faults(self, plan: FaultPlan | None, *, shared: bool) -> None:
        """Install ``plan`` (``None``: none). A ``shared`` plan (the emulator's, for every
        site) draws from ``plan.seed + index``, so sites do not fault in lockstep; a site's
        own plan draws from its own seed."""
        if plan is None:
            self.injector = None
            return
        seed = plan.seed + self.index if shared else plan.seed
        self.injector = FaultInjector(plan, seed=seed)

    @property
    def plan(self) -> FaultPlan | None:
        return self.injector.plan if self.injector is not None else None

    def decide(self, endpoint: str) -> Fault:
        return self.injector.decide(endpoint) if self.injector is not None else _NO_FAULT

    def count(self, endpoint: str, status: str) -> None:
        counts = self.requests.setdefault(endpoint, {})
        counts[status] = counts.get(status, 0) + 1

    def note_fault(self, kind: str) -> None:
        self.faults_injected[kind] = self.faults_injected.get(kind, 0) + 1

    def clear_stats(self) -> None:
        self.requests.clear()
        self.faults_injected.clear()

    def stats(self) -> dict[str, Any]:
        """This site's requests by endpoint and status, entries applied, faults by kind,
        catalog version and rate window."""
        v3 = self.v3.entries_applied if self.v3 is not None else 0
        limiter = self.limiter
        return {
            "instanceId": self.store.instance_id,
            "catalogVersion": self.version,
            "requests": {name: dict(counts) for name, counts in self.requests.items()},
            "entries_applied": self.store.entries_applied + v3,
            "faults": dict(self.faults_injected),
            "rate_limit": None if limiter is None else f"{limiter.limit}/{limiter.period:g}",
            "peak_in_window": 0 if limiter is None else limiter.peak,
        }


def catalogs_for(catalog: str | Sequence[str], sites: int) -> list[str]:
    """One catalog name per site from ``catalog``: a name (``v1``, ``v3``, or ``mixed``: V1 and
    V3 in turn, the first site V1) or one name per site."""
    if catalog == "mixed":
        return [CATALOGS[index % 2] for index in range(sites)]
    names = [catalog] * sites if isinstance(catalog, str) else list(catalog)
    if len(names) != sites or any(name not in CATALOGS for name in names):
        text = (
            f"catalog={catalog!r}: one of {(*CATALOGS, 'mixed')}, or a list of them with one "
            f"per site ({sites})"
        )
        raise ConfigurationError(text)
    return list(names)


class SiteTable:
    """Every site's id and instance id (drawn at once) and the sites made so far."""

    __slots__ = (
        "_catalogs",
        "_defaults",
        "_index",
        "_live",
        "_own_faults",
        "_specs",
        "instance_ids",
        "on_create",
        "site_ids",
    )

    def __init__(
        self,
        specs: Sequence[SiteSpec],
        catalogs: Sequence[str],
        defaults: Defaults,
        ids: random.Random,
    ) -> None:
        self._specs = specs
        self._catalogs = catalogs
        """The emulator's catalog per site, for specs that name none."""
        self._defaults = defaults
        self.site_ids: list[str] = []
        self.instance_ids: list[str] = []
        for spec in specs:
            self.site_ids.append(spec.site_id if spec.site_id is not None else new_guid(ids))
            self.instance_ids.append(new_guid(ids))
        self._index = {site_id: index for index, site_id in enumerate(self.site_ids)}
        if len(self._index) != len(self.site_ids):
            duplicated = sorted({s for s in self.site_ids if self.site_ids.count(s) > 1})
            raise ConfigurationError(f"site ids must be unique: {duplicated!r} repeated")
        self._live: dict[str, Site] = {}
        self._own_faults = True
        self.on_create: Callable[[Site], None] | None = None
        """Called with each site when it is made (the webhook sender attaches here)."""

    def __len__(self) -> int:
        return len(self.site_ids)

    def __contains__(self, site_id: object) -> bool:
        return site_id in self._index

    def get(self, site_id: str) -> Site | None:
        """The site, made now if it was not yet; ``None`` for an unknown id."""
        site = self._live.get(site_id)
        if site is None:
            index = self._index.get(site_id)
            if index is None:
                return None
            site = self._live[site_id] = self._make(index)
            if self.on_create is not None:
                self.on_create(site)
        return site

    def first(self) -> Site:
        site = self.get(self.site_ids[0])
        assert site is not None
        return site

    def live(self) -> Iterator[Site]:
        """The sites made so far, in the order they were made."""
        return iter(list(self._live.values()))

    def instance_of(self, site_id: str) -> str:
        return self.instance_ids[self._index[site_id]]

    def _make(self, index: int) -> Site:
        spec, defaults = self._specs[index], self._defaults
        seed = spec.seed if spec.seed is not None else defaults.seed + index
        store = SiteStore(
            site_id=self.site_ids[index],
            instance_id=self.instance_ids[index],
            products=_pick(spec.products, defaults.products),
            variants_per_product=_pick(spec.variants_per_product, defaults.variants_per_product),
            seed=seed,
            id_distribution=defaults.id_distribution,
        )
        rate = defaults.rate if spec.rate_limit is None else _rate(spec.rate_limit)
        site = Site(
            store,
            RollingWindow(*rate) if rate is not None else None,
            catalog=spec.catalog or self._catalogs[index],
            seed=seed,
            locations=location_ids(seed, _pick(spec.locations, defaults.locations)),
            index=index,
        )
        if spec.faults is not None and self._own_faults:
            site.set_faults(spec.faults, shared=False)
        else:
            site.set_faults(defaults.faults, shared=True)
        return site

    def set_defaults(self, defaults: Defaults, *, forget_site_plans: bool = False) -> None:
        """New emulator-wide settings for the sites made from now on (``forget_site_plans``:
        their specs' own fault plans give way to the emulator's)."""
        self._defaults = defaults
        if forget_site_plans:
            self._own_faults = False


def _pick(value: int | None, default: int) -> int:
    return default if value is None else value


def _rate(text: str) -> tuple[int, float] | None:
    return None if text == "off" else parse_rate(text)
