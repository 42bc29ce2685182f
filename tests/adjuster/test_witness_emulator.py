"""The witness end to end over HTTP: faulted runs resolved, late applies, edits, re-centring.

The settle delay is short (0.15 s) and the emulator's late applies come 0.01 to 0.03 s after
their ambiguous answer: the emulator's timers run on the test's loop, so a late apply due
before the settle delay ends is applied before the witness is read.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from wixinv_async import ConfigurationError, InventoryAdjuster, LateApply, Witness
from wixinv_async.adjuster import BatchReport, OutcomeStatus
from wixinv_async.core.witness import Bounds
from wixinv_async.emulator import Emulator
from wixinv_async.emulator.faults import FaultPlan, FaultRule

from .test_emulator import Producers, client_for, reported, tracked

C, R, D = OutcomeStatus.COMMITTED, OutcomeStatus.REJECTED, OutcomeStatus.IN_DOUBT
SEED, SLOTS, SETTLE = 1818, 8, 0.15
Key = tuple[str, str]

AMBIGUOUS = FaultRule(
    rate_limited=0.03,
    error_503=0.03,
    error_500=0.03,
    reset_after=0.03,
    error_504=0.03,
    stall_after=0.02,
    late_504=0.03,
    late_reset=0.03,
    late_stall=0.02,
)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """1000 products x 3 variants (tracked ones at 50,000) and a witness product of 8."""
    async with Emulator(products=1000, variants_per_product=3, seed=7) as emu:
        for key in tracked(emu):
            emu.store.set_quantity(*key, 50_000)
        yield emu


def witness_of(emu: Emulator, *, settle: float = SETTLE, bounds: Bounds | None = None) -> Witness:
    item = emu.store.add_product(variants=SLOTS, quantity=50_000)
    assert item.product_id is not None
    return Witness(
        item.product_id, [v.variant_id for v in item.variants], settle=settle, bounds=bounds
    )


def journal_entries(emu: Emulator, skip: str) -> Counter[tuple[Key, int]]:
    """The applied (key, signed amount) pairs of batch calls, the witness product left out."""
    applied: Counter[tuple[Key, int]] = Counter()
    for record in emu.store.journal:
        if record.endpoint not in ("incrementInventory", "decrementInventory"):
            continue
        sign = 1 if record.endpoint == "incrementInventory" else -1
        for entry in record.entries:
            if entry["productId"] == skip:
                continue
            amount = entry.get("incrementBy") or entry.get("decrementBy")
            applied[((entry["productId"], entry["variantId"]), sign * amount)] += 1
    return applied


def by_code(reports: list[BatchReport], code: str) -> Counter[tuple[Key, int]]:
    out: Counter[tuple[Key, int]] = Counter()
    for report in reports:
        for entry, outcome in zip(report.entries, report.outcomes, strict=True):
            if outcome.code == code:
                out[((entry.key.product_id, entry.key.variant_id), entry.amount)] += 1
    return out


async def faulted_run(
    emu: Emulator, witness: Witness | None, on_ambiguous: str = "report"
) -> tuple[InventoryAdjuster, list[BatchReport]]:
    """64 producers, hot SKUs, bad entries, mixed ambiguous faults with late applies."""
    emu.set_faults(
        FaultPlan(
            endpoints={"*": AMBIGUOUS},
            seed=SEED,
            stall_seconds=5,
            retry_after=0,
            late_seconds=0.01,
            late_jitter=0.02,
        )
    )
    untracked = next(i for i in emu.store.items() if i.track_quantity is False)
    good = [k for k in tracked(emu) if witness is None or k[0] != witness.product_id]
    bad = [
        ("no-such-product", good[0][1]),
        (untracked.product_id, untracked.variants[0].variant_id),
    ]
    keys = good + bad  # type: ignore[operator]
    producers, reports = Producers(), []
    client = client_for(emu, timeout=0.3)
    adj = InventoryAdjuster(
        client,
        linger=0.01,
        max_batch=10,
        max_in_flight=SLOTS,
        on_batch=reports.append,
        on_ambiguous=on_ambiguous,  # type: ignore[arg-type]
        witness=witness,
    )
    async with client, adj:
        await producers.run(adj, keys, 64, 300, SEED, pause=0.002)
        await emu.wait_late_applies()
        if witness is not None:
            assert await adj.verify_witness() == []
    emu.set_faults(None)
    return adj, reports


async def test_a_faulted_run_with_a_witness_leaves_nothing_in_doubt(emulator: Emulator) -> None:
    """Mixed ambiguous faults (late applies within the settle delay): nothing IN_DOUBT; every
    COMMITTED_BY_WITNESS entry applied exactly once, every NOT_APPLIED entry never."""
    witness = witness_of(emulator)
    adj, reports = await faulted_run(emulator, witness)
    journal = journal_entries(emulator, witness.product_id)
    committed, by_witness = reported(reports, C), by_code(reports, "COMMITTED_BY_WITNESS")
    not_applied = by_code(reports, "NOT_APPLIED")
    doubts = {d.message for d in adj.in_doubt()}
    assert adj.in_doubt() == [] and reported(reports, D) == Counter(), f"seed {SEED}: {doubts}"
    assert sum(by_witness.values()) > 0 and sum(not_applied.values()) > 0, f"seed {SEED}"
    assert journal == committed, "the journal holds exactly the committed entries, once each"
    assert not set(not_applied) & set(journal)
    stats = adj.stats().witness
    assert stats is not None and stats.unresolved == stats.late_applies == stats.anomalies == 0
    rejected = {o.code for r in reports for o in r.outcomes if o.status is R}
    assert "NOT_APPLIED" in rejected
    assert rejected <= {"NOT_APPLIED", "NOT_FOUND", "INVENTORY_QUANTITY_NOT_TRACKED"}


async def test_retry_with_a_witness_applies_every_entry_exactly_once(emulator: Emulator) -> None:
    """on_ambiguous="retry" with a witness: NOT_APPLIED requests are resent, 0 doubles, and
    nothing is left IN_DOUBT or COMMITTED_AFTER_RESEND."""
    witness = witness_of(emulator)
    adj, reports = await faulted_run(emulator, witness, on_ambiguous="retry")
    journal = journal_entries(emulator, witness.product_id)
    committed = reported(reports, C)
    assert journal == committed, "0 doubles: each committed entry applied exactly once"
    assert adj.in_doubt() == [] and adj.stats().committed_after_resend == 0
    assert by_code(reports, "NOT_APPLIED") == Counter()
    stats = adj.stats().witness
    assert stats is not None and stats.not_applied > 0 and stats.committed > 0


async def test_without_a_witness_the_same_run_leaves_entries_in_doubt(emulator: Emulator) -> None:
    """The same faulted stream without a witness: entries are left IN_DOUBT (the baseline)."""
    adj, _ = await faulted_run(emulator, None)
    assert len(adj.in_doubt()) > 0 and adj.stats().witness is None


async def test_a_late_apply_beyond_the_settle_delay_is_reported(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A request read as NOT_APPLIED that lands later: found by the next read, counted,
    logged at ERROR and reported through on_batch as APPLIED_LATE."""
    witness = witness_of(emulator, settle=0.0)
    rule = FaultRule(late_504=1.0)
    emulator.set_faults(
        FaultPlan(endpoints={"decrementInventory": rule}, seed=SEED, late_seconds=0.2)
    )
    keys, reports = tracked(emulator)[:5], []
    async with (
        client_for(emulator) as client,
        InventoryAdjuster(client, linger=60, witness=witness, on_batch=reports.append) as adj,
    ):
        tickets = [adj.submit_nowait(*key, -1) for key in keys]
        await adj.flush()
        assert {t.outcome.code for t in tickets} == {"NOT_APPLIED"}  # type: ignore[union-attr]
        await emulator.wait_late_applies()
        with caplog.at_level(logging.ERROR, "wixinv_async.adjuster"):
            found = await adj.verify_witness()
    (late,) = found
    assert isinstance(late, LateApply) and late.quantity == -1 and len(late.requests) == 1
    stats = adj.stats().witness
    assert stats is not None and (stats.late_applies, stats.late_quantity) == (1, -1)
    assert any("late apply" in r.getMessage() for r in caplog.records)
    (report,) = [r for r in reports if r.outcomes and r.outcomes[0].code == "APPLIED_LATE"]
    assert {e.key.variant_id for e in report.entries} == {k[1] for k in keys}


