"""The hub's credentials and settings: typed errors that name the bad value, no secrets."""

from __future__ import annotations

import math
from typing import Any

import pytest

from wixinv_async import (
    AdjusterClosed,
    ApiKeyAuth,
    AppCredentials,
    BatchPolicy,
    ConfigurationError,
    InventoryClient,
    InventoryHub,
    OutcomeStatus,
    RateLimit,
    RetryPolicy,
)
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule, SiteSpec


def test_an_api_key_without_a_site_is_for_the_hub_not_a_client() -> None:
    """ApiKeyAuth(key) alone is refused by a client (it names no site) and its per-site copy
    carries the site header."""
    with pytest.raises(ConfigurationError, match="site_id"):
        InventoryClient(ApiKeyAuth("KEY"))
    assert ApiKeyAuth("KEY").for_site("S1").site_key == "S1"


def test_app_credentials_make_one_token_provider_per_instance_and_hide_the_secret() -> None:
    """for_instance gives each installation its own AppOAuth; no repr shows the secret."""
    creds = AppCredentials("APP", "SECRET-XYZ")
    a, b = creds.for_instance("I1"), creds.for_instance("I2")
    assert (a.site_key, b.site_key) == ("I1", "I2")
    assert "SECRET-XYZ" not in repr(creds) + repr(a)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("idle_timeout", 0),
        ("max_sites", 0),
        ("connections", 0),
        ("connections_per_host", True),
        ("base_url", "ftp://x"),
        ("rate_limit", "200/60"),
        ("retry", {"max_attempts": 1}),
        ("batch_policy", 5),
    ],
)
def test_bad_hub_settings_name_the_setting(setting: str, value: Any) -> None:
    """Each bad setting is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=setting) as caught:
        InventoryHub(AppCredentials("APP", "S"), **{setting: value})
    assert repr(value) in str(caught.value)


def test_bad_credentials_are_refused() -> None:
    """The hub takes AppCredentials or ApiKeyAuth, nothing else."""
    with pytest.raises(ConfigurationError, match="auth"):
        InventoryHub("KEY")  # type: ignore[arg-type]


async def test_a_closed_hub_refuses_deltas() -> None:
    """After close, submit_nowait and site() raise AdjusterClosed and make no site."""
    hub = InventoryHub(AppCredentials("APP", "S"), base_url="http://127.0.0.1:9")
    async with hub:
        pass
    with pytest.raises(AdjusterClosed):
        hub.submit_nowait("I1", "p", "v", 1)
    with pytest.raises(AdjusterClosed):
        hub.site("I1")
    assert hub.stats().total.open_sites == 0


async def test_each_site_retries_and_resends_as_the_hub_was_told() -> None:
    """retry= and batch_policy= reach every site's client and adjuster: with one attempt and
    one send, a write answered 503 is one request and its delta REJECTED retriable at once
    (the defaults would make up to 25 attempts), on two sites."""
    faults = FaultPlan({"incrementInventory": FaultRule(error_503=1.0)}, seed=1)
    async with (
        Emulator(sites=[SiteSpec(faults=faults)] * 2, products=6, seed=61) as emu,
        InventoryHub(
            AppCredentials(emu.app_id, emu.app_secret),
            base_url=emu.url,
            rate_limit=None,
            retry=RetryPolicy(max_attempts=1),
            batch_policy=BatchPolicy(max_sends=1),
        ) as hub,
    ):
        for instance, site in zip(emu.instances, emu.sites, strict=True):
            item = next(i for i in emu.site(site).items() if i.track_quantity is True)
            outcome = await hub.adjust(instance, item.product_id, item.variants[0].variant_id, 1)
            assert (outcome.status, outcome.code, outcome.retriable) == (
                OutcomeStatus.REJECTED,
                "SERVICE_UNAVAILABLE",
                True,
            )
            assert emu.site_stats(site)["requests"]["incrementInventory"] == {"503": 1}
            assert hub.site(instance).client.stats().retries == 0


async def test_a_hub_without_a_rate_limit_does_not_pace() -> None:
    """rate_limit=None: sites' requests take no pacing slot (the schedule stays empty) and
    still commit; with a RateLimit the same requests take theirs."""
    async with Emulator(products=6, seed=62) as emu:
        item = next(i for i in emu.store.items() if i.track_quantity is True)
        key = (item.product_id, item.variants[0].variant_id)
        for rate, paced in ((None, False), (RateLimit(1000, 1.0), True)):
            async with InventoryHub(
                AppCredentials(emu.app_id, emu.app_secret), base_url=emu.url, rate_limit=rate
            ) as hub:
                for _ in range(3):
                    outcome = await hub.adjust(emu.instance_id, *key, 1)
                    assert outcome.status is OutcomeStatus.COMMITTED
                limiter = hub.site(emu.instance_id).limiter
                assert (limiter.next_slot() > -math.inf) is paced
                assert "unpaced" in repr(limiter) if not paced else "1000/" in repr(limiter)


@pytest.mark.parametrize(("rate", "paced"), [(None, False), ((200, 60.0), True)])
async def test_the_adjust_command_builds_an_unpaced_hub_for_rate_limit_off(
    rate: tuple[int, float] | None, paced: bool
) -> None:
    """``wixinv-async adjust --rate-limit off`` over many sites: the hub it builds does not
    pace (rate_limit=None), rather than pacing at some huge rate; 200/60 paces."""
    from wixinv_async.cli._common import TargetConfig
    from wixinv_async.cli.adjust import _hub

    config = TargetConfig("http://127.0.0.1:9", app_id="APP", app_secret="S", rate_limit=rate)
    async with _hub(config) as hub:
        assert (hub.site("I1").limiter.rate is not None) is paced


def test_an_unpaced_limiter_takes_no_rate() -> None:
    """RateLimiter(unpaced=True) gives sites unpaced limiters; a rate as well is refused."""
    from wixinv_async.transport import RateLimiter

    assert RateLimiter(unpaced=True).site("S").rate is None
    with pytest.raises(ConfigurationError, match="not both"):
        RateLimiter(RateLimit(), unpaced=True)
