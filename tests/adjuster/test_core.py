"""The pure core: the delta table, the planner and the failure verdicts, with no event loop."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.adjuster._ledger import percentile
from wixinv_async.core import table as table_module
from wixinv_async.core.bisect import split
from wixinv_async.core.failures import (
    Bisect,
    Failure,
    Resend,
    classify,
    hint_index,
    outcome_for,
    verdict,
)
from wixinv_async.core.planner import minimum_requests, plan, select
from wixinv_async.core.table import (
    MAX_AMOUNT,
    NEVER,
    DeltaTable,
    Entry,
    Key,
    check_delta,
    wire_identity,
)
from wixinv_async.core.validation import is_guid
from wixinv_async.errors import (
    AdjusterClosed,
    AdjusterFull,
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    PreconditionFailedError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
)
from wixinv_async.models import FieldViolation
from wixinv_async.outcomes import Outcome, OutcomeStatus
from wixinv_async.settings import BatchPolicy

V = [f"00000000-0000-0000-0000-{i:012d}" for i in range(40)]

deltas_strategy = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from(V[:12]),
        st.booleans(),
        st.integers(-50, 50).filter(bool),
    ),
    max_size=400,
)


POLICY = BatchPolicy()
NOT_APPLIED_SENDS = POLICY.max_sends
AMBIGUOUS_SENDS = POLICY.ambiguous_sends


class Clock:
    """A settable clock for the table's arrival times."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


def new_table(net: bool = True, **kwargs: object) -> tuple[DeltaTable, Clock]:
    clock = Clock()
    return DeltaTable(net_opposite_signs=net, start=lambda: clock, **kwargs), clock  # type: ignore[arg-type]


def add(table: DeltaTable, key: Key, delta: int, now: float = 0.0, tag: object = None) -> Entry:
    """Submit a delta for ``key`` at time ``now`` (the table's one way in)."""
    clock = Clock()
    clock.now = now
    table.clock = clock
    return table.submit(key[0], key[1], key[2], key[3], delta, tag)


def build(deltas: list[tuple[str, str, bool, int]], net: bool = True) -> DeltaTable:
    table, clock = new_table(net)
    for t, (product, variant, preorder, delta) in enumerate(deltas):
        clock.now = float(t)
        table.submit(product, None, variant, preorder, delta)
    return table


def plan_keys(
    keys_and_nets: Iterable[tuple[Key, int]], max_batch: int
) -> list[tuple[str, list[tuple[Key, int]]]]:
    """Plan a whole table's (key, net) pairs: increments, then decrements; zero nets dropped."""
    items = list(keys_and_nets)
    out: list[tuple[str, list[tuple[Key, int]]]] = []
    for kind, sign in (("increment", 1), ("decrement", -1)):
        mine = [(key, net) for key, net in items if net * sign > 0]
        for chunk in plan(mine, max_batch, lambda item: wire_identity(item[0])):
            out.append((kind, chunk))
    return out


def heads(table: DeltaTable) -> list[tuple[tuple[object, ...], int]]:
    return [(entry.key, entry.net) for entry in table.entries.values()]


@given(deltas_strategy, st.booleans())
def test_table_conserves_the_sum_per_key(
    deltas: list[tuple[str, str, bool, int]], net: bool
) -> None:
    """Whatever the order, every key's entries sum to the deltas given for it."""
    table = build(deltas, net)
    expected: Counter[tuple[str, str, bool]] = Counter()
    for product, variant, preorder, delta in deltas:
        expected[(product, variant, preorder)] += delta
    got: Counter[tuple[str, str, bool]] = Counter()
    for entry in table.pending():
        got[(entry.key[0], entry.key[2], entry.key[3])] += entry.net
    assert +got == +expected and -got == -expected
    assert sum(e.count for e in table.pending()) == len(deltas)


@given(deltas_strategy, st.integers(1, 30))
@settings(max_examples=200)
def test_plan_conserves_nets_and_respects_limits(
    deltas: list[tuple[str, str, bool, int]], max_batch: int
) -> None:
    """The plan carries every nonzero net once, <= max_batch entries, no variant twice a request."""
    table = build(deltas)
    pairs = heads(table)
    requests = plan_keys(pairs, max_batch)
    carried: dict[tuple[object, ...], int] = {}
    for kind, chunk in requests:
        assert 1 <= len(chunk) <= max_batch
        idents = [wire_identity(key) for key, _ in chunk]
        assert len(idents) == len(set(idents))
        for key, amount in chunk:
            assert (amount > 0) == (kind == "increment")
            assert key not in carried
            carried[key] = amount
    assert carried == {key: net for key, net in pairs if net}


