"""The async driver against a fake client: triggers, outcomes, bisection, backpressure, close."""

from __future__ import annotations

import asyncio
import gc
import random
import weakref
from typing import Any

import pytest

from wixinv_async.adjuster import (
    BatchReport,
    InventoryAdjuster,
    OutcomeStatus,
    SentBatch,
)
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.catalog import CatalogVersion
from wixinv_async.client import InventoryClient, RetryPolicy
from wixinv_async.errors import (
    AdjusterClosed,
    AdjusterFull,
    ConfigurationError,
    InvalidInputError,
)
from wixinv_async.settings import BatchPolicy
from wixinv_async.transport import HttpRequest, HttpResponse, MockTransport

V1 = CatalogVersion.V1_CATALOG
C, R, D, X = (
    OutcomeStatus.COMMITTED,
    OutcomeStatus.REJECTED,
    OutcomeStatus.IN_DOUBT,
    OutcomeStatus.CANCELLED,
)
SLOW = 3600.0  # a linger that never fires within a test


async def test_deltas_net_into_one_request(fake: Any, variants: list[str]) -> None:
    """+5 and -3 on one variant reach the server as a single increment of 2."""
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        first = adj.submit_nowait("p0", variants[0], 5)
        second = adj.submit_nowait("p0", variants[0], -3)
        await adj.flush()
    assert first is second and (await first).status is C
    assert fake.calls == [("increment", [("p0", variants[0], 2, False)])]
    assert fake.quantities[("p0", variants[0])] == 1002


async def test_a_zero_net_is_committed_without_a_request(fake: Any, variants: list[str]) -> None:
    """Deltas that cancel out are committed as a no-op and send nothing."""
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        ticket = adj.submit_nowait("p0", variants[0], 4)
        adj.submit_nowait("p0", variants[0], -4)
        await adj.flush()
    assert (await ticket).code == "NETTED_TO_ZERO" and fake.calls == []
    assert adj.stats().netted_to_zero == 1


async def test_without_netting_increments_and_decrements_stay_apart(
    fake: Any, variants: list[str]
) -> None:
    """net_opposite_signs=False sends the +5 and the -3 as two requests."""
    async with InventoryAdjuster(fake, linger=SLOW, net_opposite_signs=False) as adj:
        up = adj.submit_nowait("p0", variants[0], 5)
        down = adj.submit_nowait("p0", variants[0], -3)
        adj.submit_nowait("p0", variants[0], -1)
        await adj.flush()
    assert up is not down
    assert sorted((kind, rows[0][2]) for kind, rows in fake.calls) == [
        ("decrement", -4),
        ("increment", 5),
    ]


async def test_a_full_batch_goes_without_waiting_for_linger(fake: Any, variants: list[str]) -> None:
    """max_batch ready variants are sent at once, with flush reason "full"."""
    async with InventoryAdjuster(fake, max_batch=3, linger=SLOW) as adj:
        tickets = [adj.submit_nowait("p0", variants[i], -1) for i in range(3)]
        assert {(await t).status for t in tickets} == {C}
        assert adj.stats().batches_by_reason["full"] == 1


async def test_linger_sends_a_partial_batch(fake: Any, variants: list[str]) -> None:
    """A lone delta goes out once linger has passed, without flush."""
    async with InventoryAdjuster(fake, linger=0.001) as adj:
        assert (await adj.submit_nowait("p0", variants[0], -1)).status is C
        assert adj.stats().batches_by_reason["linger"] == 1


async def test_flush_and_close_are_counted_as_reasons(fake: Any, variants: list[str]) -> None:
    """A batch sent by flush() counts as "flush", one sent by close as "close"."""
    adj = InventoryAdjuster(fake, linger=SLOW)
    async with adj:
        adj.submit_nowait("p0", variants[0], -1)
        await adj.flush()
        adj.submit_nowait("p0", variants[1], -1)
    reasons = adj.stats().batches_by_reason
    assert (reasons["flush"], reasons["close"]) == (1, 1)


async def test_requests_in_flight_never_exceed_the_limit(fake: Any, variants: list[str]) -> None:
    """With max_in_flight=2, at most two requests run at once."""
    async with InventoryAdjuster(fake, max_batch=2, max_in_flight=2, linger=SLOW) as adj:
        for p in range(10):
            for v in range(4):
                adj.submit_nowait(f"p{p}", variants[v], -1)
        await adj.flush()
    assert fake.peak == 2 and len(fake.calls) == 20


