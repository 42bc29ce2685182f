"""Read a whole catalog, past the 10,000 items Wix serves by offset, with parallel keyset cursors.

::

    async with crawl_inventory(client, segments=8) as items:
        async for item in items:
            ...

:func:`crawl_inventory` finds the lowest and highest numericId matching the filter (two
``limit=1`` queries), splits that range into ``segments`` and reads every segment with its own
keyset cursor (``numericId > last`` and ``<= segment end``, ascending, AND-ed with the filter),
all concurrently through the client's rate limiter, like DynamoDB's parallel scan or
Elasticsearch's sliced scroll. When a cursor runs out it takes the upper half of what is left
of the richest segment (work stealing), so numericIds clustered in time don't leave workers
idle. The range arithmetic lives in :mod:`wixinv_async.core.keyset`; this module only waits.

``segments`` is the most cursors, not a quota. Against a paced site the budget, not latency,
is the limit, and a cursor that adds no speed still costs requests (its share's partial last
page, a read of an empty stretch). So the crawl times its two bound queries, sent together:
the first answer bounds the latency, the gap to the second is the site's slot interval; from
those :mod:`wixinv_async.core.fanout` picks one cursor, all of them, or (when ambiguous) one
timed probe page first and then as many as fill the slots. The bound queries' ``totalResults``
caps the cursors at four pages each. ``fanout="max"`` runs every segment regardless. The
choice and its measurements are logged at INFO on ``wixinv_async.crawler``, the split, the
steals and the parked tail at DEBUG.

Guarantees: every item is yielded exactly once, also while the catalog changes (an item keeps
its numericId when it changes; one created during the crawl is yielded if its numericId lies
in a range not yet read, and new numericIds are above all others, which the crawl reads last).
``ordered=True`` yields in numericId order, buffering at most ``2 * buffer_pages`` pages
(plus, rarely, the one page the consumer is waiting for). Leaving the iteration early
(``break`` inside ``async with``, or ``aclose()``) stops every worker before returning; an
error in any segment cancels the others and is raised.

Both catalogs: :func:`crawl_inventory` asks the client which catalog the site runs (cached)
and runs this V1 crawl or the V3 one (:mod:`wixinv_async.crawler_v3`: productId ranges, one
server cursor each), yielding :data:`AnyInventoryItem`. A
:class:`~wixinv_async.errors.WrongCatalogError` (the site moved mid-crawl) ends the crawl with
that error; nothing of the other catalog is mixed in. :func:`crawl_inventory_items` is the V3
crawl alone, :func:`crawl_inventory_pages` the V1 crawl alone, a page at a time.

:func:`paginate_inventory` is plain offset paging, for small result sets and user sorts; it
refuses to go past 10,000 items with :class:`~wixinv_async.errors.OffsetLimitError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, Final, Generic, Literal, NamedTuple, Protocol, TypeVar

from ._pagebuffer import PageBuffer, Signal
from .catalog import CatalogVersion
from .core.fanout import FanoutChoice, first_fanout, probed_fanout
from .core.keyset import KeysetPlan, Segment, SegmentState, compose_filter
from .crawler_v3 import InventoryItemsQuerier, V3Crawler
from .errors import InvalidInputError, OffsetLimitError, TransportError, WrongCatalogError
from .models import MAX_OFFSET_ITEMS, MAX_PAGE_LIMIT, InventoryItem, QueryInventoryResponse
from .models_v3 import MAX_QUERY_LIMIT, InventoryItemV3
from .settings import is_int

__all__ = [
    "AnyInventoryItem",
    "CrawlClient",
    "CrawlStats",
    "InventoryCrawl",
    "InventoryItemsQuerier",
    "InventoryQuerier",
    "crawl_inventory",
    "crawl_inventory_items",
    "crawl_inventory_pages",
    "paginate_inventory",
]

T = TypeVar("T")
AnyInventoryItem = InventoryItem | InventoryItemV3
"""What :func:`crawl_inventory` yields: a V1 item (per product) or a V3 item (per variant
and location), by the site's catalog."""
Page = list[InventoryItem]
Fanout = Literal["auto", "max"]

