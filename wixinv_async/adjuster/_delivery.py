"""The writer seam, and the Catalog V1 writer behind it.

The adjuster's dispatcher plans batches and its ledger settles entries; between them sits one
declared protocol, :class:`BatchWriter`: "send this batch of entries and tell me, per entry or
for the whole request, what happened". A writer reports through the batch's
:class:`Delivery`:

- ``await delivery.on_wire(entries, request_id, parent_id, attempt, witness)`` right before a
  request goes on the wire (for an ``InventoryClient``, once its pacing slot is granted;
  ``witness``: the mark of its witness entry, if any): the ``on_send`` hook runs there, so a
  journal marks "sent" only what is really about to be sent. If it raises, the request must
  not be sent.
- ``delivery.answered()`` once the request has its answer (or failed).
- ``delivery.maybe_applied(entries)`` after an ambiguous failure that will be resent.
- ``delivery.settle(request_id, entries, outcome)`` as entries get their outcome: a whole
  request, a part of one, or one entry (a per-item API settles entry by entry).

:class:`AtomicWriter` is the V1 writer: atomic batches over an :class:`InventoryWriter`,
bisected by :class:`~wixinv_async.core.bisect.BisectRun` when the server refuses a batch for
some entries' sake, resent within a :class:`~wixinv_async.settings.BatchPolicy` when provably
not applied (:func:`~wixinv_async.core.failures.verdict`). A V3 writer (per-item results)
implements :class:`BatchWriter` beside it, without touching the dispatcher or the ledger.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

from ..client import InventoryClient
from ..core.bisect import BisectRun, Refused, Result
from ..core.bulk_results import BulkItemResult
from ..core.failures import Bisect, Verdict, applied, outcome_for, verdict
from ..core.planner import decrement_entries, increment_entries, sent_entry
from ..core.table import Entry
from ..core.wirebody import ENCODE_ERRORS, decrement_body, increment_body
from ..core.witness import Read, Resolution
from ..errors import ApiError, Applied, RateLimitedError, WixInventoryError
from ..models import DecrementData, IncrementData
from ..outcomes import Catalog, Kind, Outcome, OutcomeStatus, WitnessMark
from ..settings import BatchPolicy
from ._ledger import ReportError
from ._witness import WitnessDriver, WitnessSlot

__all__ = ["AtomicWriter", "BatchWriter", "Delivery", "InventoryWriter"]

logger = logging.getLogger("wixinv_async.adjuster")

_COMMITTED: Final = Outcome(OutcomeStatus.COMMITTED)
_BY_WITNESS: Final = Outcome(
    OutcomeStatus.COMMITTED, "COMMITTED_BY_WITNESS", "an ambiguous failure, resolved by witness"
)
_NOT_APPLIED: Final = Outcome(
    OutcomeStatus.REJECTED,
    "NOT_APPLIED",
    "an ambiguous failure, resolved by witness: not applied",
    retriable=True,
)


class InventoryWriter(Protocol):
    """What the V1 writer needs of a client: the two batch calls, returning the answer's
    request id if they know it (``InventoryClient`` fits, and is also told to skip re-checking
    entries and to report when it is on the wire)."""

    async def increment_inventory(self, entries: Sequence[IncrementData]) -> str | None: ...
    async def decrement_inventory(self, entries: Sequence[DecrementData]) -> str | None: ...


class Delivery(Protocol):
    """What a :class:`BatchWriter` reports to, for one planned batch (see the module doc)."""

    @property
    def batch_id(self) -> int: ...
    @property
    def kind(self) -> Kind: ...
    def new_request_id(self) -> int: ...
    async def on_wire(
        self,
        entries: Sequence[Entry],
        request_id: int,
        parent_id: int | None,
        attempt: int,
        witness: WitnessMark | None = None,
    ) -> None: ...
    def answered(self) -> None: ...
    def use_catalog(self, catalog: Catalog) -> None: ...
    def item_results(self, entries: Sequence[Entry], results: Sequence[BulkItemResult]) -> None: ...
    def searched(self) -> None: ...
    def maybe_applied(self, entries: Sequence[Entry]) -> None: ...
    def settle(self, request_id: int, entries: Sequence[Entry], outcome: Outcome) -> None: ...


class BatchWriter(Protocol):
    """The writer seam: deliver one planned batch and settle every one of its entries."""

    async def write(self, entries: list[Entry], delivery: Delivery) -> None:
        """Send ``entries`` (all of ``delivery.kind``), settling each through ``delivery``
        before returning (an entry left unsettled ends IN_DOUBT, code ``UNKNOWN``)."""
        ...

    def rate_limited(self) -> int:
        """429 answers this writer has seen since it was made."""
        ...


class _OnSendFailed(Exception):
    """The ``on_send`` hook raised (its error is the cause): the request was not sent."""


class AtomicWriter:
    """The Catalog V1 writer: atomic batches, bisection of refusals, resends by policy."""

    def __init__(
        self,
        client: InventoryWriter,
        *,
        policy: BatchPolicy,
        retry_ambiguous: bool,
        report_error: ReportError,
        rng: random.Random | None = None,
        witness: WitnessDriver | None = None,
    ) -> None:
        self._client = client
        self._witness = witness
        self._policy = policy
        self._retry_ambiguous = retry_ambiguous
        self._report_error = report_error
        self._rng = rng or random.Random()
        # An InventoryClient is ours: it counts every 429 it saw, skips re-checking entries the
        # table checked (validate=False) and calls back once its pacing slot is granted.
        self._ours = client if isinstance(client, InventoryClient) else None
        self._429_base = self._ours.stats().rate_limited if self._ours is not None else 0
        self._429_surfaced = 0
        self._refused: dict[object, None] = {}
        """Keys the server refused on their own, oldest first (``BatchPolicy.refused_keys``)."""

    def __repr__(self) -> str:
        return f"<AtomicWriter {self._client!r} {self._policy}>"

    def rate_limited(self) -> int:
        if self._ours is not None:
            return self._ours.stats().rate_limited - self._429_base
        return self._429_surfaced

    async def write(self, entries: list[Entry], delivery: Delivery) -> None:
        if self._witness is None:
            return await self._write(entries, delivery, None)
        slot = await self._witness.acquire()  # one request in flight per witness slot
        try:
            await self._write(entries, delivery, slot)
        finally:
            self._witness.release(slot)

    async def _write(
        self, entries: list[Entry], delivery: Delivery, slot: WitnessSlot | None
    ) -> None:
        known = self._refused
        apart = {i for i, e in enumerate(entries) if e.key in known} if known else ()
        run = BisectRun(entries, apart)
        ids: dict[int, int] = {}
        while (request := run.next_request()) is not None:
            rid = delivery.batch_id if request.number == 0 else delivery.new_request_id()
            ids[request.number] = rid
            parent = None if request.parent is None else ids[request.parent]
            if parent is not None:
                logger.debug(
                    "batch %d: bisecting, part %d of %d entries", parent, rid, len(request.entries)
                )
            result = await self._send(delivery, request.entries, rid, parent, slot)
            if isinstance(result, Result):
                if result is Result.COMMITTED and known:
                    for entry in request.entries:
                        known.pop(entry.key, None)
                run.record(result)
                continue
            refused, error = result
            rejected = run.record(refused)
            if rejected:
                self._remember_refused(rejected)
                delivery.settle(
                    rid, rejected, outcome_for(OutcomeStatus.REJECTED, error, "REFUSED")
                )

    def _remember_refused(self, rejected: list[Entry]) -> None:
        """Remember the keys the server refused on their own, forgetting the oldest."""
        cap, refused = self._policy.refused_keys, self._refused
        for entry in rejected:
            refused.pop(entry.key, None)
            refused[entry.key] = None
        while len(refused) > cap:
            del refused[next(iter(refused))]

    async def _send(
        self,
        delivery: Delivery,
        entries: list[Entry],
        rid: int,
        parent: int | None,
        slot: WitnessSlot | None = None,
    ) -> Result | tuple[Refused, BaseException]:
        """Send entries as one request, resending what was provably not applied, and settle
        them; unless the request was refused for an entry's sake: that is returned."""
        send = 0
        while True:
            send += 1
            if slot is not None:
                await slot.prepare(delivery.kind == "increment")
            error = await self._call(delivery, entries, rid, parent, send, slot)
            if not isinstance(error, BaseException):
                if slot is not None:
                    slot.committed()
                done = _COMMITTED if error is None else Outcome(_COMMITTED.status, request_id=error)
                delivery.settle(rid, entries, done)
                return Result.COMMITTED
            if isinstance(error, _OnSendFailed):
                cause = error.__cause__ or error
                failed = outcome_for(
                    OutcomeStatus.REJECTED, cause, "ON_SEND_FAILED", retriable=True
                )
                delivery.settle(rid, entries, failed)
                return Result.ENDED
            then = self._verdict(error, send, len(entries))
            if slot is not None and applied(error) is Applied.MAYBE:
                witnessed = await self._witnessed(delivery, slot, entries, rid, error, send)
                if witnessed is None:
                    continue  # NOT_APPLIED by witness: resent as never sent (exactly once)
                if isinstance(witnessed, Result):
                    return witnessed
                if isinstance(then, Outcome):  # IN_DOUBT still: say why
                    reason = witnessed.reason or "unresolved by witness"
                    message = f"{reason}; {then.message}" if then.message else reason
                    then = dataclasses.replace(then, message=message)
            if isinstance(then, Bisect):
                return Refused(then.hint), error
            if isinstance(then, Outcome):
                delivery.settle(rid, entries, then)
                return Result.ENDED
            if then.maybe_applied:
                delivery.maybe_applied(entries)
            logger.info(
                "request %d failed (%s), send %d: resending in %.2f s",
                rid,
                type(error).__name__,
                send,
                then.delay,
            )
            await asyncio.sleep(then.delay)

    async def _witnessed(
        self,
        delivery: Delivery,
        slot: WitnessSlot,
        entries: list[Entry],
        rid: int,
        error: BaseException,
        send: int,
    ) -> Result | Read | None:
        """Resolve an ambiguous failure by the witness: the request's end (COMMITTED, or
        NOT_APPLIED and not to be resent), ``None`` to resend it as never applied, or the
        read that left it IN_DOUBT (the usual verdict then applies)."""
        read = await slot.resolve(rid, tuple(sent_entry(e) for e in entries))
        if read.resolution is Resolution.COMMITTED:
            delivery.settle(rid, entries, _BY_WITNESS)
            return Result.COMMITTED
        if read.resolution is Resolution.IN_DOUBT:
            return read
        if self._retry_ambiguous and send < self._policy.max_sends:
            return None
        request_id = error.request_id if isinstance(error, ApiError) else None
        delivery.settle(rid, entries, dataclasses.replace(_NOT_APPLIED, request_id=request_id))
        return Result.ENDED

    def _verdict(self, error: BaseException, send: int, size: int) -> Verdict:
        if isinstance(error, RateLimitedError) and self._ours is None:
            self._429_surfaced += 1
        if not isinstance(error, WixInventoryError):
            self._report_error("unexpected error from the client: in doubt", error)
        return verdict(
            error,
            send,
            size=size,
            policy=self._policy,
            retry_ambiguous=self._retry_ambiguous,
            rng=self._rng,
        )

    async def _call(
        self,
        delivery: Delivery,
        entries: list[Entry],
        rid: int,
        parent: int | None,
        send: int,
        slot: WitnessSlot | None = None,
    ) -> BaseException | str | None:
        """One send through the client; its error, or once applied the answer's request id
        (``None`` when unknown)."""
        announced = False

        async def on_wire() -> None:
            nonlocal announced
            if announced:  # the client's own retry of this send: announced already
                return
            announced = True
            try:
                mark = slot.mark() if slot is not None else None
                await delivery.on_wire(entries, rid, parent, send, mark)
            except Exception as exc:
                raise _OnSendFailed("on_send failed") from exc

        increment = delivery.kind == "increment"
        try:
            if self._ours is not None:
                request_id = await self._call_ours(self._ours, increment, entries, slot, on_wire)
            else:
                await on_wire()
                if increment:
                    up = increment_entries(entries)
                    up.extend([slot.increment_entry()] if slot is not None else [])
                    request_id = await self._client.increment_inventory(up)
                else:
                    down = decrement_entries(entries)
                    down.extend([slot.decrement_entry()] if slot is not None else [])
                    request_id = await self._client.decrement_inventory(down)
        except Exception as exc:
            delivery.answered()
            return exc
        delivery.answered()
        return request_id if isinstance(request_id, str) else None

    @staticmethod
    async def _call_ours(
        client: InventoryClient,
        increment: bool,
        entries: list[Entry],
        slot: WitnessSlot | None,
        on_wire: Callable[[], Awaitable[None]],
    ) -> str | None:
        """One send through our client, the body written straight from the entries
        (:mod:`~wixinv_async.core.wirebody`); an entry it cannot encode goes as wire structs
        instead, whose encoding refuses the batch naming that entry."""
        size = len(entries) + (slot is not None)
        try:
            if increment:
                body = increment_body(entries, None if slot is None else slot.increment_entry())
            else:
                body = decrement_body(entries, None if slot is None else slot.decrement_entry())
        except ENCODE_ERRORS:
            if increment:
                up = increment_entries(entries)
                if slot is not None:
                    up.append(slot.increment_entry())
                return await client.increment_inventory(up, validate=False, on_wire=on_wire)
            down = decrement_entries(entries)
            if slot is not None:
                down.append(slot.decrement_entry())
            return await client.decrement_inventory(down, validate=False, on_wire=on_wire)
        kind: Kind = "increment" if increment else "decrement"
        return await client.send_batch_body(kind, body, size, on_wire=on_wire)
