"""Worker processes on a mixed emulator (Catalog V1 and V3 sites over HTTP, a real Redis):
V1 batches as atomic calls, V3 batches as bulk calls by variant and location, a site moved
to V3 mid-run, and a kill -9 on V3 resolved by hand."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from wixinv_async.fleet.admin import FleetAdmin
from wixinv_async.fleet.shards import EventStatus

from .harness import PREFIX, SHARDS, Fleet, open_fleet, settle_and_check

pytestmark = pytest.mark.slow
ELSEWHERE = "00000000-0000-0000-0000-111111111111"  # a location id (V1 sites have none)


def v3_requests(fleet: Fleet) -> Counter[str]:
    """The V3 bulk requests the emulator answered, by endpoint."""
    requests = fleet.emulator.stats()["requests"]
    return Counter({name: sum(c.values()) for name, c in requests.items() if "bulk" in name})


async def test_mixed_v1_and_v3_sites_each_get_their_catalogs_calls(
    redis_url: str, tmp_path: Path
) -> None:
    """Two workers, a V1 and two V3 sites: every delta lands once through its site's catalog;
    a location on the V1 site is refused without a request."""
    async with open_fleet(redis_url, tmp_path, catalogs="v1 v3 v3") as fleet:
        fleet.start_worker()
        fleet.start_worker()
        await fleet.produce(random.Random(11), 300)
        v1_site = fleet.emulator.sites[0]
        product, variant = next((k[1], k[2]) for k in fleet.keys if k[0] == v1_site)
        located = await fleet.submit((v1_site, product, variant, ELSEWHERE), 1)
        outcomes, _ = await settle_and_check(fleet)
        assert outcomes[located].status is EventStatus.REJECTED
        assert outcomes[located].code == "LOCATION_NEEDS_V3"
        others = {o.status for e, o in outcomes.items() if e != located}
        assert others <= {EventStatus.APPLIED, EventStatus.NETTED}
        assert set(v3_requests(fleet)) <= {
            "bulkIncrementInventoryItemsByVariantAndLocation",
            "bulkDecrementInventoryItemsByVariantAndLocation",
        }
        assert sum(v3_requests(fleet).values()) > 0
        assert any(k[3] for k in fleet.keys)  # some V3 deltas named a non-default location


async def test_a_site_moved_to_v3_mid_run_is_redetected_and_nothing_is_lost(
    redis_url: str, tmp_path: Path
) -> None:
    """A V1 site migrates while deltas flow: the wrong-catalog 428 returns the batch (not
    applied), the catalog is detected again, the rest goes by V3 bulk calls; none in doubt."""
    async with open_fleet(redis_url, tmp_path, catalogs="v1") as fleet:
        fleet.start_worker()
        rng = random.Random(12)
        await fleet.produce(rng, 60)
        await fleet.first_outcome()
        fleet.emulator.migrate_to_v3(fleet.emulator.sites[0])
        await fleet.produce(rng, 60)
        outcomes, _ = await settle_and_check(fleet)
        assert {o.status for o in outcomes.values()} <= {EventStatus.APPLIED, EventStatus.NETTED}
        assert sum(v3_requests(fleet).values()) > 0


async def test_kill_9_on_v3_after_the_answer_is_listed_in_doubt_then_resolved(
    redis_url: str, tmp_path: Path
) -> None:
    """A worker killed after V3 answered, before finishing: the takeover puts its batches in
    flight in doubt; the admin lists them and resolves each by what the emulator's journal
    shows (as a person would from Wix), and then every key's stock is exactly the initial
    stock plus its APPLIED deltas."""
    async with open_fleet(redis_url, tmp_path, catalogs="v3 v3") as fleet:
        rng = random.Random(13)
        victim = fleet.start_worker(crash_at="after_answer")
        await fleet.wait_for_workers(1)
        await fleet.produce(rng, 60)
        assert await asyncio.to_thread(victim.wait, 20) == -signal.SIGKILL
        fleet.start_worker()
        await fleet.produce(rng, 60)
        outcomes, _ = await settle_and_check(fleet)
        assert EventStatus.IN_DOUBT in {o.status for o in outcomes.values()}
        journal = fleet.journal()
        verdicts = []
        async with FleetAdmin(fleet.redis, prefix=PREFIX, shards=SHARDS) as admin:
            doubted = await admin.in_doubt()
            assert doubted and {b.code for b in doubted} == {"TAKEOVER"}
            for batch in doubted:
                content = frozenset(
                    (
                        batch.site,
                        "/".join(filter(None, (e.product_id, e.variant_id, e.location_id))),
                        e.net,
                    )
                    for e in batch.entries
                )
                verdicts.append(content in journal)
                done = await admin.resolve(batch.batch_id, applied=verdicts[-1])
                assert done.resolved == len(batch.entries)
            assert await admin.in_doubt() == []
        assert True in verdicts  # the batch whose answer came before the kill was applied
        applied: Counter[tuple[str, str, str, str]] = Counter()
        for event_id, outcome in (await fleet.outcomes()).items():
            assert outcome.status is not EventStatus.IN_DOUBT
            if outcome.status is EventStatus.REJECTED:
                assert outcome.code == "RESOLVED_NOT_APPLIED"
            key, delta = fleet.produced[event_id]
            applied[key] += delta if outcome.status is EventStatus.APPLIED else 0
        emulator = fleet.applied_by_emulator()
        assert {k: emulator[k] for k in fleet.keys} == {k: applied[k] for k in fleet.keys}
