"""The exact accounts of a fleet scenario (docs/AUDIT-15-16.md), shared by the kill matrix and
the audit tests, on any mix of V1 and V3 sites:

- every event ends APPLIED, IN_DOUBT or NETTED, and per key the produced deltas equal the
  APPLIED plus the IN_DOUBT ones (NETTED groups sum to zero);
- per key, what the emulator applied equals the APPLIED deltas plus those of the in-doubt
  batches whose request the emulator's journal shows;
- and harness.settle_and_check's invariants (nothing sent twice, nothing left open, 0 x 429).
"""

from __future__ import annotations

import json
from collections import Counter

from wixinv_async.fleet.producer import EventOutcome
from wixinv_async.fleet.shards import EventStatus

from .harness import PRE_REFUSED, PREFIX, Content, Fleet, Key, settle_and_check

__all__ = ["CATALOG_MIXES", "assert_sites_served", "doubted_batches", "exact_check"]

S = EventStatus
CATALOG_MIXES = {"v1": "v1 v1 v1", "v1+v3": "v1 v3"}
"""The sites of each scenario, by test id: three V1 sites, or a V1 and a V3 site side by side
(the project's rule: both catalogs behind the same calls)."""


async def batch_content(fleet: Fleet, batch_id: str) -> Content:
    """What the request of ``batch_id`` carried (as harness.batch_records counts it)."""
    [name] = [n async for n in fleet.redis.scan_iter(match=f"{{{PREFIX}:*}}:batch:{batch_id}")]
    record = await fleet.redis.hgetall(name)
    entries = json.loads(record["entries"])
    results = json.loads(record.get("results") or "[]") or [["", ""]] * len(entries)
    return frozenset(
        (record["site"], key.replace("\n", "/"), net)
        for (key, net, _), (status, code) in zip(entries, results, strict=True)
        if code not in PRE_REFUSED and status != "RETURNED"
    )


async def exact_check(
    fleet: Fleet,
) -> tuple[dict[str, EventOutcome], dict[str, Counter[Content]]]:
    """settle_and_check, then the exact per-key accounts of the module doc."""
    outcomes, records = await settle_and_check(fleet)
    assert outcomes.keys() == fleet.produced.keys()
    statuses = Counter(o.status for o in outcomes.values())
    assert set(statuses) <= {S.APPLIED, S.IN_DOUBT, S.NETTED}, statuses
    produced: Counter[Key] = Counter()
    settled: Counter[Key] = Counter()
    applied: Counter[Key] = Counter()
    doubted: dict[str, Counter[Key]] = {}
    for event_id, outcome in outcomes.items():
        key, delta = fleet.produced[event_id]
        produced[key] += delta
        if outcome.status is S.NETTED:
            continue
        settled[key] += delta
        if outcome.status is S.APPLIED:
            applied[key] += delta
        else:
            doubted.setdefault(outcome.batch_id, Counter())[key] += delta
    assert {k: produced[k] for k in fleet.keys} == {k: settled[k] for k in fleet.keys}
    unexplained = fleet.journal() - records.get("APPLIED", Counter())
    reached = Counter(applied)
    for batch_id, deltas in doubted.items():
        content = await batch_content(fleet, batch_id)
        if unexplained[content] > 0:  # the emulator shows this in-doubt request: applied
            unexplained[content] -= 1
            reached.update(deltas)
    emulator = fleet.applied_by_emulator()
    assert {k: emulator[k] for k in fleet.keys} == {k: reached[k] for k in fleet.keys}
    return outcomes, records


def doubted_batches(outcomes: dict[str, EventOutcome]) -> set[str]:
    return {o.batch_id for o in outcomes.values() if o.status is S.IN_DOUBT}


def assert_sites_served(fleet: Fleet, catalogs: str) -> None:
    """The sites run the catalogs ``catalogs`` names, and every site was sent deltas."""
    versions = {fleet.emulator.catalog_version(s) for s in fleet.emulator.sites}
    assert versions == {f"{c.upper()}_CATALOG" for c in catalogs.split()}
    assert {k[0] for k, _ in fleet.produced.values()} == set(fleet.emulator.sites)
