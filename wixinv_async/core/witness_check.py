"""Whether a product can serve as a witness, pure: what was read of it -> named problems.

A witness (``InventoryAdjuster(witness=...)``) resolves ambiguous V1 requests by reading one
variant per request slot that only the adjuster moves. That holds only on a set-up the site
owner must make, and that the library can check from two reads (the product's inventory item
and the product itself):

=========================  ===================================================================
problem                    why it breaks the witness
=========================  ===================================================================
``WRONG_CATALOG``          a witness is a V1 mechanism (V3 bulk calls are not atomic)
``PRODUCT_MISSING``        no such product: every witness entry would fail its request
``NOT_TRACKED``            an untracked item's quantity never moves, and V1 refuses the calls
``VISIBLE``                shoppers could buy it: every order moves the witness (an "edit")
``VISIBILITY_UNKNOWN``     the product could not be read (credentials without the scope?)
``TOO_FEW_VARIANTS``       one variant per concurrent request is the exactness argument
``UNKNOWN_VARIANT``        a variant the witness names that the product does not have
``QUANTITY_OUT_OF_BOUNDS`` outside ``[low, high]`` the first requests re-centre it, and past
                           the hard bounds an update call does: start it at the centre
=========================  ===================================================================
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..models import InventoryItem, Product
from .witness import Bounds

__all__ = ["WitnessCheck", "WitnessProblem", "WitnessProblemCode", "evaluate"]


class WitnessProblemCode(enum.Enum):
    """What is wrong with a witness product (see the module doc for why each matters)."""

    WRONG_CATALOG = "wrong_catalog"
    PRODUCT_MISSING = "product_missing"
    NOT_TRACKED = "not_tracked"
    VISIBLE = "visible"
    VISIBILITY_UNKNOWN = "visibility_unknown"
    TOO_FEW_VARIANTS = "too_few_variants"
    UNKNOWN_VARIANT = "unknown_variant"
    QUANTITY_OUT_OF_BOUNDS = "quantity_out_of_bounds"


class WitnessProblem(NamedTuple):
    """One problem: its code, a sentence saying what to do, and the variant it is about."""

    code: WitnessProblemCode
    message: str
    variant_id: str | None = None


@dataclass(frozen=True, slots=True)
class WitnessCheck:
    """The result of checking a witness product. ``variant_ids``: the variants checked (the
    witness's, or all the product's), usable as ``Witness(product_id, variant_ids)`` when
    ``ok``; ``quantities``: each one's quantity (``None``: untracked or missing)."""

    product_id: str
    slots: int
    variant_ids: tuple[str, ...] = ()
    quantities: Mapping[str, int | None] | None = None
    visible: bool | None = None
    problems: tuple[WitnessProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The result as plain text, one problem a line."""
        if self.ok:
            return [
                f"witness product {self.product_id}: ok ({len(self.variant_ids)} variants"
                f" for {self.slots} slots)"
            ]
        head = f"witness product {self.product_id}: {len(self.problems)} problem(s)"
        return [head] + [f"  {p.code.name}: {p.message}" for p in self.problems]


def evaluate(
    product_id: str,
    item: InventoryItem | None,
    product: Product | None,
    *,
    slots: int,
    bounds: Bounds,
    wanted: Sequence[str] | None = None,
    product_error: str | None = None,
) -> WitnessCheck:
    """The check of what was read: ``item`` / ``product`` are ``None`` when not found;
    ``wanted``: the variants a :class:`~wixinv_async.Witness` names (``None``: all of them);
    ``product_error``: why the product could not be read, if it could not."""
    P = WitnessProblemCode
    if item is None:
        missing = WitnessProblem(P.PRODUCT_MISSING, f"no inventory item for product {product_id}")
        return WitnessCheck(product_id, slots, problems=(missing,))
    problems: list[WitnessProblem] = []
    if item.track_quantity is not True:
        problems.append(WitnessProblem(P.NOT_TRACKED, "track its quantity (trackQuantity: true)"))
    visible = None if product is None else product.visible
    if product_error is not None or product is None or visible is None:
        why = product_error or "the product says nothing of its visibility"
        problems.append(WitnessProblem(P.VISIBILITY_UNKNOWN, f"cannot tell if it is hidden: {why}"))
    elif visible:
        problems.append(WitnessProblem(P.VISIBLE, "hide it from the storefront (visible: false)"))
    have = {v.variant_id: v.quantity for v in item.variants}
    ids = tuple(wanted) if wanted is not None else tuple(have)
    problems += [
        WitnessProblem(P.UNKNOWN_VARIANT, f"the product has no variant {v}", v)
        for v in ids
        if v not in have
    ]
    if len(ids) < slots:
        problems.append(
            WitnessProblem(
                P.TOO_FEW_VARIANTS,
                f"{len(ids)} variant(s) for {slots} concurrent request slots: give it {slots}"
                f" (or send at most {len(ids)} requests at once)",
            )
        )
    quantities = {v: have.get(v) for v in ids}
    problems += _out_of_bounds(quantities, bounds) if item.track_quantity else []
    return WitnessCheck(product_id, slots, ids, quantities, visible, tuple(problems))


def _out_of_bounds(quantities: Mapping[str, int | None], bounds: Bounds) -> list[WitnessProblem]:
    return [
        WitnessProblem(
            WitnessProblemCode.QUANTITY_OUT_OF_BOUNDS,
            f"variant {v} at {q}, outside {bounds.low}..{bounds.high}: set it to {bounds.centre}",
            v,
        )
        for v, q in quantities.items()
        if q is not None and not bounds.low <= q <= bounds.high
    ]