async def test_a_third_party_edit_of_the_witness_leaves_the_request_in_doubt(
    emulator: Emulator,
) -> None:
    """Someone moved the witness: the ambiguous request is IN_DOUBT, the reason says so."""
    witness = witness_of(emulator, settle=0.0)
    keys = tracked(emulator)[:3]
    async with (
        client_for(emulator) as client,
        InventoryAdjuster(client, linger=60, max_in_flight=1, witness=witness) as adj,
    ):
        adj.submit_nowait(*keys[0], -1)
        await adj.flush()  # the baseline is read before this first request
        for vid in witness.variant_ids:  # whichever slot the next request gets
            emulator.edit_quantity(witness.product_id, vid, delta=5)
        emulator.set_faults(FaultPlan(endpoints={"decrementInventory": FaultRule(error_504=1)}))
        ticket = adj.submit_nowait(*keys[1], -1)
        await adj.flush()
        outcome = ticket.outcome
    assert outcome is not None
    assert outcome.status is D and outcome.message is not None
    assert "edited by someone else" in outcome.message
    stats = adj.stats().witness
    assert stats is not None and stats.anomalies == 1 and stats.unresolved == 1


async def test_the_witness_is_recentred_by_an_update_past_its_hard_bound(
    emulator: Emulator,
) -> None:
    """Increments only: past hard_high one update call sets the witness to the centre; a
    decrement far above high carries the re-centring step instead (no extra call)."""
    bounds = Bounds(low=45_000, centre=50_000, high=50_001, hard_low=100, hard_high=50_003)
    many = witness_of(emulator, bounds=bounds)
    witness = Witness(many.product_id, many.variant_ids[:1], settle=SETTLE, bounds=bounds)
    key = tracked(emulator)[0]
    vid = witness.variant_ids[0]
    async with (
        client_for(emulator) as client,
        InventoryAdjuster(client, linger=0, max_in_flight=1, witness=witness) as adj,
    ):
        for _ in range(5):
            await adj.adjust(*key, 1)
        assert emulator.store.quantity(witness.product_id, vid) == 50_002
        await adj.adjust(*key, -1)
    assert emulator.store.quantity(witness.product_id, vid) == 50_000
    stats = adj.stats().witness
    assert stats is not None and (stats.updates, stats.recentred) == (1, 1)