@given(deltas_strategy, st.integers(1, 30))
@settings(max_examples=200)
def test_plan_uses_the_minimum_number_of_requests(
    deltas: list[tuple[str, str, bool, int]], max_batch: int
) -> None:
    """The plan needs exactly the lower bound: ceil(n / max_batch), or 2 when a variant pairs up."""
    pairs = heads(build(deltas))
    assert len(plan_keys(pairs, max_batch)) == minimum_requests(pairs, max_batch)


@given(deltas_strategy)
def test_without_netting_signs_never_mix(deltas: list[tuple[str, str, bool, int]]) -> None:
    """With net_opposite_signs=False an entry only holds deltas of one sign."""
    table = build(deltas, net=False)
    per_sign: dict[tuple[object, ...], int] = defaultdict(int)
    for product, variant, preorder, delta in deltas:
        per_sign[(product, None, variant, preorder, delta > 0)] += delta
    assert {e.key: e.net for e in table.pending()} == per_sign


def test_opposite_deltas_net_to_one_increment() -> None:
    """+5 and -3 for one variant become a single increment of 2."""
    table = build([("p1", V[0], False, 5), ("p1", V[0], False, -3)])
    assert plan_keys(heads(table), 300) == [("increment", [(("p1", None, V[0], False), 2)])]


def test_a_zero_net_needs_no_request_and_is_a_noop() -> None:
    """+4 then -4 plans nothing, and select resolves the entry as a no-op."""
    table = build([("p1", V[0], False, 4), ("p1", V[0], False, -4)])
    assert plan_keys(heads(table), 300) == []
    chosen = select(table, now=10.0, linger=0.05, max_batch=300, slots=4)
    assert chosen.batches == [] and [e.count for e in chosen.noops] == [2]
    assert len(table) == 0 and not table.busy


def test_preorder_and_plain_decrements_of_one_variant_go_in_two_requests() -> None:
    """A variant with a preorder and a plain decrement never appears twice in one request."""
    table = build([("p1", V[0], False, -1), ("p1", V[0], True, -2), ("p1", V[1], False, -1)])
    requests = plan_keys(heads(table), 300)
    assert [len(chunk) for _, chunk in requests] == [2, 1]


def test_a_positive_preorder_delta_nets_with_the_preorder_decrement() -> None:
    """Giving back a cancelled preorder (-2 then +2, both preorder) costs no request."""
    table = build([("p1", V[0], True, -2), ("p1", V[0], True, 2)])
    assert plan_keys(heads(table), 300) == []


def test_an_entry_never_leaves_the_amount_range() -> None:
    """Deltas past 99999 in total start a follow-up entry for a later request."""
    table = build([("p1", V[0], False, MAX_AMOUNT), ("p1", V[0], False, 5)])
    entries = list(table.pending())
    assert [e.net for e in entries] == [MAX_AMOUNT, 5]
    head = entries[0]
    table.take_all([head])
    assert table.entries[head.key].net == 5 and head.key in table.busy


def test_plan_packs_full_batches_first() -> None:
    """650 increments become 300 + 300 + 50."""
    items = list(range(650))
    assert [len(c) for c in plan(items, 300)] == [300, 300, 50]


def test_plan_splits_a_small_pair_set_in_two() -> None:
    """Two pairs and nothing else need exactly two requests, each holding one of every pair."""
    chunks = plan(["a", "b", "a2", "b2"], 300, lambda s: s[0])
    assert sorted(sorted(c) for c in chunks) == [["a", "b"], ["a2", "b2"]]


def test_plan_keeps_pairs_apart_whatever_order_their_seconds_come_in() -> None:
    """Pairs whose second members arrive in another order than their first ones: still no
    identity twice in a chunk (the second of "c" came right after its first)."""
    items = ["a1", "b1", "c1", "c2", "a2", "b2"]
    for max_batch in range(1, 7):
        for chunk in plan(items, max_batch, lambda s: s[0]):
            assert len({s[0] for s in chunk}) == len(chunk), (max_batch, chunk)


def test_plan_refuses_three_items_of_one_identity() -> None:
    """The planner is only for identities shared by at most two keys."""
    with pytest.raises(ValueError, match="at most two"):
        plan(["a", "a", "a"], 300)


