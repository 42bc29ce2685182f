"""Requests applied late (after an ambiguous answer) and a third party's edits, over HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from wixinv_async.emulator import Emulator, FaultPlan, FaultRule
from wixinv_async.emulator.faults import APPLIED_LATE, FaultInjector

from .conftest import V3Api

DECREMENT = "/stores/v2/inventoryItems/decrement"
LATE = 0.05
"""Seconds between the ambiguous answer and the late apply (short: tests wait for it)."""
SLACK = 0.002
"""Timer resolution allowed between the loop's clock and the wall clock. Bounds are taken
from when the client sent (or, for a stall, when its timeout was due): the answer, and so the
late apply, can only come later."""


def late_plan(kind: str, endpoint: str = "decrementInventory", **plan: Any) -> FaultPlan:
    return FaultPlan({endpoint: FaultRule(**{kind: 1.0})}, late_seconds=LATE, **plan)


def one_decrement(api: Any, amount: int = 1) -> tuple[dict[str, Any], str, str]:
    pid, _, vid = api.tracked()
    return (
        {"decrementData": [{"productId": pid, "variantId": vid, "decrementBy": amount}]},
        pid,
        vid,
    )


async def test_late_504_answers_first_and_applies_after_the_delay(api: Any) -> None:
    """late_504: a 504 with nothing applied; the write lands LATE seconds after the answer,
    journaled once with the 504's request id, source "late" and the time it was applied."""
    api.emu.set_faults(late_plan("late_504"))
    body, pid, vid = one_decrement(api)
    before = api.emu.store.quantity(pid, vid)
    sent = time.time()
    status, data, response = await api.call("POST", DECREMENT, body)
    assert (status, data["details"]["applicationError"]["code"]) == (504, "GATEWAY_TIMEOUT")
    assert api.emu.store.quantity(pid, vid) == before and api.emu.journal() == []
    assert api.emu.stats()["late"]["pending"] == 1
    await api.emu.wait_late_applies()
    assert api.emu.store.quantity(pid, vid) == before - 1
    (entry,) = api.emu.journal()
    assert (entry.request_id, entry.source) == (response.headers["x-wix-request-id"], "late")
    assert entry.at >= sent + LATE - SLACK
    assert api.emu.stats()["late"] == {"pending": 0, "applied": 1, "refused": 0, "dropped": 0}
    assert api.emu.stats()["faults"] == {"late_504": 1}


async def test_late_reset_drops_the_connection_then_applies(api: Any) -> None:
    """late_reset: the connection is reset with nothing applied; the write lands later."""
    api.emu.set_faults(late_plan("late_reset"))
    body, pid, vid = one_decrement(api)
    before = api.emu.store.quantity(pid, vid)
    sent = time.time()
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.call("POST", DECREMENT, body)
    assert api.emu.store.quantity(pid, vid) == before
    await api.emu.wait_late_applies()
    assert api.emu.store.quantity(pid, vid) == before - 1
    (entry,) = api.emu.journal()
    assert entry.source == "late" and entry.at >= sent + LATE - SLACK


async def test_late_stall_applies_only_after_the_client_gave_up(api: Any) -> None:
    """late_stall: no answer; once the client times out and disconnects, the write lands
    LATE seconds later (never while the client was still waiting)."""
    api.emu.set_faults(late_plan("late_stall", stall_seconds=60))
    body, pid, vid = one_decrement(api)
    before = api.emu.store.quantity(pid, vid)
    sent = time.time()
    with pytest.raises(asyncio.TimeoutError):
        await api.session.post(
            api.emu.url + DECREMENT,
            json=body,
            headers=api.headers,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    assert api.emu.store.quantity(pid, vid) == before
    await api.emu.wait_late_applies()
    assert api.emu.store.quantity(pid, vid) == before - 1
    (entry,) = api.emu.journal()
    assert entry.source == "late" and entry.at >= sent + 0.2 + LATE - SLACK


async def test_a_late_apply_meets_the_state_of_its_time(api: Any) -> None:
    """A late decrement is checked when it is applied: if the stock went meanwhile it is
    refused (counted, not journaled) and nothing changes."""
    api.emu.set_faults(late_plan("late_504"))
    body, pid, vid = one_decrement(api, amount=3)
    status, _, _ = await api.call("POST", DECREMENT, body)
    assert status == 504
    api.emu.edit_quantity(pid, vid, quantity=1)
    await api.emu.wait_late_applies()
    assert api.emu.store.quantity(pid, vid) == 1
    assert [e.endpoint for e in api.emu.journal()] == ["thirdPartyEdit"]
    assert api.emu.stats()["late"]["refused"] == 1


async def test_late_requests_count_in_the_rate_window() -> None:
    """A request that drew a late fault was admitted: it takes its slot in the site's window."""
    plan = late_plan("late_504", endpoint="queryInventory")
    async with (
        Emulator(products=2, rate_limit="1/60", faults=plan) as emu,
        aiohttp.ClientSession(
            headers={"Authorization": emu.api_key, "wix-site-id": emu.site_id}
        ) as session,
    ):
        statuses = []
        for _ in range(2):
            async with session.post(emu.url + "/stores-reader/v2/inventoryItems/query") as r:
                statuses.append(r.status)
        await emu.wait_late_applies()
    assert statuses == [504, 429]


async def test_pending_late_applies_are_dropped_at_shutdown() -> None:
    """Closing the emulator drops the late applies not yet made: they never apply."""
    plan = FaultPlan({"decrementInventory": FaultRule(late_504=1.0)}, late_seconds=60)
    async with Emulator(products=3, seed=1, faults=plan) as emu:
        item = next(i for i in emu.store.items() if i.track_quantity)
        entry = {"productId": item.product_id, "variantId": item.variants[0].variant_id}
        headers = {"Authorization": emu.api_key, "wix-site-id": emu.site_id}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                emu.url + DECREMENT,
                json={"decrementData": [{**entry, "decrementBy": 1}]},
                headers=headers,
            ) as r,
        ):
            assert r.status == 504
    await emu.wait_late_applies()
    assert emu.journal() == []
    assert emu.stats()["late"] == {"pending": 0, "applied": 0, "refused": 0, "dropped": 1}