async def test_deltas_for_a_key_in_flight_wait_for_the_next_request(
    fake: Any, variants: list[str]
) -> None:
    """While a key's request is in flight, its new deltas merge into the next request."""
    fake.gate = asyncio.Event()
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        first = adj.submit_nowait("p0", variants[0], -1)
        flushing = asyncio.create_task(adj.flush())
        await fake.entered.wait()
        second = adj.submit_nowait("p0", variants[0], -2)
        third = adj.submit_nowait("p0", variants[0], -3)
        assert second is third and second is not first and len(fake.calls) == 1
        fake.gate.set()
        await flushing
        await adj.flush()
    assert [rows for _, rows in fake.calls] == [
        [("p0", variants[0], -1, False)],
        [("p0", variants[0], -5, False)],
    ]


@pytest.mark.parametrize("hints", [True, False])
async def test_one_bad_entry_is_isolated_and_the_rest_applied(
    fake: Any, variants: list[str], hints: bool
) -> None:
    """An unknown variant in a batch of 50 is REJECTED alone; the other 49 are applied."""
    fake.hints = hints
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        good = [adj.submit_nowait(f"p{i % 10}", variants[i // 10], -1) for i in range(49)]
        bad = adj.submit_nowait("p-missing", variants[0], -1)
        await adj.flush()
    assert {(await t).status for t in good} == {C}
    outcome = await bad
    assert (outcome.status, outcome.code) == (R, "NOT_FOUND")
    assert sum(len(rows) for _, rows in fake.applied) == 49
    extra = adj.stats().bisect_requests
    assert extra == 1 if hints else 2 <= extra <= 12


async def test_insufficient_stock_rejects_only_that_decrement(
    fake: Any, variants: list[str]
) -> None:
    """A decrement below zero is REJECTED with INSUFFICIENT_INVENTORY; its batch-mates commit."""
    fake.hints = False
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        ok = [adj.submit_nowait("p1", variants[i], -1) for i in range(7)]
        too_much = adj.submit_nowait("p2", variants[3], -5000)
        await adj.flush()
    refused = await too_much
    assert (refused.code, refused.retriable) == ("INSUFFICIENT_INVENTORY", False)
    assert {(await t).status for t in ok} == {C}
    assert fake.quantities[("p2", variants[3])] == 1000


async def test_an_ambiguous_failure_is_in_doubt_and_not_retried(
    fake: Any, variants: list[str]
) -> None:
    """A reset after applying leaves the entries IN_DOUBT, listed with their tags, sent once."""
    fake.script = ["unknown_after"]
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        ticket = adj.submit_nowait("p0", variants[0], -2, tag="line 7")
        adj.submit_nowait("p0", variants[0], -1, tag="line 8")
        await adj.flush()
    assert (await ticket).status is D and len(fake.calls) == 1
    [doubt] = adj.in_doubt()
    assert (doubt.key.product_id, doubt.amount, doubt.tags) == ("p0", -3, ("line 7", "line 8"))
    assert adj.stats().in_doubt == 2


async def test_taking_the_in_doubt_entries_forgets_them(fake: Any, variants: list[str]) -> None:
    """take_in_doubt hands over what is listed and empties the list; the count stays."""
    fake.script = ["unknown_after", "unknown_after"]
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        adj.submit_nowait("p0", variants[0], -2)
        await adj.flush()
        [first] = adj.take_in_doubt()
        assert adj.in_doubt() == [] and adj.take_in_doubt() == []
        adj.submit_nowait("p1", variants[1], -1)
        await adj.flush()
    assert first.key.product_id == "p0"
    assert [d.key.product_id for d in adj.take_in_doubt()] == ["p1"]
    assert adj.stats().in_doubt == 2


async def test_on_ambiguous_retry_resends_until_known(fake: Any, variants: list[str]) -> None:
    """With on_ambiguous="retry" an unknown outcome is sent again and ends COMMITTED."""
    fake.script = ["unknown_before"]
    async with InventoryAdjuster(fake, linger=SLOW, on_ambiguous="retry") as adj:
        ticket = adj.submit_nowait("p0", variants[0], -2)
        await adj.flush()
    assert (await ticket).status is C and len(fake.calls) == 2
    assert fake.quantities[("p0", variants[0])] == 998


async def test_a_commit_after_an_ambiguous_resend_is_flagged_and_counted(
    fake: Any, variants: list[str]
) -> None:
    """The first send was applied but its answer lost; the resend commits too: the delta is
    COMMITTED with code COMMITTED_AFTER_RESEND (applied twice here), counted in the stats."""
    fake.script = ["unknown_after"]
    async with InventoryAdjuster(fake, linger=SLOW, on_ambiguous="retry") as adj:
        ticket = adj.submit_nowait("p0", variants[0], -2)
        await adj.flush()
    outcome = await ticket
    assert (outcome.status, outcome.code) == (C, "COMMITTED_AFTER_RESEND")
    assert adj.stats().committed_after_resend == 1 and adj.stats().committed == 1
    assert fake.quantities[("p0", variants[0])] == 996


async def test_a_refusal_after_an_ambiguous_attempt_stays_in_doubt(
    fake: Any, variants: list[str]
) -> None:
    """If the first attempt may have applied it, a later 428 does not make it REJECTED."""
    fake.quantities[("p0", variants[0])] = 2
    fake.script = ["unknown_after"]
    async with InventoryAdjuster(fake, linger=SLOW, on_ambiguous="retry") as adj:
        ticket = adj.submit_nowait("p0", variants[0], -2)
        await adj.flush()
    assert (await ticket).status is D and fake.quantities[("p0", variants[0])] == 0


@pytest.mark.parametrize("fault", ["429", "503", "connect"])
async def test_failures_that_never_reached_the_server_are_resent(
    fake: Any, variants: list[str], fault: str
) -> None:
    """429, 503 and connect errors that outlast the client's retries are resent, then commit."""
    fake.script = [fault]
    policy = BatchPolicy(base_delay=0.001, max_delay=0.001)
    async with InventoryAdjuster(fake, linger=SLOW, batch_policy=policy) as adj:
        ticket = adj.submit_nowait("p0", variants[0], -2)
        await adj.flush()
    assert (await ticket).status is C and len(fake.applied) == 1
    assert adj.stats().retries == 1


async def test_a_batch_costs_at_most_max_sends_calls_to_a_plain_writer(
    fake: Any, variants: list[str]
) -> None:
    """429s without end: the entries go to the writer max_sends times, then are REJECTED
    (retriable), never applied."""
    fake.script = ["429"] * 50
    policy = BatchPolicy(max_sends=3, base_delay=0, max_delay=0)
    async with InventoryAdjuster(fake, linger=0, batch_policy=policy) as adj:
        outcome = await adj.adjust("p0", variants[0], -2)
    assert (outcome.status, outcome.code, outcome.retriable) == (R, "TOO_MANY_REQUESTS", True)
    assert len(fake.calls) == 3 and fake.applied == []


async def test_a_batch_costs_at_most_max_sends_times_max_attempts_http_requests(
    variants: list[str],
) -> None:
    """Through an InventoryClient that retries too, the bound is max_sends * max_attempts
    HTTP requests (BatchPolicy's documented bound)."""
    transport = _answering(*[503] * 50)
    client = InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"),
        transport=transport,
        retry=RetryPolicy(max_attempts=2, base_delay=0, max_delay=0),
        rate_limit=None,
    )
    policy = BatchPolicy(max_sends=3, base_delay=0, max_delay=0)
    async with InventoryAdjuster(client, linger=0, batch_policy=policy, catalog=V1) as adj:
        outcome = await adj.adjust("p0", variants[0], -2)
    assert (outcome.status, outcome.retriable) == (R, True)
    assert len(transport.requests) == 3 * 2


async def test_an_auth_failure_rejects_the_whole_batch_without_bisecting(
    fake: Any, variants: list[str]
) -> None:
    """A 401 is not an entry's fault: every entry is REJECTED after one request."""
    fake.script = ["auth"]
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        tickets = [adj.submit_nowait("p0", variants[i], -1) for i in range(5)]
        await adj.flush()
    assert {(await t).code for t in tickets} == {"UNAUTHENTICATED"} and len(fake.calls) == 1
    assert all([(await t).retriable for t in tickets])  # no fault of the deltas: may resubmit


async def test_a_full_table_sends_what_is_ready_without_waiting_for_the_linger(
    fake: Any, variants: list[str]
) -> None:
    """With max_pending keys pending and no full batch possible, a waiting producer is not
    kept for the whole linger: the ready entries go at once and make room."""
    fake.seed(1, 10)
    async with InventoryAdjuster(fake, linger=SLOW, max_pending=3, max_batch=300) as adj:
        for i in range(3):
            adj.submit_nowait("p0", variants[i], -1)
        ticket = await asyncio.wait_for(adj.submit("p0", variants[3], -1), 5)
        await adj.flush()
    assert [len(rows) for _, rows in fake.calls] == [3, 1]  # the first three went to make room
    assert ticket.outcome is not None and ticket.outcome.status is C


async def test_backpressure_counts_keys_not_deltas(fake: Any, variants: list[str]) -> None:
    """At max_pending keys a new key is refused, but deltas for pending keys still merge."""
    async with InventoryAdjuster(fake, linger=SLOW, max_pending=2) as adj:
        adj.submit_nowait("p0", variants[0], -1)
        adj.submit_nowait("p0", variants[1], -1)
        with pytest.raises(AdjusterFull):
            adj.submit_nowait("p0", variants[2], -1)
        for _ in range(100):
            adj.submit_nowait("p0", variants[0], -1)
        # submit waits for room, which the full table makes by sending what is ready at once
        ticket = await asyncio.wait_for(adj.submit("p0", variants[2], -1), 5)
        await adj.flush()
    assert (await ticket).status is C
    assert fake.quantities[("p0", variants[0])] == 899


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("p0", None, True), "delta"),
        (("p0", None, 1.0), "delta"),
        (("p0", None, 0), "delta"),
        (("p0", None, 100_000), "delta"),
        (("p0", "not-a-guid", 1), "variant_id"),
        (("p1", "00000000-0000-0000-0000-00000000000g", 1), "variant_id"),
        (("p1", "00000000-0000-0000-0000-000000000001\n", 1), "variant_id"),
        (("p1", 7, 1), "variant_id"),
        (("p1", "00000000-0000-0000-0000-0000000000001", 1), "variant_id"),
        ((None, None, 1), "product_id"),
        (("x" * 37, None, 1), "product_id"),
        (("", None, 1), "product_id"),
        (("p-\ud800", None, 1), "product_id"),  # a lone surrogate: no JSON body can carry it
    ],
)
async def test_bad_submits_raise_and_change_nothing(
    fake: Any, variants: list[str], args: tuple[Any, Any, Any], field: str
) -> None:
    """A bad delta or id raises InvalidInputError naming the field, and nothing is pending."""
    product, variant, delta = args
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        adj.submit_nowait("p0", variants[0], 1)
        with pytest.raises(InvalidInputError) as caught:
            adj.submit_nowait(product, variant or variants[0], delta)
        assert caught.value.field == field
        assert (adj.stats().pending, adj.stats().submitted) == (1, 1)


