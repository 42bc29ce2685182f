"""The pure numericId range arithmetic: splitting, progress, work stealing, the open tail."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wixinv_async.core.keyset import (
    KeysetPlan,
    ReadWindow,
    Segment,
    SegmentState,
    compose_filter,
    split_range,
)
from wixinv_async.errors import InvalidInputError, TransportError

# --- split_range -------------------------------------------------------------------------


def test_split_range_gives_even_contiguous_parts() -> None:
    """Ten ids in three parts: widths 4, 3, 3, end to end."""
    assert split_range(1, 10, 3) == [(1, 4), (5, 7), (8, 10)]


def test_split_range_gives_fewer_parts_than_ids() -> None:
    """Two ids cannot make eight segments: two come back."""
    assert split_range(5, 6, 8) == [(5, 5), (6, 6)]


@pytest.mark.parametrize("parts", [0, -1, True, 2.5])
def test_split_range_refuses_bad_part_counts(parts: object) -> None:
    """A part count that is not a positive int names the field and value."""
    with pytest.raises(InvalidInputError, match="segments") as info:
        split_range(1, 10, parts)  # type: ignore[arg-type]
    assert info.value.value == parts


def test_split_range_refuses_an_inverted_range() -> None:
    """lo above hi is refused."""
    with pytest.raises(InvalidInputError, match="hi"):
        split_range(10, 1, 2)


@given(
    lo=st.integers(0, 10**16),
    width=st.integers(1, 10**9),
    parts=st.integers(1, 64),
)
def test_split_range_tiles_the_range(lo: int, width: int, parts: int) -> None:
    """Any split covers [lo, hi] exactly once with widths differing by at most one."""
    hi = lo + width - 1
    ranges = split_range(lo, hi, parts)
    assert ranges[0][0] == lo and ranges[-1][1] == hi
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
    widths = {b - a + 1 for a, b in ranges}
    assert max(widths) - min(widths) <= 1
    assert len(ranges) == min(parts, width)


# --- compose_filter ----------------------------------------------------------------------


def test_filter_without_user_filter_is_one_numeric_id_clause() -> None:
    """No user filter: a single numericId clause with both bounds as numbers."""
    assert compose_filter(None, 5, 9) == {"numericId": {"$gt": 5, "$lte": 9}}


def test_filter_of_the_open_segment_has_no_upper_bound() -> None:
    """The open-ended tail reads everything above its cursor."""
    assert compose_filter(None, 5, None) == {"numericId": {"$gt": 5}}


def test_filter_ands_the_user_filter_with_the_window() -> None:
    """A user filter is AND-ed with one clause per bound."""
    user = {"productId": {"$hasSome": ["a", "b"]}}
    assert compose_filter(user, 5, 9) == {
        "$and": [user, {"numericId": {"$gt": 5}}, {"numericId": {"$lte": 9}}]
    }


# --- the plan ----------------------------------------------------------------------------


def _tiles(plan: KeysetPlan) -> None:
    segments = list(plan.ordered())
    assert segments[0].start == plan.lo - 1
    for left, right in itertools.pairwise(segments):
        assert left.end == right.start
    assert segments[-1].end is None
    assert all(s.start <= s.after and (s.end is None or s.after <= s.end) for s in segments)


def test_plan_starts_with_the_split_and_an_open_tail() -> None:
    """Eight segments tile [lo, +inf): the last one is open-ended."""
    plan = KeysetPlan(1, 800, 8)
    _tiles(plan)
    assert [(s.start, s.end) for s in plan.ordered()][:2] == [(0, 100), (100, 200)]
    assert plan.ordered()[-1].end is None


def test_claim_hands_out_unclaimed_segments_first() -> None:
    """Workers first get the initial segments, in order."""
    plan = KeysetPlan(1, 800, 2)
    first, second = plan.claim(), plan.claim()
    assert first is not None and second is not None
    assert (first.key, second.key) == (0, 1)
    assert first.state is SegmentState.ACTIVE


def _read(plan: KeysetPlan, segment: Segment, ids: list[int], limit: int = 3) -> int:
    assert plan.begin_read(segment) is not None
    return plan.record_page(segment, ids, limit).keep


def test_idle_worker_steals_the_upper_half_of_the_richest_segment() -> None:
    """A finished worker takes half of what is left of the densest segment."""
    plan = KeysetPlan(1, 1000, 2, min_steal_items=1)
    low, high = plan.claim(), plan.claim()
    assert low is not None and high is not None
    _read(plan, low, [10, 11, 12])  # dense: 3 items in 12 ids
    _read(plan, high, [700])  # short page: the tail parks (the low segment is unfinished)
    assert high.state is SegmentState.PARKED
    thief = plan.claim()
    assert thief is not None and thief.start == low.end
    assert (low.after, low.end, thief.end) == (12, 256, 500)
    assert plan.steals == 1
    _tiles(plan)


def test_no_steal_when_the_richest_segment_holds_less_than_a_page() -> None:
    """Splitting a segment that one more query finishes would only add a request."""
    plan = KeysetPlan(1, 1000, 2, min_steal_items=100)
    low, high = plan.claim(), plan.claim()
    assert low is not None and high is not None
    _read(plan, low, [100, 200, 300])  # sparse: about 1 item in 100 ids
    _read(plan, high, [])
    assert plan.claim() is None and not plan.finished


def test_static_plan_never_steals() -> None:
    """steal=False is DynamoDB's parallel scan: the initial split only."""
    plan = KeysetPlan(1, 1000, 2, steal=False, min_steal_items=0)
    low, high = plan.claim(), plan.claim()
    assert low is not None and high is not None
    _read(plan, high, [])
    assert plan.claim() is None


