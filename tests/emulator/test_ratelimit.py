"""Rate limiting: a strict rolling window per site, 429 with a Wix body and Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from wixinv_async.emulator import Emulator
from wixinv_async.emulator.ratelimit import RollingWindow, parse_rate, retry_after_header

QUERY = "/stores-reader/v2/inventoryItems/query"


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()


@pytest.fixture
async def limited(clock: FakeClock) -> AsyncIterator[Emulator]:
    """An emulator allowing 3 requests per rolling 10 s, two sites."""
    async with Emulator(products=3, rate_limit="3/10", extra_sites=1, clock=clock) as emu:
        yield emu


async def ask(emu: Emulator, site: str | None = None) -> aiohttp.ClientResponse:
    headers = {"Authorization": emu.api_key, "wix-site-id": site or emu.site_id}
    async with (
        aiohttp.ClientSession() as session,
        session.post(emu.url + QUERY, json={}, headers=headers) as r,
    ):
        await r.read()
        return r


async def test_fourth_request_in_window_gets_429_with_wix_body(limited: Emulator) -> None:
    """Three requests pass; the fourth within 10 s is a 429 with a Wix error and Retry-After."""
    for _ in range(3):
        assert (await ask(limited)).status == 200
    headers = {"Authorization": limited.api_key, "wix-site-id": limited.site_id}
    async with (
        aiohttp.ClientSession() as session,
        session.post(limited.url + QUERY, json={}, headers=headers) as r,
    ):
        body = await r.json()
    assert r.status == 429
    assert body["details"]["applicationError"]["code"] == "TOO_MANY_REQUESTS"
    assert r.headers["Retry-After"] == "10"
    assert r.headers["x-wix-request-id"]


async def test_window_rolls_rather_than_resetting(limited: Emulator, clock: FakeClock) -> None:
    """Slots free up one by one as each accepted request leaves the rolling window."""
    for step in (0.0, 4.0, 4.0):
        clock.now += step
        assert (await ask(limited)).status == 200
    clock.now += 1.5  # t=9.5: all three still in the window
    refused = await ask(limited)
    assert (refused.status, refused.headers["Retry-After"]) == (429, "1")
    clock.now += 0.5  # t=10: the first has left
    assert (await ask(limited)).status == 200
    assert (await ask(limited)).status == 429


async def test_refused_requests_do_not_count(limited: Emulator, clock: FakeClock) -> None:
    """Hammering while refused does not push the window further out."""
    for _ in range(3):
        await ask(limited)
    for _ in range(5):
        clock.now += 1
        assert (await ask(limited)).status == 429
    clock.now += 5
    assert (await ask(limited)).status == 200


async def test_each_site_has_its_own_window(limited: Emulator) -> None:
    """Another site's budget is untouched by the first site's requests."""
    for _ in range(3):
        await ask(limited)
    assert (await ask(limited)).status == 429
    assert (await ask(limited, limited.sites[1])).status == 200


async def test_retry_after_can_be_switched_off(clock: FakeClock) -> None:
    """With retry_after=False a 429 carries no Retry-After header."""
    async with Emulator(products=1, rate_limit="1/60", retry_after=False, clock=clock) as emu:
        assert (await ask(emu)).status == 200
        refused = await ask(emu)
    assert refused.status == 429
    assert "Retry-After" not in refused.headers


async def test_rate_limit_is_off_by_default() -> None:
    """Without rate_limit, many requests in a burst all pass."""
    async with Emulator(products=1) as emu:
        statuses = {(await ask(emu)).status for _ in range(30)}
    assert statuses == {200}


async def test_stats_count_429s(limited: Emulator) -> None:
    """Refusals show in the stats by endpoint and status."""
    for _ in range(4):
        await ask(limited)
    assert limited.stats()["requests"]["queryInventory"] == {"200": 3, "429": 1}


def test_rolling_window_core() -> None:
    """The pure window accepts N per period and reports the wait until the oldest leaves."""
    window = RollingWindow(2, 60)
    assert window.try_acquire(0.0) is None
    assert window.try_acquire(30.0) is None
    assert window.try_acquire(59.0) == pytest.approx(1.0)
    assert window.try_acquire(60.0) is None
    assert window.try_acquire(60.5) == pytest.approx(29.5)


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.99, "60")])
def test_retry_after_rounds_up_to_whole_seconds(wait: float, header: str) -> None:
    """Retry-After is whole seconds rounded up, at least 1."""
    assert retry_after_header(wait) == header


@pytest.mark.parametrize("text", ["200", "200/0", "0/60", "a/b", "-1/60", "200/inf"])
def test_bad_rates_are_refused(text: str) -> None:
    """Malformed rate strings raise ValueError naming the value."""
    with pytest.raises(ValueError, match="rate_limit"):
        parse_rate(text)


def test_bad_rate_in_emulator_is_a_configuration_error() -> None:
    """Emulator(rate_limit="x") fails at construction with a ConfigurationError."""
    from wixinv_async.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="rate_limit"):
        Emulator(rate_limit="x")


def test_parse_rate() -> None:
    """'200/60' means 200 requests per 60 seconds."""
    assert parse_rate("200/60") == (200, 60.0)
