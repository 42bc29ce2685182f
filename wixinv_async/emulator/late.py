"""Requests applied late: after the server gave an ambiguous answer and the client gave up.

A ``late_`` fault answers 504, resets or stalls without applying, and hands the request here;
it is applied ``delay`` seconds after that answer, synchronously (as every request is), against
the site's state at that moment, so it may then be refused (a decrement that no longer has the
stock): that is counted, not journaled. Pending applies are dropped at shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ._errors import WixApiError

__all__ = ["LateApplies"]


class LateApplies:
    """The late applies of one emulator: scheduled on the running loop, awaitable."""

    __slots__ = ("_handles", "_idle", "applied", "dropped", "pending", "refused")

    def __init__(self) -> None:
        self.pending = 0
        """Requests drawn a late fault and not yet applied (or refused, or dropped)."""
        self.applied = 0
        self.refused = 0
        self.dropped = 0
        self._handles: set[asyncio.TimerHandle] = set()
        self._idle: asyncio.Event | None = None

    def __repr__(self) -> str:
        return (
            f"LateApplies(pending={self.pending}, applied={self.applied}, "
            f"refused={self.refused}, dropped={self.dropped})"
        )

    def expect(self) -> None:
        """A request drew a late fault: it is pending from now (while it stalls, too)."""
        self.pending += 1
        if self._idle is not None:
            self._idle.clear()

    def schedule(self, delay: float, apply: Callable[[], object]) -> None:
        """Run ``apply`` in ``delay`` seconds (an expected request's answer was given)."""
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def run() -> None:
            self._handles.discard(handle)
            try:
                apply()
            except WixApiError:
                self.refused += 1
            else:
                self.applied += 1
            self._done()

        handle = loop.call_later(delay, run)
        self._handles.add(handle)

    def drop_all(self) -> None:
        """Shutdown: the scheduled applies never happen."""
        for handle in self._handles:
            handle.cancel()
            self.dropped += 1
            self._done()
        self._handles.clear()

    def _done(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self._idle is not None:
            self._idle.set()

    async def wait(self) -> None:
        """Until every late apply expected so far has run (or was dropped)."""
        if self._idle is None:
            self._idle = asyncio.Event()
        if self.pending == 0:
            self._idle.set()
        await self._idle.wait()