def test_page_past_a_lowered_end_keeps_only_the_prefix() -> None:
    """A page in flight while its segment was split keeps only ids up to the new end."""
    plan = KeysetPlan(1, 1000, 1, min_steal_items=0)
    only = plan.claim()
    assert only is not None
    assert plan.begin_read(only) == ReadWindow(0, None)
    only.state = SegmentState.ACTIVE
    thief = plan._steal()  # another worker steals while the query is in flight
    assert thief is not None and only.end == 500
    outcome = plan.record_page(only, [400, 499, 500, 501], 4)
    assert (outcome.keep, outcome.more) == (3, False)
    assert only.state is SegmentState.DONE


def test_open_tail_is_reread_after_the_others_finish() -> None:
    """The open tail that read empty early is read again once it is the last one left."""
    plan = KeysetPlan(1, 1000, 2)
    low, high = plan.claim(), plan.claim()
    assert low is not None and high is not None
    _read(plan, high, [900])
    assert high.state is SegmentState.PARKED
    _read(plan, low, [1])
    assert high.state is SegmentState.READY
    assert plan.claim() is high
    assert plan.begin_read(high) == ReadWindow(900, None)
    plan.record_page(high, [], 3)
    assert plan.finished


def test_out_of_order_page_is_refused() -> None:
    """A page whose ids do not ascend above the cursor names the offending numericId."""
    plan = KeysetPlan(1, 1000, 1)
    only = plan.claim()
    assert only is not None and plan.begin_read(only) is not None
    with pytest.raises(TransportError, match="numericId 4 is not above 5"):
        plan.record_page(only, [5, 4], 3)


def test_recording_on_an_unclaimed_segment_is_a_bug() -> None:
    """Reading a segment nobody claimed is refused loudly."""
    plan = KeysetPlan(1, 1000, 2)
    with pytest.raises(RuntimeError, match="ready"):
        plan.begin_read(plan.ordered()[0])


# --- the crawl, simulated: any interleaving of reads, steals and inserts ----------------


@dataclass
class _Worker:
    segment: Segment | None = None
    pending: list[int] | None = None
    total: int | None = None