def test_select_sends_a_full_batch_at_once_and_keeps_the_rest() -> None:
    """With 301 increments ready, one full batch goes now; one entry waits for linger."""
    table2 = DeltaTable()
    for i in range(301):
        add(table2, (f"p{i}", None, V[0], False), 1, 0.0)
    chosen = select(table2, now=0.0, linger=1.0, max_batch=300, slots=4)
    assert [(b.reason, len(b.entries)) for b in chosen.batches] == [("full", 300)]
    assert len(table2) == 1 and chosen.deadline == 1.0


def test_select_waits_for_linger_then_sends_the_oldest() -> None:
    """Nothing goes before the oldest entry lingered; then one batch with the oldest entries."""
    table = DeltaTable()
    for i in range(5):
        add(table, (f"p{i}", None, V[0], False), -1, float(i))
    assert select(table, now=0.5, linger=1.0, max_batch=10, slots=4).batches == []
    chosen = select(table, now=1.0, linger=1.0, max_batch=10, slots=4)
    assert [(b.kind, b.reason, [e.key[0] for e in b.entries]) for b in chosen.batches] == [
        ("decrement", "linger", ["p0", "p1", "p2", "p3", "p4"])
    ]


def test_select_holds_a_busy_key_until_released() -> None:
    """A key whose entry is in flight is not sent again until its outcome is known."""
    table = DeltaTable()
    key = ("p1", None, V[0], False)
    add(table, key, 1, 0.0)
    first = select(table, now=0.0, linger=0.0, max_batch=300, slots=4, drain="flush")
    add(table, key, 2, 0.0)
    assert select(table, now=9.0, linger=0.0, max_batch=300, slots=4, drain="flush").batches == []
    table.release_all([key])
    again = select(table, now=9.0, linger=0.0, max_batch=300, slots=4, drain="flush")
    assert [[e.net for e in b.entries] for b in first.batches + again.batches] == [[1], [2]]


def test_select_respects_free_slots() -> None:
    """With one free slot only one full batch goes, however many are ready."""
    table = DeltaTable()
    for i in range(10):
        add(table, (f"p{i}", None, V[0], False), 1, 0.0)
    chosen = select(table, now=0.0, linger=1.0, max_batch=2, slots=1)
    assert len(chosen.batches) == 1 and len(table) == 8


def test_a_key_checked_before_still_refuses_a_non_bool_preorder() -> None:
    """A key whose ids passed once is remembered, yet preorder=1 (== True) is still refused."""
    table, _ = new_table()
    table.submit("p-seen", None, V[1], True, -1)
    table.pop_all()
    with pytest.raises(InvalidInputError, match="preorder"):
        table.submit("p-seen", None, V[1], 1, -1)  # type: ignore[arg-type]
    assert table.submit("p-seen", None, V[1], True, -2).net == -2


def test_ready_counts_follow_sign_changes() -> None:
    """The per-sign ready counts track merges that flip an entry's sign."""
    table = DeltaTable()
    key = ("p1", None, V[0], False)
    add(table, key, 2, 0.0)
    assert table.ready == [0, 1, 0]
    add(table, key, -5, 0.0)
    assert table.ready == [0, 0, 1]
    add(table, key, 3, 0.0)
    assert table.ready == [1, 0, 0]


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (InvalidInputError("decrementBy", 0, "bad", index=3), 3),
        (NotFoundError(404, "no", code="NOT_FOUND", data={"index": 2}), 2),
        (NotFoundError(404, "no", data={"index": 99}), None),
        (
            NotFoundError(
                404, "no", field_violations=[FieldViolation(field="incrementData[4].variantId")]
            ),
            4,
        ),
        (NotFoundError(404, "no"), None),
    ],
)
def test_hint_index_reads_what_the_server_blamed(error: Exception, hint: int | None) -> None:
    """The offending entry's index is read from the error when it is there and in range."""
    assert hint_index(error, 10) == hint


def test_split_halves_without_a_hint_and_cuts_out_the_blamed_entry_with_one() -> None:
    """No hint: two halves. A hint: the blamed entry alone and the rest as one batch."""
    assert split([1, 2, 3, 4, 5], None) == (None, [[1, 2], [3, 4, 5]])
    assert split([1, 2, 3, 4, 5], 1) == (2, [[1, 3, 4, 5]])


