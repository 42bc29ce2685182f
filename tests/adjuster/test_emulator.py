"""End to end over loopback: many producers -> adjuster -> InventoryClient -> the emulator.

The fault-free run has the issue's full size (64 producers x 10,000 deltas over ~2,000 tracked
variants, about 2 s); the fault run sends a quarter of that, as stalls cost client timeouts.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from wixinv_async.adjuster import BatchReport, InventoryAdjuster, OutcomeStatus, SentBatch, Ticket
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.emulator import Emulator
from wixinv_async.emulator.faults import FaultPlan, FaultRule

C, R, D, X = (
    OutcomeStatus.COMMITTED,
    OutcomeStatus.REJECTED,
    OutcomeStatus.IN_DOUBT,
    OutcomeStatus.CANCELLED,
)
PRODUCERS, PER_PRODUCER, SEED = 64, 10_000, 4242
Key = tuple[str, str]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator with 1000 products x 3 variants (tracked ones restocked to 50,000)."""
    async with Emulator(products=1000, variants_per_product=3, seed=7) as emu:
        for key in tracked(emu):
            emu.store.set_quantity(*key, 50_000)
        yield emu


def tracked(emu: Emulator) -> list[Key]:
    return [
        (item.product_id, variant.variant_id)  # type: ignore[misc]
        for item in emu.store.items()
        if item.track_quantity is True
        for variant in item.variants
    ]


def quantities(emu: Emulator) -> dict[Key, int]:
    return {
        (item.product_id, v.variant_id): v.quantity  # type: ignore[misc]
        for item in emu.store.items()
        for v in item.variants
        if isinstance(v.quantity, int)
    }


def client_for(emu: Emulator, *, timeout: float = 5.0) -> InventoryClient:
    retry = RetryPolicy(max_attempts=10, base_delay=0.001, max_delay=0.01, seed=SEED)
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    return InventoryClient(auth, base_url=emu.url, rate_limit=None, timeout=timeout, retry=retry)


