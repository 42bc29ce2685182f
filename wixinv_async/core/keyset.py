"""numericId range arithmetic for the fan-out crawler: splitting, progress and work stealing.

Pure code, no event loop. The crawler reads the catalog as keyset cursors, one per *segment*
of the numericId space; :class:`KeysetPlan` decides what each cursor reads next and the async
driver (:mod:`wixinv_async.crawler`) only performs the queries it is told to.

A segment is the half-open range ``(start, end]`` of numericIds; its cursor has read
``(start, after]`` and has ``(after, end]`` left. The last segment is open-ended
(``end is None``): Wix assigns numericIds in ascending order, so items created during a crawl
land there and are read too. Invariant, kept by every operation and checked by property
tests: the segments, in order, tile ``(lo - 1, +inf)`` exactly once, so every numericId
belongs to exactly one cursor and no item can be yielded twice.

Work stealing: a worker whose segment is exhausted takes the upper half of the remaining
range of the segment with the most items left and reads it as a new segment, so clustered
numericIds (they are creation times) do not leave workers idle while one cursor plods through
a dense region. Items left are estimated from the density a segment has read so far over its
whole read range, from its first item: bursts of ids created together would inflate one page's
density and cause useless steals (measured: 127 steals instead of 10 on a 100,000-item
clustered catalog).

What the server counts: Query Inventory answers ``totalResults``, the items matching the whole
window ``(after, end]`` at the time of the query. A page's total less its length is what its
segment still holds (:attr:`Segment.remaining`), so a segment ends on the page that reads its
last item, full or not, with no empty read to learn it, and work stealing splits a segment by
what it is known to hold rather than by an estimate. A segment whose server sends no total is
read until a short page, as Wix documents.

Open-ended tail: the open segment may only be declared exhausted by a read that was issued
when no other segment was still being read. Before that it is *parked*, and reopened when
the others finish, so the crawl's final request is always a read of the top of the range:
an item created at any time before it is seen.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import InvalidInputError, TransportError
from ..settings import is_int

__all__ = [
    "KeysetPlan",
    "PageOutcome",
    "ReadWindow",
    "Segment",
    "SegmentState",
    "compose_filter",
    "split_range",
]

Filter = Mapping[str, Any]


def split_range(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """``[lo, hi]`` as at most ``parts`` contiguous inclusive ranges whose widths differ by <= 1.

    Fewer ranges come back when the range holds fewer than ``parts`` ids.
    """
    if not is_int(parts) or parts < 1:
        raise InvalidInputError("segments", parts, "must be an int >= 1")
    if lo > hi:
        raise InvalidInputError("hi", hi, f"must be >= lo ({lo})")
    width = hi - lo + 1
    parts = min(parts, width)
    base, extra = divmod(width, parts)
    ranges: list[tuple[int, int]] = []
    start = lo
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        ranges.append((start, start + size - 1))
        start += size
    return ranges


def compose_filter(user_filter: Filter | None, after: int, end: int | None) -> dict[str, Any]:
    """The Query Inventory filter reading ``(after, end]`` (``end`` None: no upper bound).

    With a user filter: ``{"$and": [user_filter, {"numericId": {"$gt": after}},
    {"numericId": {"$lte": end}}]}``; without one a single ``numericId`` clause. Bounds are
    JSON numbers, as the Wix docs and SDK send them (16-digit numericIds are below 2**53).
    """
    bounds: dict[str, int] = {"$gt": after}
    if end is not None:
        bounds["$lte"] = end
    if user_filter is None:
        return {"numericId": bounds}
    clauses: list[Any] = [dict(user_filter)]
    clauses.extend({"numericId": {op: value}} for op, value in bounds.items())
    return {"$and": clauses}


class SegmentState(enum.Enum):
    """Where a segment is in its life."""

    READY = "ready"
    """Waiting for a worker to claim it."""
    ACTIVE = "active"
    """Claimed: its worker is reading it."""
    PARKED = "parked"
    """The open tail read empty while other segments were still being read: re-read later."""
    DONE = "done"
    """Exhausted."""


@dataclass(slots=True, eq=False)
class Segment:
    """The numericIds ``(start, end]``; ``(start, after]`` has been read. ``end`` None: open."""

    key: int
    """Unique within its plan, in creation order."""
    start: int
    after: int
    end: int | None
    state: SegmentState = SegmentState.READY
    items: int = 0
    """Items read so far."""
    first: int | None = None
    """The first numericId read, once one is."""
    density: float | None = None
    """Items per numericId over ``[first, after]``, set once a full page is read (a stolen
    half inherits its victim's). Counted from the first item, not from ``start``: a recent
    cluster at the top of a wide segment is dense, whatever empty ids lie before it."""
    issued_alone: bool = False
    """Whether the read in flight was issued while no other segment was unfinished."""
    remaining: int | None = None
    """Items the server counted in ``(after, end]`` at the last read (its ``totalResults``
    less the page); ``None`` before that, without a total, or once the end has moved."""
    read_end: int | None = None
    """``end`` when the read in flight was issued: a total counts that window."""

    @property
    def is_open(self) -> bool:
        return self.end is None

    def covered(self) -> int:
        """numericIds known read: ``(start, after]``, or all of ``(start, end]`` once done."""
        if self.state is SegmentState.DONE and self.end is not None:
            return self.end - self.start
        return self.after - self.start

    def left(self, top: int) -> int:
        """numericIds left to read; an open segment counts up to ``top``, the highest seen."""
        end = top if self.end is None else self.end
        return max(0, end - self.after)


class ReadWindow(NamedTuple):
    """The range ``(after, end]`` a query must read (``end`` None: no upper bound)."""

    after: int
    end: int | None


@dataclass(frozen=True, slots=True)
class PageOutcome:
    """What a page did to its segment: how many of its items to keep (a prefix) and whether
    the segment needs another read."""

    keep: int
    more: bool


@dataclass(slots=True)
class KeysetPlan:
    """The segments of one crawl over ``[lo, +inf)``, kept in numericId order.

    ``lo``/``hi`` are the lowest and highest numericIds matching the filter when the crawl
    starts; ``parts`` the initial number of segments; ``steal`` turns adaptive re-splitting
    on; a segment is only split if it is estimated to hold more than ``min_steal_items``.
    """

    lo: int
    hi: int
    parts: int
    steal: bool = True
    min_steal_items: int = 100
    segments: list[Segment] = field(init=False)
    steals: int = field(init=False, default=0)
    _top: int = field(init=False)
    _next_key: int = field(init=False, default=0)
    _unfinished: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.segments = []
        self._top = self.hi
        ranges = split_range(self.lo, self.hi, self.parts)
        for i, (first, last) in enumerate(ranges):
            end = None if i == len(ranges) - 1 else last
            self.segments.append(self._new_segment(first - 1, end, None))

    # --- queries -------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Every segment is exhausted: the crawl is complete."""
        return self._unfinished == 0

    @property
    def top(self) -> int:
        """The highest numericId known: the initial ``hi`` or any higher one read since."""
        return self._top

    def ordered(self) -> Sequence[Segment]:
        """The segments in numericId order (the order ``ordered=True`` yields them)."""
        return self.segments

    # --- commands ------------------------------------------------------------------------

    def claim(self) -> Segment | None:
        """The next segment for an idle worker, now ACTIVE; ``None`` when there is none now.

        Unclaimed segments first, then a stolen half of the segment with most left. ``None``
        with :attr:`finished` false means "wait for the plan to change and ask again".
        """
        for segment in self.segments:
            if segment.state is SegmentState.READY:
                segment.state = SegmentState.ACTIVE
                return segment
        return self._steal() if self.steal else None

    def begin_read(self, segment: Segment) -> ReadWindow | None:
        """The window the next query of ``segment`` reads, or ``None`` if it is exhausted."""
        self._check_active(segment)
        if segment.end is not None and segment.after >= segment.end:
            self._finish(segment)
            return None
        segment.issued_alone = self._unfinished == 1
        segment.read_end = segment.end
        return ReadWindow(segment.after, segment.end)

    def record_page(
        self,
        segment: Segment,
        ids: Sequence[int],
        limit: int,
        *,
        window_total: int | None = None,
    ) -> PageOutcome:
        """Account for a page of ``ids`` (ascending) answering ``begin_read(segment)``.

        Keeps the prefix within the segment's *current* end (a steal may have lowered it
        while the query was in flight; the rest belongs to the thief). ``window_total`` is
        the server's ``totalResults`` for the window read, when it sent one. The segment is
        exhausted when the page reached past its end, when the total counts nothing beyond
        the page (full or not: no empty read is needed to learn it), when the page is empty,
        or, without a total, when the page is short (Wix documents "read until a page comes
        back empty", so a short page whose total says more is not the end). A total is
        counted the window as it was when the query left: after a steal lowered the end it
        is only an upper bound of what is left, so it may end the segment (nothing left)
        but is not kept as :attr:`Segment.remaining`.
        """
        self._check_active(segment)
        _check_page(segment, ids)
        keep = _count_within(ids, segment.end)
        if keep:
            self._advance(segment, ids[:keep], full=keep >= limit)
        left = None if window_total is None else max(0, window_total - len(ids))
        exact = keep == len(ids) and segment.read_end == segment.end
        segment.remaining = left if exact else None
        if keep < len(ids) or _read_all(len(ids), limit, left):
            self._exhausted(segment)
            return PageOutcome(keep, more=False)
        return PageOutcome(keep, more=True)

    def split(self, segment: Segment, parts: int) -> list[Segment]:
        """Split what ``segment`` has left, ``(after, end]`` (up to :attr:`top` if it is
        open), into at most ``parts`` segments; ``segment`` keeps the lowest and the others
        are READY, in order (the highest stays open if ``segment`` was). The new ones.

        The crawler's fan-out after its first page: it is read by one cursor, which then
        learns how many more should run (:mod:`wixinv_async.core.fanout`).
        """
        self._check_active(segment)
        end = self._top if segment.end is None else segment.end
        if parts < 2 or end - segment.after < 2:
            return []
        ranges = split_range(segment.after + 1, end, parts)
        last_end = segment.end
        segment.end = ranges[0][1]
        segment.remaining = None
        index = self.segments.index(segment)
        added: list[Segment] = []
        for i, (first, last) in enumerate(ranges[1:], start=1):
            new_end = last_end if i == len(ranges) - 1 else last
            added.append(self._new_segment(first - 1, new_end, segment.density))
        self.segments[index + 1 : index + 1] = added
        return added

    # --- internals -----------------------------------------------------------------------

    def _new_segment(self, start: int, end: int | None, density: float | None) -> Segment:
        segment = Segment(self._next_key, start, start, end, density=density)
        self._next_key += 1
        self._unfinished += 1
        return segment

    def _check_active(self, segment: Segment) -> None:
        if segment.state is not SegmentState.ACTIVE:
            raise RuntimeError(f"segment {segment.key} is {segment.state.value}, not active")

    def _advance(self, segment: Segment, ids: Sequence[int], *, full: bool) -> None:
        if segment.first is None:
            segment.first = ids[0]
        segment.after = ids[-1]
        segment.items += len(ids)
        if full:
            segment.density = segment.items / (segment.after - segment.first + 1)
        self._top = max(self._top, ids[-1])

    def _exhausted(self, segment: Segment) -> None:
        if segment.is_open and not segment.issued_alone:
            segment.state = SegmentState.PARKED
            if self._unfinished == 1:
                segment.state = SegmentState.READY
            return
        self._finish(segment)

    def _finish(self, segment: Segment) -> None:
        segment.state = SegmentState.DONE
        self._unfinished -= 1
        if self._unfinished == 1:
            for other in self.segments:
                if other.state is SegmentState.PARKED:
                    other.state = SegmentState.READY

    def _steal(self) -> Segment | None:
        victim = self._richest()
        if victim is None:
            return None
        end = victim.end
        left = victim.left(self._top)
        mid = victim.after + (left + 1) // 2
        victim.end = mid
        victim.remaining = None
        thief = self._new_segment(mid, end, victim.density)
        thief.state = SegmentState.ACTIVE
        self.segments.insert(self.segments.index(victim) + 1, thief)
        self.steals += 1
        return thief

    def _richest(self) -> Segment | None:
        best: Segment | None = None
        best_items = float(self.min_steal_items)
        fallback = self._mean_density()
        for segment in self.segments:
            if segment.state is not SegmentState.ACTIVE or segment.left(self._top) < 2:
                continue
            estimate: float
            if segment.remaining is not None:
                estimate = segment.remaining
            else:
                density = segment.density if segment.density is not None else fallback
                estimate = segment.left(self._top) * density
            if estimate > best_items:
                best, best_items = segment, estimate
        return best

    def _mean_density(self) -> float:
        """Items per numericId read so far across the crawl (used before a segment has its own).

        A finished segment counts its whole range: one that read one item, or none, over a
        trillion ids is sparse, not dense, and must not set idle workers halving its neighbours.
        """
        span = sum(s.covered() for s in self.segments)
        if span <= 0:
            return math.inf
        return sum(s.items for s in self.segments) / span


def _read_all(length: int, limit: int, remaining: int | None) -> bool:
    """Whether a page of ``length`` items ends its window: the server counted nothing left
    beyond it, or (without a count) the page was short. An empty page always ends it: a
    count that says otherwise is wrong, and nothing was read to move the cursor."""
    if length == 0:
        return True
    if remaining is not None:
        return remaining == 0
    return length < limit


def _count_within(ids: Sequence[int], end: int | None) -> int:
    if end is None:
        return len(ids)
    count = 0
    for value in ids:
        if value > end:
            break
        count += 1
    return count


def _check_page(segment: Segment, ids: Iterable[int]) -> None:
    previous = segment.after
    for value in ids:
        if value <= previous:
            raise TransportError(
                f"malformed Query Inventory page: numericId {value} is not above {previous} "
                f"(ids must ascend above the cursor of segment {segment.key})"
            )
        previous = value
