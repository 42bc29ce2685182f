"""The witness arithmetic (pure): resolving a read, late applies, re-centring, settings."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async import ConfigurationError, Witness
from wixinv_async.core.witness import (
    MAX_SUSPECTS,
    Bounds,
    Resolution,
    SlotState,
    Suspect,
    plan_step,
    resolve_sent,
)

C, N, D = Resolution.COMMITTED, Resolution.NOT_APPLIED, Resolution.IN_DOUBT


def suspect(rid: int, step: int) -> Suspect:
    return Suspect(rid, step, ())


@pytest.mark.parametrize(
    ("read", "step", "expected"),
    [(51, 1, C), (50, 1, N), (49, -1, C), (50, -1, N), (52, 1, D), (40, -1, D), (57, 7, C)],
)
def test_a_read_resolves_by_the_step(read: int, step: int, expected: Resolution) -> None:
    """Moved by exactly the step: COMMITTED; unchanged: NOT_APPLIED; else IN_DOUBT."""
    state = SlotState("v", expected=50)
    assert state.resolve(read, suspect(1, step)).resolution is expected


def test_an_unexplained_read_says_why_and_rebases() -> None:
    """A quantity no request explains is IN_DOUBT naming an edit; the slot starts from it."""
    state = SlotState("v", expected=50)
    read = state.resolve(60, suspect(1, 1))
    assert read.resolution is D and read.reason is not None and "edited" in read.reason
    assert state.expected == 60
    assert state.resolve(61, suspect(2, 1)).resolution is C


def test_a_not_applied_request_that_lands_later_is_detected_by_the_next_read() -> None:
    """NOT_APPLIED, then the witness moves by that step: a late apply naming the request."""
    state = SlotState("v", expected=50)
    assert state.resolve(50, suspect(1, -1)).resolution is N
    read = state.verify(49)
    assert read.late_quantity == -1 and [s.request_id for s in read.late] == [1]
    assert state.expected == 49 and state.suspects == []
    assert state.verify(49).late_quantity == 0


def test_a_read_a_late_apply_could_explain_stays_in_doubt() -> None:
    """Two +1 suspects, a +1 request, moved by 2: one suspect landed and the request, or both
    suspects: IN_DOUBT."""
    state = SlotState("v", expected=50)
    state.resolve(50, suspect(1, 1))
    state.resolve(50, suspect(2, 1))
    read = state.resolve(52, suspect(3, 1))
    assert read.resolution is D and read.reason is not None and "late apply" in read.reason


def test_a_late_apply_with_a_resolvable_request_is_both_resolved_and_reported() -> None:
    """A -1 suspect landed and a +3 request committed (read +2): COMMITTED, late -1."""
    state = SlotState("v", expected=50)
    state.resolve(50, suspect(1, -1))
    read = state.resolve(52, suspect(2, 3))
    assert read.resolution is C and read.late_quantity == -1 and state.expected == 52


def test_an_unknown_baseline_leaves_the_request_in_doubt() -> None:
    """No baseline: IN_DOUBT, and the read becomes the baseline."""
    state = SlotState("v")
    assert state.resolve(7, suspect(1, 1)).resolution is D and state.expected == 7


@pytest.mark.parametrize(
    ("expected", "increment", "step", "update"),
    [
        (50_000, True, 1, False),
        (50_000, False, -1, False),
        (20_000, True, 30_000, False),
        (20_000, False, -1, False),
        (80_000, False, -30_000, False),
        (80_000, True, 1, False),
        (99_899, True, 1, True),
        (100, False, -1, True),
    ],
)
def test_plan_step_recentres_in_opposite_requests_and_updates_past_hard_bounds(
    expected: int, increment: bool, step: int, update: bool
) -> None:
    """Outside [low, high] the next opposite-sign request re-centres; past the hard bounds an
    update call does."""
    assert plan_step(expected, increment, Bounds()) == (step, update)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32))
def test_resolutions_are_right_and_every_late_apply_is_reported(seed: int) -> None:
    """Random requests that apply now, late (beyond the settle delay, found by a verifying
    read) or never: COMMITTED only if applied, NOT_APPLIED only if not, and the late
    quantity reported adds up to what landed late."""
    rng = random.Random(seed)
    quantity, state = 50, SlotState("v", expected=50)
    pending: list[int] = []  # steps that will land late
    landed = reported = 0
    for rid in range(30):
        if pending and rng.random() < 0.3:
            for step in [s for s in pending if rng.random() < 0.5]:
                pending.remove(step)
                quantity += step
                landed += step
            read = state.verify(quantity)
            assert read.reason is None, f"seed {seed}"
            reported += read.late_quantity
            assert reported == landed, f"seed {seed}"
        step = rng.choice((1, -1, 3))
        fate = rng.choice(("now", "late", "never"))
        if fate == "now":
            quantity += step
        elif fate == "late":
            pending.append(step)
        read = state.resolve(quantity, suspect(rid, step))
        if read.resolution is C:
            assert fate == "now", f"seed {seed}"
        elif read.resolution is N:
            assert fate != "now", f"seed {seed}"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"product_id": ""}, "product_id"),
        ({"variant_ids": []}, "variant_ids"),
        ({"variant_ids": ["a", "a"]}, "variant_ids"),
        ({"settle": -1}, "settle"),
        ({"settle": 5, "forget_after": 1}, "forget_after"),
        ({"bounds": Bounds(low=10, centre=5)}, "bounds"),
    ],
)
def test_bad_witness_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    """A bad Witness setting is a ConfigurationError naming it."""
    args: dict[str, object] = {"product_id": "p", "variant_ids": ["a"], **kwargs}
    with pytest.raises(ConfigurationError, match=field):
        Witness(**args)  # type: ignore[arg-type]


def test_suspects_past_their_deadline_are_forgotten_at_the_next_read() -> None:
    """Past MAX_SUSPECTS every resolution is IN_DOUBT; a read sent after their deadline
    drops them and the slot resolves again, from the read as its baseline."""
    state = SlotState("v", expected=50)
    for rid in range(MAX_SUSPECTS):
        assert state.resolve(50, Suspect(rid, 1, (), deadline=10.0)).resolution is N
    stuck = state.resolve(50, Suspect(99, 1, (), deadline=20.0))
    assert stuck.resolution is D and stuck.reason is not None and "too many" in stuck.reason
    assert state.forget(5.0, 50) == 0 and len(state.suspects) == MAX_SUSPECTS + 1
    assert state.forget(10.0, 51) == MAX_SUSPECTS
    assert [s.request_id for s in state.suspects] == [99] and state.expected == 51
    assert state.resolve(52, Suspect(100, 1, ())).resolution is C


def test_a_forgotten_suspect_that_lands_later_is_an_anomaly_not_a_commit() -> None:
    """A suspect dropped at its deadline that lands anyway: the read is unexplained (an edit
    reported), never a late apply counted as applied."""
    state = SlotState("v", expected=50)
    state.resolve(50, Suspect(1, -1, (), deadline=1.0))
    state.forget(1.0, 50)
    read = state.verify(49)
    assert read.resolution is D and read.reason is not None and "edited" in read.reason
    assert read.late == () and read.late_quantity == 0


@pytest.mark.parametrize(
    ("expected", "suspects", "step", "read", "resolution"),
    [
        (50, (), 1, 51, C),
        (50, (), -1, 50, N),
        (50, (1,), 1, 52, C),  # the journalled suspect landed too
        (50, (1,), 1, 51, C),  # taken at its word: the settle delay's promise
        (50, (), 1, 55, D),
        (None, (), 1, 51, D),
    ],
)
def test_a_journalled_send_is_resolved_from_its_mark(
    expected: int | None, suspects: tuple[int, ...], step: int, read: int, resolution: Resolution
) -> None:
    """After a crash: the mark's expected quantity, unconfirmed steps and step, and a read."""
    assert resolve_sent(expected, suspects, step, read).resolution is resolution
