"""What a V3 write needs to know before it can name an item: SKUs and V1 default variants.

A delta submitted by ``sku`` names no variant, and a V1 key of a product's shared default
variant (``DEFAULT_VARIANT_ID``) names one that a V3 catalog does not have: Wix (and the
emulator's migration) gives each such product's variant its own GUID. Both are found with a V3
search (``product.variantSku`` or ``productId`` ``$in`` a list), and the answers are kept here.

:class:`Resolutions` is the cache and the bookkeeping, with no I/O: :meth:`~Resolutions.missing`
says which SKUs and products a batch still needs, :meth:`~Resolutions.learn_skus` and
:meth:`~Resolutions.learn_products` take a search's items, and :meth:`~Resolutions.variant`
answers for one key. The verdicts::

    items found for the SKU (or product)     verdict
    -------------------------------------------------------------------
    none                                     SKU_NOT_FOUND (NOT_FOUND for a product)
    one variant id (at any locations)        that variant id
    two or more variant ids                  SKU_AMBIGUOUS (DEFAULT_VARIANT_AMBIGUOUS)

Every answer is kept, misses included (a catalog rarely gains a SKU mid-run; a miss would
otherwise cost a search per batch); :meth:`~Resolutions.clear` forgets them all (the site
moved to another catalog).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from ..models import DEFAULT_VARIANT_ID
from ..models_v3 import InventoryItemProduct, InventoryItemV3
from .table import Key, key_sku

__all__ = [
    "DEFAULT_AMBIGUOUS",
    "NOT_FOUND",
    "SKU_AMBIGUOUS",
    "SKU_NOT_FOUND",
    "Resolutions",
    "needs_resolution",
]

SKU_NOT_FOUND: Final = "SKU_NOT_FOUND"
SKU_AMBIGUOUS: Final = "SKU_AMBIGUOUS"
NOT_FOUND: Final = "NOT_FOUND"
DEFAULT_AMBIGUOUS: Final = "DEFAULT_VARIANT_AMBIGUOUS"

_Answer = str | tuple[str]
"""A variant id found (as a 1-tuple), or the code of a miss."""


def needs_resolution(key: Key) -> bool:
    """Whether a V3 write must look the key's variant up first (a SKU, a V1 default variant)."""
    return key_sku(key) is not None or (key[1] is None and key[2] == DEFAULT_VARIANT_ID)


class Resolutions:
    """Known SKUs and products' single variants (V3 variant ids), misses included."""

    __slots__ = ("_products", "_skus")

    def __init__(self) -> None:
        self._skus: dict[str, _Answer] = {}
        self._products: dict[str, _Answer] = {}

    def __len__(self) -> int:
        return len(self._skus) + len(self._products)

    def missing(self, keys: Iterable[Key]) -> tuple[list[str], list[str]]:
        """The SKUs and the product ids these keys need that are not known yet (each once)."""
        skus: dict[str, None] = {}
        products: dict[str, None] = {}
        for key in keys:
            sku = key_sku(key)
            if sku is not None:
                if sku not in self._skus:
                    skus[sku] = None
            elif key[1] is None and key[2] == DEFAULT_VARIANT_ID and key[0] not in self._products:
                products[key[0]] = None
        return list(skus), list(products)

    def learn_skus(self, asked: Iterable[str], items: Iterable[InventoryItemV3]) -> None:
        """A search for ``asked`` SKUs answered ``items``."""
        found = _variants_by(items, _sku_of)
        for sku in asked:
            self._skus[sku] = _answer(found.get(sku), SKU_NOT_FOUND, SKU_AMBIGUOUS)

    def learn_products(self, asked: Iterable[str], items: Iterable[InventoryItemV3]) -> None:
        """A search for the items of ``asked`` products answered ``items``."""
        found = _variants_by(items, _product_of)
        for product in asked:
            self._products[product] = _answer(found.get(product), NOT_FOUND, DEFAULT_AMBIGUOUS)

    def variant(self, key: Key) -> str | tuple[str]:
        """The key's V3 variant id as a 1-tuple, or the code of a miss (``KeyError`` if the
        key needs an answer not learnt yet)."""
        sku = key_sku(key)
        if sku is not None:
            return self._skus[sku]
        if key[1] is None and key[2] == DEFAULT_VARIANT_ID:
            return self._products[key[0]]
        return (key[2],)

    def clear(self) -> None:
        self._skus.clear()
        self._products.clear()


def _sku_of(item: InventoryItemV3) -> object:
    product = item.product
    return product.variant_sku if isinstance(product, InventoryItemProduct) else None


def _product_of(item: InventoryItemV3) -> object:
    return item.product_id


def _variants_by(
    items: Iterable[InventoryItemV3], read: Callable[[InventoryItemV3], object]
) -> dict[object, set[str]]:
    out: dict[object, set[str]] = {}
    for item in items:
        name = read(item)
        variant = item.variant_id
        if isinstance(name, str) and isinstance(variant, str):
            out.setdefault(name, set()).add(variant)
    return out


def _answer(variants: set[str] | None, missing: str, ambiguous: str) -> _Answer:
    if not variants:
        return missing
    if len(variants) > 1:
        return ambiguous
    return (next(iter(variants)),)
