"""The hub's proof (issue 15): 50 sites, Catalog V1 and V3 mixed, faults on some, one revoked.

Every ticket resolves; every site's stock is its initial stock plus exactly the deltas that
reached it (COMMITTED, and IN_DOUBT ones, which these faults answer only after applying);
the revoked site moves not at all; the sites without faults commit everything; no site ever
goes past its rate window.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from wixinv_async import AppCredentials, InventoryHub, Outcome, OutcomeStatus, RateLimit
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule, SiteSpec

C, R, D = OutcomeStatus.COMMITTED, OutcomeStatus.REJECTED, OutcomeStatus.IN_DOUBT
Key = tuple[str, str]
SITES, ROUNDS, WINDOW = 50, 40, 40
FAULTY = {3, 6, 13, 16, 23, 26, 33, 36, 43, 46}  # V1 and V3 alike (odd indexes run V3)
REVOKED = 7
# Every kind either never reaches the store (503, reset before, a V3 entry's INTERNAL_ERROR)
# or answers after applying (504, reset after): an IN_DOUBT delta here was applied.
FAULTS = FaultPlan(
    {
        "*": FaultRule(
            error_503=0.1, reset_before=0.05, error_504=0.05, reset_after=0.05, item_error=0.05
        )
    },
    seed=3,
)
APPLIED_CODES = {"OUTCOME_UNKNOWN", "GATEWAY_TIMEOUT", "ConnectionLostError"}


def stock(emu: Emulator, site: str) -> dict[Key, int]:
    """Every tracked variant's quantity on ``site`` (V3: at its default location), by the
    (product id, variant id) a delta names it with."""
    if emu.catalog_version(site) == "V3_CATALOG":
        store = emu.v3_store(site)
        return {
            (r.product_id, r.variant_id): r.quantity
            for r in store.records()
            if r.track is True and r.location_id == store.default_location
        }
    return {
        (item.product_id, v.variant_id): v.quantity  # type: ignore[misc]
        for item in emu.site(site).items()
        if item.track_quantity is True
        for v in item.variants
    }


def fill(emu: Emulator, site: str, quantity: int) -> None:
    """Set every tracked variant of ``site`` to ``quantity`` (no delta below can empty it)."""
    if emu.catalog_version(site) == "V3_CATALOG":
        store = emu.v3_store(site)
        for record in store.records():
            if record.track is True:
                emu.edit_quantity(record.id, quantity=quantity, site_id=site)
        return
    for product_id, variant_id in stock(emu, site):
        emu.site(site).set_quantity(product_id, variant_id, quantity)


def reached(instance: str, outcome: Outcome) -> bool:
    """Whether the delta reached the store: committed, or in doubt after an apply."""
    if outcome.status is D:
        assert outcome.code in APPLIED_CODES, (instance, outcome)
        return True
    return outcome.status is C


async def test_conservation_over_50_mixed_sites_with_faults_and_a_revoked_token() -> None:
    """50 sites, V1 and V3 in turn, faults on 10, one installation revoked: every ticket
    resolves, each site moves by exactly the deltas that reached it, the revoked one not at
    all (REJECTED retriable, with the reason), faultless sites commit all, no 429."""
    specs = [
        SiteSpec(catalog=("v1", "v3")[i % 2], faults=FAULTS if i in FAULTY else None)
        for i in range(SITES)
    ]
    async with Emulator(
        sites=specs, products=8, variants_per_product=3, seed=11, rate_limit=f"{WINDOW}/1"
    ) as emu:
        instances = dict(zip(emu.instances, emu.sites, strict=True))
        revoked = emu.instances[REVOKED]
        emu.revoke(revoked)
        for site in instances.values():
            fill(emu, site, 1000)
        before = {i: stock(emu, s) for i, s in instances.items()}
        keys = {i: sorted(b) for i, b in before.items()}
        assert {emu.catalog_version(s) for s in instances.values()} == {"V1_CATALOG", "V3_CATALOG"}
        rng = random.Random(5)
        sent: list[tuple[str, Key, int]] = []
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=RateLimit(WINDOW, 1.0),
            timeout=2.0,
            max_batch=4,  # about ten requests a site: the faults get their draws
        ) as hub:
            tickets = []
            for _ in range(ROUNDS):
                for instance in instances:
                    key, delta = rng.choice(keys[instance]), rng.choice([-3, -1, 1, 2])
                    sent.append((instance, key, delta))
                    tickets.append(hub.submit_nowait(instance, *key, delta))
                await asyncio.sleep(0)
            outcomes = await asyncio.gather(*tickets)
            total = hub.stats().total
        moved: dict[str, Counter[Key]] = {i: Counter() for i in instances}
        statuses: dict[str, Counter[OutcomeStatus]] = {i: Counter() for i in instances}
        for (instance, key, delta), outcome in zip(sent, outcomes, strict=True):
            statuses[instance][outcome.status] += 1
            if instance == revoked and outcome.code != "NETTED_TO_ZERO":
                assert (outcome.status, outcome.retriable) == (R, True), outcome
                assert outcome.code == "UNAUTHENTICATED", outcome
                assert "not asked again" in (outcome.message or ""), outcome
            elif reached(instance, outcome):
                moved[instance][key] += delta
        for index, (instance, site) in enumerate(instances.items()):
            want = {k: q + moved[instance][k] for k, q in before[instance].items()}
            assert stock(emu, site) == want, (index, instance)
            if index not in FAULTY and index != REVOKED:
                assert set(statuses[instance]) == {C}, (index, statuses[instance])
            limit = emu.site_stats(site)
            assert limit["peak_in_window"] <= WINDOW, (index, limit)
        faulted = sum((statuses[emu.instances[i]] for i in FAULTY), Counter())
        assert faulted[D] > 0 and faulted[R] > 0, faulted  # the faults did bite
        assert stock(emu, instances[revoked]) == before[revoked]
        assert total.rate_limited == 0 and total.submitted == len(sent)
