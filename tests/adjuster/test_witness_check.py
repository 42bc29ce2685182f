"""The witness set-up check and the witness product guard, over HTTP against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from wixinv_async import (
    InvalidInputError,
    InventoryAdjuster,
    Witness,
    WitnessProblemCode,
    check_witness,
)
from wixinv_async.core.witness import Bounds
from wixinv_async.emulator import Emulator

from .test_emulator import client_for, tracked

P = WitnessProblemCode


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A small V1 site."""
    async with Emulator(products=20, variants_per_product=3, seed=18) as emu:
        yield emu


def _product(emu: Emulator, **kwargs: object) -> tuple[str, list[str]]:
    item = emu.store.add_product(**{"variants": 4, "quantity": 50_000, **kwargs})  # type: ignore[arg-type]
    assert item.product_id is not None
    return item.product_id, [v.variant_id for v in item.variants]


async def test_a_well_set_up_witness_product_has_no_problem(emulator: Emulator) -> None:
    """Tracked, hidden, a variant per slot, quantities at the centre: ok, its variants named."""
    product_id, variants = _product(emulator, visible=False)
    async with client_for(emulator) as client:
        check = await check_witness(client, product_id, slots=4)
        by_witness = await check_witness(client, Witness(product_id, variants[:2]))
    assert check.ok and check.problems == () and check.variant_ids == tuple(variants)
    assert check.visible is False and by_witness.ok and by_witness.slots == 2
    assert check.lines() == [f"witness product {product_id}: ok (4 variants for 4 slots)"]


@pytest.mark.parametrize(
    ("kwargs", "slots", "codes"),
    [
        ({"visible": True}, 4, {P.VISIBLE}),
        ({"visible": False, "track": False}, 4, {P.NOT_TRACKED}),
        ({"visible": False}, 6, {P.TOO_FEW_VARIANTS}),
        ({"visible": False, "quantity": 10}, 4, {P.QUANTITY_OUT_OF_BOUNDS}),
        (
            {"visible": True, "variants": 1, "quantity": 0},
            2,
            {P.VISIBLE, P.TOO_FEW_VARIANTS, P.QUANTITY_OUT_OF_BOUNDS},
        ),
    ],
)
async def test_each_set_up_problem_is_named(
    emulator: Emulator, kwargs: dict[str, object], slots: int, codes: set[WitnessProblemCode]
) -> None:
    """Visible, untracked, too few variants, quantities out of bounds: each a typed problem
    with a message saying what to do."""
    product_id, _ = _product(emulator, **kwargs)
    async with client_for(emulator) as client:
        check = await check_witness(client, product_id, slots=slots)
    assert not check.ok and {p.code for p in check.problems} == codes
    assert all(p.message for p in check.problems)
    assert len(check.lines()) == 1 + len(check.problems)


async def test_a_missing_product_and_unknown_variants_are_problems(emulator: Emulator) -> None:
    """No such product: PRODUCT_MISSING; a Witness naming variants the product lacks:
    UNKNOWN_VARIANT, one per variant."""
    product_id, variants = _product(emulator, visible=False)
    ghost = "11111111-1111-1111-1111-111111111111"
    async with client_for(emulator) as client:
        missing = await check_witness(client, "no-such-product")
        unknown = await check_witness(client, Witness(product_id, [variants[0], ghost]))
    assert [p.code for p in missing.problems] == [P.PRODUCT_MISSING]
    assert [(p.code, p.variant_id) for p in unknown.problems] == [(P.UNKNOWN_VARIANT, ghost)]


async def test_the_check_uses_the_witness_bounds(emulator: Emulator) -> None:
    """A quantity inside the witness's own bounds is fine even when outside the defaults."""
    product_id, variants = _product(emulator, visible=False, quantity=500)
    bounds = Bounds(low=200, centre=500, high=800, hard_low=100, hard_high=900)
    async with client_for(emulator) as client:
        check = await check_witness(client, Witness(product_id, variants, bounds=bounds))
    assert check.ok


async def test_a_v3_site_is_the_wrong_catalog() -> None:
    """A witness is a V1 mechanism: on a V3 site the check says so."""
    async with Emulator(products=5, catalog="v3") as emu, client_for(emu) as client:
        check = await check_witness(client, "any-product")
    assert [p.code for p in check.problems] == [P.WRONG_CATALOG]


@pytest.mark.parametrize("bad", [0, -1, True, "4"])
async def test_bad_slots_are_a_configuration_error(emulator: Emulator, bad: object) -> None:
    """slots must be a whole number >= 1 (named in the error)."""
    async with client_for(emulator) as client:
        with pytest.raises(ValueError, match="slots"):
            await check_witness(client, "p", slots=bad)  # type: ignore[arg-type]


async def test_a_delta_on_the_witness_product_is_refused_at_submit(emulator: Emulator) -> None:
    """By product id at once, by inventory id once a read named it: InvalidInputError naming
    the field and value; nothing is sent, other deltas go on."""
    product_id, variants = _product(emulator, visible=False)
    inventory_id = emulator.store.item(product_id).id  # type: ignore[union-attr]
    witness = Witness(product_id, variants, settle=0.0)
    key = tracked(emulator)[0]
    async with (
        client_for(emulator) as client,
        InventoryAdjuster(client, linger=0, witness=witness) as adj,
    ):
        with pytest.raises(InvalidInputError, match="productId") as refused:
            adj.submit_nowait(product_id, variants[0], -1)
        assert refused.value.field == "productId" and refused.value.value == product_id
        positional = adj.positional_submit()
        with pytest.raises(InvalidInputError, match="productId"):
            positional(product_id, None, variants[0], False, -1, None)
        assert (await adj.adjust(*key, 1)).code is None  # the baseline read names the item
        with pytest.raises(InvalidInputError, match="inventoryId"):
            positional(None, inventory_id, variants[0], False, 1, None)
        with pytest.raises(InvalidInputError, match="inventoryId") as by_inventory:
            await adj.submit(None, variants[0], 1, inventory_id=inventory_id)
        assert by_inventory.value.value == inventory_id
    moved = sum(emulator.store.quantity(product_id, v) or 0 for v in variants) - 4 * 50_000
    assert moved == 1  # the one request's witness step, nothing of the refused deltas
