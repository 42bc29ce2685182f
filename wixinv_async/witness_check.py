"""``check_witness``: read a site and say whether a product can serve as the adjuster's witness.

Three reads, no write: the site's catalog (cached by the client), the product's inventory item
(tracking, variants, quantities) and the Catalog V1 product (``visible``). What each problem
means, and why it matters, is in :mod:`wixinv_async.core.witness_check`.
"""

from __future__ import annotations

from .adjuster import Witness
from .catalog import CatalogVersion
from .client import InventoryClient
from .core.witness import Bounds
from .core.witness_check import WitnessCheck, WitnessProblem, WitnessProblemCode, evaluate
from .errors import ConfigurationError, NotFoundError, PermissionDeniedError
from .models import InventoryItem, Product
from .settings import is_int

__all__ = ["DEFAULT_SLOTS", "check_witness"]

DEFAULT_SLOTS = 4
"""Slots checked for a bare product id: the adjuster's default ``max_in_flight``."""


async def check_witness(
    client: InventoryClient,
    witness: Witness | str,
    *,
    slots: int | None = None,
    bounds: Bounds | None = None,
) -> WitnessCheck:
    """Check a :class:`~wixinv_async.Witness` (its variants, its bounds) or a product id (all
    its variants) against the site. ``slots``: the concurrent requests it must serve (default:
    the witness's variants, or :data:`DEFAULT_SLOTS`). Problems are data (``check.problems``);
    the client's errors (a refused credential, an unreachable site) are raised."""
    if isinstance(witness, Witness):
        product_id, wanted = witness.product_id, witness.variant_ids
        bounds = bounds or witness.bounds
        slots = len(wanted) if slots is None else slots
    elif isinstance(witness, str) and witness:
        product_id, wanted, bounds = witness, None, bounds or Bounds()
        slots = DEFAULT_SLOTS if slots is None else slots
    else:
        raise ConfigurationError(f"witness must be a Witness or a product id, got {witness!r}")
    if not is_int(slots) or slots < 1:
        raise ConfigurationError(f"slots must be a whole number >= 1, got {slots!r}")
    catalog = await client.catalog_version()
    if catalog is not CatalogVersion.V1_CATALOG:
        why = f"the site runs {catalog.value}: a witness works on Catalog V1 only"
        problem = WitnessProblem(WitnessProblemCode.WRONG_CATALOG, why)
        return WitnessCheck(product_id, slots, problems=(problem,))
    item = await _item(client, product_id)
    product, error = (None, None) if item is None else await _product(client, product_id)
    return evaluate(
        product_id, item, product, slots=slots, bounds=bounds, wanted=wanted, product_error=error
    )


async def _item(client: InventoryClient, product_id: str) -> InventoryItem | None:
    try:
        return await client.get_inventory_variants(product_id=product_id)
    except NotFoundError:
        return None


async def _product(client: InventoryClient, product_id: str) -> tuple[Product | None, str | None]:
    try:
        return await client.get_product(product_id), None
    except NotFoundError:
        return None, "Get Product found no such product"
    except PermissionDeniedError as exc:
        return None, f"Get Product refused ({exc.status}): the credentials lack the product scope"
