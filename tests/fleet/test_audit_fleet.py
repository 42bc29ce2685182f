"""Audit of issue 16 (docs/AUDIT-15-16.md): a site that migrates V1 -> V3 while two workers
deliver, beside a V3 site, checked exactly (accounts.exact_check). The kill matrix, the SIGSTOP,
the Redis restart and the dropped begin reply run on both catalogs in test_kill_matrix.py,
workers joining and leaving in test_e2e.py."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from .accounts import doubted_batches, exact_check
from .harness import open_fleet

pytestmark = pytest.mark.slow
BOTH = "v1 v3"


async def test_audit_a_site_migrating_mid_run_under_two_workers(
    redis_url: str, tmp_path: Path
) -> None:
    """Two workers serve a V1 site that migrates to V3 mid-run, beside a V3 site, and a
    producer retries an event across the move: nothing in doubt, the retry applied once,
    the accounts exact, the mover's later deltas sent by V3 bulk calls."""
    async with open_fleet(redis_url, tmp_path, catalogs=BOTH) as fleet:
        rng = random.Random(75)
        fleet.start_worker()
        fleet.start_worker()
        await fleet.wait_for_workers(2)
        await fleet.produce(rng, 80)
        await fleet.first_outcome()
        mover = fleet.emulator.sites[0]
        fleet.emulator.migrate_to_v3(mover)
        await fleet.produce(rng, 80)
        retried, (key, delta) = next(iter(fleet.produced.items()))
        await fleet.submit(key, delta, event_id=retried)
        outcomes, _ = await exact_check(fleet)
        assert not doubted_batches(outcomes)
        answered = fleet.emulator.site_stats(mover)["requests"]
        assert any(name.startswith("bulk") for name in answered), answered
