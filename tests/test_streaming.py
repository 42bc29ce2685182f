"""adjust_stream against the emulator over HTTP: every delta back once, bounded, bad ones kept."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from wixinv_async import (
    AdjusterClosed,
    ApiKeyAuth,
    InvalidInputError,
    InventoryAdjuster,
    InventoryClient,
    Outcome,
    OutcomeStatus,
    StockDelta,
    adjust_stream,
)
from wixinv_async.emulator import Emulator
from wixinv_async.emulator.faults import FaultPlan, FaultRule
from wixinv_async.streaming import INVALID_DELTA

Key = tuple[str, str]
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """200 products x 2 variants; tracked ones restocked to 10,000."""
    async with Emulator(products=200, variants_per_product=2, seed=3) as emu:
        for key in _tracked(emu):
            emu.store.set_quantity(*key, 10_000)
        yield emu


@pytest.fixture
async def adjuster(emulator: Emulator) -> AsyncIterator[InventoryAdjuster]:
    """An adjuster over an unpaced client of the emulator."""
    auth = ApiKeyAuth(emulator.api_key, site_id=emulator.site_id)
    async with (
        InventoryClient(auth, base_url=emulator.url, rate_limit=None) as client,
        InventoryAdjuster(client, linger=0.005) as adj,
    ):
        yield adj


def _tracked(emu: Emulator) -> list[Key]:
    return [
        (str(item.product_id), variant.variant_id)
        for item in emu.store.items()
        if item.track_quantity is True
        for variant in item.variants
    ]


def _deltas(emu: Emulator, count: int, seed: int) -> list[StockDelta]:
    rng = random.Random(seed)
    keys = _tracked(emu)
    return [StockDelta(*rng.choice(keys), rng.choice([-2, -1, 1, 3])) for _ in range(count)]


async def _collect(stream: AsyncGenerator[tuple[Any, Outcome], None]) -> list[tuple[Any, Outcome]]:
    async with aclosing(stream) as results:
        return [pair async for pair in results]


async def test_every_delta_comes_back_once_and_the_store_matches(
    emulator: Emulator, adjuster: InventoryAdjuster
) -> None:
    """5,000 deltas: each yielded once with COMMITTED, and the emulator holds exactly their sum."""
    before = {key: emulator.store.quantity(*key) for key in _tracked(emulator)}
    deltas = _deltas(emulator, 5_000, seed=1)
    results = await _collect(adjust_stream(adjuster, deltas, window=500))
    assert sorted(map(id, (d for d, _ in results))) == sorted(map(id, deltas))
    assert {o.status for _, o in results} == {OutcomeStatus.COMMITTED}
    expected = Counter[Key]()
    for d in deltas:
        expected[(str(d.product_id), d.variant_id)] += d.delta
    for key, start in before.items():
        assert emulator.store.quantity(*key) == (start or 0) + expected[key], key


async def test_at_most_window_deltas_are_outstanding(
    emulator: Emulator, adjuster: InventoryAdjuster
) -> None:
    """The input is read only as outcomes come back: never more than ``window`` ahead."""
    deltas = _deltas(emulator, 2_000, seed=2)
    pulled = 0

    def source() -> Iterator[StockDelta]:
        nonlocal pulled
        for d in deltas:
            pulled += 1
            yield d

    yielded, most_ahead = 0, 0
    async with aclosing(adjust_stream(adjuster, source(), window=64)) as results:
        async for _ in results:
            yielded += 1
            most_ahead = max(most_ahead, pulled - yielded)
    assert yielded == 2_000 and most_ahead <= 64


async def test_outcomes_come_as_they_settle_not_in_input_order(
    emulator: Emulator, adjuster: InventoryAdjuster
) -> None:
    """The first delta's request is slow (increments answer after 200 ms): the decrements sent
    after it come back first; with ordered=True they wait for it."""
    emulator.set_faults(FaultPlan({"incrementInventory": FaultRule(latency_ms=200)}))
    keys = _tracked(emulator)
    deltas = [StockDelta(*keys[0], 1), *(StockDelta(*key, -1) for key in keys[1:101])]
    unordered = await _collect(adjust_stream(adjuster, deltas))
    assert unordered[-1][0] is deltas[0] and len(unordered) == 101
    ordered = await _collect(adjust_stream(adjuster, deltas, ordered=True))
    assert [d for d, _ in ordered] == deltas
    assert all(o.status is OutcomeStatus.COMMITTED for _, o in unordered + ordered)


async def test_ordered_stream_yields_in_input_order(
    emulator: Emulator, adjuster: InventoryAdjuster
) -> None:
    """ordered=True gives the outcomes in the order of the input, bad items in their place."""
    deltas: list[Any] = _deltas(emulator, 1_000, seed=4)
    deltas.insert(500, {"product_id": "p", "variant_id": "v", "qty": 1})
    results = await _collect(adjust_stream(adjuster, deltas, window=100, ordered=True))
    assert [id(d) for d, _ in results] == [id(d) for d in deltas]
    assert results[500][1].code == INVALID_DELTA


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"product_id": "p1", "variant_id": "v", "qty": 1}, "qty"),
        ({"product_id": "p1", "delta": 1}, "variant_id"),
        ({"variant_id": "v", "delta": 1}, "product_id"),
        ({"product_id": "p1", "variant_id": "v", "delta": 1, "preorder": "yes"}, "preorder"),
        (StockDelta("p1", "not-a-guid", 1), "variant_id"),
        (StockDelta("p1", "00000000-0000-0000-0000-000000000000", 0), "delta"),
        (("p1", "00000000-0000-0000-0000-000000000000", "-1"), "delta"),
        (42, "delta"),
    ],
    ids=[
        "unknown-key",
        "no-variant",
        "no-product",
        "preorder-text",
        "bad-guid",
        "zero",
        "text",
        "int",
    ],
)
async def test_a_bad_delta_is_rejected_in_the_stream_and_the_rest_goes_on(
    emulator: Emulator, adjuster: InventoryAdjuster, bad: object, field: str
) -> None:
    """A malformed item comes back REJECTED (INVALID_DELTA, naming the field); the good ones commit."""
    good = _deltas(emulator, 50, seed=5)
    results = await _collect(adjust_stream(adjuster, [*good[:25], bad, *good[25:]]))
    rejected = [(d, o) for d, o in results if o.status is OutcomeStatus.REJECTED]
    assert [d for d, _ in rejected] == [bad]
    outcome = rejected[0][1]
    assert (
        outcome.code == INVALID_DELTA and outcome.message is not None and field in outcome.message
    )
    assert sum(o.status is OutcomeStatus.COMMITTED for _, o in results) == 50


async def test_mappings_and_tuples_are_deltas_too(
    emulator: Emulator, adjuster: InventoryAdjuster
) -> None:
    """A JSON-like mapping and a (product_id, variant_id, delta) tuple are applied like StockDelta."""
    (pid, vid), (pid2, vid2) = _tracked(emulator)[:2]
    before = emulator.store.quantity(pid, vid), emulator.store.quantity(pid2, vid2)
    items = [{"product_id": pid, "variant_id": vid, "delta": -3}, (pid2, vid2, 4)]
    results = await _collect(adjust_stream(adjuster, items))
    assert [o.status for _, o in results] == [OutcomeStatus.COMMITTED] * 2
    assert (emulator.store.quantity(pid, vid), emulator.store.quantity(pid2, vid2)) == (
        (before[0] or 0) - 3,
        (before[1] or 0) + 4,
    )


async def test_an_async_source_is_streamed(emulator: Emulator, adjuster: InventoryAdjuster) -> None:
    """An async generator input (a slow producer) is read while outcomes keep coming."""
    deltas = _deltas(emulator, 600, seed=6)

    async def source() -> AsyncIterator[StockDelta]:
        for i, d in enumerate(deltas):
            if i % 100 == 0:
                await asyncio.sleep(0)
            yield d

    results = await _collect(adjust_stream(adjuster, source(), window=50))
    assert sorted(id(d) for d, _ in results) == sorted(map(id, deltas))


async def test_unknown_product_is_rejected_by_the_server_not_the_stream(
    emulator: Emulator, adjuster: InventoryAdjuster
) -> None:
    """A well-formed delta for a product that doesn't exist gets the server's NOT_FOUND."""
    ghost = StockDelta("no-such-product", "00000000-0000-0000-0000-000000000000", -1)
    good = _deltas(emulator, 10, seed=7)
    results = {id(d): o for d, o in await _collect(adjust_stream(adjuster, [ghost, *good]))}
    assert results[id(ghost)].code == "NOT_FOUND"
    assert all(results[id(d)].status is OutcomeStatus.COMMITTED for d in good)


async def test_leaving_early_stops_reading_the_input(
    emulator: Emulator, adjuster: InventoryAdjuster
) -> None:
    """After a break only what was already submitted was read: the input is not drained."""
    pulled = 0

    def endless() -> Iterator[StockDelta]:
        nonlocal pulled
        keys = _tracked(emulator)
        while True:
            pulled += 1
            yield StockDelta(*keys[pulled % len(keys)], 1)

    async with aclosing(adjust_stream(adjuster, endless(), window=10)) as results:
        async for _ in results:
            break
    await adjuster.flush()
    assert pulled <= 11


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"window": 0}, "window"), ({"window": True}, "window")]
)
def test_bad_settings_are_refused_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    """A window that is not a positive int is refused before anything starts."""
    with pytest.raises(InvalidInputError, match=field):
        adjust_stream(object(), [], **kwargs)  # type: ignore[arg-type]


def test_input_that_is_not_iterable_is_refused() -> None:
    """deltas must be an iterable or an async iterable."""
    with pytest.raises(InvalidInputError, match="deltas"):
        adjust_stream(object(), 5)  # type: ignore[arg-type]


async def test_readme_streaming_snippet_reports_what_did_not_commit(
    emulator: Emulator, adjuster: InventoryAdjuster, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's adjust_stream snippet, run as printed: the good rows commit, the bad one
    (a delta given as text) is printed REJECTED INVALID_DELTA."""
    readme = README.read_text(encoding="utf-8")
    (block,) = [
        b
        for b in re.findall(r"^```python\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
        if "adjust_stream(adjuster" in b
    ]
    namespace: dict[str, Any] = {"__name__": "readme_streaming"}
    exec(compile(block, "README.md:readme_streaming", "exec"), namespace)  # noqa: S102
    (pid, vid), *_ = _tracked(emulator)
    before = emulator.store.quantity(pid, vid) or 0
    rows = [
        {"product_id": pid, "variant_id": vid, "delta": -2},
        {"product_id": pid, "variant_id": vid, "delta": "-1"},
    ]
    await namespace["apply_all"](adjuster, rows)
    assert capsys.readouterr().out == f"{pid} REJECTED INVALID_DELTA\n"
    assert emulator.store.quantity(pid, vid) == before - 2


async def test_a_closed_adjuster_ends_the_stream_with_its_error(emulator: Emulator) -> None:
    """AdjusterClosed is not a bad delta: it ends the stream."""
    auth = ApiKeyAuth(emulator.api_key, site_id=emulator.site_id)
    async with InventoryClient(auth, base_url=emulator.url, rate_limit=None) as client:
        adj = InventoryAdjuster(client)
        await adj.close()
        with pytest.raises(AdjusterClosed):
            await _collect(adjust_stream(adj, _deltas(emulator, 3, seed=8)))


async def test_an_error_of_the_input_is_raised_after_the_outcomes_so_far(
    emulator: Emulator, adjuster: InventoryAdjuster
) -> None:
    """The input's own exception ends the stream; what was yielded before it stands."""
    deltas = _deltas(emulator, 5, seed=9)

    def broken() -> Iterator[StockDelta]:
        yield from deltas
        raise OSError("disk gone")

    seen: list[Any] = []

    async def consume() -> None:
        async with aclosing(adjust_stream(adjuster, broken(), window=2)) as results:
            async for delta, _ in results:
                seen.append(delta)

    with pytest.raises(OSError, match="disk gone"):
        await consume()
    assert 0 < len(seen) <= 5
