"""Tickets behave as asyncio futures: done/result/callbacks, wait, as_completed, gather."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wixinv_async.adjuster import InventoryAdjuster, OutcomeStatus, Ticket

C = OutcomeStatus.COMMITTED
SLOW = 3600.0


async def test_a_ticket_reports_done_and_its_result(fake: Any, variants: list[str]) -> None:
    """Before the outcome: not done, result() and exception() raise; after: the outcome."""
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        ticket = adj.submit_nowait("p0", variants[0], -1)
        assert not ticket.done() and not ticket.cancelled()
        with pytest.raises(asyncio.InvalidStateError):
            ticket.result()
        with pytest.raises(asyncio.InvalidStateError):
            ticket.exception()
        await adj.flush()
    assert ticket.done() and ticket.result().status is C and ticket.exception() is None


async def test_done_callbacks_get_the_ticket_and_can_be_removed(
    fake: Any, variants: list[str]
) -> None:
    """add_done_callback calls back with the ticket once settled (also when added after);
    a removed callback is not called."""
    seen: list[Ticket] = []
    dropped: list[Ticket] = []
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        ticket = adj.submit_nowait("p0", variants[0], -1)
        ticket.add_done_callback(seen.append)
        ticket.add_done_callback(dropped.append)
        assert ticket.remove_done_callback(dropped.append) == 1
        await adj.flush()
        late: list[Ticket] = []
        ticket.add_done_callback(late.append)
        await asyncio.sleep(0)
    assert seen == [ticket] and late == [ticket] and dropped == []


async def test_tickets_work_with_wait_as_completed_and_gather(
    fake: Any, variants: list[str]
) -> None:
    """asyncio.wait returns the tickets themselves; as_completed and gather give outcomes."""
    async with InventoryAdjuster(fake, linger=0.001) as adj:
        tickets = [adj.submit_nowait(f"p{i}", variants[i], -1) for i in range(3)]
        done, pending = await asyncio.wait(tickets)
        assert done == set(tickets) and not pending
        more = [adj.submit_nowait(f"p{i}", variants[i], 1) for i in range(3)]
        outcomes = [await next_one for next_one in asyncio.as_completed(more)]
        gathered = await asyncio.gather(*tickets, *more)
    assert {o.status for o in outcomes + gathered} == {C}
    assert len(gathered) == 6


async def test_wait_with_a_timeout_leaves_a_pending_ticket_pending(
    fake: Any, variants: list[str]
) -> None:
    """asyncio.wait(timeout=) bounds a wait; the ticket cannot be cancelled and still settles."""
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        ticket = adj.submit_nowait("p0", variants[0], -1)
        done, pending = await asyncio.wait([ticket], timeout=0.001)
        assert (done, pending) == (set(), {ticket}) and ticket.cancel() is False
        await adj.flush()
    assert ticket.result().status is C


async def test_a_ticket_nobody_waits_for_builds_no_future(fake: Any, variants: list[str]) -> None:
    """Handing out and settling tickets costs no future unless someone awaits or calls back."""
    async with InventoryAdjuster(fake, linger=SLOW) as adj:
        tickets = [adj.submit_nowait(f"p{i}", variants[i], -1) for i in range(5)]
        await adj.flush()
    assert all(t.waiter is None for t in tickets[1:])
