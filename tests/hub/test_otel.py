"""The OpenTelemetry adapter over a real hub run, read with the SDK's in-memory reader."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from wixinv_async import AppCredentials, InventoryHub, OutcomeStatus, RateLimit
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule, SiteSpec
from wixinv_async.otel import HubMetrics

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository: tests/hub/ is two down
README = (ROOT / "README.md").read_text(encoding="utf-8")
MISSING = "11111111-1111-1111-1111-111111111111"
THROTTLED = FaultPlan({"incrementInventory": FaultRule(rate_limited=0.5)}, seed=2, retry_after=0)
SLOW = FaultPlan({"*": FaultRule(latency_ms=300)}, seed=2)
Points = dict[tuple[str, frozenset[tuple[str, Any]]], Any]


def points(reader: InMemoryMetricReader) -> Points:
    """Every data point collected now, by (instrument, attributes)."""
    data = reader.get_metrics_data()
    assert data is not None
    found: Points = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found[metric.name, frozenset(point.attributes.items())] = point
    return found


def at(found: Points, name: str, **attributes: str) -> Any:
    """The data point of ``name`` with exactly ``attributes``."""
    return found[name, frozenset(attributes.items())]


def keys_of(emu: Emulator, site: str, count: int) -> list[tuple[str, str]]:
    """``count`` tracked keys of ``site``, as a delta names them (V3: default location)."""
    if emu.catalog_version(site) == "V3_CATALOG":
        store = emu.v3_store(site)
        records = store.records()
        found = [(r.product_id, r.variant_id) for r in records if r.track is True]
        return sorted(set(found))[:count]
    items = [i for i in emu.site(site).items() if i.track_quantity is True]
    return [(i.product_id, v.variant_id) for i in items for v in i.variants][:count]


async def test_a_hub_run_is_recorded_by_site_and_catalog() -> None:
    """A V1 site throttled by 429s and a slow V3 site with an unknown variant: pending and
    in-flight are seen while they last; requests, entries, deltas by status and 429s equal
    the hub's own counters; every batch's duration is in the histogram; all by site and
    catalog."""
    specs = [SiteSpec(catalog="v1", faults=THROTTLED), SiteSpec(catalog="v3", faults=SLOW)]
    async with Emulator(sites=specs, products=8, seed=51) as emu:
        v1, v3 = emu.instances
        reader = InMemoryMetricReader()
        metrics = HubMetrics(meter_provider=MeterProvider(metric_readers=[reader]))
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(1000, 1.0),
            max_batch=4,
            on_batch=metrics.on_batch,
        ) as hub:
            metrics.observe(hub)
            tickets = [hub.submit_nowait(v1, *k, 1) for k in keys_of(emu, emu.sites[0], 10)]
            tickets += [hub.submit_nowait(v3, *k, 1) for k in keys_of(emu, emu.sites[1], 7)]
            tickets.append(hub.submit_nowait(v3, "p", MISSING, 1))
            early = points(reader)
            assert at(early, "wixinv.hub.pending", site=v1, catalog="unknown").value == 10
            assert at(early, "wixinv.hub.pending", site=v3, catalog="unknown").value == 8
            while not hub.site(v3).adjuster.stats().in_flight:  # noqa: ASYNC110 - no event says so
                await asyncio.sleep(0.01)  # the V3 site answers in 300 ms: caught in flight
            flying = points(reader)
            (in_flight,) = [  # labelled unknown until the first request of it is on the wire
                p.value
                for (name, labels), p in flying.items()
                if name == "wixinv.hub.in_flight" and ("site", v3) in labels
            ]
            assert in_flight > 0
            outcomes = [await t for t in tickets]
            counters = hub.counters()
            batches = {
                s: sum(hub.site(s).adjuster.stats().batches_by_catalog.values()) for s in (v1, v3)
            }
        assert [o.status for o in outcomes].count(OutcomeStatus.REJECTED) == 1
        found = points(reader)
        for site, catalog in ((v1, "V1_CATALOG"), (v3, "V3_CATALOG")):
            mine = counters[site]
            labels = {"site": site, "catalog": catalog}
            assert at(found, "wixinv.hub.requests", **labels).value == mine.requests > 0
            assert at(found, "wixinv.hub.entries", **labels).value == mine.entries_sent
            assert at(found, "wixinv.hub.rate_limited", **labels).value == mine.rate_limited
            for status in ("committed", "rejected", "in_doubt", "cancelled"):
                point = at(found, "wixinv.hub.deltas", status=status, **labels)
                assert point.value == getattr(mine, status)
            assert at(found, "wixinv.hub.in_flight", **labels).value == 0
            assert at(found, "wixinv.hub.pending", **labels).value == 0
            histogram = at(found, "wixinv.hub.batch.duration", kind="increment", **labels)
            assert histogram.count == batches[site] and histogram.sum > 0
        assert counters[v1].rate_limited > 0 and counters[v3].rejected == 1
        assert (counters[v1].committed, counters[v3].committed) == (10, 7)


async def test_counters_go_on_across_a_site_closed_and_made_again() -> None:
    """With max_sites=1, a site closed to make room and made again keeps counting from where
    it was: counters() never go down."""
    async with Emulator(sites=2, products=4, seed=52) as emu:
        a, b = emu.instances
        key_a, key_b = keys_of(emu, emu.sites[0], 1)[0], keys_of(emu, emu.sites[1], 1)[0]
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url, max_sites=1
        ) as hub:
            await hub.adjust(a, *key_a, 1)
            first = hub.site(a)
            await hub.adjust(b, *key_b, 1)  # makes room: a is drained and closed
            await first.wait_closed()
            assert hub.counters()[a].committed == 1
            await hub.adjust(a, *key_a, 1)
            assert hub.site(a) is not first
            counted = hub.counters()
        assert (counted[a].committed, counted[a].requests) == (2, 2)
        assert counted[a].catalog == "V1_CATALOG" and counted[b].committed == 1
        assert hub.stats().total.committed == 3


async def test_the_readme_snippet_records_a_delta() -> None:
    """The README's OpenTelemetry snippet, as printed, records the delta it adjusts."""
    (block,) = [b for b in README.split("```python\n")[1:] if "metrics.observe(hub)" in b]
    body = block.split("```")[0]
    async with Emulator(products=3, seed=53) as emu:
        reader = InMemoryMetricReader()
        item = next(i for i in emu.store.items() if i.track_quantity is True)
        namespace: dict[str, Any] = {
            "InventoryHub": InventoryHub,
            "AppCredentials": AppCredentials,
            "meter_provider": MeterProvider(metric_readers=[reader]),
            "app_id": emu.app_id,
            "app_secret": emu.app_secret,
            "base_url": emu.url,
            "instance_id": emu.instance_id,
            "product_id": item.product_id,
            "variant_id": item.variants[0].variant_id,
        }
        code = "async def snippet():\n" + "".join(f"    {line}\n" for line in body.splitlines())
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
        await namespace["snippet"]()
        found = points(reader)
    labels = {"site": emu.instance_id, "catalog": "V1_CATALOG", "status": "committed"}
    assert at(found, "wixinv.hub.deltas", **labels).value == 1


def test_the_library_imports_without_opentelemetry() -> None:
    """With opentelemetry absent, the package and the hub import and nothing loads it;
    wixinv_async.otel alone says which extra to install."""
    script = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "import wixinv_async, wixinv_async.hub, wixinv_async.cli\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry.')]\n"
        "try:\n"
        "    import wixinv_async.otel\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'wixinv-async[otel]'" in done.stdout
