"""Fault injection: every kind, before or after applying, seeded and switchable at run time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from wixinv_async.emulator import FAULT_KINDS, Emulator, FaultPlan, FaultRule
from wixinv_async.emulator.faults import FaultInjector

DECREMENT = "/stores/v2/inventoryItems/decrement"
QUERY = "/stores-reader/v2/inventoryItems/query"


def one_decrement(api: Any) -> tuple[dict[str, Any], str, str]:
    pid, _, vid = api.tracked()
    return {"decrementData": [{"productId": pid, "variantId": vid, "decrementBy": 1}]}, pid, vid


@pytest.mark.parametrize(
    ("kind", "status", "applied"),
    [
        ("rate_limited", 429, False),
        ("error_500", 500, False),
        ("error_503", 503, False),
        ("error_502", 502, True),
        ("error_504", 504, True),
    ],
)
async def test_error_statuses_before_or_after_applying(
    api: Any, kind: str, status: int, applied: bool
) -> None:
    """Injected statuses answer as configured; 502/504 come after the write was applied."""
    api.emu.set_faults(FaultPlan({"decrementInventory": FaultRule(**{kind: 1.0})}))
    body, pid, vid = one_decrement(api)
    before = api.emu.store.quantity(pid, vid)
    got, _, response = await api.call("POST", DECREMENT, body)
    assert got == status
    assert response.headers["x-wix-request-id"]
    assert api.emu.store.quantity(pid, vid) == before - applied
    assert len(api.emu.store.journal) == applied
    assert api.emu.stats()["faults"] == {kind: 1}


async def test_injected_429_carries_retry_after_and_a_wix_body(api: Any) -> None:
    """An injected 429 has the plan's Retry-After and a TOO_MANY_REQUESTS body."""
    api.emu.set_faults(FaultPlan({"*": FaultRule(rate_limited=1.0)}, retry_after=7))
    got, data, response = await api.call("POST", QUERY, {})
    assert (got, response.headers["Retry-After"]) == (429, "7")
    assert data["details"]["applicationError"]["code"] == "TOO_MANY_REQUESTS"


@pytest.mark.parametrize(("kind", "applied"), [("reset_before", False), ("reset_after", True)])
async def test_connection_resets(api: Any, kind: str, applied: bool) -> None:
    """A reset drops the connection; after applying, the write is applied and journaled once."""
    api.emu.set_faults(FaultPlan({"decrementInventory": FaultRule(**{kind: 1.0})}))
    body, pid, vid = one_decrement(api)
    before = api.emu.store.quantity(pid, vid)
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.call("POST", DECREMENT, body)
    assert api.emu.store.quantity(pid, vid) == before - applied
    assert [j.endpoint for j in api.emu.store.journal] == ["decrementInventory"] * applied
    assert api.emu.stats()["requests"]["decrementInventory"] == {"reset": 1}


