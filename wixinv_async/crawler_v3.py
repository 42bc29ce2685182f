"""Read a whole Catalog V3 site (one item per variant and location) with parallel cursors.

::

    async with crawl_inventory_items(client, segments=8) as items:
        async for item in items:          # InventoryItemV3, each exactly once
            ...

V3 pages by cursor, and a cursor is sequential, so parallel cursors read disjoint
**productId** ranges (why productId: :mod:`wixinv_async.core.v3ranges`), each sorted by
productId and paged by its own server cursor to the end of its range. The crawl starts with
two queries sent together: the first page of the whole catalog (sorted by productId,
``page_size`` items) and the highest productId (``limit=1``, descending). If the first page
is the last, the crawl is over. Otherwise their timing says how many cursors pay (the rule
of V1's crawl, :mod:`wixinv_async.core.fanout`: one when the site's pace, not latency,
bounds the crawl; all ``segments`` when nothing paces; in between one timed probe page
first), the first page's spread of productIds estimates the catalog's size (no cursor unless
it has four pages to read), and what lies above the first page's last productId is split
evenly among the cursors. The first cursor goes on with the first query's own cursor.

Cost in requests, ``N`` items, ``L`` per page (1000 by default), ``k`` cursors: at most
``ceil(N / L) + 1 + (k - 1)``: the extra query for the highest productId, and one partial
last page per further cursor (no cursor ever reads an empty page: the server's ``hasNext``
ends each range on its last page, and the ranges lie between productIds that exist, so none
is empty but by chance). One cursor (a paced site) is thus one request above the minimum.

Guarantees: every item that exists throughout the crawl is yielded exactly once, whatever
changes meanwhile (a productId never changes; an item created or deleted during the crawl
is yielded at most once). ``ordered=True`` yields in productId order. A site that moves to
another catalog during the crawl makes it raise :class:`~wixinv_async.errors.WrongCatalogError`
(no item of the other catalog is ever mixed in). No work stealing: GUIDs are uniform, so an
even split is already balanced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol

from msgspec import UNSET

from ._pagebuffer import PageBuffer, Signal
from .core.fanout import FanoutChoice, first_fanout, probed_fanout
from .core.v3ranges import (
    KeyRange,
    RangeSegment,
    estimate_items,
    range_filter,
    ranges_between,
    split_after,
)
from .errors import InvalidInputError, TransportError
from .models_v3 import MAX_QUERY_LIMIT, InventoryItemsPage, InventoryItemV3, Sorting
from .settings import is_int

__all__ = ["InventoryItemsQuerier", "V3Crawler"]

PageV3 = list[InventoryItemV3]
_ASCENDING: Final = (Sorting(field_name="productId", order="ASC"),)
_DESCENDING: Final = (Sorting(field_name="productId", order="DESC"),)

logger = logging.getLogger("wixinv_async.crawler")


class InventoryItemsQuerier(Protocol):
    """What the V3 crawler needs of a client: :meth:`InventoryClient.query_inventory_items`."""

    async def query_inventory_items(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: Sequence[Sorting | Mapping[str, str]] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> InventoryItemsPage: ...


class _Start(NamedTuple):
    first: InventoryItemsPage
    hi: str | None
    first_answer: float
    gap: float


class _Plan:
    """The segments of one V3 crawl, in productId order (what the buffer needs)."""

    __slots__ = ("segments",)

    def __init__(self, first: RangeSegment) -> None:
        self.segments = [first]

    def ordered(self) -> Sequence[RangeSegment]:
        return self.segments


class V3Crawler:
    """One V3 crawl: its segments, the workers that read them and the buffer they fill."""

    def __init__(
        self,
        client: InventoryItemsQuerier,
        user_filter: Mapping[str, Any] | None,
        segments: int,
        page_size: int,
        ordered: bool,
        buffer_pages: int,
        fanout: str,
    ) -> None:
        if not is_int(page_size):
            raise InvalidInputError("v3_page_size", page_size, "must be an int")
        if not 1 <= page_size <= MAX_QUERY_LIMIT:
            raise InvalidInputError(
                "v3_page_size", page_size, f"must be an int from 1 to {MAX_QUERY_LIMIT}"
            )
        self._client = client
        self._filter = user_filter
        self._workers = segments
        self._page_size = page_size
        self._fanout = fanout
        self._signal = Signal()
        self._buffer = PageBuffer[PageV3](ordered, buffer_pages, self._signal)
        self._plan = _Plan(RangeSegment(0, KeyRange(None, None)))
        self.requests = 0
        self.cursors = 0

    @property
    def buffer(self) -> PageBuffer[PageV3]:
        return self._buffer

    @property
    def segments(self) -> int:
        return len(self._plan.segments)

    async def pages(self) -> AsyncGenerator[PageV3, None]:
        """The pages, as the consumer should see them; closing it stops the workers."""
        self._buffer.plan = self._plan
        runner = asyncio.create_task(self._run(), name="wixinv-crawl-v3")
        try:
            while (page := await self._buffer.get()) is not None:
                yield page
        finally:
            runner.cancel()
            await asyncio.wait([runner])
            if not runner.cancelled():
                runner.exception()  # handed over through the buffer already

    async def _query(
        self,
        filter: Mapping[str, Any] | None = None,
        sort: Sequence[Sorting] | None = None,
        limit: int = 1,
        cursor: str | None = None,
    ) -> InventoryItemsPage:
        self.requests += 1
        return await self._client.query_inventory_items(
            filter=filter, sort=sort, limit=limit, cursor=cursor
        )

    async def _timed(
        self, filter: Mapping[str, Any] | None, sort: Sequence[Sorting], limit: int
    ) -> tuple[InventoryItemsPage, float]:
        page = await self._query(filter, sort, limit)
        return page, asyncio.get_running_loop().time()

    async def _run(self) -> None:
        try:
            await self._crawl()
        except Exception as exc:  # an ExceptionGroup of the workers' errors, or the start's
            error = _first_leaf(exc)
            logger.warning(
                "V3 crawl stopped after %d requests: %s: %s",
                self.requests,
                type(error).__name__,
                error,
            )
            self._buffer.fail(error)
            return
        self._buffer.close()

    async def _crawl(self) -> None:
        start = await self._start()
        first = self._plan.segments[0]
        await self._hand_over(first, start.first)
        if first.done:
            self._chose(1, start, None)
            return
        cursors = await self._decide(first, start)
        if start.hi is not None:
            self._split(first, start.hi, cursors)
        async with asyncio.TaskGroup() as group:
            for segment in self._plan.segments:
                group.create_task(self._read(segment), name=f"wixinv-crawl-v3-{segment.key}")

    async def _start(self) -> _Start:
        """The first page and the highest productId, by two queries sent together."""
        sent = asyncio.get_running_loop().time()
        try:
            async with asyncio.TaskGroup() as group:
                low = group.create_task(self._timed(self._filter, _ASCENDING, self._page_size))
                high = group.create_task(self._timed(self._filter, _DESCENDING, 1))
        except ExceptionGroup as errors:
            raise _first_leaf(errors) from None
        (first, first_at), (top, top_at) = low.result(), high.result()
        hi = _product_id(top.inventory_items[0]) if top.inventory_items else None
        answered = min(first_at, top_at)
        return _Start(first, hi, answered - sent, abs(top_at - first_at))

    async def _decide(self, first: RangeSegment, start: _Start) -> int:
        """How many cursors: from the start's timing, or after one more timed page."""
        items = self._estimate(start)
        if self._fanout == "max":
            choice = FanoutChoice(self._workers, probe=False)
        else:
            choice = first_fanout(
                self._workers, items, self._page_size, start.first_answer, start.gap
            )
        if not choice.probe:
            self._chose(choice.cursors, start, None)
            return choice.cursors
        started = asyncio.get_running_loop().time()
        await self._read_page(first)
        took = asyncio.get_running_loop().time() - started
        latency = min(start.first_answer, took)
        cursors = probed_fanout(self._workers, items, self._page_size, latency, start.gap)
        self._chose(cursors, start, took)
        return cursors

    def _estimate(self, start: _Start) -> int | None:
        items = start.first.inventory_items
        if not items or start.hi is None:
            return None
        first, last = _product_id(items[0]), _product_id(items[-1])
        return estimate_items(first, last, start.hi, len(items))

    def _split(self, first: RangeSegment, hi: str, cursors: int) -> list[str]:
        """Hand what lies above the first segment's last productId to ``cursors - 1`` new
        segments (none when the first segment is done or the space does not split)."""
        if first.done or first.last is None:
            return []
        boundaries = split_after(first.last, hi, cursors)
        if not boundaries:
            return []
        ranges = ranges_between(boundaries)
        first.narrow(boundaries[0])
        for key, key_range in enumerate(ranges[1:], start=1):
            self._plan.segments.append(RangeSegment(key, key_range))
        logger.debug("V3 crawl split above %s at %s", first.last, ", ".join(boundaries))
        self._signal.pulse()
        return boundaries

    def _chose(self, cursors: int, start: _Start, probe: float | None) -> None:
        self.cursors = cursors
        logger.info(
            "V3 crawl fan-out: %d of at most %d cursors (%s; first answer %.1f ms, answers "
            "%.1f ms apart%s)",
            cursors,
            self._workers,
            self._fanout,
            start.first_answer * 1000,
            start.gap * 1000,
            "" if probe is None else f", probe page {probe * 1000:.1f} ms",
        )

    async def _read(self, segment: RangeSegment) -> None:
        try:
            while not segment.done:
                await self._read_page(segment)
        except Exception as exc:
            self._buffer.fail(exc)
            raise

    async def _read_page(self, segment: RangeSegment) -> None:
        if segment.cursor is not None:
            page = await self._query(cursor=segment.cursor, limit=self._page_size)
        else:
            where = range_filter(self._filter, segment.range)
            page = await self._query(where, _ASCENDING, self._page_size)
        await self._hand_over(segment, page)

    async def _hand_over(self, segment: RangeSegment, page: InventoryItemsPage) -> None:
        items = page.inventory_items
        keep = segment.record_page([_product_id(i) for i in items], page.next_cursor)
        self._signal.pulse()
        if keep:
            place = self._buffer.ticket(segment)
            await self._buffer.put(segment, place, items[:keep])
        if segment.done:
            self._buffer.seal(segment)


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _product_id(item: InventoryItemV3) -> str:
    value = item.product_id
    if value is UNSET or not isinstance(value, str) or not value:
        raise TransportError(
            f"malformed Query Inventory Items item {item.id!r}: productId={value!r} is not a "
            "non-empty string"
        )
    return value