async def test_bad_merges_are_refused_too(fake: Any, variants: list[str]) -> None:
    """A bool, float or zero delta for a pending key is refused like for a new one."""
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        adj.submit_nowait("p0", variants[0], 1)
        for bad in (True, 1.0, 0, -(10**6)):
            with pytest.raises(InvalidInputError):
                adj.submit_nowait("p0", variants[0], bad)
            with pytest.raises(InvalidInputError):
                adj.submit_nowait("p0", variants[0], 1, inventory_id="inv-1")
        assert adj.stats().submitted == 1


async def test_both_ids_or_a_non_bool_preorder_are_refused(fake: Any, variants: list[str]) -> None:
    """product_id with inventory_id, or preorder=1, raise InvalidInputError."""
    async with InventoryAdjuster(fake) as adj:
        with pytest.raises(InvalidInputError, match="exactly one"):
            adj.submit_nowait("p0", variants[0], 1, inventory_id="i0")
        with pytest.raises(InvalidInputError, match="preorder"):
            adj.submit_nowait("p0", variants[0], 1, preorder=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [
        {"max_batch": 301},
        {"max_batch": 0},
        {"linger": -1},
        {"max_in_flight": 0},
        {"on_ambiguous": "x"},
    ],
)
def test_bad_settings_are_refused(fake: Any, settings: dict[str, Any]) -> None:
    """Settings that cannot work raise ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        InventoryAdjuster(fake, **settings)


async def test_submit_after_close_is_refused(fake: Any, variants: list[str]) -> None:
    """Once closed the adjuster refuses deltas, even for a key seen before."""
    adj = InventoryAdjuster(fake)
    async with adj:
        adj.submit_nowait("p0", variants[0], 1)
    with pytest.raises(AdjusterClosed):
        adj.submit_nowait("p0", variants[0], 1)


async def test_abort_cancels_pending_but_keeps_in_flight_outcomes(
    fake: Any, variants: list[str]
) -> None:
    """close(abort=True): pending deltas CANCELLED at once; the request in flight still commits."""
    fake.gate = asyncio.Event()
    adj = InventoryAdjuster(fake, max_batch=1, max_in_flight=1, linger=SLOW)
    async with adj:
        flying = adj.submit_nowait("p0", variants[0], -1)
        await fake.entered.wait()
        pending = adj.submit_nowait("p0", variants[1], -1)
        closing = asyncio.create_task(adj.close(abort=True))
        await asyncio.sleep(0)
        assert (await pending).status is X
        fake.gate.set()
        await closing
    assert (await flying).status is C and len(fake.calls) == 1


async def test_close_with_a_deadline_leaves_a_stalled_request_in_doubt(
    fake: Any, variants: list[str]
) -> None:
    """close(timeout=...) cancels a stalled request: its entries IN_DOUBT, queued ones CANCELLED."""
    fake.gate = asyncio.Event()
    adj = InventoryAdjuster(fake, max_batch=1, max_in_flight=1, linger=SLOW)
    adj.submit_nowait("p0", variants[0], -1)
    stalled = adj.submit_nowait("p0", variants[0], -1)
    queued = adj.submit_nowait("p0", variants[1], -1)
    await adj.close(timeout=0.01)
    assert ((await stalled).status, (await queued).status) == (D, X)
    assert [d.key.variant_id for d in adj.in_doubt()] == [variants[0]]
    assert _adjuster_tasks() == []


async def test_cancelling_the_user_task_keeps_in_flight_outcomes_and_leaks_nothing(
    fake: Any, variants: list[str]
) -> None:
    """A cancelled producer task: the batch in flight still gets COMMITTED; no task remains."""
    fake.gate = asyncio.Event()
    tickets = []

    async def producer() -> None:
        async with InventoryAdjuster(fake, linger=SLOW) as adj:
            tickets.append(adj.submit_nowait("p0", variants[0], -1))
            await adj.flush()

    task = asyncio.create_task(producer())
    await fake.entered.wait()
    task.cancel()
    await asyncio.sleep(0)
    fake.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await tickets[0]).status is C and fake.quantities[("p0", variants[0])] == 999
    assert _adjuster_tasks() == []


async def test_a_cancelled_awaiter_does_not_cancel_the_shared_outcome(
    fake: Any, variants: list[str]
) -> None:
    """Two awaiters share a ticket; cancelling one leaves the other its outcome."""
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        ticket = adj.submit_nowait("p0", variants[0], -1)
        first = asyncio.create_task(_wait(ticket))
        second = asyncio.create_task(_wait(ticket))
        await asyncio.sleep(0)
        first.cancel()
        await adj.flush()
        assert (await second).status is C and first.cancelled()


async def test_on_send_sees_every_request_and_on_batch_every_outcome(
    fake: Any, variants: list[str]
) -> None:
    """on_send precedes each request (bisection parts too, with tags); on_batch gets outcomes."""
    fake.hints = False
    sent: list[SentBatch] = []
    reports: list[BatchReport] = []

    async def on_send(batch: SentBatch) -> None:
        sent.append(batch)

    async with InventoryAdjuster(
        fake, linger=SLOW, on_send=on_send, on_batch=reports.append
    ) as adj:
        for i in range(4):
            adj.submit_nowait("p0", variants[i], -1, tag=i)
        adj.submit_nowait("nope", variants[0], -1, tag="bad")
        await adj.flush()
    assert len(sent) == len(fake.calls) > 1
    assert sent[0].parent_id is None and all(b.parent_id is not None for b in sent[1:])
    assert [e.tags for e in sent[0].entries] == [(0,), (1,), (2,), (3,), ("bad",)]
    [report] = reports
    statuses = {e.tags[0]: o.status for e, o in zip(report.entries, report.outcomes, strict=True)}
    assert statuses == {0: C, 1: C, 2: C, 3: C, "bad": R}
    assert report.requests == len(fake.calls)


async def test_a_failing_on_send_means_nothing_is_sent(fake: Any, variants: list[str]) -> None:
    """If on_send raises, the request is not sent and its entries are REJECTED."""

    async def on_send(batch: SentBatch) -> None:
        raise OSError("disk full")

    async with InventoryAdjuster(fake, linger=SLOW, on_send=on_send) as adj:
        ticket = adj.submit_nowait("p0", variants[0], -1)
        await adj.flush()
    assert (await ticket).code == "ON_SEND_FAILED" and fake.calls == []


async def test_a_net_past_the_amount_limit_goes_in_two_requests(
    fake: Any, variants: list[str]
) -> None:
    """Two +60000 deltas exceed 99999 together, so they go as two increments, in order."""
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        first = adj.submit_nowait("p0", variants[0], 60_000)
        second = adj.submit_nowait("p0", variants[0], 60_000)
        await adj.flush()
    assert first is not second
    assert [rows[0][2] for _, rows in fake.calls] == [60_000, 60_000]


async def test_preorder_decrements_carry_the_flag(fake: Any, variants: list[str]) -> None:
    """A preorder decrement is sent with preorderRequest and apart from the plain one."""
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        adj.submit_nowait("p0", variants[0], -1)
        adj.submit_nowait("p0", variants[0], -2000, preorder=True)
        await adj.flush()
    assert sorted(rows[0][3] for _, rows in fake.calls) == [False, True]
    assert fake.quantities[("p0", variants[0])] == -1001


async def test_inventory_id_reaches_the_wire(fake: Any, variants: list[str]) -> None:
    """inventory_id= replaces product_id on the wire entry."""
    fake.quantities[("inv-9", variants[0])] = 5
    async with InventoryAdjuster(fake, linger=0.001) as adj:
        outcome = await adj.adjust(None, variants[0], -2, inventory_id="inv-9")
    assert outcome.status is C and fake.quantities[("inv-9", variants[0])] == 3


async def test_stats_report_latency_fill_and_coalescing(fake: Any, variants: list[str]) -> None:
    """stats() counts deltas, coalescing, requests, fill and latency percentiles."""
    async with InventoryAdjuster(fake, linger=SLOW, max_batch=10) as adj:
        for i in range(100):
            adj.submit_nowait("p0", variants[i % 10], -1)
        await adj.flush()
        stats = adj.stats()
    assert (stats.submitted, stats.coalesced, stats.requests) == (100, 90, 1)
    assert stats.batch_fill == 1.0 and stats.committed == 100
    assert stats.latency_p50 is not None and stats.latency_p99 is not None
    assert stats.latency_p50 <= stats.latency_p99


async def test_a_sign_change_that_fills_a_batch_sends_it_at_once(
    fake: Any, variants: list[str]
) -> None:
    """A net that turns positive can complete a full batch of increments: it goes at once,
    not after the linger."""
    fake.seed(1, 2)
    async with InventoryAdjuster(fake, linger=SLOW, max_batch=2) as adj:
        adj.submit_nowait("p0", variants[0], 1)
        adj.submit_nowait("p0", variants[1], -1)
        await asyncio.sleep(0)  # the dispatcher has seen both and waits for the linger
        ticket = adj.submit_nowait("p0", variants[1], 2)
        outcome = await asyncio.wait_for(_wait(ticket), 5)
        assert outcome.status is C
        assert adj.stats().batches_by_reason["full"] == 1
    assert fake.quantities[("p0", variants[1])] == 1001


async def test_a_closed_client_rejects_the_batch_as_never_sent(variants: list[str]) -> None:
    """A client closed under the adjuster refuses before sending: REJECTED, not IN_DOUBT."""
    client = InventoryClient(ApiKeyAuth("KEY", site_id="SITE"), base_url="http://127.0.0.1:9")
    await client.aclose()
    async with InventoryAdjuster(client, linger=0.001, catalog=V1) as adj:
        outcome = await adj.adjust("p0", variants[0], -1)
    assert (outcome.status, outcome.code, outcome.retriable) == (R, "NOT_SENT", True)
    assert adj.in_doubt() == [] and adj.stats().rejected == 1


@pytest.mark.parametrize("net", [True, False])
async def test_random_deltas_reach_the_server_as_their_sums(
    fake_factory: Any, variants: list[str], net: bool
) -> None:
    """Sign changes, overflows past the amount limit, tags and keys busy in flight: whatever
    the mix, every delta commits and the server holds exactly the sum per variant."""
    seed = 20261122 + net
    rng = random.Random(seed)
    fake = fake_factory()
    fake.seed(4, 6, quantity=10**9)
    expected: dict[tuple[str, str], int] = {}
    adj = InventoryAdjuster(fake, max_batch=7, linger=0, net_opposite_signs=net)
    tickets = []
    for n in range(3000):
        product, variant = f"p{rng.randrange(4)}", variants[rng.randrange(6)]
        delta = rng.choice([-70_000, -3, -1, 1, 2, 50_000])
        tag = n if rng.random() < 0.1 else None
        tickets.append(adj.submit_nowait(product, variant, delta, tag=tag))
        expected[(product, variant)] = expected.get((product, variant), 0) + delta
        if n % 97 == 0:
            await asyncio.sleep(0)  # let batches go: their keys are busy while in flight
    await adj.close()
    assert {(await t).status for t in tickets} == {C}, f"seed {seed}"
    got = {key: q - 10**9 for key, q in fake.quantities.items() if q != 10**9}
    assert got == {key: total for key, total in expected.items() if total}, f"seed {seed}"


class _Never:
    async def increment_inventory(self, entries: Any) -> None:
        raise AssertionError("nothing should be sent")

    async def decrement_inventory(self, entries: Any) -> None:
        raise AssertionError("nothing should be sent")


async def _wait(ticket: Any) -> Any:
    return await ticket


def _adjuster_tasks() -> list[str]:
    return [
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().startswith("adjuster") and not t.done()
    ]


@pytest.mark.parametrize("seed", range(5))
async def test_bisection_cost_without_hints_stays_logarithmic(
    fake_factory: Any, variants: list[str], seed: int
) -> None:
    """One unknown variant among 300, no hint: at most 14 extra requests, 299 applied."""
    fake = fake_factory()
    fake.seed(300, 1)
    fake.hints = False
    bad = random.Random(seed).randrange(300)
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        for i in range(300):
            adj.submit_nowait("missing" if i == bad else f"p{i}", variants[0], -1)
        await adj.flush()
    assert adj.stats().bisect_requests <= 14, f"seed {seed}"
    assert sum(len(rows) for _, rows in fake.applied) == 299


async def test_a_failing_dispatcher_cancels_pending_tickets_and_close_raises(
    fake: Any, variants: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If planning raises (a bug), pending tickets end CANCELLED and close() re-raises it."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("planner bug")

    monkeypatch.setattr("wixinv_async.adjuster._dispatch.select", broken)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    adj = InventoryAdjuster(fake, linger=SLOW)
    ticket = adj.submit_nowait("p0", variants[0], -1)
    assert (await ticket).status is X
    with pytest.raises(RuntimeError, match="planner bug"):
        await adj.close()
    assert reported and fake.calls == []


async def test_a_deadline_during_a_429_wait_cancels_what_was_never_applied(
    fake: Any, variants: list[str]
) -> None:
    """Waiting out a long Retry-After when the close deadline hits: CANCELLED, not in doubt."""
    fake.script = ["429_long"]
    adj = InventoryAdjuster(fake, linger=SLOW)
    ticket = adj.submit_nowait("p0", variants[0], -1)
    await adj.close(timeout=0.05)
    assert (await ticket).status is X and adj.in_doubt() == []
    assert adj.stats().rate_limited == 1 and fake.applied == []


def _answering(*statuses: int) -> MockTransport:
    """A transport answering the given statuses in turn, then 200 (429s with Retry-After 0)."""
    queue = list(statuses)

    def handler(request: HttpRequest) -> HttpResponse:
        status = queue.pop(0) if queue else 200
        headers = {"Retry-After": "0"} if status == 429 else {}
        return HttpResponse.from_json(status, {} if status == 200 else {"message": "no"}, headers)

    return MockTransport(handler)


async def test_an_inventory_client_is_told_to_skip_its_checks(
    variants: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adjuster checked every delta already, so an InventoryClient under it does not
    check the entries again (the batch still goes out)."""
    checked: list[str] = []
    monkeypatch.setattr(
        "wixinv_async.core.validation.check_entries", lambda field, *a: checked.append(field)
    )
    transport = _answering()
    client = InventoryClient(ApiKeyAuth("KEY", site_id="SITE"), transport=transport)
    async with InventoryAdjuster(client, linger=SLOW, catalog=V1) as adj:
        adj.submit_nowait("p0", variants[0], 1)
        adj.submit_nowait("p1", variants[0], -1)
        await adj.flush()
    assert checked == [] and len(transport.requests) == 2