class Producers:
    """Producers' records: every ticket handed out, and the deltas sent per key."""

    def __init__(self) -> None:
        self.sent: Counter[Key] = Counter()
        self.tickets: dict[int, Ticket] = {}
        self.reached = asyncio.Event()
        """Set once 500 distinct tickets were handed out."""

    async def run(
        self,
        adj: InventoryAdjuster,
        keys: list[Key],
        producers: int,
        each: int,
        seed: int,
        nowait: bool = True,
        pause: float = 0.0,
    ) -> None:
        """Odd deltas go by submit_nowait (unless ``nowait=False``), even ones by submit; each
        producer sleeps ``pause`` seconds every 50 deltas."""
        await asyncio.gather(
            *(self._one(adj, keys, each, seed + i, nowait, pause) for i in range(producers))
        )

    async def _one(
        self,
        adj: InventoryAdjuster,
        keys: list[Key],
        each: int,
        seed: int,
        nowait: bool,
        pause: float,
    ) -> None:
        rng = random.Random(seed)
        hot = keys[: max(1, len(keys) // 20)]
        for n in range(each):
            key = rng.choice(hot) if rng.random() < 0.5 else rng.choice(keys)
            delta = rng.choice((-3, -2, -1, -1, 1, 2, 5))
            if n % 2 and nowait:
                ticket = adj.submit_nowait(*key, delta)
            else:
                ticket = await adj.submit(*key, delta)
            self.sent[key] += delta
            self.tickets[id(ticket)] = ticket
            if len(self.tickets) >= 500:
                self.reached.set()
            if n % 50 == 0:
                await asyncio.sleep(pause)

    def net_by_status(self) -> dict[OutcomeStatus, Counter[Key]]:
        """The deltas per key, summed by their outcome."""
        out: dict[OutcomeStatus, Counter[Key]] = {s: Counter() for s in OutcomeStatus}
        for ticket in self.tickets.values():
            assert ticket.outcome is not None, ticket
            out[ticket.outcome.status][(ticket.key[0], ticket.key[2])] += ticket.net
        return out


def journal_entries(emu: Emulator) -> Counter[tuple[Key, int]]:
    """The applied (key, signed amount) pairs, from the emulator's journal."""
    applied: Counter[tuple[Key, int]] = Counter()
    for record in emu.store.journal:
        sign = 1 if record.endpoint == "incrementInventory" else -1
        for entry in record.entries:
            amount = entry.get("incrementBy") or entry.get("decrementBy")
            applied[((entry["productId"], entry["variantId"]), sign * amount)] += 1
    return applied


def reported(reports: list[BatchReport], status: OutcomeStatus) -> Counter[tuple[Key, int]]:
    out: Counter[tuple[Key, int]] = Counter()
    for report in reports:
        for entry, outcome in zip(report.entries, report.outcomes, strict=True):
            if outcome.status is status:
                out[((entry.key.product_id, entry.key.variant_id), entry.amount)] += 1
    return out


async def test_many_producers_every_ticket_has_an_outcome_and_totals_match(
    emulator: Emulator,
) -> None:
    """64 producers: all committed, and final = initial + exactly the committed deltas."""
    keys = tracked(emulator)
    before = quantities(emulator)
    producers = Producers()
    async with client_for(emulator) as client, InventoryAdjuster(client, linger=0.01) as adj:
        await producers.run(adj, keys, PRODUCERS, PER_PRODUCER, SEED)
    by_status = producers.net_by_status()
    assert +by_status[R] == Counter() and +by_status[D] == Counter()
    committed = by_status[C]
    after = quantities(emulator)
    assert all(after[k] == before[k] + committed[k] for k in before), f"seed {SEED}"
    assert committed == producers.sent or +committed == +producers.sent
    stats = adj.stats()
    assert stats.submitted == PRODUCERS * PER_PRODUCER == stats.committed
    assert stats.requests < stats.submitted / 50


FAULTS = FaultRule(
    rate_limited=0.05,
    error_503=0.04,
    error_500=0.03,
    reset_after=0.04,
    error_504=0.02,
    stall_after=0.02,
)


async def test_with_faults_committed_apply_once_and_in_doubt_match_the_journal(
    emulator: Emulator,
) -> None:
    """Under 429s, 5xx, resets and stalls: committed entries appear exactly once in the journal;
    anything else in it is an in-doubt entry; nothing is lost."""
    emulator.set_faults(
        FaultPlan(endpoints={"*": FAULTS}, seed=SEED, stall_seconds=5, retry_after=0)
    )
    keys = tracked(emulator)
    before = quantities(emulator)
    producers, reports = Producers(), []
    client = client_for(emulator, timeout=0.3)
    adj = InventoryAdjuster(client, linger=0.01, max_batch=10, on_batch=reports.append)
    async with client, adj:
        await producers.run(adj, keys, PRODUCERS, PER_PRODUCER // 4, SEED, pause=0.002)
    emulator.set_faults(None)
    committed, doubted = reported(reports, C), reported(reports, D)
    journal = journal_entries(emulator)
    assert committed - journal == Counter(), "a committed entry is missing from the journal"
    assert journal - committed - doubted == Counter(), "an entry was applied twice or unasked"
    assert sum(doubted.values()) == len(adj.in_doubt()) > 0, f"seed {SEED}: no fault hit?"
    after, by_status = quantities(emulator), producers.net_by_status()
    applied_doubts: Counter[Key] = Counter()
    for (key, amount), times in (journal - committed).items():
        applied_doubts[key] += amount * times
    assert all(after[k] == before[k] + by_status[C][k] + applied_doubts[k] for k in before), (
        f"seed {SEED}"
    )
    assert +by_status[R] == Counter() and +by_status[X] == Counter()
    assert adj.stats().rate_limited > 0


async def test_poison_entries_are_isolated_with_one_extra_request_each(emulator: Emulator) -> None:
    """An unknown product and an untracked item in a batch: only they are REJECTED."""
    keys = tracked(emulator)[:40]
    untracked = next(i for i in emulator.store.items() if i.track_quantity is False)
    before = quantities(emulator)
    async with client_for(emulator) as client, InventoryAdjuster(client, linger=60) as adj:
        good = [adj.submit_nowait(*key, -1) for key in keys]
        missing = adj.submit_nowait("no-such-product", keys[0][1], -1)
        not_tracked = adj.submit_nowait(
            untracked.product_id,
            untracked.variants[0].variant_id,
            -1,  # type: ignore[arg-type]
        )
        await adj.flush()
        stats = adj.stats()
    assert (missing.outcome.code, not_tracked.outcome.code) == (  # type: ignore[union-attr]
        "NOT_FOUND",
        "INVENTORY_QUANTITY_NOT_TRACKED",
    )
    assert {t.outcome.status for t in good} == {C}  # type: ignore[union-attr]
    after = quantities(emulator)
    assert all(after[k] == before[k] - 1 for k in keys)
    assert (stats.requests, stats.bisect_requests) == (3, 2)


async def test_backpressure_bounds_pending_keys_under_many_producers(emulator: Emulator) -> None:
    """With max_pending=50, producers wait for room; pending keys never pass 50; all commit."""
    keys = tracked(emulator)
    producers, seen = Producers(), []

    async def on_send(batch: SentBatch) -> None:
        seen.append(adj.stats().pending)

    client = client_for(emulator)
    adj = InventoryAdjuster(client, linger=0.005, max_pending=50, max_batch=20, on_send=on_send)
    async with client, adj:
        await producers.run(adj, keys, 16, 200, SEED, nowait=False)
    assert seen and max(seen) <= 50
    assert set(producers.net_by_status()[C]) == set(producers.sent)
    assert adj.stats().committed == 16 * 200


async def test_cancelled_producers_lose_no_outcome_and_leak_no_task(emulator: Emulator) -> None:
    """Producers cancelled mid-stream: every ticket handed out still gets an outcome."""
    keys = tracked(emulator)
    producers = Producers()
    async with client_for(emulator) as client, InventoryAdjuster(client, linger=0.001) as adj:
        task = asyncio.create_task(producers.run(adj, keys, 8, 10_000, SEED))
        await producers.reached.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert all(t.outcome is not None for t in producers.tickets.values())
    assert {t.outcome.status for t in producers.tickets.values()} == {C}  # type: ignore[union-attr]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("adjuster")]


@pytest.mark.parametrize("abort", [False, True])
async def test_close_drains_or_aborts(emulator: Emulator, abort: bool) -> None:
    """close() commits everything pending; close(abort=True) cancels it and sends nothing."""
    keys = tracked(emulator)[:500]
    before = quantities(emulator)
    async with client_for(emulator) as client:
        adj = InventoryAdjuster(client, linger=60)
        tickets = [adj.submit_nowait(*key, -1) for key in keys]
        await adj.close(abort=abort)
    expected = X if abort else C
    assert {t.outcome.status for t in tickets} == {expected}  # type: ignore[union-attr]
    assert len(emulator.store.journal) == (0 if abort else 2)
    delta, after = (0 if abort else -1), quantities(emulator)
    assert all(after[k] == before[k] + delta for k in keys)


async def test_on_ambiguous_retry_commits_at_least_once(emulator: Emulator) -> None:
    """on_ambiguous="retry" under resets after applying: nothing in doubt, each applied >= 1."""
    rule = FaultRule(reset_after=0.3)
    emulator.set_faults(FaultPlan(endpoints={"*": rule}, seed=SEED))
    keys = tracked(emulator)[:300]
    reports: list[BatchReport] = []
    async with (
        client_for(emulator) as client,
        InventoryAdjuster(
            client, linger=60, max_batch=30, on_ambiguous="retry", on_batch=reports.append
        ) as adj,
    ):
        for key in keys:
            adj.submit_nowait(*key, -1)
    journal = journal_entries(emulator)
    committed = reported(reports, C)
    assert committed - journal == Counter() and sum(committed.values()) > 0
    assert sum(journal.values()) > sum(committed.values())  # some were applied twice
    assert set(itertools.chain(journal)) <= set(committed) | set(reported(reports, D))