def test_entry_repr_shows_live_state() -> None:
    """An entry's repr names its key, net and state."""
    entry = Entry(("p1", None, V[0], False), 0.0, 3, 1)
    assert "net=3" in repr(entry) and "pending" in repr(entry)
    assert math.isclose(entry.first, 0.0)


@pytest.mark.parametrize(
    ("error", "send", "retry_ambiguous", "expected"),
    [
        (RateLimitedError(429, "slow", retry_after=2.0), 1, False, 2.0),
        (ServerError(503, "busy"), 1, False, "delay"),
        (ConnectError("refused"), 2, False, "delay"),
        (RequestTimeoutError("connect", sent=False), 1, False, "delay"),
        (ConnectError("refused"), NOT_APPLIED_SENDS, False, OutcomeStatus.REJECTED),
        (OutcomeUnknownError("reset", request=None), 1, False, OutcomeStatus.IN_DOUBT),
        (OutcomeUnknownError("reset", request=None), 1, True, 0.0),
        (OutcomeUnknownError("reset", request=None), AMBIGUOUS_SENDS, True, OutcomeStatus.IN_DOUBT),
        (ServerError(500, "boom"), 1, False, OutcomeStatus.IN_DOUBT),
        (AuthenticationError(401, "no", code="UNAUTHENTICATED"), 1, False, OutcomeStatus.REJECTED),
        (ConfigurationError("the InventoryClient is closed"), 1, True, OutcomeStatus.REJECTED),
        (RuntimeError("bug"), 1, False, OutcomeStatus.IN_DOUBT),
        (NotFoundError(404, "no", data={"index": 1}), 1, False, Bisect(1)),
        (InvalidInputError("variantId", "x", "bad", index=0), 1, False, Bisect(0)),
    ],
)
def test_verdict_retries_only_what_provably_was_not_applied(
    error: Exception, send: int, retry_ambiguous: bool, expected: object
) -> None:
    """429/503/connect errors are resent; unknown outcomes are in doubt unless opted in;
    refusals an entry caused are bisected."""
    got = verdict(
        error, send, size=3, policy=POLICY, retry_ambiguous=retry_ambiguous, rng=random.Random(1)
    )
    if expected == "delay":
        assert isinstance(got, Resend) and got.delay >= 0 and not got.maybe_applied
    elif isinstance(expected, OutcomeStatus):
        assert isinstance(got, Outcome) and got.status is expected and got.error is error
    elif isinstance(expected, Bisect):
        assert got == expected
    else:
        assert isinstance(got, Resend) and got.delay == expected


@pytest.mark.parametrize(
    ("error", "send"),
    [
        (AuthenticationError(401, "no", code="UNAUTHENTICATED"), 1),
        (ConnectError("refused"), NOT_APPLIED_SENDS),
        (RateLimitedError(429, "slow", retry_after=1.0), NOT_APPLIED_SENDS),
        (ConfigurationError("the InventoryClient is closed"), 1),
    ],
)
def test_whole_request_rejections_are_retriable(error: Exception, send: int) -> None:
    """A request refused whole, or never sent, says nothing of its deltas: retriable."""
    got = verdict(error, send, size=1, policy=POLICY, retry_ambiguous=False, rng=random.Random(1))
    assert isinstance(got, Outcome) and got.status is OutcomeStatus.REJECTED and got.retriable


def test_the_resend_backoff_follows_the_batch_policy() -> None:
    """The delay between sends stays under the policy's cap (no hard-coded backoff)."""
    policy = BatchPolicy(base_delay=0.01, max_delay=0.02)
    rng = random.Random(3)
    delays = [
        verdict(ServerError(503, "busy"), n, size=1, policy=policy, retry_ambiguous=False, rng=rng)
        for n in range(1, 5)
    ]
    assert all(isinstance(d, Resend) and 0 <= d.delay <= 0.02 for d in delays)


def test_an_entry_refused_by_the_server_is_not_retriable() -> None:
    """The server's word on the entry itself (428, 404, 400) is final: not retriable."""
    error = PreconditionFailedError(428, "low", code="INSUFFICIENT_INVENTORY")
    assert not outcome_for(OutcomeStatus.REJECTED, error, "REFUSED").retriable