@pytest.mark.parametrize("max_in_flight", [SLOTS + 1])
async def test_a_witness_needs_a_slot_per_concurrent_request(
    emulator: Emulator, max_in_flight: int
) -> None:
    """More concurrent requests than witness variants is a ConfigurationError."""
    witness = witness_of(emulator)
    async with client_for(emulator) as client:
        with pytest.raises(ConfigurationError, match="max_in_flight"):
            InventoryAdjuster(client, max_in_flight=max_in_flight, witness=witness)


@pytest.mark.parametrize(("forget_after", "in_doubt"), [(600.0, 8), (0.0, 0)])
async def test_suspects_do_not_last_forever(
    emulator: Emulator, forget_after: float, in_doubt: int
) -> None:
    """40 requests on one slot, each a 500 before applying: kept forever, suspects pile past
    MAX_SUSPECTS (32) and the last 8 stay IN_DOUBT; forgotten at their deadline, every one
    resolves NOT_APPLIED."""
    many = witness_of(emulator)
    witness = Witness(many.product_id, many.variant_ids[:1], settle=0.0, forget_after=forget_after)
    emulator.set_faults(FaultPlan(endpoints={"decrementInventory": FaultRule(error_500=1.0)}))
    key = tracked(emulator)[0]
    async with (
        client_for(emulator) as client,
        InventoryAdjuster(client, linger=0, max_in_flight=1, witness=witness) as adj,
    ):
        codes = Counter([(await adj.adjust(*key, -1)).code for _ in range(40)])
    assert codes["NOT_APPLIED"] == 40 - in_doubt and sum(codes.values()) == 40, codes
    stats = adj.stats().witness
    assert stats is not None and stats.forgotten == (40 if forget_after == 0 else 0)
