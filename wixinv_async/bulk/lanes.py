"""A bulk run's sites: one journalled adjuster per site its rows name, made on first use.

A file without a ``site`` column runs on one writer (the environment's site), as it always
did. A file that names sites runs each site on its own adjuster over the writer
``sites(site)`` gives (the CLI: ``hub.site(site).client`` of an
:class:`~wixinv_async.hub.InventoryHub`, so every site shares one HTTP pool and has its own
token, pacing and 429 pause). Every adjuster carries the run's journal hooks, bound to its
site: the hub's own adjusters take no hooks, and the journal must record a batch before its
request goes on the wire.

One site's refusal stays its own: a site that refuses the credentials (401, 403: a revoked
installation, a site the API key cannot reach) has its rows REJECTED as not applied, with the
reason, and its later rows are not sent at all; the other sites go on. In a one-site run
(``sites`` is ``None``) a refusal stops the run, as it always did.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._hubtoken import APP_REFUSALS
from ..adjuster import InventoryAdjuster, InventoryWriter
from ..errors import ApiError, ConfigurationError, InvalidInputError

__all__ = ["Lane", "LaneTotals", "Lanes", "SiteCounts", "SiteWriters"]

logger = logging.getLogger("wixinv_async.bulk.runner")  # the run's log, under the run's name

SiteWriters = Callable[[str], InventoryWriter]
"""The writer of a site a row names (made on its first row)."""

AdjusterFactory = Callable[[InventoryWriter, "str | None"], InventoryAdjuster]
"""Makes a site's adjuster, with the run's hooks bound to that site."""


@dataclass
class SiteCounts:
    """One site's rows in this run (``refused``: why the site refused the credentials)."""

    rows: int = 0
    done_before: int = 0
    held_in_doubt: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    refused: str | None = None

    def as_dict(self, adjuster: InventoryAdjuster | None) -> dict[str, Any]:
        stats = adjuster.stats() if adjuster is not None else None
        return {
            "catalog": ", ".join(c for c, n in sorted(stats.requests_by_catalog.items()) if n)
            if stats
            else "",
            "rows": self.rows,
            "committed": self.outcomes["committed"],
            "rejected": self.outcomes["rejected"],
            "in_doubt": self.outcomes["in_doubt"],
            "done_in_earlier_runs": self.done_before,
            "in_doubt_held_back": self.held_in_doubt,
            "requests": stats.requests if stats else 0,
            "refused": self.refused,
        }


class LaneTotals(NamedTuple):
    """Every site's adjuster counters summed, in deltas (``requests`` and ``rate_limited``:
    requests and 429 answers)."""

    committed: int
    rejected: int
    in_doubt: int
    cancelled: int
    requests: int
    rate_limited: int


class Lane:
    """One site of a run: its adjuster (``None`` until its first row is sent), its counts,
    and the refusal that stopped it."""

    __slots__ = ("adjuster", "counts", "refusal", "site")

    def __init__(self, site: str | None) -> None:
        self.site = site
        self.adjuster: InventoryAdjuster | None = None
        self.counts = SiteCounts()
        self.refusal: ApiError | None = None


class Lanes:
    """The run's sites (see the module doc). ``client``: the one site's writer, or ``sites``
    for a run over many; ``default_site``: where rows naming no site go (and the name the
    journal records for them)."""

    def __init__(
        self,
        client: InventoryWriter | None,
        sites: SiteWriters | None,
        default_site: str | None,
        make: AdjusterFactory,
        stack: contextlib.AsyncExitStack,
    ) -> None:
        if (client is None) == (sites is None):
            raise ConfigurationError("give a client (one site) or sites (many), exactly one")
        self._client = client
        self._sites = sites
        self.default_site = default_site
        self._make = make
        self._stack = stack
        self._lanes: dict[str | None, Lane] = {}
        self._fatal: ApiError | None = None
        """The refusal that stops a one-site run."""

    @property
    def many(self) -> bool:
        """Whether rows may name sites (each its own lane, a refusal its own)."""
        return self._sites is not None

    def lane(self, named: str | None) -> Lane:
        """The lane of a row naming ``named`` (``None``: the default site); raises
        :class:`InvalidInputError` for a row this run cannot route."""
        site = named or self.default_site
        lane = self._lanes.get(site)
        if lane is not None:
            return lane
        if self._sites is None and site != self.default_site:
            raise InvalidInputError(
                "site", named, "this run reaches one site: name sites from the file's first row"
            )
        if self._sites is not None and site is None:
            raise InvalidInputError(
                "site",
                "",
                "empty, and the run has no default site (WIX_SITE_ID or WIX_INSTANCE_ID)",
            )
        lane = self._lanes[site] = Lane(site)
        return lane

    async def adjuster(self, lane: Lane) -> InventoryAdjuster:
        """The lane's adjuster, made and entered on first use."""
        if lane.adjuster is None:
            if self._sites is None:
                assert self._client is not None
                writer = self._client
            else:
                assert lane.site is not None
                writer = self._sites(lane.site)
            lane.adjuster = await self._stack.enter_async_context(self._make(writer, lane.site))
        return lane.adjuster

    def of(self, site: str | None) -> Lane:
        return self._lanes[site]

    def refused(self, site: str | None, error: ApiError) -> None:
        """``site`` refused the credentials (401, 403): a one-site run stops (every later
        request would be refused too, see :meth:`raise_if_refused`); a run over many stops
        sending to that site alone, unless the OAuth endpoint refused the app itself (wrong
        app id or secret: every site would refuse), which stops a run over many sites too."""
        if not self.many or error.code in APP_REFUSALS:
            self._fatal = self._fatal or error
            return
        lane = self.of(site)
        if lane.refusal is None:
            lane.refusal = error
            lane.counts.refused = f"HTTP {error.status} {error.code}: {error.message}"
            logger.error("site %s refused the credentials (%s): its rows are not sent", site, error)

    def raise_if_refused(self) -> None:
        """Stop a one-site run whose site refused the credentials."""
        if self._fatal is not None:
            who = "the app" if self._fatal.code in APP_REFUSALS else "the site"
            logger.error("%s refused the credentials: the run stops", who)
            raise ConfigurationError(
                f"{who} refused the credentials: {self._fatal}. The refused rows were not "
                "applied; fix the credentials and run the same command again."
            )

    def __iter__(self) -> Iterator[Lane]:
        return iter(list(self._lanes.values()))

    async def flush(self) -> None:
        for lane in self:
            if lane.adjuster is not None:
                await lane.adjuster.flush()

    def totals(self) -> LaneTotals:
        every = [lane.adjuster.stats() for lane in self if lane.adjuster is not None]
        return LaneTotals(
            committed=sum(stats.committed for stats in every),
            rejected=sum(stats.rejected for stats in every),
            in_doubt=sum(stats.in_doubt for stats in every),
            cancelled=sum(stats.cancelled for stats in every),
            requests=sum(stats.requests for stats in every),
            rate_limited=sum(stats.rate_limited for stats in every),
        )

    def summaries(self) -> Mapping[str, dict[str, Any]]:
        """Each named site's counts, in the order sites first appeared."""
        return {
            str(lane.site): lane.counts.as_dict(lane.adjuster)
            for lane in self
            if lane.site is not None
        }