def test_only_entry_caused_refusals_are_bisected() -> None:
    """400, 404, 428 and client-side refusals are INVALID (bisected); auth and unknown
    outcomes are not."""
    assert classify(PreconditionFailedError(428, "low", code="INSUFFICIENT_INVENTORY")) is (
        Failure.INVALID
    )
    assert classify(InvalidInputError("variantId", "x", "bad", index=0)) is Failure.INVALID
    assert classify(AuthenticationError(401, "no")) is Failure.UNAUTHORIZED
    assert classify(OutcomeUnknownError("reset", request=None)) is Failure.OUTCOME_UNKNOWN


@given(st.one_of(st.uuids().map(str), st.text(max_size=40), st.from_regex(r"[0-9a-gA-G-]{36}")))
def test_the_fast_submit_check_agrees_with_the_validation_module(variant: str) -> None:
    """check_delta accepts a variant id exactly when core.validation.is_guid does."""
    if is_guid(variant):
        check_delta("p1", None, variant, False, -1)
    else:
        with pytest.raises(InvalidInputError) as caught:
            check_delta("p1", None, variant, False, -1)
        assert caught.value.field == "variant_id"


def _state(table: DeltaTable) -> tuple[object, ...]:
    pending = [(e.key, e.net, e.count) for e in table.pending()]
    return (pending, sorted(map(repr, table.busy)), list(table.ready), table.preorders)


@given(deltas_strategy, st.data())
def test_taking_and_releasing_a_batch_equals_doing_it_entry_by_entry(
    deltas: list[tuple[str, str, bool, int]], data: st.DataObject
) -> None:
    """take_all and release_all leave the table as take and release one at a time would."""
    one, batch = build(deltas), build(deltas)
    ready = list(one.ready_entries())
    chosen = data.draw(st.lists(st.sampled_from(ready), unique=True) if ready else st.just([]))
    keys = [e.key for e in chosen]
    for entry in chosen:
        one.take_all([entry])
    batch.take_all([batch.entries[key] for key in keys])
    assert _state(one) == _state(batch)
    for key in keys:
        add(one, key, 1, 9e9)  # a follow-up arrives while the key is busy
        add(batch, key, 1, 9e9)
        one.release_all([key])
    batch.release_all(keys)
    assert _state(one) == _state(batch)


@given(deltas_strategy, st.integers(0, 3), st.sampled_from(["flush", "close"]))
@settings(max_examples=200)
def test_a_drain_takes_every_ready_entry_once_into_valid_batches(
    deltas: list[tuple[str, str, bool, int]], busy: int, reason: str
) -> None:
    """flush/close plan each ready head once (zeros as no-ops), by sign, never a variant twice."""
    table = build(deltas)
    for entry in list(table.entries.values())[:busy]:  # in flight: their keys stay out
        table.take_all([entry])
    ready = [e for e in table.entries.values() if e.key not in table.busy]
    waiting = [e for e in table.entries.values() if e.key in table.busy]
    chosen = select(table, now=0.0, linger=9.0, max_batch=7, slots=0, drain=reason)  # type: ignore[arg-type]
    sent = [e for b in chosen.batches for e in b.entries]
    assert sorted(map(id, sent + chosen.noops)) == sorted(map(id, ready))
    assert all(e.net == 0 for e in chosen.noops)
    for batch in chosen.batches:
        assert batch.reason == reason and 1 <= len(batch.entries) <= 7
        assert all((e.net > 0) == (batch.kind == "increment") for e in batch.entries)
        idents = [wire_identity(e.key) for e in batch.entries]
        assert len(idents) == len(set(idents))
    assert list(table.entries.values()) == waiting


@pytest.mark.parametrize(
    ("samples", "q", "expected"),
    [([1.0, 2.0], 0.5, 1.0), ([float(i) for i in range(1, 101)], 0.99, 99.0), ([3.0], 0.99, 3.0)],
)
def test_percentile_is_the_nearest_rank(samples: list[float], q: float, expected: float) -> None:
    """The q quantile is the sample of rank ceil(q * n): p50 of two is the lower, p99 of 100
    the 99th, not the maximum."""
    assert percentile(samples, q) == expected


@given(st.lists(st.one_of(st.uuids().map(str), st.text(max_size=40)), max_size=20))
def test_submit_accepts_a_variant_id_exactly_when_it_is_a_guid(variants: list[str]) -> None:
    """The table's cache of ids already checked never lets a bad id in, seen before or not:
    every id twice, each accepted exactly when core.validation.is_guid says so."""
    table, _ = new_table()
    for n, variant in enumerate(variants * 2):
        if is_guid(variant):
            table.submit(f"p{n}", None, variant, False, -1)
        else:
            with pytest.raises(InvalidInputError) as caught:
                table.submit(f"p{n}", None, variant, False, -1)
            assert caught.value.field == "variant_id"


