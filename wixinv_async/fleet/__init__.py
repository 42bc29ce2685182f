"""A fleet of worker processes on Redis: producers hand deltas to Redis, workers deliver them.

See docs/FLEET.md for the design and its guarantees.
"""

from __future__ import annotations

__all__: list[str] = []