async def test_stall_after_applying_until_the_client_times_out(api: Any) -> None:
    """A stall applies the write, then never answers: the client's own timeout fires."""
    api.emu.set_faults(
        FaultPlan({"decrementInventory": FaultRule(stall_after=1.0)}, stall_seconds=60)
    )
    body, pid, vid = one_decrement(api)
    before = api.emu.store.quantity(pid, vid)
    with pytest.raises(asyncio.TimeoutError):
        await api.session.post(
            api.emu.url + DECREMENT,
            json=body,
            headers=api.headers,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    assert api.emu.store.quantity(pid, vid) == before - 1
    assert api.emu.stats()["faults"] == {"stall_after": 1}


async def test_stall_is_bounded_by_stall_seconds(api: Any) -> None:
    """After stall_seconds the stalled connection is dropped rather than answered."""
    api.emu.set_faults(
        FaultPlan({"decrementInventory": FaultRule(stall_after=1.0)}, stall_seconds=0)
    )
    body, _, _ = one_decrement(api)
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.call("POST", DECREMENT, body)
    assert len(api.emu.store.journal) == 1


async def test_shutdown_ends_a_stall_at_once() -> None:
    """Closing the emulator ends a stalled request cleanly: the client sees a disconnect."""
    emu = Emulator(
        products=5, seed=1, faults=FaultPlan({"*": FaultRule(stall_after=1.0)}, stall_seconds=3600)
    )
    await emu.start()
    applied = asyncio.Event()
    emu.store.add_listener(lambda _event: applied.set())
    pid, vid = next(
        (i.product_id, v.variant_id)
        for i in emu.store.items()
        for v in i.variants
        if isinstance(v.quantity, int) and v.quantity > 0
    )
    body = {"decrementData": [{"productId": pid, "variantId": vid, "decrementBy": 1}]}
    headers = {"Authorization": emu.api_key, "wix-site-id": emu.site_id}
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(
            session.post(emu.url + DECREMENT, json=body, headers=headers)
        )
        await applied.wait()
        await asyncio.wait_for(emu.aclose(), timeout=10)
        with pytest.raises(aiohttp.ClientConnectionError):
            await request


async def test_latency_delays_before_applying(api: Any) -> None:
    """A client that gives up during injected latency leaves the write unapplied."""
    api.emu.set_faults(FaultPlan({"decrementInventory": FaultRule(latency_ms=60_000)}))
    body, pid, vid = one_decrement(api)
    before = api.emu.store.quantity(pid, vid)
    with pytest.raises(asyncio.TimeoutError):
        await api.session.post(
            api.emu.url + DECREMENT,
            json=body,
            headers=api.headers,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    assert api.emu.store.quantity(pid, vid) == before
    assert api.emu.stats()["faults"] == {"latency": 1}


async def test_small_latency_still_answers(api: Any) -> None:
    """Latency with jitter delays but does not fail a request."""
    api.emu.set_faults(FaultPlan({"*": FaultRule(latency_ms=2, jitter_ms=1)}))
    got, _, _ = await api.call("POST", QUERY, {})
    assert got == 200


async def test_rules_are_per_endpoint(api: Any) -> None:
    """A rule for decrementInventory leaves queries alone; '*' covers the rest."""
    api.emu.set_faults(
        FaultPlan({"decrementInventory": FaultRule(error_500=1.0), "*": FaultRule(error_503=1.0)})
    )
    body, _, _ = one_decrement(api)
    assert (await api.call("POST", DECREMENT, body))[0] == 500
    assert (await api.call("POST", QUERY, {}))[0] == 503


async def test_faults_are_deterministic_for_a_seed() -> None:
    """The same plan and request sequence give the same faults; another seed differs."""

    async def statuses(seed: int) -> list[int]:
        plan = FaultPlan({"*": FaultRule(error_500=0.3, error_503=0.3)}, seed=seed)
        async with Emulator(products=1, faults=plan) as emu, aiohttp.ClientSession() as session:
            headers = {"Authorization": emu.api_key, "wix-site-id": emu.site_id}
            out = []
            for _ in range(25):
                async with session.post(emu.url + QUERY, json={}, headers=headers) as r:
                    out.append(r.status)
            return out

    first, again, other = await statuses(3), await statuses(3), await statuses(4)
    assert first == again
    assert first != other
    assert {200, 500, 503} == set(first)


async def test_faults_set_and_cleared_over_the_admin_api(api: Any) -> None:
    """POST /_emulator/faults installs a plan from JSON; null clears it."""
    plan = {"seed": 1, "endpoints": {"queryInventory": {"error_503": 1.0}}}
    status, echoed, _ = await api.call("POST", "/_emulator/faults", plan)
    assert status == 200
    assert echoed["endpoints"] == plan["endpoints"]
    assert (await api.call("GET", "/_emulator/faults"))[1]["endpoints"] == plan["endpoints"]
    assert (await api.call("POST", QUERY, {}))[0] == 503
    await api.call("POST", "/_emulator/faults", None)
    assert (await api.call("POST", QUERY, {}))[0] == 200


@pytest.mark.parametrize(
    "plan",
    [
        {"endpoints": {"nope": {"error_500": 1}}},
        {"endpoints": {"*": {"error_500": 0.7, "error_503": 0.7}}},
        {"endpoints": {"*": {"explode": 1}}},
        {"endpoints": {"*": {"error_500": 2}}},
        {"colour": 1},
    ],
)
async def test_bad_fault_plans_are_400(api: Any, plan: dict[str, Any]) -> None:
    """Unknown endpoints or kinds, probabilities out of range or summing past 1: 400."""
    status, data, _ = await api.call("POST", "/_emulator/faults", plan)
    assert status == 400
    assert "fault plan" in data["message"]
    assert api.emu.faults is None


def test_fault_plan_round_trips_through_a_json_file(tmp_path: Path) -> None:
    """A plan read from a --faults file equals the plan written."""
    plan = FaultPlan(
        {
            "*": FaultRule(latency_ms=5, jitter_ms=2),
            "decrementInventory": FaultRule(reset_after=0.25),
        },
        seed=9,
        stall_seconds=4,
    )
    path = tmp_path / "faults.json"
    path.write_text(json.dumps(plan.to_dict()))
    assert FaultPlan.from_file(path) == plan


def test_injector_draws_every_kind_in_proportion() -> None:
    """Over many draws each kind appears about as often as its probability says."""
    share = 1 / len(FAULT_KINDS)
    injector = FaultInjector(
        FaultPlan({"*": FaultRule(**dict.fromkeys(FAULT_KINDS, share))}, seed=2)
    )
    counts = dict.fromkeys(FAULT_KINDS, 0)
    for _ in range(8_000):
        kind = injector.decide("queryInventory").kind
        assert kind is not None
        counts[kind] += 1
    expected = 8_000 * share
    assert all(0.8 * expected < n < 1.2 * expected for n in counts.values()), counts


def test_injector_jitter_stays_in_bounds() -> None:
    """Latency with jitter stays within latency ± jitter and never below zero."""
    injector = FaultInjector(FaultPlan({"*": FaultRule(latency_ms=10, jitter_ms=4)}, seed=1))
    delays = [injector.decide("queryInventory").delay for _ in range(500)]
    assert min(delays) >= 0.006 and max(delays) <= 0.014
    assert len(set(delays)) > 400


def test_token_endpoint_is_not_covered_by_star() -> None:
    """A '*' rule does not touch oauthToken; naming it does."""
    assert FaultPlan({"*": FaultRule(error_500=1)}).rule("oauthToken") is None
    assert FaultPlan({"oauthToken": FaultRule(error_500=1)}).rule("oauthToken") is not None