def test_a_checked_key_is_reused_and_its_ids_still_refuse_bad_fields() -> None:
    """A plain key checked once is the same tuple in every table after (no tuple made per
    delta); the same ids with a bad preorder or delta still raise, a table not netting signs
    still keys by sign, and the remembered keys start over when full."""
    first, _ = new_table()
    second, _ = new_table()
    key = first.submit("p-reuse", None, V[1], False, -1).key
    assert second.submit("p-reuse", None, V[1], False, 2).key is key
    third, _ = new_table()
    with pytest.raises(InvalidInputError) as caught:
        third.submit("p-reuse", None, V[1], 0, -1)  # type: ignore[arg-type]
    assert caught.value.field == "preorder"
    with pytest.raises(InvalidInputError):
        second.submit("p-reuse", None, V[1], False, 0)
    apart, _ = new_table(net=False)
    assert apart.submit("p-reuse", None, V[1], False, -1).key == (
        "p-reuse",
        None,
        V[1],
        False,
        False,
    )


def test_the_remembered_plain_keys_start_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the cache's size the remembered keys are forgotten, and keys are checked again."""
    monkeypatch.setattr(table_module, "_KEY_CACHE", 2)
    table_module._PLAIN.clear()
    table_module._PLAIN_SIZE[0] = 0
    table, _ = new_table()
    for n in range(5):
        table.submit(f"p-full{n}", None, V[2], False, -1)
        assert table_module._PLAIN_SIZE[0] <= 2
    with pytest.raises(InvalidInputError):
        table.submit("p-full4", None, "not-a-guid", False, -1)


def test_the_table_refuses_a_new_key_when_full_and_everything_when_closed() -> None:
    """max_pending bounds new keys (a known key still merges); a closed table takes nothing."""
    woken: list[int] = []
    table, _ = new_table(max_pending=1, wake=lambda: woken.append(1))
    table.submit("p0", None, V[0], False, -1)
    with pytest.raises(AdjusterFull):
        table.submit("p1", None, V[0], False, -1)
    assert table.submit("p0", None, V[0], False, -2).net == -3 and woken
    table.open = False
    with pytest.raises(AdjusterClosed):
        table.submit("p0", None, V[0], False, -1)


@pytest.mark.parametrize(
    ("ids", "field"),
    [
        ((["p"], None, V[0], False), "product_id"),
        (("p0", None, [V[0]], False), "variant_id"),
        ((None, ["i"], V[0], False), "inventory_id"),
        (("p0", None, V[0], [True]), "preorder"),
    ],
)
def test_an_unhashable_id_is_refused_with_its_name_and_changes_nothing(
    ids: tuple[object, object, object, object], field: str
) -> None:
    """An id that cannot be a key (a list) raises InvalidInputError naming it; the table
    is unchanged, and a closed table says it is closed first."""
    table, _ = new_table()
    with pytest.raises(InvalidInputError) as caught:
        table.submit(*ids, -1)  # type: ignore[arg-type]
    assert caught.value.field == field and not table.entries and table.ready == [0, 0, 0]
    table.open = False
    with pytest.raises(AdjusterClosed):
        table.submit(*ids, -1)  # type: ignore[arg-type]


def test_a_new_key_wakes_the_driver_when_its_kinds_ready_count_reaches_wake_at() -> None:
    """wake is called once, by the new key that brings its kind's ready count to wake_at
    (keys of the other kind and keys in flight do not count), and not again until set."""
    woken: list[int] = []
    table, _ = new_table()
    table.wake = lambda: woken.append(len(table))
    table.wake_at = 3
    table.submit("p-up", None, V[0], False, 1)
    table.take_all([table.submit("p-busy", None, V[0], False, -1)], -1)
    table.submit("p-busy", None, V[0], False, -1)  # pending behind its entry in flight
    table.submit("p-w0", None, V[0], False, -1)
    table.submit("p-w1", None, V[0], False, -1)
    assert woken == [] and table.ready == [0, 1, 2]
    table.submit("p-w2", None, V[0], False, -1)
    assert woken == [5] and table.wake_at == NEVER
    table.submit("p-w3", None, V[0], False, -1)
    assert woken == [5]
