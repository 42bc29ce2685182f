"""The witness driver: resolves ambiguous V1 requests by reading a variant only we move.

:class:`Witness` is the user's setting: a product kept for the library (tracked, hidden from
the storefront) and one variant per concurrent request slot
(:func:`~wixinv_async.witness_check.check_witness` checks a site's set-up).
:class:`WitnessDriver` hands each request of :class:`~wixinv_async.adjuster.AtomicWriter`
a :class:`WitnessSlot` (at most one request in flight per slot), adds the slot's witness
entry to the request, and after an ambiguous failure waits ``settle`` seconds, reads the
witness and lets the pure :class:`~wixinv_async.core.witness.SlotState` decide. The
arithmetic is in :mod:`wixinv_async.core.witness`.

Why a settle delay: an ambiguous answer (504, a reset, a client timeout) means the server may
still be working on the request. Read too early and a request still in progress reads as
NOT_APPLIED, then lands: a late apply (detected by the next read, but the entries were
already reported NOT_APPLIED and, with ``on_ambiguous="retry"``, resent). ``settle`` should
exceed the longest time the server can keep working on a request after the client gave up:
for Wix, whose gateway answers 504 when its backend is slow, the default (10 s) is several
times the slowest answers seen; set it from your own measurements. The slot (not the
adjuster) waits: other slots keep sending.

Why ``forget_after``: a request resolved NOT_APPLIED is kept as a suspect that could still
land (a late apply, detected and reported by a later read). Kept forever, suspects would pile
up (past :data:`~wixinv_async.core.witness.MAX_SUSPECTS` every resolution is IN_DOUBT) and
every read would be explained through them. So a suspect is forgotten at the first read sent
``forget_after`` seconds (default 600, at least ``settle``) after it was resolved: the read
says whether it had landed by then, and a landing later still is an anomaly (reported, never
counted as applied).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..core.witness import Bounds, Read, Resolution, SlotState, Suspect, plan_step
from ..errors import ConfigurationError, InvalidInputError
from ..models import DecrementData, IncrementData, InventoryItem, VariantUpdate
from ..outcomes import WitnessMark, WitnessStats
from ..settings import is_int

__all__ = ["LateApply", "Witness", "WitnessDriver", "WitnessReader", "WitnessSlot"]

logger = logging.getLogger("wixinv_async.adjuster")


@dataclass(frozen=True, slots=True, init=False)
class Witness:
    """The witness setting. ``product_id``: a product only this library moves (tracked,
    hidden from the storefront); ``variant_ids``: one variant per concurrent request
    (``max_in_flight`` at most ``len(variant_ids)``); ``settle``: seconds to wait after an
    ambiguous failure before reading (see the module doc); ``bounds``: where the witness
    quantity is kept (:class:`~wixinv_async.core.witness.Bounds`); ``forget_after``: seconds
    after which a request resolved NOT_APPLIED is taken never to land (see the module doc)."""

    product_id: str
    variant_ids: tuple[str, ...]
    settle: float
    bounds: Bounds
    forget_after: float

    def __init__(
        self,
        product_id: str,
        variant_ids: Sequence[str],
        *,
        settle: float = 10.0,
        bounds: Bounds | None = None,
        forget_after: float = 600.0,
    ) -> None:
        if not isinstance(product_id, str) or not product_id:
            raise ConfigurationError(f"witness product_id must be an id, got {product_id!r}")
        ids = tuple(variant_ids) if not isinstance(variant_ids, str) else ()
        if not ids or not all(isinstance(v, str) and v for v in ids) or len(set(ids)) < len(ids):
            raise ConfigurationError(
                f"witness variant_ids must be distinct variant ids, got {variant_ids!r}"
            )
        if isinstance(settle, bool) or not isinstance(settle, int | float) or not settle >= 0:
            raise ConfigurationError(f"witness settle must be seconds >= 0, got {settle!r}")
        if (
            isinstance(forget_after, bool)
            or not isinstance(forget_after, int | float)
            or not settle <= forget_after < float("inf")
        ):
            raise ConfigurationError(
                f"witness forget_after must be seconds >= settle ({settle!r}), got {forget_after!r}"
            )
        bounds = Bounds() if bounds is None else bounds
        try:
            bounds.check()
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        object.__setattr__(self, "product_id", product_id)
        object.__setattr__(self, "variant_ids", ids)
        object.__setattr__(self, "settle", float(settle))
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "forget_after", float(forget_after))


class WitnessReader(Protocol):
    """What the witness needs of a client besides the batch calls (``InventoryClient`` fits)."""

    async def get_inventory_variants(
        self,
        *,
        inventory_id: str | None = None,
        product_id: str | None = None,
        variant_ids: Sequence[str] | None = None,
    ) -> InventoryItem: ...

    async def update_inventory_variants(
        self, product_id: str, variants: Sequence[VariantUpdate], *, track_quantity: bool
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class LateApply:
    """Requests resolved NOT_APPLIED that a later witness read proved applied (``requests``:
    their ids and entries; empty when the read proves a late apply but not whose), or a
    witness moved by no request of ours (``anomaly``)."""

    variant_id: str
    quantity: int
    requests: tuple[Suspect, ...]
    anomaly: str | None = None


OnLate = Callable[[LateApply], None]


class WitnessDriver:
    """The slots, the reads and the counters of one adjuster's witness."""

    def __init__(self, witness: Witness, reader: WitnessReader, on_late: OnLate) -> None:
        self.witness = witness
        self._reader = reader
        self._on_late = on_late
        self._slots = [WitnessSlot(self, SlotState(v)) for v in witness.variant_ids]
        self._idle: asyncio.Queue[WitnessSlot] | None = None
        self._baseline = asyncio.Lock()
        self.counts: dict[str, int] = dict.fromkeys(WitnessStats._fields, 0)
        self.inventory_id: str | None = None
        """The witness's inventory item id, once a read has named it."""

    def __repr__(self) -> str:
        return f"<WitnessDriver {self.witness.product_id} slots={len(self._slots)}>"

    def stats(self) -> WitnessStats:
        return WitnessStats(**self.counts)

    def refuse_target(self, product_id: str | None, inventory_id: str | None) -> None:
        """Raise InvalidInputError for a delta on the witness product itself: it would move
        the witness by more than the steps it is read against. By inventory id, once a read
        has named the witness's (before that, the product id is all that is known)."""
        if product_id is not None and product_id == self.witness.product_id:
            raise InvalidInputError(
                "productId", product_id, "is the witness product: only the adjuster moves it"
            )
        if inventory_id is not None and inventory_id == self.inventory_id:
            raise InvalidInputError(
                "inventoryId",
                inventory_id,
                "is the witness's inventory item: only the adjuster moves it",
            )

    async def acquire(self) -> WitnessSlot:
        """A free slot (waiting for one when all are in use)."""
        if self._idle is None:
            self._idle = asyncio.Queue()
            for slot in self._slots:
                self._idle.put_nowait(slot)
        return await self._idle.get()

    def release(self, slot: WitnessSlot) -> None:
        assert self._idle is not None
        self._idle.put_nowait(slot)

    async def verify(self) -> list[LateApply]:
        """Read every idle slot's witness and check it (late applies, edits); what was found
        is reported as after any read, and returned."""
        found: list[LateApply] = []
        for _ in range(len(self._slots)):
            slot = await self.acquire()
            try:
                read_at = asyncio.get_running_loop().time()
                quantities = await self.read([slot.state.variant_id])
                quantity = quantities.get(slot.state.variant_id)
                if quantity is not None:
                    found.extend(self.report(slot.state, slot.state.verify(quantity)))
                    self.forget(slot.state, read_at, quantity)
            finally:
                self.release(slot)
        return found

    async def read(self, variant_ids: list[str]) -> dict[str, int | None]:
        """The witness quantities (``None``: not tracked); raises the client's error."""
        self.counts["reads"] += 1
        item = await self._reader.get_inventory_variants(
            product_id=self.witness.product_id, variant_ids=variant_ids
        )
        self.inventory_id = item.id
        return {v.variant_id: v.quantity for v in item.variants}

    async def baseline(self) -> None:
        """Read every unknown slot's quantity once (before its first request)."""
        async with self._baseline:
            unknown = [s.state for s in self._slots if s.state.expected is None]
            if not unknown:
                return
            try:
                quantities = await self.read([s.variant_id for s in unknown])
            except Exception as exc:  # the request goes anyway: it just cannot be resolved
                logger.warning("witness baseline read failed: %s", type(exc).__name__)
                return
            for state in unknown:
                state.rebase(quantities.get(state.variant_id))

    async def update(self, state: SlotState, quantity: int) -> None:
        """Set a witness to ``quantity`` by one update call (re-centring past a hard bound)."""
        self.counts["updates"] += 1
        update = VariantUpdate(variant_id=state.variant_id, quantity=quantity)
        try:
            await self._reader.update_inventory_variants(
                self.witness.product_id, [update], track_quantity=True
            )
        except Exception:  # an update sets, so a read tells where it stands
            state.rebase(None)
            await self.baseline()
            return
        state.rebase(quantity)

    def forget(self, state: SlotState, read_at: float, quantity: int) -> None:
        """Drop the slot's suspects past their deadline, after a read sent at ``read_at``."""
        dropped = state.forget(read_at, quantity)
        if dropped:
            self.counts["forgotten"] += dropped
            logger.info(
                "witness %s: %d request(s) resolved NOT_APPLIED are now taken never to land",
                state.variant_id,
                dropped,
            )

    def report(self, state: SlotState, read: Read) -> list[LateApply]:
        """Count a read's verdict and report late applies and anomalies (ERROR, never
        silent)."""
        found: list[LateApply] = []
        if read.late_quantity:
            self.counts["late_applies"] += len(read.late) or 1
            self.counts["late_quantity"] += read.late_quantity
            ids = [s.request_id for s in read.late]
            logger.error(
                "witness %s: late apply of %+d (requests %s resolved NOT_APPLIED were applied)",
                state.variant_id,
                read.late_quantity,
                ids or "unknown",
            )
            found.append(LateApply(state.variant_id, read.late_quantity, read.late))
        if read.reason is not None and "edited" in read.reason:
            self.counts["anomalies"] += 1
            logger.error("witness %s: %s", state.variant_id, read.reason)
            found.append(LateApply(state.variant_id, 0, (), read.reason))
        for late in found:
            self._on_late(late)
        return found


