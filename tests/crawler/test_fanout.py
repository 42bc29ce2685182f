"""The fan-out decision: latency against the site's pace, and the catalog's size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wixinv_async.core import fanout
from wixinv_async.core.fanout import (
    FanoutChoice,
    catalog_cap,
    first_fanout,
    probed_fanout,
)

PACE = 0.3  # Wix's 200 requests a minute, paced


@pytest.mark.parametrize(
    ("d1", "gap", "expected"),
    [
        (0.15, PACE, FanoutChoice(1, probe=False)),  # latency under one slot: the budget bounds
        (0.35, PACE, FanoutChoice(1, probe=False)),  # just over: a second cursor would not pay
        (0.05, 0.0001, FanoutChoice(8, probe=False)),  # nothing paces: full fan-out at once
        (0.05, 0.0, FanoutChoice(8, probe=False)),  # answers together
        (0.9, PACE, FanoutChoice(8, probe=True)),  # three slots, or a wait: probe to tell
    ],
    ids=["fits-a-slot", "barely-over", "unpaced", "together", "ambiguous"],
)
def test_first_decision_from_the_bound_queries(
    d1: float, gap: float, expected: FanoutChoice
) -> None:
    """The bound queries' timing settles the fan-out, or asks for a timed probe page."""
    assert first_fanout(8, 100_000, 100, d1, gap) == expected


@pytest.mark.parametrize(
    ("latency", "expected"),
    [(0.3, 1), (0.33, 1), (0.6, 2), (0.9, 3), (1.0, 4), (30.0, 8)],
)
def test_probe_decision_runs_enough_cursors_to_fill_the_slots(
    latency: float, expected: int
) -> None:
    """Cursors = latency in slots, rounded up past a 20 % slack, at most ``segments``."""
    assert probed_fanout(8, 100_000, 100, latency, PACE) == expected


@pytest.mark.parametrize(
    ("items", "expected"),
    [(None, 8), (0, 1), (399, 1), (800, 2), (5_000, 8), (1_000_000, 8)],
)
def test_catalog_gives_each_cursor_four_pages(items: int | None, expected: int) -> None:
    """A small catalog is not split past four pages per cursor, whatever the pace."""
    assert catalog_cap(8, items, 100) == expected


def test_a_small_catalog_runs_one_cursor_even_unpaced() -> None:
    """300 items (three pages) read by one cursor: more would spend a request each for nothing."""
    assert first_fanout(8, 300, 100, 0.05, 0.0) == FanoutChoice(1, probe=False)


def test_fanout_core_imports_nothing_async_or_clock() -> None:
    """The decision is sans-IO: measured times come in as arguments."""
    tree = ast.parse(Path(fanout.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"asyncio", "anyio", "aiohttp", "time", "random", "threading"}