logger = logging.getLogger("wixinv_async.crawler")

_ASCENDING: Final = ({"numericId": "asc"},)
_DESCENDING: Final = ({"numericId": "desc"},)
MAX_SEGMENTS: Final = 256


class InventoryQuerier(Protocol):
    """What the crawler needs of a client: :meth:`InventoryClient.query_inventory`."""

    async def query_inventory(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: Sequence[Mapping[str, str]] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> QueryInventoryResponse: ...


class CrawlClient(InventoryQuerier, InventoryItemsQuerier, Protocol):
    """What :func:`crawl_inventory` needs of a client: both catalogs' queries and the
    cached catalog detection (:class:`InventoryClient` fits)."""

    async def catalog_version(self) -> CatalogVersion: ...


class _Counted(Protocol):
    def stats(self) -> CrawlStats: ...


class CrawlStats(NamedTuple):
    """A snapshot of one crawl's counters."""

    requests: int
    """Query Inventory calls made, the two bound queries included."""
    pages: int
    """Non-empty pages handed to the consumer."""
    items: int
    """Items handed to the consumer."""
    segments: int
    """Segments read: the initial split plus one per steal."""
    steals: int
    """Times an idle worker took half of another segment."""
    max_buffered: int
    """Most pages held at once between the workers and the consumer."""
    cursors: int = 0
    """Cursors the crawl chose to run (at most ``segments``; 0 before it chose)."""
    catalog: CatalogVersion | None = None
    """The catalog read (``None`` before :func:`crawl_inventory` detected it, and for
    :func:`crawl_inventory_pages`, which does not detect)."""


class InventoryCrawl(Generic[T]):
    """An async iterator over a running crawl; also an async context manager that stops it.

    Use ``async with`` (or ``contextlib.aclosing``) when you may leave the loop early: the
    workers are then stopped before the block exits, not whenever the iterator is collected.
    """

    __slots__ = ("_crawler", "_source")

    def __init__(self, crawler: _Counted, source: AsyncGenerator[T, None]) -> None:
        self._crawler = crawler
        self._source = source

    def __aiter__(self) -> InventoryCrawl[T]:
        return self

    async def __anext__(self) -> T:
        return await self._source.__anext__()

    async def aclose(self) -> None:
        """Stop the workers and wait for them. Idempotent."""
        await self._source.aclose()

    async def __aenter__(self) -> InventoryCrawl[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def stats(self) -> CrawlStats:
        """The crawl's counters so far."""
        return self._crawler.stats()

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<InventoryCrawl requests={s.requests} items={s.items} segments={s.segments} "
            f"steals={s.steals}>"
        )


def crawl_inventory(
    client: CrawlClient,
    *,
    filter: Mapping[str, Any] | None = None,
    segments: int = 8,
    page_size: int = 100,
    v3_page_size: int = MAX_QUERY_LIMIT,
    ordered: bool = False,
    adaptive: bool = True,
    buffer_pages: int | None = None,
    fanout: Fanout = "auto",
) -> InventoryCrawl[AnyInventoryItem]:
    """Every inventory item matching ``filter``, each exactly once, read by up to
    ``segments`` concurrent keyset cursors, on whichever catalog the site runs.

    The crawl first asks ``client.catalog_version()`` (cached by the client: one Get Catalog
    Version the first time it meets the site). On a Catalog V1 site it yields
    :class:`~wixinv_async.models.InventoryItem` (one per product, with its variants), on a
    Catalog V3 site :class:`~wixinv_async.models_v3.InventoryItemV3` (one per variant and
    location: :func:`crawl_inventory_items`); narrow with ``isinstance``. A site without
    stores yields nothing. A site that moves to the other catalog during the crawl makes it
    raise :class:`~wixinv_async.errors.WrongCatalogError` (items already yielded came from
    the old catalog; none of the new one is mixed in): crawl again to read the new one.
    Refused before it yielded any item (the client's cached catalog was stale), it detects
    again and reads the catalog the site runs now.

    ``filter`` is the catalog's own filter (a dict), AND-ed with each cursor's range: V1's
    Query Inventory language (``numericId``, ``trackQuantity``, ...) or V3's (``quantity``,
    ``trackQuantity``, ``locationId``, ...); ``trackQuantity`` means the same on both.
    ``page_size`` is the items per V1 request (1 to 100), ``v3_page_size`` per V3 request
    (1 to 1000). ``ordered`` yields in numericId order (V1) or productId order (V3), at
    the cost of some head-of-line waiting; otherwise items come as pages arrive.
    ``adaptive=False`` turns V1's work stealing off (a fixed split, for comparison).
    ``buffer_pages`` bounds the pages held for a slow consumer (default ``2 * segments``).
    ``fanout="auto"`` runs only as many cursors as pay: measured from the first queries'
    latency against the site's pace (one cursor when the rate limit, not latency, is what
    bounds the crawl) and no more than the catalog gives four pages each; ``"max"`` always
    runs ``segments`` (see :mod:`wixinv_async.core.fanout`).
    """
    v1 = _Crawler(client, filter, segments, page_size, ordered, adaptive, buffer_pages, fanout)
    v3 = _v3_crawler(client, filter, segments, v3_page_size, ordered, buffer_pages, fanout)
    dispatch = _Dispatch(client, v1, v3)
    return InventoryCrawl(dispatch, dispatch.items())


def crawl_inventory_items(
    client: InventoryItemsQuerier,
    *,
    filter: Mapping[str, Any] | None = None,
    segments: int = 8,
    page_size: int = MAX_QUERY_LIMIT,
    ordered: bool = False,
    buffer_pages: int | None = None,
    fanout: Fanout = "auto",
) -> InventoryCrawl[InventoryItemV3]:
    """Every item of a Catalog V3 site matching ``filter`` (a V3 filter), each exactly
    once, by up to ``segments`` cursors over productId ranges (:mod:`wixinv_async.crawler_v3`
    explains the split and its cost: at most ``ceil(N / page_size) + 1 + (cursors - 1)``
    requests). ``page_size`` 1 to 1000; the other options as in :func:`crawl_inventory`.
    On a V1 site it raises :class:`~wixinv_async.errors.WrongCatalogError`."""
    crawler = _v3_crawler(client, filter, segments, page_size, ordered, buffer_pages, fanout)
    stats = _V3Stats(crawler)
    return InventoryCrawl(stats, _flatten(crawler.pages()))


def crawl_inventory_pages(
    client: InventoryQuerier,
    *,
    filter: Mapping[str, Any] | None = None,
    segments: int = 8,
    page_size: int = 100,
    ordered: bool = False,
    adaptive: bool = True,
    buffer_pages: int | None = None,
    fanout: Fanout = "auto",
) -> InventoryCrawl[list[InventoryItem]]:
    """:func:`crawl_inventory` of a Catalog V1 site a page at a time: non-empty lists of at
    most ``page_size`` items, each from one cursor (ascending within the page). It does not
    detect the catalog: on a V3 site it raises :class:`~wixinv_async.errors.WrongCatalogError`."""
    crawler = _Crawler(client, filter, segments, page_size, ordered, adaptive, buffer_pages, fanout)
    return InventoryCrawl(crawler, crawler.pages())


async def _flatten(pages: AsyncGenerator[Sequence[T], None]) -> AsyncGenerator[T, None]:
    try:
        async for page in pages:
            for item in page:
                yield item
    finally:
        await pages.aclose()


def _v3_crawler(
    client: InventoryItemsQuerier,
    user_filter: Mapping[str, Any] | None,
    segments: int,
    page_size: int,
    ordered: bool,
    buffer_pages: int | None,
    fanout: Fanout,
) -> V3Crawler:
    workers = _check_int("segments", segments, 1, MAX_SEGMENTS)
    if fanout not in ("auto", "max"):
        raise InvalidInputError("fanout", fanout, 'must be "auto" or "max"')
    capacity = 2 * workers if buffer_pages is None else buffer_pages
    capacity = _check_int("buffer_pages", capacity, 1, 1 << 20)
    user_filter = _check_filter(user_filter)
    return V3Crawler(client, user_filter, workers, page_size, ordered, capacity, fanout)


class _V3Stats:
    """A V3 crawl's counters, as :class:`CrawlStats`."""

    __slots__ = ("_crawler",)

    def __init__(self, crawler: V3Crawler) -> None:
        self._crawler = crawler

    def stats(self) -> CrawlStats:
        crawler, buffer = self._crawler, self._crawler.buffer
        return CrawlStats(
            requests=crawler.requests,
            pages=buffer.pages_out,
            items=buffer.items_out,
            segments=crawler.segments,
            steals=0,
            max_buffered=buffer.max_held,
            cursors=crawler.cursors,
            catalog=CatalogVersion.V3_CATALOG,
        )


class _Dispatch:
    """:func:`crawl_inventory`: detect the catalog, then run that catalog's crawl.

    A wrong-catalog refusal before any item was handed over means the client's cached
    catalog was stale (the site moved since it was detected): nothing can be mixed yet, so
    the crawl detects again and reads the catalog the site runs now, once. After an item
    was handed over it raises instead.
    """

    __slots__ = ("_catalog", "_client", "_v1", "_v3", "_yielded")

    def __init__(self, client: CrawlClient, v1: _Crawler, v3: V3Crawler) -> None:
        self._client = client
        self._v1 = v1
        self._v3 = v3
        self._catalog: CatalogVersion | None = None
        self._yielded = False

    def stats(self) -> CrawlStats:
        requests = self._v1.stats().requests + self._v3.requests  # both, after a restart
        if self._catalog is CatalogVersion.V3_CATALOG:
            return _V3Stats(self._v3).stats()._replace(requests=requests)
        return self._v1.stats()._replace(catalog=self._catalog, requests=requests)

    async def items(self) -> AsyncGenerator[AnyInventoryItem, None]:
        version = await self._client.catalog_version()
        try:
            async with aclosing(self._read(version)) as items:
                async for item in items:
                    yield item
            return
        except WrongCatalogError:
            if self._yielded:
                raise
            again = await self._client.catalog_version()
            if again is version:
                raise
        logger.info(
            "crawl: the site runs %s, not %s as cached: reading %s",
            again.value,
            version.value,
            again.value,
        )
        async with aclosing(self._read(again)) as items:
            async for item in items:
                yield item

    async def _read(self, version: CatalogVersion) -> AsyncGenerator[AnyInventoryItem, None]:
        self._catalog = version
        source: AsyncGenerator[AnyInventoryItem, None]
        if version is CatalogVersion.V3_CATALOG:
            source = _flatten(self._v3.pages())
        elif version is CatalogVersion.V1_CATALOG:
            source = _flatten(self._v1.pages())
        else:
            logger.info("crawl: the site has no stores (%s): nothing to read", version.value)
            return
        try:
            async for item in source:
                self._yielded = True
                yield item
        finally:
            await source.aclose()


# --- the driver ----------------------------------------------------------------------------


class _Bounds(NamedTuple):
    """What the two bound queries found and how long they took."""

    lo: int
    hi: int
    total: int | None
    """``totalResults`` of the ascending query: the items matching the filter."""
    first_answer: float
    """Seconds from sending both to the first answer (an upper bound of the latency)."""
    gap: float
    """Seconds between the two answers (the site's slot interval when it paces)."""


class _Crawler:
    """One crawl: the plan, the workers that read it and the buffer they fill."""

    def __init__(
        self,
        client: InventoryQuerier,
        user_filter: Mapping[str, Any] | None,
        segments: int,
        page_size: int,
        ordered: bool,
        adaptive: bool,
        buffer_pages: int | None,
        fanout: Fanout,
    ) -> None:
        self._client = client
        self._filter = _check_filter(user_filter)
        self._workers = _check_int("segments", segments, 1, MAX_SEGMENTS)
        self._page_size = _check_int("page_size", page_size, 1, MAX_PAGE_LIMIT)
        if fanout not in ("auto", "max"):
            raise InvalidInputError("fanout", fanout, 'must be "auto" or "max"')
        self._fanout: Fanout = fanout
        capacity = 2 * self._workers if buffer_pages is None else buffer_pages
        self._ordered = ordered
        self._adaptive = adaptive
        self._signal = Signal()
        capacity = _check_int("buffer_pages", capacity, 1, 1 << 20)
        self._buffer = PageBuffer[Page](ordered, capacity, self._signal)
        self._plan: KeysetPlan | None = None
        self._requests = 0
        self._cursors = 0

    def stats(self) -> CrawlStats:
        plan = self._plan
        return CrawlStats(
            requests=self._requests,
            pages=self._buffer.pages_out,
            items=self._buffer.items_out,
            segments=len(plan.segments) if plan is not None else 0,
            steals=plan.steals if plan is not None else 0,
            max_buffered=self._buffer.max_held,
            cursors=self._cursors,
        )

    async def pages(self) -> AsyncGenerator[Page, None]:
        """The pages, as the consumer should see them; closing it stops the workers."""
        bounds = await self._bounds()
        if bounds is None:
            return
        choice = self._first_choice(bounds)
        parts = 1 if choice.probe else choice.cursors
        plan = self._plan = KeysetPlan(
            bounds.lo, bounds.hi, parts, steal=self._adaptive, min_steal_items=2 * self._page_size
        )
        self._buffer.plan = plan
        runner = asyncio.create_task(self._run(plan, bounds, choice), name="wixinv-crawl")
        try:
            while (page := await self._buffer.get()) is not None:
                yield page
        finally:
            await _stop(runner)

    async def _query(
        self, filter: Mapping[str, Any] | None, sort: Sequence[Mapping[str, str]], limit: int
    ) -> QueryInventoryResponse:
        self._requests += 1
        return await self._client.query_inventory(filter=filter, sort=sort, limit=limit)

    async def _timed_query(
        self, filter: Mapping[str, Any] | None, sort: Sequence[Mapping[str, str]], limit: int
    ) -> tuple[QueryInventoryResponse, float]:
        """The answer and the loop time it arrived."""
        response = await self._query(filter, sort, limit)
        return response, asyncio.get_running_loop().time()

    async def _bounds(self) -> _Bounds | None:
        """The lowest and highest numericId matching the filter, by two concurrent queries."""
        sent = asyncio.get_running_loop().time()
        try:
            async with asyncio.TaskGroup() as group:
                first = group.create_task(self._timed_query(self._filter, _ASCENDING, 1))
                last = group.create_task(self._timed_query(self._filter, _DESCENDING, 1))
        except ExceptionGroup as errors:
            raise _first_leaf(errors) from None
        (low, low_at), (high, high_at) = first.result(), last.result()
        lowest, highest = low.inventory_items, high.inventory_items
        if not lowest or not highest:
            return None
        lo, hi = _numeric_id(lowest[0]), _numeric_id(highest[0])
        total = low.total_results if isinstance(low.total_results, int) else None
        answered = min(low_at, high_at)
        return _Bounds(lo, max(lo, hi), total, answered - sent, abs(high_at - low_at))

    def _first_choice(self, bounds: _Bounds) -> FanoutChoice:
        if self._fanout == "max":
            choice = FanoutChoice(self._workers, probe=False)
        else:
            choice = first_fanout(
                self._workers, bounds.total, self._page_size, bounds.first_answer, bounds.gap
            )
        if not choice.probe:
            self._chose(choice.cursors, bounds, None)
        return choice

    def _chose(self, cursors: int, bounds: _Bounds, probe: float | None) -> None:
        self._cursors = cursors
        logger.info(
            "crawl fan-out: %d of at most %d cursors (%s; %s items; first answer %.1f ms, "
            "answers %.1f ms apart%s)",
            cursors,
            self._workers,
            self._fanout,
            "?" if bounds.total is None else bounds.total,
            bounds.first_answer * 1000,
            bounds.gap * 1000,
            "" if probe is None else f", probe page {probe * 1000:.1f} ms",
        )

    async def _run(self, plan: KeysetPlan, bounds: _Bounds, choice: FanoutChoice) -> None:
        """All workers in one task group: the first error cancels the rest and is handed to
        the consumer; a cancellation (the consumer left) cancels them all."""
        try:
            cursors, first = choice.cursors, None
            if choice.probe:
                cursors, first = await self._probe(plan, bounds)
            async with asyncio.TaskGroup() as group:
                for i in range(cursors):
                    start = first if i == 0 else None
                    group.create_task(self._worker(plan, start), name=f"wixinv-crawl-worker-{i}")
        except Exception as exc:  # an ExceptionGroup of the workers' errors, or the probe's
            error = _first_leaf(exc)
            # The client has already retried what was safe to retry: this ends the crawl.
            logger.warning(
                "crawl stopped after %d requests: %s: %s",
                self._requests,
                type(error).__name__,
                error,
            )
            self._buffer.fail(error)
            return
        self._buffer.close()

    async def _probe(self, plan: KeysetPlan, bounds: _Bounds) -> tuple[int, Segment | None]:
        """Read the first page with one cursor, timed, then split what is left among as many
        cursors as the timing says pay; the cursors and the probe's segment if it has more."""
        segment = plan.claim()
        assert segment is not None  # a fresh plan of one segment
        started = asyncio.get_running_loop().time()
        more = await self._read_page(plan, segment)
        took = asyncio.get_running_loop().time() - started
        latency = min(bounds.first_answer, took)
        cursors = probed_fanout(self._workers, bounds.total, self._page_size, latency, bounds.gap)
        self._chose(cursors, bounds, took)
        if not more:
            self._segment_over(segment)
            return cursors, None
        added = plan.split(segment, cursors)
        if added:
            logger.debug("crawl split the rest of segment %d into %d", segment.key, cursors)
        self._signal.pulse()
        return cursors, segment

    async def _worker(self, plan: KeysetPlan, segment: Segment | None) -> None:
        try:
            if segment is not None:
                await self._read(plan, segment)
            while not plan.finished:
                steals = plan.steals
                segment = plan.claim()
                if segment is None:
                    await self._signal.wait()
                    continue
                if plan.steals != steals:
                    _log_steal(plan, segment)
                await self._read(plan, segment)
        except Exception as exc:
            self._buffer.fail(exc)
            raise

    async def _read(self, plan: KeysetPlan, segment: Segment) -> None:
        """Read ``segment`` page by page until it is exhausted (or parked, for the open tail)."""
        while await self._read_page(plan, segment):
            pass
        self._segment_over(segment)

    async def _read_page(self, plan: KeysetPlan, segment: Segment) -> bool:
        """Read the next page of ``segment`` and hand it over; whether it has more."""
        window = plan.begin_read(segment)
        if window is None:
            return False
        where = compose_filter(self._filter, window.after, window.end)
        response = await self._query(where, _ASCENDING, self._page_size)
        items, total = response.inventory_items, response.total_results
        outcome = plan.record_page(
            segment,
            [_numeric_id(i) for i in items],
            self._page_size,
            window_total=total if isinstance(total, int) else None,
        )
        self._signal.pulse()
        if outcome.keep:
            place = self._buffer.ticket(segment)
            await self._buffer.put(segment, place, items[: outcome.keep])
        return outcome.more

    def _segment_over(self, segment: Segment) -> None:
        if segment.state is SegmentState.DONE:
            self._buffer.seal(segment)
        elif segment.state is SegmentState.PARKED:
            logger.debug("crawl parked the open tail (segment %d) to re-read it last", segment.key)
        self._signal.pulse()


def _log_steal(plan: KeysetPlan, thief: Segment) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        victim = plan.segments[plan.segments.index(thief) - 1]
        logger.debug(
            "crawl steal %d: segment %d takes (%d, %s] from segment %d (read up to %d)",
            plan.steals,
            thief.key,
            thief.start,
            "open" if thief.end is None else thief.end,
            victim.key,
            victim.after,
        )


async def _stop(runner: asyncio.Task[None]) -> None:
    """Cancel the workers' task and wait until every worker has finished."""
    runner.cancel()
    await asyncio.wait([runner])
    if not runner.cancelled():
        runner.exception()  # retrieved: it was already handed over through the buffer


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


# --- offset paging -------------------------------------------------------------------------


async def paginate_inventory(
    client: InventoryQuerier,
    *,
    filter: Mapping[str, Any] | None = None,
    sort: Sequence[Mapping[str, str]] | None = None,
    page_size: int = 100,
    max_items: int | None = None,
) -> AsyncIterator[InventoryItem]:
    """Items matching ``filter`` in ``sort`` order, by offset: for small result sets.

    Wix serves at most 10,000 items by offset. When the first page reports more than that
    (and ``max_items`` does not stop sooner) this raises
    :class:`~wixinv_async.errors.OffsetLimitError` before yielding anything: use
    :func:`crawl_inventory`. Offsets shift when items are added during paging (an item can
    be skipped or seen twice); the crawler has no such problem.
    """
    filter = _check_filter(filter)
    page_size = _check_int("page_size", page_size, 1, MAX_PAGE_LIMIT)
    wanted = MAX_OFFSET_ITEMS if max_items is None else max_items
    if is_int(wanted) and wanted > MAX_OFFSET_ITEMS:
        raise _offset_limit(f"max_items={wanted} asks for more than {MAX_OFFSET_ITEMS} items")
    _check_int("max_items", wanted, 0, MAX_OFFSET_ITEMS)
    offset = 0
    total: object = None
    while offset < wanted:
        limit = min(page_size, wanted - offset)
        response = await client.query_inventory(
            filter=filter, sort=sort, limit=limit, offset=offset
        )
        total = response.total_results
        if offset == 0 and max_items is None and isinstance(total, int) and total > wanted:
            raise _offset_limit(f"{total} items match")
        for item in response.inventory_items:
            yield item
        offset += len(response.inventory_items)
        if len(response.inventory_items) < limit:
            return
    if max_items is None and not (isinstance(total, int) and total <= offset):
        # 10,000 items read, the last page full, and the total unknown or above: there are more
        raise _offset_limit(f"{MAX_OFFSET_ITEMS} items read and the last page was full")


def _offset_limit(detail: str) -> OffsetLimitError:
    return OffsetLimitError(
        f"{detail}: Wix serves at most {MAX_OFFSET_ITEMS} items by offset; read them with "
        "crawl_inventory(), which pages by numericId"
    )


# --- input checks --------------------------------------------------------------------------


def _check_int(field: str, value: object, lowest: int, highest: int) -> int:
    if not is_int(value) or not lowest <= value <= highest:
        raise InvalidInputError(field, value, f"must be an int from {lowest} to {highest}")
    return value


def _check_filter(value: object) -> Mapping[str, Any] | None:
    if value is not None and not isinstance(value, Mapping):
        raise InvalidInputError("filter", value, "must be a mapping (a Query Inventory filter)")
    return value


def _numeric_id(item: InventoryItem) -> int:
    value = item.numeric_id
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
        raise TransportError(
            f"malformed Query Inventory item {item.id!r}: numericId={value!r} is not a "
            "string of ASCII digits"
        )
    return int(value)
