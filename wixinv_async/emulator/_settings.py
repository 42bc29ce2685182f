"""Checks of the emulator's settings, done before anything is seeded or bound."""

from __future__ import annotations

import math

from ..errors import ConfigurationError
from .catalog import ID_DISTRIBUTIONS

__all__ = ["check_settings"]


def check_settings(
    products: int,
    variants_per_product: int,
    extra_sites: int,
    latency_ms: float,
    token_lifetime: float,
    id_distribution: str,
) -> None:
    problems = [
        (products >= 0, f"products={products!r}: must be >= 0"),
        (variants_per_product >= 1, f"variants_per_product={variants_per_product!r}: must be >= 1"),
        (extra_sites >= 0, f"extra_sites={extra_sites!r}: must be >= 0"),
        (math.isfinite(latency_ms) and latency_ms >= 0, f"latency_ms={latency_ms!r}: must be >= 0"),
        (token_lifetime > 0, f"token_lifetime={token_lifetime!r}: must be > 0"),
        (
            id_distribution in ID_DISTRIBUTIONS,
            f"id_distribution={id_distribution!r}: one of {ID_DISTRIBUTIONS}",
        ),
    ]
    for ok, text in problems:
        if not ok:
            raise ConfigurationError(text)
