"""The catalog router: each batch goes to the writer of the catalog the site runs.

The site's catalog is asked of the client (``InventoryClient.catalog_version()``, cached there)
before the first batch, and again after a call was refused with
:class:`~wixinv_async.errors.WrongCatalogError` (the client empties its cache then). A batch
refused so applied nothing (the 428 refuses the whole call), so its entries are re-planned for
the other catalog's writer and sent once more; a second wrong-catalog refusal is their final
REJECTED (retriable) outcome. Entries an earlier, ambiguous send of theirs may have applied are
not moved (they end IN_DOUBT as in any writer), so no delta is applied twice across a switch.

V1 keys on V3: the variant id is kept (the migration keeps every variant id but the shared
default one), at the default location; a V1 default variant is looked up by product id (the
V3 writer's :mod:`~wixinv_async.core.resolve`). V3-only keys on V1 (a ``location_id`` or a
``sku``, accepted at submit before the catalog was known) are REJECTED: ``LOCATION_NEEDS_V3`` or
``SKU_NEEDS_V3`` (a V1 site has one, unnamed, location; V1 has no SKU search).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from ..catalog import CatalogVersion
from ..client import InventoryClient
from ..core.bulk_results import BulkItemResult
from ..core.failures import Failure, classify, outcome_for
from ..core.table import Entry, any_v3_target, key_location, key_sku
from ..errors import WixInventoryError, WrongCatalogError
from ..outcomes import Catalog, Kind, Outcome, OutcomeStatus, WitnessMark
from ._delivery import BatchWriter, Delivery
from ._ledger import ReportError

__all__ = ["CatalogRouter"]

_NO_SKU: Final = Outcome(
    OutcomeStatus.REJECTED, "SKU_NEEDS_V3", "the site runs Catalog V1: submit by product/variant"
)
_NO_LOCATION: Final = Outcome(
    OutcomeStatus.REJECTED, "LOCATION_NEEDS_V3", "the site runs Catalog V1: it has one location"
)


class CatalogRouter:
    """A :class:`BatchWriter` that sends each batch through the V1 or the V3 writer."""

    def __init__(
        self,
        client: InventoryClient,
        v1: BatchWriter,
        v3: BatchWriter,
        *,
        report_error: ReportError,
        catalog: CatalogVersion | None = None,
        v3_targets: Callable[[], bool] = lambda: True,
    ) -> None:
        self._client = client
        self._v3_targets = v3_targets
        """Whether any entry may name a location or a SKU (the table knows: until a delta
        does, a V1 batch's keys need no look)."""
        self._assumed = catalog
        self._v1 = v1
        self._v3 = v3
        self._report_error = report_error
        self.known: CatalogVersion | None = None
        """The catalog last detected (``None`` before the first batch)."""
        self.switches = 0
        """Batches re-planned for the other catalog after a wrong-catalog refusal."""

    def __repr__(self) -> str:
        known = self.known.value if self.known is not None else "unknown"
        return f"<CatalogRouter {known} switches={self.switches}>"

    def rate_limited(self) -> int:
        return self._v1.rate_limited()  # both count the one client's 429s

    async def write(self, entries: list[Entry], delivery: Delivery) -> None:
        version = await self._detect(entries, delivery)
        if version is None:
            return
        watch = _Watch(delivery)
        if version is CatalogVersion.V3_CATALOG:
            await self._v3.write(entries, watch)
        else:
            await self._v1.write(self._v1_entries(entries, delivery), watch)
        moved = [e for e in watch.refused if e.outcome is None]
        if not moved:
            return
        self.switches += 1
        self._assumed = None  # told otherwise: ask the site from now on
        other = await self._detect(moved, delivery)
        if other is None:
            return
        if other is version:  # the 428 named the other catalog but the site says otherwise
            refusal = watch.refusals[0]
            delivery.settle(delivery.batch_id, moved, refusal)
            return
        writer = self._v3 if other is CatalogVersion.V3_CATALOG else self._v1
        if writer is self._v1:
            moved = self._v1_entries(moved, delivery)
        await writer.write(moved, delivery)

    async def _detect(self, entries: list[Entry], delivery: Delivery) -> CatalogVersion | None:
        """The site's catalog; ``None`` when it could not be told (the entries are then
        REJECTED, retriable: nothing was sent for them)."""
        if self._assumed is not None:
            self.known = self._assumed
            return self._assumed
        try:
            version = await self._client.catalog_version()
        except Exception as exc:
            if not isinstance(exc, WixInventoryError):
                self._report_error("unexpected error detecting the catalog", exc)
            unsent = classify(exc) in (Failure.NOT_SENT, Failure.NOT_ATTEMPTED)
            code = "NOT_SENT" if unsent else "CATALOG_UNKNOWN"
            failed = outcome_for(OutcomeStatus.REJECTED, exc, code, retriable=True)
            delivery.settle(delivery.batch_id, entries, failed)
            return None
        if version is CatalogVersion.STORES_NOT_INSTALLED:
            refused = Outcome(
                OutcomeStatus.REJECTED, "STORES_NOT_INSTALLED", "the site has no store"
            )
            delivery.settle(delivery.batch_id, entries, refused)
            return None
        self.known = version
        return version

    def _v1_entries(self, entries: list[Entry], delivery: Delivery) -> list[Entry]:
        """The entries V1 can carry; the V3-only ones are REJECTED."""
        if not self._v3_targets() or not any_v3_target(entries):
            return entries
        keep: list[Entry] = []
        for entry in entries:
            if key_sku(entry.key) is not None:
                delivery.settle(delivery.batch_id, [entry], _NO_SKU)
            elif key_location(entry.key) is not None:
                delivery.settle(delivery.batch_id, [entry], _NO_LOCATION)
            else:
                keep.append(entry)
        return keep


class _Watch:
    """A Delivery passed to a writer: everything goes through, except that entries refused
    with a wrong-catalog 428 (and never maybe applied) are held back for the other writer."""

    __slots__ = ("_maybe", "_to", "refusals", "refused")

    def __init__(self, to: Delivery) -> None:
        self._to = to
        self._maybe: set[int] = set()
        self.refused: list[Entry] = []
        self.refusals: list[Outcome] = []

    @property
    def batch_id(self) -> int:
        return self._to.batch_id

    @property
    def kind(self) -> Kind:
        return self._to.kind

    def new_request_id(self) -> int:
        return self._to.new_request_id()

    async def on_wire(
        self,
        entries: Sequence[Entry],
        request_id: int,
        parent_id: int | None,
        attempt: int,
        witness: WitnessMark | None = None,
    ) -> None:
        await self._to.on_wire(entries, request_id, parent_id, attempt, witness)

    def answered(self) -> None:
        self._to.answered()

    def use_catalog(self, catalog: Catalog) -> None:
        self._to.use_catalog(catalog)

    def item_results(self, entries: Sequence[Entry], results: Sequence[BulkItemResult]) -> None:
        self._to.item_results(entries, results)

    def searched(self) -> None:
        self._to.searched()

    def maybe_applied(self, entries: Sequence[Entry]) -> None:
        self._maybe.update(id(e) for e in entries)
        self._to.maybe_applied(entries)

    def settle(self, request_id: int, entries: Sequence[Entry], outcome: Outcome) -> None:
        if isinstance(outcome.error, WrongCatalogError):
            maybe = self._maybe
            held = [e for e in entries if id(e) not in maybe and e.outcome is None]
            if held:
                self.refused.extend(held)
                self.refusals.append(outcome)
                entries = [e for e in entries if id(e) in maybe]
        if entries:
            self._to.settle(request_id, entries, outcome)