class WitnessSlot:
    """One slot, held by one request at a time: its witness entry and its verdicts."""

    __slots__ = ("_driver", "state", "step")

    def __init__(self, driver: WitnessDriver, state: SlotState) -> None:
        self._driver = driver
        self.state = state
        self.step = 0

    def __repr__(self) -> str:
        return f"<WitnessSlot {self.state.variant_id} expected={self.state.expected}>"

    async def prepare(self, increment: bool) -> None:
        """Before a send: know the quantity, plan the step (re-centring if due)."""
        driver, state = self._driver, self.state
        if state.expected is None:
            await driver.baseline()
        if state.expected is None:
            self.step = 1 if increment else -1
            return
        bounds = driver.witness.bounds
        step, reset = plan_step(state.expected, increment, bounds)
        if reset:
            await driver.update(state, bounds.centre)
            if state.expected is not None:
                step, _ = plan_step(state.expected, increment, bounds)
        if abs(step) > 1:
            driver.counts["recentred"] += 1
        self.step = step

    def mark(self) -> WitnessMark:
        """What a journal keeps of this slot's witness entry in the request about to go."""
        state = self.state
        suspects = tuple(s.step for s in state.suspects)
        expected = state.expected
        if expected is not None and state.seen_late:  # late quantity seen: counted in
            expected += state.seen_late
        product_id = self._driver.witness.product_id
        return WitnessMark(product_id, state.variant_id, self.step, expected, suspects)

    def increment_entry(self) -> IncrementData:
        return IncrementData(
            product_id=self._driver.witness.product_id,
            variant_id=self.state.variant_id,
            increment_by=self.step,
        )

    def decrement_entry(self) -> DecrementData:
        return DecrementData(
            product_id=self._driver.witness.product_id,
            variant_id=self.state.variant_id,
            decrement_by=-self.step,
        )

    def committed(self) -> None:
        """The request's answer said applied."""
        self.state.committed(self.step)

    async def resolve(self, request_id: int, entries: tuple[object, ...]) -> Read:
        """After an ambiguous failure: wait ``settle``, read, resolve (and count it)."""
        driver, state = self._driver, self.state
        loop = asyncio.get_running_loop()
        await asyncio.sleep(driver.witness.settle)
        read_at = loop.time()
        suspect = Suspect(request_id, self.step, entries, read_at + driver.witness.forget_after)
        try:
            quantity = (await driver.read([state.variant_id])).get(state.variant_id)
        except Exception as exc:
            state.suspects.append(suspect)
            driver.counts["unresolved"] += 1
            return Read(Resolution.IN_DOUBT, reason=f"the witness read failed: {exc}")
        if quantity is None:
            state.suspects.append(suspect)
            driver.counts["unresolved"] += 1
            return Read(Resolution.IN_DOUBT, reason="the witness variant is missing or untracked")
        read = state.resolve(quantity, suspect)
        driver.counts[
            {
                Resolution.COMMITTED: "committed",
                Resolution.NOT_APPLIED: "not_applied",
                Resolution.IN_DOUBT: "unresolved",
            }[read.resolution]
        ] += 1
        driver.report(state, read)
        driver.forget(state, read_at, quantity)
        return read


def check_slots(witness: Witness, max_in_flight: int) -> None:
    """Raise ConfigurationError unless the witness has a slot per concurrent request."""
    if not is_int(max_in_flight) or max_in_flight > len(witness.variant_ids):
        raise ConfigurationError(
            f"max_in_flight={max_in_flight!r} needs as many witness variants,"
            f" got {len(witness.variant_ids)}"
        )
