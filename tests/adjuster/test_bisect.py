"""The bisection state machine, driven by a pure fake server: no event loop, no I/O."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.core.bisect import BisectRun, Refused, Result, split


def drive(
    n: int,
    bad: set[int],
    *,
    hints: bool,
    ended: set[int] = frozenset(),  # type: ignore[assignment]
    suspects: set[int] = frozenset(),  # type: ignore[assignment]
) -> tuple[Counter[int], set[int], int]:
    """Bisect entries 0..n-1 against an atomic server refusing any request holding a bad
    entry (naming the first when ``hints``), and ending any request that holds an ``ended``
    entry and no bad one. Returns (times each entry ended, the entries rejected, requests)."""
    run = BisectRun(list(range(n)), suspects)
    ends: Counter[int] = Counter()
    rejected: set[int] = set()
    while (request := run.next_request()) is not None:
        offenders = [i for i, e in enumerate(request.entries) if e in bad]
        if offenders:
            result: Result | Refused = Refused(offenders[0] if hints else None)
        elif ended & set(request.entries):
            result = Result.ENDED
        else:
            result = Result.COMMITTED
        out = run.record(result)
        if not isinstance(result, Refused):
            ends.update(request.entries)
        ends.update(out)
        rejected.update(out)
    assert run.done
    return ends, rejected, run.requests


def bound(n: int, k: int) -> int:
    """The documented bound without hints: min(2n - 1, 1 + 2k ceil(log2 n))."""
    return min(2 * n - 1, 1 + 2 * k * math.ceil(math.log2(n))) if n > 1 else 1


instances = st.integers(1, 300).flatmap(
    lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), max_size=min(n, 40)))
)


@given(instances, st.booleans())
@settings(max_examples=300)
def test_every_entry_ends_exactly_once_and_only_the_bad_are_rejected(
    instance: tuple[int, set[int]], hints: bool
) -> None:
    """Whatever the bad entries and with or without hints: each entry ends once, and the
    rejected ones are exactly the bad ones."""
    n, bad = instance
    ends, rejected, _ = drive(n, bad, hints=hints)
    assert ends == Counter(range(n))
    assert rejected == bad


@given(instances)
@settings(max_examples=300)
def test_requests_without_hints_stay_within_the_bound(instance: tuple[int, set[int]]) -> None:
    """Without hints, k bad among n cost at most min(2n - 1, 1 + 2k ceil(log2 n)) requests."""
    n, bad = instance
    _, _, requests = drive(n, bad, hints=False)
    assert requests <= bound(n, len(bad))


@given(instances)
@settings(max_examples=300)
def test_requests_with_hints_are_one_per_bad_entry_plus_one(instance: tuple[int, set[int]]) -> None:
    """When every refusal names an offender, k bad entries cost at most k + 1 requests."""
    n, bad = instance
    _, _, requests = drive(n, bad, hints=True)
    assert requests <= len(bad) + 1


@given(instances, st.data())
def test_a_part_that_ends_otherwise_ends_its_entries_once(
    instance: tuple[int, set[int]], data: st.DataObject
) -> None:
    """Parts the driver settled otherwise (in doubt, refused whole) are never sent again."""
    n, bad = instance
    ended = data.draw(st.sets(st.integers(0, n - 1), max_size=5))
    ends, rejected, _ = drive(n, bad, hints=False, ended=ended)
    assert ends == Counter(range(n)) and rejected <= bad


def test_one_bad_entry_in_300_costs_at_most_19_requests() -> None:
    """The bound for the common case, checked at every position."""
    worst = max(drive(300, {i}, hints=False)[2] for i in range(300))
    assert worst <= bound(300, 1) == 19


def test_parts_name_the_request_they_came_from() -> None:
    """The whole batch is request 0 without a parent; its halves name 0; a half known to hold
    the culprit is split unsent and its parts name the refused request too."""
    run = BisectRun(["a", "b", "c", "d"])
    first = run.next_request()
    assert first is not None and (first.number, first.parent) == (0, None)
    run.record(Refused())
    left = run.next_request()
    assert left is not None and (left.entries, left.parent) == (["a", "b"], 0)
    run.record(Result.COMMITTED)
    lone = run.next_request()  # ["c", "d"] holds the culprit: split without being sent
    assert lone is not None and (lone.entries, lone.parent) == (["c"], 0)


def test_the_machine_refuses_to_be_driven_out_of_order() -> None:
    """record() needs a request in flight, and next_request() a recorded result."""
    run = BisectRun([1])
    with pytest.raises(RuntimeError):
        run.record(Result.COMMITTED)
    run.next_request()
    with pytest.raises(RuntimeError):
        run.next_request()
    with pytest.raises(ValueError, match="at least one"):
        BisectRun([])
    with pytest.raises(ValueError, match="two or more"):
        split([1], None)


@given(instances, st.booleans(), st.data())
@settings(max_examples=300)
def test_with_suspects_every_entry_ends_once_within_one_more_request(
    instance: tuple[int, set[int]], hints: bool, data: st.DataObject
) -> None:
    """Suspects sent apart (any of them, bad or not): each entry still ends once, only the bad
    are rejected, and the cost is at most one request more than the bounds without them."""
    n, bad = instance
    suspects = data.draw(st.sets(st.integers(0, n - 1), max_size=n))
    ends, rejected, requests = drive(n, bad, hints=hints, suspects=suspects)
    assert ends == Counter(range(n)) and rejected == bad
    k = len(bad)
    if hints:
        assert requests <= k + 2
    else:
        assert requests <= (min(2 * n - 1, 2 + 2 * k * math.ceil(math.log2(n))) if n > 1 else 1)


def test_suspects_go_apart_after_the_rest_and_a_clean_rest_is_sent_once() -> None:
    """The rest goes first as request 0 (no parent), then the suspects as their own request:
    a bad suspect costs no resend of the rest."""
    run = BisectRun(["a", "bad", "b", "c"], {1})
    rest = run.next_request()
    assert rest is not None and (rest.number, rest.parent, rest.entries) == (
        0,
        None,
        ["a", "b", "c"],
    )
    assert run.record(Result.COMMITTED) == []
    apart = run.next_request()
    assert apart is not None and (apart.parent, apart.entries) == (None, ["bad"])
    assert run.record(Refused(0)) == ["bad"]
    assert run.next_request() is None and run.requests == 2


def test_all_suspects_or_none_is_the_whole_batch() -> None:
    """Every entry a suspect (or an index out of range): one request of the whole batch."""
    for suspects in ({0, 1}, {7}):
        run = BisectRun(["a", "b"], suspects)
        whole = run.next_request()
        assert whole is not None and whole.entries == ["a", "b"]
