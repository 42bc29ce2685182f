"""Authentication: API key with wix-site-id, several sites, OAuth tokens and their expiry."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from wixinv_async.emulator import Emulator

QUERY = "/stores-reader/v2/inventoryItems/query"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def post(
    url: str, path: str, headers: dict[str, str], body: Any
) -> tuple[int, dict[str, Any], Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + path, json=body, headers=headers) as r,
    ):
        return r.status, await r.json(), r.headers


@pytest.mark.parametrize("scheme", ["", "Bearer ", "bearer "])
async def test_api_key_with_or_without_bearer(api: Any, scheme: str) -> None:
    """The API key is accepted raw or after "Bearer "."""
    headers = {"Authorization": scheme + api.emu.api_key, "wix-site-id": api.emu.site_id}
    status, _, _ = await api.call("POST", QUERY, {}, headers=headers)
    assert status == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "wrong"}, 401),
        ({"Authorization": "KEY"}, 400),
        ({"Authorization": "KEY", "wix-site-id": "unknown-site"}, 403),
    ],
)
async def test_bad_credentials(api: Any, headers: dict[str, str], status: int) -> None:
    """Missing or wrong keys are 401; a key without a site is 400; an unknown site 403."""
    headers = {k: api.emu.api_key if v == "KEY" else v for k, v in headers.items()}
    got, data, response = await api.call("POST", QUERY, {}, headers=headers)
    assert got == status
    assert data["message"]
    assert response.headers["x-wix-request-id"]


async def test_bad_credentials_apply_nothing(api: Any) -> None:
    """A write with a wrong key is refused with 401 and not applied."""
    pid, _, vid = api.tracked()
    before = api.emu.store.quantity(pid, vid)
    body = {"decrementData": [{"productId": pid, "variantId": vid, "decrementBy": 1}]}
    status, _, _ = await api.call(
        "POST", "/stores/v2/inventoryItems/decrement", body, headers={"Authorization": "x"}
    )
    assert status == 401
    assert api.emu.store.quantity(pid, vid) == before


async def test_extra_sites_have_their_own_stores() -> None:
    """wix-site-id picks the site: a write to one site leaves the other alone."""
    async with Emulator(products=5, extra_sites=2, seed=4) as emu:
        assert len(emu.sites) == 3
        other = emu.sites[2]
        store = emu.site(other)
        item = next(i for i in store.items() if i.track_quantity)
        vid = item.variants[0].variant_id
        before = store.quantity(item.product_id, vid)
        headers = {"Authorization": emu.api_key, "wix-site-id": other}
        body = {
            "decrementData": [{"productId": item.product_id, "variantId": vid, "decrementBy": 1}]
        }
        status, _, _ = await post(emu.url, "/stores/v2/inventoryItems/decrement", headers, body)
        assert status == 200
        assert store.quantity(item.product_id, vid) == before - 1
        assert emu.store.journal == [] and len(store.journal) == 1
        assert emu.store.item(item.product_id) is None


async def oauth(emu: Emulator, **overrides: str) -> tuple[int, dict[str, Any]]:
    body = {
        "grant_type": "client_credentials",
        "client_id": emu.app_id,
        "client_secret": emu.app_secret,
        "instance_id": emu.instance_id,
        **overrides,
    }
    status, data, _ = await post(emu.url, "/oauth2/token", {}, body)
    return status, data


async def test_oauth_token_grants_access_to_its_instance_only() -> None:
    """A token for an instance id reads and writes that instance's store, with or without Bearer."""
    async with Emulator(products=5, extra_sites=1, seed=5) as emu:
        second = emu.site(emu.sites[1])
        status, token = await oauth(emu, instance_id=second.instance_id)
        assert status == 200
        assert (token["token_type"], token["expires_in"]) == ("Bearer", 14_400)
        for auth in (token["access_token"], "Bearer " + token["access_token"]):
            got, data, _ = await post(emu.url, QUERY, {"Authorization": auth}, {})
            assert got == 200
            assert [i["id"] for i in data["inventoryItems"]] == [i.id for i in second.items()]


@pytest.mark.parametrize(
    ("override", "status"),
    [
        ({"client_secret": "wrong"}, 401),
        ({"client_id": "wrong"}, 401),
        ({"instance_id": "unknown"}, 400),
        ({"grant_type": "password"}, 400),
    ],
)
async def test_oauth_refusals(override: dict[str, str], status: int) -> None:
    """Wrong client credentials are 401; an unknown instance or grant type is 400."""
    async with Emulator(products=1) as emu:
        got, data = await oauth(emu, **override)
    assert got == status
    assert "access_token" not in data


async def test_oauth_token_request_missing_field_is_400() -> None:
    """A token request without instance_id is a 400 naming it."""
    async with Emulator(products=1) as emu:
        status, data, _ = await post(
            emu.url,
            "/oauth2/token",
            {},
            {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"},
        )
    assert status == 400
    assert data["details"]["validationError"]["fieldViolations"][0]["field"] == "instance_id"


async def test_token_expires_after_its_lifetime() -> None:
    """A token works until its lifetime has passed on the emulator's clock, then gets 401."""
    clock = FakeClock()
    async with Emulator(products=2, token_lifetime=60, clock=clock) as emu:
        _, token = await oauth(emu)
        assert token["expires_in"] == 60
        headers = {"Authorization": token["access_token"]}
        clock.now += 59.9
        assert (await post(emu.url, QUERY, headers, {}))[0] == 200
        clock.now += 0.1
        status, data, _ = await post(emu.url, QUERY, headers, {})
        assert status == 401
        assert "expired" in data["message"]
        _, fresh = await oauth(emu)
        assert (await post(emu.url, QUERY, {"Authorization": fresh["access_token"]}, {}))[0] == 200


def test_repr_never_shows_secrets() -> None:
    """The emulator's repr names the URL and site, never the key or app secret."""
    emu = Emulator(products=1, api_key="sekret-key")
    assert "sekret-key" not in repr(emu)
    assert emu.app_secret not in repr(emu)
