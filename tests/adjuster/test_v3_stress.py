"""64 producers against a faulty V3 emulator, and the same run across a V1 -> V3 migration.

The issue's figure is 10,000 deltas per producer: ``benchmarks/stress_catalogs.py`` runs that
with these same checks (``stress_harness``). These runs send 300 each (19,200 deltas, batches
of 10 so that faults hit hundreds of requests) to stay within a few seconds: the accounting is
the same at any size. Every ticket gets an outcome; the journal holds exactly the committed
entries plus some of the in-doubt ones; each item's stock is its initial stock plus exactly
what the journal applied.
"""

from __future__ import annotations

import pytest

from .stress_harness import Size, StressFailure, require, run_migration, run_v3_site

SIZE = Size(producers=64, each=300)


async def test_64_producers_on_a_faulty_v3_site() -> None:
    """V3 with 429s, 5xx, resets and stalls; SKU, second-location, unknown-variant and
    past-zero deltas: every ticket has an outcome and the stock matches the journal."""
    result = await run_v3_site(SIZE)
    assert result.deltas == 64 * 300
    assert result.in_doubt_entries > result.in_doubt_applied > 0


async def test_64_producers_across_a_migration_halfway() -> None:
    """The same run (V1 keys) on a V1 site migrated to V3 halfway: V1 batches refused by the
    428 go once through V3, and the stock matches both journals."""
    result = await run_migration(SIZE)
    assert result.deltas == 64 * 300
    assert result.stats.requests_by_catalog["V1_CATALOG"] > 0


def test_a_failed_stress_check_raises_even_under_python_o() -> None:
    """The harness's checks raise StressFailure (an AssertionError), not bare asserts."""
    with pytest.raises(StressFailure, match="2 items off"):
        require(False, "2 items off initial + journal")