def test_late_faults_and_delays_are_deterministic_for_a_seed() -> None:
    """The same plan gives the same late kinds and delays, each in [late_seconds,
    late_seconds + late_jitter]; other kinds have no late delay."""
    rule = FaultRule(error_503=0.2, late_504=0.2, late_reset=0.1, late_stall=0.1)
    plan = FaultPlan({"*": rule}, seed=11, late_seconds=2.0, late_jitter=0.5)
    one, two = FaultInjector(plan), FaultInjector(plan)
    first = [one.decide("incrementInventory") for _ in range(200)]
    assert [two.decide("incrementInventory") for _ in range(200)] == first
    late = [f for f in first if f.kind in APPLIED_LATE]
    assert {f.kind for f in late} == set(APPLIED_LATE)
    assert all(2.0 <= f.late <= 2.5 for f in late) and len({f.late for f in late}) > 1
    assert all(f.late == 0 for f in first if f.kind not in APPLIED_LATE)


async def test_v3_late_apply_lands_in_the_v3_journal(api3: V3Api) -> None:
    """A V3 bulk decrement with late_504 answers 504 and is applied later, source "late"."""
    api3.emu.set_faults(late_plan("late_504", endpoint="bulkDecrementInventoryItems"))
    item = api3.tracked3()
    body = {"decrementData": [{"inventoryItemId": item["id"], "decrementBy": 2}]}
    await api3.bulk("decrement", body, expect=504)
    assert api3.store3().find(item["id"]).quantity == item["quantity"]  # type: ignore[union-attr]
    await api3.emu.wait_late_applies()
    assert api3.store3().find(item["id"]).quantity == item["quantity"] - 2  # type: ignore[union-attr]
    (entry,) = api3.emu.journal()
    assert (entry.endpoint, entry.source) == ("bulkDecrementInventoryItems", "late")


async def test_late_fault_plan_round_trips_through_the_admin_api(api: Any) -> None:
    """late_seconds and late_jitter are part of a plan's JSON, set and read over HTTP."""
    plan = {"late_seconds": 0.5, "late_jitter": 0.25, "endpoints": {"*": {"late_stall": 0.5}}}
    async with api.session.post(api.emu.url + "/_emulator/faults", json=plan) as r:
        assert r.status == 200
    async with api.session.get(api.emu.url + "/_emulator/faults") as r:
        got = await r.json()
    assert (got["late_seconds"], got["late_jitter"], got["endpoints"]) == (
        0.5,
        0.25,
        {"*": {"late_stall": 0.5}},
    )
    with pytest.raises(ValueError, match="late_seconds"):
        FaultPlan(late_seconds=-1)


# --- a third party's edits -----------------------------------------------------------------


