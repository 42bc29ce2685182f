"""Ticket: a submitted delta's claim on its outcome, usable like an asyncio future."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from contextvars import Context
from typing import Any

from ..core.table import Entry
from ..outcomes import Outcome

__all__ = ["Ticket"]


class Ticket(Entry):
    """A submitted delta's claim on its :class:`~wixinv_async.outcomes.Outcome`.

    ``await ticket`` gives the outcome. It also behaves as an asyncio future: ``done()``,
    ``result()``, ``exception()`` (always ``None``: an outcome is data, never an error),
    ``add_done_callback()`` / ``remove_done_callback()``, and it can be passed to
    ``asyncio.wait``, ``asyncio.as_completed`` and ``asyncio.gather`` (which give back the
    tickets themselves). It cannot be cancelled (``cancel()`` returns ``False``: the delta may
    be on its way); ``asyncio.wait([ticket], timeout=...)`` bounds a wait, while
    ``asyncio.wait_for`` would wait for the outcome after its timeout.

    Deltas merged into one entry share one ticket, so a ticket costs nothing to hand out; the
    future behind it is made only when someone awaits it or adds a callback.
    """

    _asyncio_future_blocking = False
    """Marks a future-like object for ``asyncio.isfuture`` (``asyncio.wait`` and friends)."""

    def done(self) -> bool:
        """Whether the outcome is known."""
        return self.outcome is not None

    def cancelled(self) -> bool:
        """Always ``False``: a ticket is never cancelled (a CANCELLED outcome is an outcome)."""
        return False

    def cancel(self, msg: object = None) -> bool:
        """Refused (``False``): a delta cannot be called back once submitted."""
        return False

    def result(self) -> Outcome:
        """The outcome; raises ``asyncio.InvalidStateError`` before it is known."""
        outcome = self.outcome
        if outcome is None:
            raise asyncio.InvalidStateError("the outcome is not known yet")
        return outcome

    def exception(self) -> BaseException | None:
        """``None`` once the outcome is known (raises ``InvalidStateError`` before)."""
        self.result()
        return None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the ticket's future lives on (the running one until it has one)."""
        waiter = self.waiter
        return waiter.get_loop() if waiter is not None else asyncio.get_running_loop()

    def add_done_callback(
        self, fn: Callable[[Ticket], object], *, context: Context | None = None
    ) -> None:
        """Call ``fn(ticket)`` soon after the outcome is known (soon, if it is already)."""
        self._future().add_done_callback(_Relay(self, fn), context=context)

    def remove_done_callback(self, fn: Callable[[Ticket], object]) -> int:
        """Remove every registration of ``fn``; returns how many there were."""
        waiter = self.waiter
        return 0 if waiter is None else int(waiter.remove_done_callback(fn))

    def _future(self) -> asyncio.Future[Outcome]:
        waiter: asyncio.Future[Outcome] | None = self.waiter
        if waiter is None:
            waiter = self.waiter = asyncio.get_running_loop().create_future()
            if self.outcome is not None:
                waiter.set_result(self.outcome)
        return waiter

    def __await__(self) -> Generator[Any, None, Outcome]:
        outcome = self.outcome
        if outcome is not None:
            return outcome
        # Shielded: a cancelled awaiter must not cancel the future other awaiters share.
        result: Outcome = yield from asyncio.shield(self._future()).__await__()
        return result


class _Relay:
    """A done callback of the ticket's future that calls the user's with the ticket; equal to
    the user's callback, so ``remove_done_callback(fn)`` finds it."""

    __slots__ = ("fn", "ticket")

    def __init__(self, ticket: Ticket, fn: Callable[[Ticket], object]) -> None:
        self.ticket = ticket
        self.fn = fn

    def __call__(self, _future: object) -> None:
        self.fn(self.ticket)

    def __eq__(self, other: object) -> bool:
        return other is self or other == self.fn

    def __hash__(self) -> int:
        return hash(self.fn)