@dataclass
class _Sim:
    plan: KeysetPlan
    ids: list[int]
    limit: int
    workers: list[_Worker]
    cap: int | None = None
    """A server that cuts every page to ``cap`` items, sending exact totals."""
    yielded: dict[int, list[int]] = field(default_factory=dict)

    def query(self, window: ReadWindow) -> tuple[list[int], int]:
        start = bisect.bisect_right(self.ids, window.after)
        stop = len(self.ids) if window.end is None else bisect.bisect_right(self.ids, window.end)
        size = self.limit if self.cap is None else min(self.cap, self.limit)
        return self.ids[start : min(stop, start + size)], stop - start

    def step(self, worker: _Worker) -> None:
        if worker.segment is None:
            worker.segment = self.plan.claim()
        elif worker.pending is None:
            window = self.plan.begin_read(worker.segment)
            if window is None:
                worker.segment = None
            else:
                worker.pending, worker.total = self.query(window)
        else:
            outcome = self.plan.record_page(
                worker.segment, worker.pending, self.limit, window_total=worker.total
            )
            self.yielded.setdefault(worker.segment.key, []).extend(worker.pending[: outcome.keep])
            worker.pending = None
            if not outcome.more:
                worker.segment = None

    def split(self, parts: int) -> None:
        """Split the first active segment (its read may be in flight) into ``parts``."""
        for segment in self.plan.ordered():
            if segment.state is SegmentState.ACTIVE:
                self.plan.split(segment, parts)
                return

    def insert_top(self, value: int) -> bool:
        """Insert a new item above all others unless the crawl's final read is under way."""
        final = any(
            w.segment is not None and w.segment.issued_alone and w.pending is not None
            for w in self.workers
        )
        if self.plan.finished or final:
            return False
        self.ids.append(value)
        return True

    def insert_unread(self, value: int) -> bool:
        """Insert ``value`` if it lies in a range no cursor has read or is reading."""
        if value in self.ids:
            return False
        owner = next(
            s for s in self.plan.ordered() if s.start < value and (s.end is None or value <= s.end)
        )
        reading = any(w.segment is owner and w.pending is not None for w in self.workers)
        if owner.state is SegmentState.DONE or value <= owner.after or reading:
            return False
        bisect.insort(self.ids, value)
        return True


@settings(max_examples=300, deadline=None)
@given(
    ids=st.lists(st.integers(1, 5_000), min_size=1, max_size=300, unique=True),
    parts=st.integers(1, 9),
    workers=st.integers(1, 9),
    limit=st.integers(1, 12),
    min_steal=st.integers(0, 20),
    cap=st.none() | st.integers(1, 12),
    schedule=st.lists(
        st.tuples(
            st.integers(0, 8),
            st.none() | st.sampled_from(["top", "split"]) | st.integers(1, 6_000),
        ),
        max_size=400,
    ),
)
def test_any_split_and_steal_sequence_reads_every_item_exactly_once(
    ids: list[int],
    parts: int,
    workers: int,
    limit: int,
    min_steal: int,
    cap: int | None,
    schedule: list[tuple[int, str | int | None]],
) -> None:
    """However workers interleave, steal, split their segments and see inserts, and however
    short the server cuts its pages, each item is read exactly once."""
    ids.sort()
    plan = KeysetPlan(ids[0], ids[-1], parts, min_steal_items=min_steal)
    sim = _Sim(plan, list(ids), limit, [_Worker() for _ in range(workers)], cap)
    for choice, insert in schedule:
        sim.step(sim.workers[choice % workers])
        _tiles(plan)
        if insert == "top":
            sim.insert_top(sim.ids[-1] + 1 + choice)
        elif insert == "split":
            sim.split(2 + choice % 4)
        elif isinstance(insert, int) and insert >= ids[0]:
            sim.insert_unread(insert)
    idle_rounds = 0
    while not (plan.finished and all(w.segment is None for w in sim.workers)):
        for worker in sim.workers:
            sim.step(worker)
        _tiles(plan)
        idle = all(w.segment is None for w in sim.workers)
        idle_rounds = idle_rounds + 1 if idle else 0
        assert idle_rounds < 3, "unfinished, yet no worker can get work: stalled"

    in_order = [i for s in plan.ordered() for i in sim.yielded.get(s.key, [])]
    assert in_order == sim.ids


