"""Every log record a hub's site makes carries ``record.site``, on every logger sites use."""

from __future__ import annotations

import logging
import sys

import pytest

import wixinv_async
from wixinv_async import AppCredentials, InventoryHub, OutcomeStatus, RateLimit
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule, SiteSpec
from wixinv_async.hub import SITE_LOGGERS

NOT_A_SITE_PART = (  # by module name: these never run inside a hub's site
    "emulator",
    "cli",
    "fleet",
    "bulk",
    "webhooks",
    "crawler",
    "streaming",
    "testing",
)
WRITES = (
    "incrementInventory",
    "bulkIncrementInventoryItems",
    "bulkIncrementInventoryItemsByVariantAndLocation",
)
FAULTS = FaultPlan({w: FaultRule(error_503=0.1, error_504=0.1) for w in WRITES}, seed=4)


def test_every_logger_of_the_modules_a_site_runs_is_stamped() -> None:
    """Each module-level logger of the library's site-side modules (client, auth, transport,
    the adjuster's parts, the hub) is one of SITE_LOGGERS, whose records get the site."""
    assert wixinv_async.InventoryHub is InventoryHub
    seen = set()
    for name, module in list(sys.modules.items()):
        parts = name.split(".")
        if parts[0] != "wixinv_async" or any(
            p in NOT_A_SITE_PART or p.startswith("crawler") for p in parts
        ):
            continue
        for value in vars(module).values():
            if isinstance(value, logging.Logger):
                seen.add(value.name)
                assert value.name in SITE_LOGGERS, f"{name} logs through {value.name}"
    assert seen == set(SITE_LOGGERS)


async def test_records_of_v1_and_v3_sites_with_faults_name_their_site(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A V1 and a V3 site with 503s and 504s: retries, in-doubt warnings, token fetches and
    the hub's own records all carry the site they were made for, and only that one."""
    specs = [SiteSpec(catalog="v1", faults=FAULTS), SiteSpec(catalog="v3", faults=FAULTS)]
    async with Emulator(sites=specs, products=6, seed=41) as emu:
        caplog.set_level(logging.DEBUG, logger="wixinv_async")
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(1000, 1.0),  # one request a delta: unpaced, or it takes seconds
            linger=0,
        ) as hub:
            for instance, site in zip(emu.instances, emu.sites, strict=True):
                items = [i for i in emu.site(site).items() if i.track_quantity is True]
                keys = [(i.product_id, v.variant_id) for i in items for v in i.variants]
                for key in keys[:10]:
                    outcome = await hub.adjust(instance, *key, 1)
                    assert outcome.status is not OutcomeStatus.REJECTED, outcome
        records = [r for r in caplog.records if r.name in SITE_LOGGERS]
        assert {r.name for r in records} == set(SITE_LOGGERS)
        assert {r.levelno for r in records} >= {logging.DEBUG, logging.INFO, logging.WARNING}
        for record in records:
            assert record.__dict__.get("site") in emu.instances, (record.name, record.msg)
        for instance in emu.instances:
            tokens = [
                r for r in records if r.name == "wixinv_async.auth" and instance in r.msg % r.args
            ]
            assert [r.site for r in tokens] == [instance]  # type: ignore[attr-defined]
