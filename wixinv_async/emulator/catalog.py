"""Seeded, deterministic catalogs: the items a fresh emulator site starts with.

Pure code: the random generator comes in as an argument, so a seed always gives the same
catalog (ids, numericIds, quantities, tracking, preorder settings and lastUpdated).
"""

from __future__ import annotations

import random
from typing import Final

from ..models import DEFAULT_VARIANT_ID
from .items import Item, Variant

__all__ = [
    "ID_DISTRIBUTIONS",
    "NUMERIC_ID_SPAN",
    "NUMERIC_ID_START",
    "new_guid",
    "numeric_ids",
    "seed_catalog",
]

NUMERIC_ID_START: Final = 1_609_459_200_000_000
"""2021-01-01T00:00:00Z in microseconds: numericIds look like creation times in µs."""
NUMERIC_ID_SPAN: Final = 126_230_400_000_000
"""Four years in microseconds: the seeded catalog's creation period."""
ID_DISTRIBUTIONS: Final = ("clustered", "uniform", "skewed")

_BURST_SHARE: Final = 0.3
_BURST_MEAN: Final = 40
_SINGLE_VARIANT_SHARE: Final = 0.25
_UNTRACKED_SHARE: Final = 0.15
_PREORDER_SHARE: Final = 0.1


def new_guid(rng: random.Random) -> str:
    """A random GUID string (lowercase hex, 8-4-4-4-12)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def numeric_ids(count: int, rng: random.Random, distribution: str = "clustered") -> list[int]:
    """``count`` distinct ascending 16-digit numericIds.

    ``clustered``: items created one at a time or in bulk imports (bursts a few ms apart),
    with exponential gaps between events, as real catalogs grow. ``uniform``: spread evenly
    over four years. ``skewed``: 80 % of the ids in one tenth of the range.
    """
    if distribution == "clustered":
        return _clustered(count, rng)
    if distribution == "uniform":
        return sorted(
            rng.sample(range(NUMERIC_ID_START, NUMERIC_ID_START + NUMERIC_ID_SPAN), count)
        )
    if distribution == "skewed":
        return _skewed(count, rng)
    raise ValueError(f"id_distribution={distribution!r}: must be one of {ID_DISTRIBUTIONS}")


def _clustered(count: int, rng: random.Random) -> list[int]:
    events = max(1.0, count / (1 + _BURST_SHARE * (_BURST_MEAN - 1)))
    mean_gap = NUMERIC_ID_SPAN / events
    ids: list[int] = []
    at = NUMERIC_ID_START
    while len(ids) < count:
        at += 1 + int(rng.expovariate(1 / mean_gap))
        burst = 1 if rng.random() >= _BURST_SHARE else 1 + int(rng.expovariate(1 / _BURST_MEAN))
        for _ in range(min(burst, count - len(ids))):
            ids.append(at)
            at += rng.randint(1_000, 20_000)
    return ids


def _skewed(count: int, rng: random.Random) -> list[int]:
    band = NUMERIC_ID_SPAN // 10
    band_start = NUMERIC_ID_START + rng.randrange(NUMERIC_ID_SPAN - band)
    hot = round(count * 0.8)
    inside = rng.sample(range(band_start, band_start + band), hot)
    outside = rng.sample(range(NUMERIC_ID_SPAN - band), count - hot)
    shifted = [
        NUMERIC_ID_START + v if NUMERIC_ID_START + v < band_start else NUMERIC_ID_START + v + band
        for v in outside
    ]
    return sorted(inside + shifted)


def seed_catalog(
    products: int, variants_per_product: int, seed: int, id_distribution: str = "clustered"
) -> list[Item]:
    """The seeded items of one site, in numericId order.

    With ``variants_per_product`` 1 every product has only the default variant; otherwise a
    quarter of the products have the default variant only and the rest exactly
    ``variants_per_product`` variants with random GUIDs. 15 % are untracked, 10 % have preorder
    enabled; quantities are 0 for about one variant in ten, mostly up to 1,000, a few up to 99,999.
    """
    rng = random.Random(seed)
    return [
        _seed_item(rng, numeric_id, variants_per_product)
        for numeric_id in numeric_ids(products, rng, id_distribution)
    ]


def _seed_item(rng: random.Random, numeric_id: int, variants_per_product: int) -> Item:
    single = variants_per_product == 1 or rng.random() < _SINGLE_VARIANT_SHARE
    track = rng.random() >= _UNTRACKED_SHARE
    variant_ids = (
        [DEFAULT_VARIANT_ID] if single else [new_guid(rng) for _ in range(variants_per_product)]
    )
    variants = {vid: _seed_variant(rng, vid, track) for vid in variant_ids}
    item = Item(new_guid(rng), new_guid(rng), numeric_id, track, variants)
    if rng.random() < _PREORDER_SHARE:
        item.preorder_enabled = True
        item.preorder_message = "Ships in 2 weeks"
        item.preorder_limit = rng.randint(1, 500)
    item.last_updated = numeric_id // 1000 + rng.randrange(30 * 86_400_000)
    return item


def _seed_variant(rng: random.Random, variant_id: str, track: bool) -> Variant:
    roll = rng.random()
    if roll < 0.1:
        quantity = 0
    elif roll < 0.98:
        quantity = rng.randint(1, 1_000)
    else:
        quantity = rng.randint(1_001, 99_999)
    in_stock = quantity > 0 if track else rng.random() < 0.8
    return Variant(variant_id, quantity if track else 0, in_stock)
