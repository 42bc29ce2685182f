"""The hub's credentials and settings: typed errors that name the bad value, no secrets."""

from __future__ import annotations

from typing import Any

import pytest

from wixinv_async import (
    AdjusterClosed,
    ApiKeyAuth,
    AppCredentials,
    ConfigurationError,
    InventoryClient,
    InventoryHub,
)


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
    ],
)
def test_bad_hub_settings_name_the_setting(setting: str, value: Any) -> None:
    """Each bad setting is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=setting):
        InventoryHub(AppCredentials("APP", "S"), **{setting: value})


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