async def test_third_party_edit_over_the_admin_api_is_journaled_as_such(api: Any) -> None:
    """POST /_emulator/edit sets or moves a V1 variant's quantity out of band; the journal
    records it as thirdPartyEdit, source third_party, with the quantities before and after."""
    pid, _, vid = api.tracked()
    before = api.emu.store.quantity(pid, vid)
    url = api.emu.url + "/_emulator/edit"
    target = {"productId": pid, "variantId": vid}
    async with api.session.post(url, json={**target, "delta": 4}) as r:
        assert await r.json() == {"quantityBefore": before, "quantityAfter": before + 4}
    async with api.session.post(url, json={**target, "quantity": 7}) as r:
        assert await r.json() == {"quantityBefore": before + 4, "quantityAfter": 7}
    assert api.emu.store.quantity(pid, vid) == 7
    async with api.session.get(api.emu.url + "/_emulator/journal") as r:
        journal = (await r.json())["journal"]
    assert [(e["endpoint"], e["source"], e["requestId"]) for e in journal] == [
        ("thirdPartyEdit", "third_party", "")
    ] * 2
    assert journal[1]["entries"] == [{**target, "quantityBefore": before + 4, "quantityAfter": 7}]
    status, _ = await api.query({"filter": f'{{"productId": "{pid}"}}'})
    assert status == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"quantity": 1, "delta": 1}, 400),
        ({}, 400),
        ({"quantity": 100_000}, 400),
        ({"quantity": -1}, 400),
        ({"quantity": 1, "extra": 1}, 400),
        ({"quantity": 1, "variantId": "00000000-0000-0000-0000-00000000dead"}, 404),
    ],
)
async def test_bad_third_party_edits_are_refused(
    api: Any, body: dict[str, Any], status: int
) -> None:
    """Both or neither of quantity and delta, a result outside 0..99999 or an unknown field
    is a 400, an unknown variant a 404; nothing changes."""
    pid, _, vid = api.tracked()
    async with api.session.post(
        api.emu.url + "/_emulator/edit", json={"productId": pid, "variantId": vid, **body}
    ) as r:
        assert r.status == status
    assert api.emu.journal() == []


async def test_third_party_edit_of_a_v3_item_moves_its_revision(api3: V3Api) -> None:
    """On a V3 site the edit names the inventory item; revision + 1, journaled as such."""
    item = api3.tracked3()
    async with api3.session.post(
        api3.emu.url + "/_emulator/edit", json={"inventoryItemId": item["id"], "delta": -2}
    ) as r:
        assert await r.json() == {
            "quantityBefore": item["quantity"],
            "quantityAfter": item["quantity"] - 2,
        }
    status, now = await api3.get(item["id"])
    assert (status, now["inventoryItem"]["quantity"]) == (200, item["quantity"] - 2)
    assert int(now["inventoryItem"]["revision"]) == int(item["revision"]) + 1
    (entry,) = api3.emu.journal()
    assert (entry.endpoint, entry.source) == ("thirdPartyEdit", "third_party")


async def test_a_faulted_stream_conserves_stock_with_late_applies() -> None:
    """120 concurrent single-entry decrements under mixed faults (late ones included): once
    the late applies are done, every journaled request is in the journal once, every late
    fault's request is in it once with source "late", and the stock moved by exactly the
    journaled amounts."""
    rule = FaultRule(error_503=0.1, error_504=0.1, late_504=0.15, late_reset=0.1)
    plan = FaultPlan({"decrementInventory": rule}, seed=5, late_seconds=0.02, late_jitter=0.03)
    async with Emulator(products=30, variants_per_product=1, seed=3, faults=plan) as emu:
        keys = [
            (i.product_id, i.variants[0].variant_id)
            for i in emu.store.items()
            if i.track_quantity and (i.variants[0].quantity or 0) > 10
        ][:8]
        before = {key: emu.store.quantity(*key) for key in keys}
        headers = {"Authorization": emu.api_key, "wix-site-id": emu.site_id}

        async def send(n: int, session: aiohttp.ClientSession) -> None:
            pid, vid = keys[n % len(keys)]
            entry = {"productId": pid, "variantId": vid, "decrementBy": 1}
            try:
                async with session.post(
                    emu.url + DECREMENT, json={"decrementData": [entry]}, headers=headers
                ) as r:
                    await r.read()
            except aiohttp.ClientConnectionError:
                pass

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(send(n, session) for n in range(120)))
        await emu.wait_late_applies()
        journal = emu.journal()
        late = emu.stats()["late"]
        assert late["applied"] == sum(e.source == "late" for e in journal) > 0
        assert (
            late["applied"]
            == emu.stats()["faults"]["late_504"] + emu.stats()["faults"]["late_reset"]
        )
        assert len({e.request_id for e in journal}) == len(journal)
        for key in keys:
            taken = sum(
                entry["decrementBy"]
                for e in journal
                for entry in e.entries
                if (entry["productId"], entry["variantId"]) == key
            )
            assert emu.store.quantity(*key) == before[key] - taken
