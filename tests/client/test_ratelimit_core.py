"""The pure pacing arithmetic: spacing, rolling-window counts, the 429 pause state."""

from __future__ import annotations

import heapq
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.core.ratelimit import (
    SlotSchedule,
    ThrottleState,
    catch_up_budget,
    max_in_window,
    pacing_interval,
    window_capacity,
)


def simulate(
    schedule: SlotSchedule, asks: list[float], lateness: list[float]
) -> list[tuple[float, float]]:
    """Senders asking at ``asks`` sleep until the next slot and wake up late by ``lateness``
    (cycled, in seconds), in time order as an event loop runs them: (slot, send) times."""
    late = itertools.cycle(lateness)
    events = [(t, n) for n, t in enumerate(asks)]
    heapq.heapify(events)
    order = itertools.count(len(events))
    sends: list[tuple[float, float]] = []
    while events:
        now, _ = heapq.heappop(events)
        wait = schedule.take(now)
        if wait:
            heapq.heappush(events, (now + wait + next(late), next(order)))
        else:
            sends.append((schedule.last, now))
    return sends


budgets = st.tuples(st.integers(1, 300), st.floats(0.5, 120), st.floats(0.001, 0.2))


@given(
    requests=st.integers(1, 1000),
    period=st.floats(0.5, 3600),
    safety=st.floats(0.001, 0.5),
)
def test_paced_requests_fit_any_window(requests: int, period: float, safety: float) -> None:
    """Spacing by the interval never puts more than the budget in a window of the period."""
    interval = pacing_interval(requests, period, safety)
    assert window_capacity(interval, period) <= requests
    times = [i * interval for i in range(3 * requests)]
    assert max_in_window(times, period) <= requests


@pytest.mark.parametrize("safety", [0.0, 0.01, 0.02, 0.03])
def test_default_pacing_reaches_97_percent(safety: float) -> None:
    """Up to 3 % safety still sends at least 0.97 of the documented 200 per minute."""
    interval = pacing_interval(200, 60, safety)
    assert 60 / interval >= 0.97 * 200


def test_no_safety_can_put_one_too_many_in_a_closed_window() -> None:
    """Exact spacing puts N+1 requests in a closed window: why a margin is needed."""
    interval = pacing_interval(10, 10, 0.0)
    assert max_in_window([i * interval for i in range(30)], 10) == 11


@pytest.mark.parametrize(
    ("times", "period", "expected"),
    [([], 1, 0), ([5], 1, 1), ([0, 1, 2], 1, 2), ([0, 0, 0, 5], 1, 3), ([3, 0, 1.5], 2, 2)],
)
def test_max_in_window_counts_the_busiest_window(
    times: list[float], period: float, expected: int
) -> None:
    """The count of the busiest closed window of the period."""
    assert max_in_window(times, period) == expected


def test_bad_rates_are_refused() -> None:
    """A budget below 1 or a non-positive period makes no sense."""
    with pytest.raises(ValueError, match="bad rate"):
        pacing_interval(0, 60, 0.02)


def test_a_pause_extends_but_never_shortens() -> None:
    """A shorter 429 pause inside a longer one changes nothing, not even the streak (its
    request left before the pause: concurrent senders' 429s are one refusal)."""
    state = ThrottleState()
    assert state.throttled(10.0, 30.0) == 40.0
    assert state.throttled(12.0, 5.0) == 40.0
    assert state.remaining(20.0) == 20.0
    assert state.remaining(41.0) == 0.0
    assert state.streak == 1


def test_a_429_after_the_pause_lengthens_the_streak() -> None:
    """A request sent once the pause ended and refused again: the pause was too short."""
    state = ThrottleState()
    state.throttled(0.0, 1.0)
    state.throttled(1.5, 2.0)
    assert state.streak == 2 and state.remaining(1.5) == 2.0


def test_success_ends_the_streak() -> None:
    """After an answered request the next 429 starts a new streak."""
    state = ThrottleState()
    state.throttled(0.0, 1.0)
    state.succeeded()
    assert state.streak == 0
    assert "streak=0" in repr(state)


@settings(max_examples=200)
@given(
    budget=budgets,
    asks=st.lists(st.floats(0, 5), min_size=1, max_size=120),
    lateness=st.lists(st.floats(0, 3), min_size=1, max_size=50),
)
def test_late_senders_never_overfill_a_window(
    budget: tuple[int, float, float], asks: list[float], lateness: list[float]
) -> None:
    """Whatever the wake-up lateness (up to 3 catch-up budgets), every sender sends, within
    the catch-up of its slot, slots stay an interval apart, and no window of the period holds
    more than the budget."""
    requests, period, safety = budget
    interval = pacing_interval(requests, period, safety)
    catch_up = catch_up_budget(period, safety)
    schedule = SlotSchedule(interval, catch_up)
    sends = simulate(schedule, [t * period for t in asks], [x * catch_up for x in lateness])
    assert len(sends) == len(asks)
    rounding = 1e-9 * period  # ``now - catch_up`` is a float subtraction
    assert all(slot <= sent <= slot + catch_up + rounding for slot, sent in sends)
    slots = [slot for slot, _ in sends]
    assert all(b - a >= interval * (1 - 1e-12) for a, b in itertools.pairwise(slots))
    assert max_in_window([sent for _, sent in sends], period) <= requests


@given(budget=budgets, lateness=st.lists(st.floats(0, 0.99), min_size=1, max_size=50))
def test_lateness_within_the_catch_up_costs_no_slot(
    budget: tuple[int, float, float], lateness: list[float]
) -> None:
    """Backlogged senders late by up to the catch-up still send one per interval: every slot
    follows the one before by exactly one interval, so the rate stays 1 / (1 + safety)."""
    requests, period, safety = budget
    interval = pacing_interval(requests, period, safety)
    catch_up = catch_up_budget(period, safety)
    schedule = SlotSchedule(interval, catch_up)
    sends = simulate(schedule, [0.0] * 60, [x * catch_up for x in lateness])
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(sends)]
    assert gaps == pytest.approx([interval] * len(gaps), rel=1e-6)


def test_the_schedule_never_falls_more_than_the_catch_up_behind() -> None:
    """A late sender keeps its slot; a later one gets a slot just the catch-up in the past."""
    schedule = SlotSchedule(1.0, 0.5)
    assert schedule.take(0.0) == 0.0
    assert schedule.last == 0.0  # the first slot is now, never in the past
    assert schedule.take(0.25) == 0.75  # the next slot is due in 0.75 s
    assert schedule.take(1.3) == 0.0
    assert schedule.last == 1.0  # late by less than the catch-up: the slot at 1.0
    assert schedule.take(10.0) == 0.0
    assert schedule.last == 9.5


def test_after_a_pause_slots_restart_at_now() -> None:
    """Taken without catch-up, a slot is never in the past."""
    schedule = SlotSchedule(1.0, 0.5)
    schedule.take(0.0)
    assert schedule.take(1.3, catch_up=False) == 0.0
    assert schedule.last == 1.3
    assert schedule.take(1.3, catch_up=False) == pytest.approx(1.0)
    assert "catch_up=0.5" in repr(schedule)


def test_a_bad_schedule_is_refused() -> None:
    """A non-positive interval or a negative catch-up makes no sense."""
    with pytest.raises(ValueError, match="bad slot schedule"):
        SlotSchedule(0.0, 0.1)
    with pytest.raises(ValueError, match="bad slot schedule"):
        SlotSchedule(1.0, -0.1)
