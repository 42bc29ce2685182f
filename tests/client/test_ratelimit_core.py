"""The pure pacing arithmetic: spacing, rolling-window counts, the 429 pause state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wixinv_async.core.ratelimit import (
    ThrottleState,
    max_in_window,
    pacing_interval,
    window_capacity,
)


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
    """A shorter 429 pause inside a longer one changes nothing."""
    state = ThrottleState()
    assert state.throttled(10.0, 30.0) == 40.0
    assert state.throttled(12.0, 5.0) == 40.0
    assert state.remaining(20.0) == 20.0
    assert state.remaining(41.0) == 0.0
    assert state.streak == 2


def test_success_ends_the_streak() -> None:
    """After an answered request the next 429 starts a new streak."""
    state = ThrottleState()
    state.throttled(0.0, 1.0)
    state.succeeded()
    assert state.streak == 0
    assert "streak=0" in repr(state)
