"""OpenTelemetry metrics for an :class:`~wixinv_async.hub.InventoryHub` (extra ``otel``).

``pip install wixinv-async[otel]`` (``opentelemetry-api``; an SDK and an exporter are the
application's choice). Nothing else in the library imports this module::

    from wixinv_async.otel import HubMetrics

    metrics = HubMetrics()              # the global MeterProvider's meter, or meter_provider=
    async with InventoryHub(creds, on_batch=metrics.on_batch) as hub:
        metrics.observe(hub)

Every series is labelled ``site`` (the instance id or site id) and ``catalog``
(``V1_CATALOG``, ``V3_CATALOG``; ``unknown`` before the site's first request):

=============================== ======================= ====================================
instrument                      kind                    what
=============================== ======================= ====================================
``wixinv.hub.requests``         observable counter      requests sent (bisection, resends)
``wixinv.hub.entries``          observable counter      entries sent in them
``wixinv.hub.deltas``           observable counter      deltas with an outcome, by ``status``
                                                        (committed, rejected, in_doubt,
                                                        cancelled)
``wixinv.hub.rate_limited``     observable counter      429 answers
``wixinv.hub.in_flight``        observable up-down      requests in flight now
``wixinv.hub.pending``          observable up-down      distinct keys pending now
``wixinv.hub.batch.duration``   histogram (s)           a batch from its first send to its
                                                        last outcome, also by ``kind``
                                                        (increment, decrement)
=============================== ======================= ====================================

The counters are read from :meth:`InventoryHub.counters` when the SDK collects (nothing is
added to the path of a delta); they count from the hub's start and never go down, a site
closed for idleness and made again included. One snapshot serves the six observable
instruments of one collection. The histogram is recorded by :meth:`HubMetrics.on_batch`, the
hub's ``on_batch``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

try:
    from opentelemetry.metrics import (
        CallbackOptions,
        Meter,
        MeterProvider,
        Observation,
        get_meter,
    )
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "wixinv_async.otel needs opentelemetry-api: pip install 'wixinv-async[otel]'"
    ) from exc

from ._hubstats import SiteCounters
from .hub import InventoryHub
from .outcomes import BatchReport

__all__ = ["HubMetrics"]

_STATUSES = ("committed", "rejected", "in_doubt", "cancelled")
_OBSERVED = 6
"""The observable instruments: one collection calls each callback once, in turn."""
_Read = Callable[[SiteCounters], int]


class HubMetrics:
    """Records one or more hubs' metrics on an OpenTelemetry meter (see the module doc).

    ``meter_provider``: where the meter comes from (default: the global one).
    """

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter: Meter = get_meter("wixinv_async", meter_provider=meter_provider)
        self._hubs: list[InventoryHub] = []
        self._snapshot: list[SiteCounters] = []
        self._unread = 0  # callbacks still to read the snapshot
        counter, gauge = meter.create_observable_counter, meter.create_observable_up_down_counter
        counter(
            "wixinv.hub.requests",
            [self._reading(lambda c: c.requests)],
            unit="{request}",
            description="Requests sent, bisection parts and resends included",
        )
        counter(
            "wixinv.hub.entries",
            [self._reading(lambda c: c.entries_sent)],
            unit="{entry}",
            description="Entries sent in those requests",
        )
        counter(
            "wixinv.hub.deltas",
            [self._outcomes],
            unit="{delta}",
            description="Deltas with an outcome, by status",
        )
        counter(
            "wixinv.hub.rate_limited",
            [self._reading(lambda c: c.rate_limited)],
            unit="{response}",
            description="429 answers",
        )
        gauge(
            "wixinv.hub.in_flight",
            [self._reading(lambda c: c.in_flight)],
            unit="{request}",
            description="Requests in flight now",
        )
        gauge(
            "wixinv.hub.pending",
            [self._reading(lambda c: c.pending)],
            unit="{key}",
            description="Distinct keys pending now",
        )
        self._duration = meter.create_histogram(
            "wixinv.hub.batch.duration",
            unit="s",
            description="A batch from its first send to its last outcome",
        )

    def __repr__(self) -> str:
        return f"<HubMetrics hubs={len(self._hubs)}>"

    def observe(self, hub: InventoryHub) -> None:
        """Report ``hub``'s counters from now on (it need not be open yet)."""
        if not isinstance(hub, InventoryHub):
            raise TypeError(f"observe() takes an InventoryHub, got {hub!r}")
        self._hubs.append(hub)

    def on_batch(self, site: str, report: BatchReport) -> None:
        """The hub's ``on_batch``: records the batch's duration."""
        attributes = {"site": site, "catalog": report.catalog, "kind": report.kind}
        self._duration.record(report.seconds, attributes)

    def _counters(self) -> list[SiteCounters]:
        """The hubs' counters: read once for the callbacks of one collection (each site's
        adjuster stats are not cheap with hundreds of sites)."""
        if not self._unread:
            self._snapshot = [c for hub in self._hubs for c in hub.counters().values()]
            self._unread = _OBSERVED
        self._unread -= 1
        return self._snapshot

    def _reading(self, read: _Read) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(read(c), {"site": c.site, "catalog": c.catalog})
                for c in self._counters()
            ]

        return observe

    def _outcomes(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(
                getattr(c, status), {"site": c.site, "catalog": c.catalog, "status": status}
            )
            for c in self._counters()
            for status in _STATUSES
        ]
