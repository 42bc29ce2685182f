"""A COMMITTED outcome names the request that applied it (``x-wix-request-id``), over HTTP."""

from __future__ import annotations

from wixinv_async.adjuster import InventoryAdjuster, OutcomeStatus
from wixinv_async.auth import ApiKeyAuth
from wixinv_async.client import InventoryClient
from wixinv_async.emulator import Emulator


def _client(emu: Emulator) -> InventoryClient:
    auth = ApiKeyAuth(emu.api_key, site_id=emu.site_id)
    return InventoryClient(auth, base_url=emu.url, rate_limit=None)


async def test_a_v1_commit_carries_the_request_id_the_server_journaled() -> None:
    """V1: each batch's COMMITTED outcome carries the id the emulator gave that write."""
    async with Emulator(products=10, variants_per_product=1, seed=3) as emu:
        keys = [
            (item.product_id, item.variants[0].variant_id)
            for item in emu.store.items()
            if item.track_quantity
        ][:3]
        for key in keys:
            emu.store.set_quantity(*key, 10)
        async with _client(emu) as client, InventoryAdjuster(client, linger=10) as adj:
            down = [adj.submit_nowait(*key, -1) for key in keys]
            await adj.flush()
            up = adj.submit_nowait(*keys[0], 2)
            await adj.flush()
        ids = {entry.endpoint: entry.request_id for entry in emu.store.journal}
    outcomes = [t.outcome for t in [*down, up]]
    assert all(o is not None and o.status is OutcomeStatus.COMMITTED for o in outcomes)
    assert {o.request_id for o in outcomes[:3]} == {ids["decrementInventory"]}  # type: ignore[union-attr]
    assert up.outcome.request_id == ids["incrementInventory"] != ids["decrementInventory"]  # type: ignore[union-attr]


async def test_a_v3_commit_carries_the_request_id_the_server_journaled() -> None:
    """V3: the per-item answer's COMMITTED outcomes carry the id of the bulk request."""
    async with Emulator(products=10, variants_per_product=1, seed=3, catalog="v3") as emu:
        store = emu.v3_store()
        items = [r for r in store.records() if r.track is True][:2]
        async with _client(emu) as client, InventoryAdjuster(client, linger=10) as adj:
            tickets = [adj.submit_nowait("p", item.variant_id, 1) for item in items]
            await adj.flush()
        journaled = [j.request_id for j in store.journal if j.endpoint.startswith("bulk")]
    assert len(set(journaled)) == 1 and journaled[0]
    assert [t.outcome.request_id for t in tickets] == journaled[:1] * 2  # type: ignore[union-attr]