@pytest.mark.parametrize("first_page", [[], [1]], ids=["empty", "one-item"])
def test_a_finished_sparse_segment_makes_no_steal_worth_it(first_page: list[int]) -> None:
    """A segment that read (nearly) nothing over its whole range counts as sparse, not dense:
    an idle worker does not split an unread neighbour over a trillion ids."""
    plan = KeysetPlan(1, 10**12, 2, min_steal_items=100)
    low, high = plan.claim(), plan.claim()
    assert low is not None and high is not None
    _read(plan, low, first_page, limit=100)
    assert low.state is SegmentState.DONE
    assert plan.claim() is None and plan.steals == 0


def test_short_page_whose_window_holds_more_is_not_the_end() -> None:
    """A page shorter than the limit, when the server reports more in the window, reads on."""
    plan = KeysetPlan(1, 1000, 2)
    low = plan.claim()
    assert low is not None and plan.begin_read(low) is not None
    outcome = plan.record_page(low, [1, 2], 3, window_total=5)
    assert (outcome.keep, outcome.more) == (2, True) and low.state is SegmentState.ACTIVE
    assert plan.begin_read(low) == ReadWindow(2, low.end)
    assert plan.record_page(low, [], 3, window_total=3).more is False  # a wrong total: one read
    assert low.state is SegmentState.DONE


def test_full_page_whose_total_counts_nothing_more_ends_the_segment() -> None:
    """A full page holding the window's last item ends its segment: no empty read follows."""
    plan = KeysetPlan(1, 1000, 2)
    low = plan.claim()
    assert low is not None and plan.begin_read(low) is not None
    outcome = plan.record_page(low, [1, 2, 3], 3, window_total=3)
    assert (outcome.keep, outcome.more) == (3, False) and low.state is SegmentState.DONE


def test_total_tells_what_a_segment_has_left() -> None:
    """A page's total less its length is what its segment still holds."""
    plan = KeysetPlan(1, 1000, 2)
    low = plan.claim()
    assert low is not None and plan.begin_read(low) is not None
    assert plan.record_page(low, [1, 2, 3], 3, window_total=250).more
    assert low.remaining == 247


def test_total_of_a_window_a_steal_narrowed_is_not_kept() -> None:
    """After a steal lowered the end mid-read, the total counted a wider window: not kept."""
    plan = KeysetPlan(1, 1000, 1, min_steal_items=0)
    only = plan.claim()
    assert only is not None and plan.begin_read(only) is not None
    assert plan._steal() is not None
    assert plan.record_page(only, [1, 2, 3], 3, window_total=900).more
    assert only.remaining is None


def test_split_hands_out_the_rest_in_order_and_keeps_the_tail_open() -> None:
    """Splitting the one open segment after its first page tiles what is left."""
    plan = KeysetPlan(1, 1000, 1)
    only = plan.claim()
    assert only is not None
    _read(plan, only, [1, 2, 3])
    added = plan.split(only, 3)
    _tiles(plan)
    assert [(s.start, s.end) for s in plan.ordered()] == [(0, 336), (336, 668), (668, None)]
    assert [s.state for s in added] == [SegmentState.READY, SegmentState.READY]
    assert only.state is SegmentState.ACTIVE and only.after == 3


def test_split_into_one_part_changes_nothing() -> None:
    """One part, or nothing left to split, adds no segment."""
    plan = KeysetPlan(1, 1000, 1)
    only = plan.claim()
    assert only is not None
    assert plan.split(only, 1) == [] and len(plan.ordered()) == 1
