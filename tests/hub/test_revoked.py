"""A revoked installation rests between token requests instead of asking on every batch."""

from __future__ import annotations

import asyncio

import pytest

from wixinv_async import AppCredentials, InventoryHub, OutcomeStatus, RateLimit, Ticket
from wixinv_async._hubtoken import refused_backoff
from wixinv_async.emulator import Emulator

C, R = OutcomeStatus.COMMITTED, OutcomeStatus.REJECTED
FAST = RateLimit(1000, 1.0)  # batches a millisecond apart: the waves take far less than a rest


def first_keys(emu: Emulator, site: str, count: int) -> list[tuple[str, str]]:
    """``count`` tracked (product id, variant id) pairs of ``site``."""
    keys = [
        (item.product_id, variant.variant_id)
        for item in emu.site(site).items()
        if item.track_quantity is True
        for variant in item.variants
    ]
    return keys[:count]


def sent(hub: InventoryHub, instance: str, endpoint: str) -> int:
    """Requests the site's client sent to ``endpoint``."""
    return hub.site(instance).client.stats().requests_by_endpoint.get(endpoint, 0)


async def wave(
    hub: InventoryHub, keys: dict[str, list[tuple[str, str]]]
) -> dict[str, list[Ticket]]:
    """One delta per key on every site, flushed: each its own batch and request."""
    tickets = {i: [hub.submit_nowait(i, *k, 1) for k in ks] for i, ks in keys.items()}
    await hub.flush()
    return tickets


def test_the_rest_doubles_from_one_second_up_to_a_minute() -> None:
    """1, 2, 4, ... seconds after each refusal in a row, never more than 60."""
    assert [refused_backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert refused_backoff(10_000) == 60


async def test_a_revoked_site_asks_for_a_token_once_per_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Six batches of a revoked site cost one token request and no inventory request, each
    delta REJECTED retriable with the reason; the other sites commit. Reinstated, the site
    asks again only once its rest is over, then commits."""
    async with Emulator(sites=3, products=4, seed=31) as emu:
        revoked = emu.instances[1]
        emu.revoke(revoked)
        keys = {i: first_keys(emu, s, 3) for i, s in zip(emu.instances, emu.sites, strict=True)}
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url, rate_limit=FAST, linger=0
        ) as hub:
            waves = [await wave(hub, keys) for _ in range(6)]
            assert sent(hub, revoked, "oauth_token") == 1
            assert sent(hub, revoked, "increment_inventory") == 0
            for tickets in waves:
                for instance, group in tickets.items():
                    outcomes = [t.result() for t in group]
                    if instance != revoked:
                        assert {o.status for o in outcomes} == {C}
                        continue
                    for outcome in outcomes:
                        assert (outcome.status, outcome.retriable) == (R, True), outcome
                        assert outcome.code == "UNAUTHENTICATED"
                        assert "token refused: not asked again for" in (outcome.message or "")
            emu.reinstate(revoked)
            refused = await wave(hub, {revoked: keys[revoked]})  # still resting: not asked
            assert {t.result().status for t in refused[revoked]} == {R}
            assert sent(hub, revoked, "oauth_token") == 1
            loop = asyncio.get_running_loop()
            real = loop.time
            monkeypatch.setattr(loop, "time", lambda: real() + refused_backoff(1))
            back = await wave(hub, {revoked: keys[revoked]})
            assert {t.result().status for t in back[revoked]} == {C}
            assert sent(hub, revoked, "oauth_token") == 2


async def test_a_site_revoked_while_served_drops_its_token_and_rests() -> None:
    """A site whose cached token is revoked: one 401 request and one refused token request,
    then its further batches send nothing until the rest is over."""
    async with Emulator(sites=2, products=4, seed=32) as emu:
        instance = emu.instances[0]
        keys = {instance: first_keys(emu, emu.sites[0], 2)}
        async with InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url, rate_limit=FAST, linger=0
        ) as hub:
            first = await wave(hub, keys)
            assert {t.result().status for t in first[instance]} == {C}
            emu.revoke(instance)
            later = [await wave(hub, keys) for _ in range(4)]
            assert all(t.result().status is R for w in later for t in w[instance])
            assert sent(hub, instance, "oauth_token") == 2  # the first token, one refused
            assert sent(hub, instance, "increment_inventory") == 2  # one 401 after revoking