async def test_a_plain_writer_is_called_without_validate(fake: Any, variants: list[str]) -> None:
    """A writer without the keyword gets the entries alone, as before."""
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        ticket = adj.submit_nowait("p0", variants[0], 2)
        await adj.flush()
    assert (await ticket).status is C


class _Row:
    """A tag that refers to its own ticket, as a user's row object might."""

    def __init__(self) -> None:
        self.ticket: Any = None


@pytest.mark.parametrize("deltas", [(-1,), (2, -2)], ids=["sent", "netted-to-zero"])
async def test_a_tag_referring_to_its_own_ticket_is_freed(
    fake: Any, variants: list[str], deltas: tuple[int, ...]
) -> None:
    """Entries are outside the cycle collector, so their tags go once reported: no leak."""
    row = _Row()
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        for delta in deltas:
            row.ticket = adj.submit_nowait("p0", variants[0], delta, tag=row)
        await adj.flush()
    assert row.ticket.outcome.status is C
    alive = weakref.ref(row)
    del row
    gc.collect()
    assert alive() is None


async def test_a_patched_loop_clock_dates_new_keys(
    fake: Any, variants: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests that control time by patching loop.time see it in every new key's age, whether
    they patch before the adjuster starts or while it runs."""
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "time", lambda: 1234.5)
    adj = InventoryAdjuster(fake, linger=SLOW)
    first = adj.submit_nowait("p0", variants[0], -1)  # starts the adjuster
    second = adj.submit_nowait("p1", variants[0], -1)  # a new key on the inline path
    monkeypatch.setattr(loop, "time", lambda: 2000.0)
    third = adj.submit_nowait("p2", variants[0], -1)
    assert (first.first, second.first, third.first) == (1234.5, 1234.5, 2000.0)
    monkeypatch.undo()
    await adj.close(abort=True)


async def test_abort_cancels_a_batch_whose_task_never_started(
    fake: Any, variants: list[str]
) -> None:
    """A batch planned but not yet running when close(abort=True) cancels it still gives every
    ticket an outcome, CANCELLED, sends nothing and leaves no key busy."""
    reports: list[BatchReport] = []
    adj = InventoryAdjuster(fake, max_batch=2, linger=SLOW, on_batch=reports.append)
    tickets = [adj.submit_nowait(f"p{i}", variants[i], -1) for i in range(2)]  # a full batch
    await asyncio.sleep(0)  # the dispatcher plans it and creates its task, which has not run
    await adj.close(abort=True)
    assert [t.outcome and t.outcome.status for t in tickets] == [X, X]
    assert fake.calls == [] and not adj._table.busy
    assert [o.status for r in reports for o in r.outcomes] == [X, X]


async def test_a_failing_dispatcher_lets_requests_in_flight_settle_before_close_raises(
    fake: Any, variants: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A planner bug after a batch went out: close() still waits for that batch's outcome
    before re-raising, and leaves no task behind."""
    from wixinv_async.adjuster import _dispatch

    real, calls = _dispatch.select, []

    def broken_later(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("planner bug")
        return real(*args, **kwargs)

    monkeypatch.setattr("wixinv_async.adjuster._dispatch.select", broken_later)
    asyncio.get_running_loop().set_exception_handler(lambda _, context: None)
    fake.gate = asyncio.Event()
    adj = InventoryAdjuster(fake, max_batch=1, linger=SLOW)
    flying = adj.submit_nowait("p0", variants[0], -1)
    await fake.entered.wait()
    closing = asyncio.create_task(adj.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    fake.gate.set()
    with pytest.raises(RuntimeError, match="planner bug"):
        await closing
    assert (await flying).status is C and _adjuster_tasks() == []


@pytest.mark.parametrize("how", ["flush", "close"])
async def test_a_follow_up_behind_a_zero_net_goes_out_on_flush_without_lingering(
    fake: Any, variants: list[str], how: str
) -> None:
    """A key whose head entry nets to zero while a follow-up holds an overflow: flush() and
    close() send the follow-up at once, not after the linger."""
    adj = InventoryAdjuster(fake, linger=SLOW)
    adj.submit_nowait("p0", variants[0], 99_999)
    follow_up = adj.submit_nowait("p0", variants[0], 5)
    adj.submit_nowait("p0", variants[0], -99_999)  # the head nets to zero
    drained = adj.flush() if how == "flush" else adj.close()
    await asyncio.wait_for(drained, 5)
    assert (await follow_up).status is C and fake.quantities[("p0", variants[0])] == 1005
    await adj.close()


@pytest.mark.parametrize("attempts", [1, 5], ids=["raised", "retried-by-the-client"])
async def test_a_429_counted_by_the_client_is_not_counted_again(
    variants: list[str], attempts: int
) -> None:
    """Two 429 answers, whether the client raised them (the adjuster resends) or retried them
    itself: stats().rate_limited is 2, not twice that."""
    client = InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"),
        transport=_answering(429, 429),
        retry=RetryPolicy(max_attempts=attempts, base_delay=0, max_delay=0),
        rate_limit=None,
    )
    policy = BatchPolicy(base_delay=0, max_delay=0)
    async with InventoryAdjuster(client, linger=0, batch_policy=policy, catalog=V1) as adj:
        outcome = await adj.adjust("p0", variants[0], -1)
    assert outcome.status is C and adj.stats().rate_limited == 2


async def test_on_settle_reports_each_bisected_part_as_it_settles(
    fake: Any, variants: list[str]
) -> None:
    """A refused batch's parts are reported one by one as they settle (each under its own
    request id), all before the batch's report: a journal records each part at once."""
    fake.hints = False
    events: list[Any] = []
    adj = InventoryAdjuster(fake, linger=SLOW, on_settle=events.append, on_batch=events.append)
    for i in range(4):
        adj.submit_nowait("missing" if i == 3 else f"p{i}", variants[0], -1)
    await adj.close()
    settled, report = events[:-1], events[-1]
    assert isinstance(report, BatchReport) and len(settled) >= 2
    assert sorted(e.key.product_id for s in settled for e in s.entries) == [
        "missing",
        "p0",
        "p1",
        "p2",
    ]
    assert len({s.batch_id for s in settled}) == len(settled)
    assert [s.outcome.status for s in settled if s.entries[0].key.product_id == "missing"] == [R]


async def test_bisection_resends_and_doubts_are_logged(
    fake: Any, variants: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """On the wixinv_async.adjuster logger: bisection parts at DEBUG, resends at INFO,
    in-doubt entries at WARNING."""
    caplog.set_level("DEBUG", logger="wixinv_async.adjuster")
    fake.script = ["503", None, None, "unknown_after"]
    policy = BatchPolicy(base_delay=0, max_delay=0)
    async with InventoryAdjuster(fake, linger=SLOW, batch_policy=policy) as adj:
        adj.submit_nowait("p0", variants[0], -1)
        adj.submit_nowait("missing", variants[0], -1)
        await adj.flush()
        adj.submit_nowait("p1", variants[0], -1)
        await adj.flush()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert any(level == "INFO" and "resending" in text for level, text in messages), messages
    assert any(level == "DEBUG" and "bisecting" in text for level, text in messages), messages
    assert any(level == "WARNING" and "in doubt" in text for level, text in messages), messages
