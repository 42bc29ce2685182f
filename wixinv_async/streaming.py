"""Stream deltas through an adjuster and get each one's outcome back, in bounded memory.

::

    async for delta, outcome in adjust_stream(adjuster, deltas):
        if outcome.status is not OutcomeStatus.COMMITTED:
            print(delta, outcome.code)

What elasticsearch-py's ``async_streaming_bulk`` is to documents, :func:`adjust_stream` is to
stock deltas. ``deltas`` is any iterable or async iterable; each item is a :class:`StockDelta`,
a mapping with the same keys (``product_id`` or ``inventory_id``, ``variant_id``, ``delta``,
optional ``preorder``: what a JSON or CSV row gives), or a ``(product_id, variant_id, delta)``
tuple. At most ``window`` deltas are outstanding (submitted, outcome not yet yielded): the
input is read only as fast as outcomes come back, so memory stays bounded however long the
input is. Each item comes back once, as the very object that went in, with its
:class:`~wixinv_async.Outcome`.

Order: outcomes are yielded as they settle (a batch's deltas together, in input order within
it), not in input order; ``ordered=True`` yields in input order instead, at the cost of
head-of-line waiting (a slow batch holds back the ones after it, and with them the window).

A bad item never stops the stream: it is yielded with a ``REJECTED`` outcome of code
``INVALID_DELTA`` whose message names the field and value (what
:class:`~wixinv_async.InvalidInputError` says), and nothing of it is sent. The stream stops
only for an error of the input itself (raised from the iteration) or of the adjuster (closed:
:class:`~wixinv_async.AdjusterClosed`). Leaving the loop early (``break``; use
``contextlib.aclosing`` to make it prompt) stops reading the input; deltas already submitted
still go out with the adjuster's next batches, their outcomes unreported here.

The adjuster is used through its public API only (``submit`` and awaiting tickets), so a
stream can share it with other producers.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Final, NamedTuple, Protocol, TypeVar

# Outcome and OutcomeStatus are taken from the package's public names, wherever they live
# inside it: the package binds them before it imports this module.
from . import Outcome, OutcomeStatus
from .errors import InvalidInputError
from .settings import is_int

__all__ = ["INVALID_DELTA", "DeltaSubmitter", "StockDelta", "adjust_stream"]

INVALID_DELTA: Final = "INVALID_DELTA"
"""The code of the ``REJECTED`` outcome a malformed item is yielded with."""
DEFAULT_WINDOW: Final = 10_000

_FIELDS: Final = frozenset({"product_id", "inventory_id", "variant_id", "delta", "preorder"})
D = TypeVar("D")


class StockDelta(NamedTuple):
    """One stock change: ``delta`` units (negative: taken) of a variant, by product id (or,
    with ``product_id=None``, by ``inventory_id``), in the order of
    :meth:`InventoryAdjuster.submit`'s arguments. A product without options has one variant,
    :data:`~wixinv_async.DEFAULT_VARIANT_ID`."""

    product_id: str | None
    variant_id: str
    delta: int
    inventory_id: str | None = None
    preorder: bool = False


class DeltaSubmitter(Protocol):
    """What the stream needs of an adjuster: :meth:`InventoryAdjuster.submit`."""

    async def submit(
        self,
        product_id: str | None,
        variant_id: str,
        delta: int,
        *,
        inventory_id: str | None = None,
        preorder: bool = False,
        tag: object = None,
    ) -> Awaitable[Outcome]: ...


def to_stock_delta(item: object) -> StockDelta:
    """``item`` as a :class:`StockDelta`; :class:`InvalidInputError` naming the field if it
    has not the shape of one (the values are checked by the adjuster)."""
    if isinstance(item, StockDelta):
        return item
    if isinstance(item, Mapping):
        return _from_mapping(item)
    if isinstance(item, tuple) and len(item) == 3:
        product_id, variant_id, delta = item
        return StockDelta(product_id, variant_id, delta)
    raise InvalidInputError(
        "delta",
        item,
        "must be a StockDelta, a mapping of its fields or a (product_id, variant_id, delta) tuple",
    )


def _from_mapping(item: Mapping[Any, Any]) -> StockDelta:
    unknown = sorted(str(key) for key in item if key not in _FIELDS)
    if unknown:
        raise InvalidInputError(
            unknown[0], item[unknown[0]], f"is not a field of a delta {sorted(_FIELDS)}"
        )
    for required in ("variant_id", "delta"):
        if required not in item:
            raise InvalidInputError(required, None, "is missing")
    if "product_id" not in item and "inventory_id" not in item:
        raise InvalidInputError("product_id", None, "is missing (give it or inventory_id)")
    preorder = item.get("preorder", False)
    if not isinstance(preorder, bool):
        raise InvalidInputError("preorder", preorder, "must be a bool")
    return StockDelta(
        item.get("product_id"),
        item["variant_id"],
        item["delta"],
        item.get("inventory_id"),
        preorder,
    )


def adjust_stream(
    adjuster: DeltaSubmitter,
    deltas: Iterable[D] | AsyncIterable[D],
    *,
    window: int = DEFAULT_WINDOW,
    ordered: bool = False,
) -> AsyncGenerator[tuple[D, Outcome], None]:
    """Each item of ``deltas`` with its outcome, with at most ``window`` outstanding.

    ``adjuster`` is an :class:`~wixinv_async.InventoryAdjuster` (anything with its ``submit``).
    See the module docstring for the items accepted, the order and what a bad item gives.
    """
    if not is_int(window) or window < 1:
        raise InvalidInputError("window", window, "must be an int >= 1")
    if not isinstance(deltas, (Iterable, AsyncIterable)):
        raise InvalidInputError("deltas", deltas, "must be an iterable or an async iterable")
    return _Stream(adjuster, window, ordered).run(deltas)


class _Stream:
    """One stream's outstanding deltas, grouped by the ticket they share."""

    def __init__(self, adjuster: DeltaSubmitter, window: int, ordered: bool) -> None:
        self._adjuster = adjuster
        self._window = window
        self._ordered = ordered
        self._outstanding = 0
        self._waiters: dict[asyncio.Future[Outcome], tuple[int, list[Any]]] = {}
        """Each pending ticket's waiter: the ticket's id and the items that share it."""
        self._by_ticket: dict[int, tuple[object, asyncio.Future[Outcome]]] = {}
        """Pending tickets by identity, each kept alive with its waiter so its id is not
        reused while it is here (tickets compare by value, so they cannot be keys)."""
        self._queue: collections.deque[tuple[Any, asyncio.Future[Outcome] | Outcome]] = (
            collections.deque()
        )
        self._settled: collections.deque[tuple[Any, Outcome]] = collections.deque()

    async def run(
        self, deltas: Iterable[Any] | AsyncIterable[Any]
    ) -> AsyncGenerator[tuple[Any, Outcome], None]:
        reader = _Reader(deltas)
        try:
            while True:
                while self._settled:
                    self._outstanding -= 1
                    yield self._settled.popleft()
                if reader.exhausted and not self._outstanding:
                    return
                if not reader.exhausted and self._outstanding < self._window:
                    item = reader.ready()
                    if item is not _PENDING:
                        if item is not _END:
                            await self._submit(item)
                        continue
                await self._wait(reader)
        finally:
            reader.close()
            for waiter in self._waiters:
                waiter.cancel()

    async def _submit(self, item: Any) -> None:
        self._outstanding += 1
        try:
            delta = to_stock_delta(item)
            ticket = await self._adjuster.submit(
                delta.product_id,
                delta.variant_id,
                delta.delta,
                inventory_id=delta.inventory_id,
                preorder=delta.preorder,
            )
        except InvalidInputError as exc:
            self._settle_now(
                item, Outcome(OutcomeStatus.REJECTED, code=INVALID_DELTA, message=str(exc))
            )
            return
        known = self._by_ticket.get(id(ticket))
        if known is not None and known[0] is ticket and known[1] in self._waiters:
            waiter = known[1]  # merged into a pending entry: its outcome is this one's too
        else:
            waiter = asyncio.ensure_future(ticket)
            self._by_ticket[id(ticket)] = (ticket, waiter)
            self._waiters[waiter] = (id(ticket), [])
        self._waiters[waiter][1].append(item)
        if self._ordered:
            self._queue.append((item, waiter))

    def _settle_now(self, item: Any, outcome: Outcome) -> None:
        if self._ordered:
            self._queue.append((item, outcome))
            self._drain_ordered()
        else:
            self._settled.append((item, outcome))

    async def _wait(self, reader: _Reader) -> None:
        """Until an outcome settles or (while there is room) the input gives an item."""
        pending: set[asyncio.Future[Any]] = set(self._waiters)
        if not reader.exhausted and self._outstanding < self._window:
            pending.add(reader.next_item())
        if not pending:
            return
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for waiter in done:
            shared = self._waiters.pop(waiter, None)
            if shared is None:
                continue  # the input's task
            key, items = shared
            del self._by_ticket[key]
            if not self._ordered:
                outcome = waiter.result()
                self._settled.extend((item, outcome) for item in items)
        if self._ordered:
            self._drain_ordered()

    def _drain_ordered(self) -> None:
        queue = self._queue
        while queue:
            item, state = queue[0]
            if not isinstance(state, Outcome):  # a ticket (future-like) still to settle
                if not state.done():
                    return
                state = state.result()
            queue.popleft()
            self._settled.append((item, state))


class _Marker:
    __slots__ = ()


_PENDING: Final = _Marker()
_END: Final = _Marker()


class _Reader:
    """The input, read one item at a time: a plain iterable at once, an async one by a task
    that can be raced against the outcomes."""

    def __init__(self, deltas: Iterable[Any] | AsyncIterable[Any]) -> None:
        self.exhausted = False
        self._sync: Iterator[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        if isinstance(deltas, AsyncIterable):
            self._async = aiter(deltas)
        else:
            self._sync = iter(deltas)
        self._task: asyncio.Task[Any] | None = None

    def ready(self) -> Any:
        """The next item if it is at hand, ``_END`` at the end, ``_PENDING`` if it must be
        awaited (see :meth:`next_item`)."""
        if self._sync is not None:
            try:
                return next(self._sync)
            except StopIteration:
                self.exhausted = True
                return _END
        task = self._task
        if task is None or not task.done():
            return _PENDING
        self._task = None
        try:
            return task.result()
        except StopAsyncIteration:
            self.exhausted = True
            return _END

    def next_item(self) -> asyncio.Future[Any]:
        """The task reading the next item of an async input (started once)."""
        assert self._async is not None
        if self._task is None:
            self._task = asyncio.ensure_future(anext(self._async))
        return self._task

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
