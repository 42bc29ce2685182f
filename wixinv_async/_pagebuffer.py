"""What the crawlers share: the bounded buffer of pages between their workers and the
consumer, and the signal that wakes waiters when a plan or the buffer changes.

Both catalogs' crawlers (:mod:`wixinv_async.crawler` for V1's numericId ranges,
:mod:`wixinv_async.crawler_v3` for V3's productId ranges) hand pages over through one
:class:`PageBuffer`; only what a segment is differs, so the buffer needs of a segment its
``key`` and of a plan its segments in key order.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence, Sized
from typing import Generic, Protocol, TypeVar

__all__ = ["Keyed", "OrderedPlan", "PageBuffer", "Signal"]

P = TypeVar("P", bound=Sized)


class Keyed(Protocol):
    """A segment, as the buffer sees it: a key unique within its plan."""

    @property
    def key(self) -> int: ...


class OrderedPlan(Protocol):
    """A plan, as the buffer sees it: its segments in the order ``ordered=True`` yields."""

    def ordered(self) -> Sequence[Keyed]: ...


class Signal:
    """Wakes every waiter whenever the plan or the buffer changes; waiters then re-check."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def pulse(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class PageBuffer(Generic[P]):
    """Pages between the workers and the consumer, bounded.

    Unordered: one FIFO of at most ``capacity`` pages. Ordered: each page gets a ticket (its
    place within its segment) when its segment's plan records it, so pages of one segment
    come out in numericId order even when two workers hold them (the open tail, parked by
    one and re-read by another). The consumer drains the *frontier*, the first segment in
    numericId order not yet sealed and drained; pages of the frontier may always take up to
    ``capacity`` places (the next one due always may), those of all other segments together
    ``capacity``: the frontier always progresses, so nothing deadlocks.
    """

    def __init__(self, ordered: bool, capacity: int, signal: Signal) -> None:
        self.ordered = ordered
        self.capacity = capacity
        self.signal = signal
        self.plan: OrderedPlan | None = None
        self.pages_out = 0
        self.items_out = 0
        self.max_held = 0
        self._fifo: collections.deque[P] = collections.deque()
        self._waiting: dict[int, dict[int, P]] = collections.defaultdict(dict)
        self._issued: collections.Counter[int] = collections.Counter()
        self._taken: collections.Counter[int] = collections.Counter()
        self._sealed: set[int] = set()
        self._cursor = 0
        self._held = 0
        self._closed = False
        self._error: BaseException | None = None

    def ticket(self, segment: Keyed) -> int:
        """The place of the page just recorded for ``segment``; take it before any await."""
        place = self._issued[segment.key]
        self._issued[segment.key] += 1
        return place

    async def put(self, segment: Keyed, place: int, page: P) -> None:
        while not self._may_put(segment, place):
            await self.signal.wait()
        if self.ordered:
            self._waiting[segment.key][place] = page
        else:
            self._fifo.append(page)
        self._held += 1
        self.max_held = max(self.max_held, self._held)
        self.signal.pulse()

    def seal(self, segment: Keyed) -> None:
        """``segment`` is exhausted: once its ticketed pages are taken, move past it."""
        self._sealed.add(segment.key)
        self.signal.pulse()

    def close(self) -> None:
        self._closed = True
        self.signal.pulse()

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self.signal.pulse()

    async def get(self) -> P | None:
        """The next page, ``None`` at the end; raises the first worker error at once."""
        while True:
            if self._error is not None:
                raise self._error
            page = self._take()
            if page is not None:
                self._held -= 1
                self.pages_out += 1
                self.items_out += len(page)
                self.signal.pulse()
                return page
            if self._closed:
                return None
            await self.signal.wait()

    def _may_put(self, segment: Keyed, place: int) -> bool:
        if not self.ordered:
            return self._held < self.capacity
        frontier = self._frontier()
        if segment is frontier:
            due = place == self._taken[segment.key]
            return due or len(self._waiting[segment.key]) < self.capacity
        frontier_held = len(self._waiting[frontier.key]) if frontier is not None else 0
        return self._held - frontier_held < self.capacity

    def _take(self) -> P | None:
        if not self.ordered:
            return self._fifo.popleft() if self._fifo else None
        frontier = self._frontier()
        if frontier is None:
            return None
        page = self._waiting[frontier.key].pop(self._taken[frontier.key], None)
        if page is not None:
            self._taken[frontier.key] += 1
        return page

    def _frontier(self) -> Keyed | None:
        """The first segment, in numericId order, that may still have pages to give."""
        if self.plan is None:
            return None
        segments = self.plan.ordered()
        while self._cursor < len(segments):
            segment = segments[self._cursor]
            key = segment.key
            if key not in self._sealed or self._taken[key] < self._issued[key]:
                return segment
            self._waiting.pop(key, None)
            self._cursor += 1
        return None
