"""App instances over many sites: a token per instance, bound to its site, and revocation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from wixinv_async import AppOAuth, InventoryClient
from wixinv_async.emulator import Emulator, FaultPlan, FaultRule
from wixinv_async.errors import AuthenticationError

QUERY = "/stores-reader/v2/inventoryItems/query"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """Three sites of 3 products each."""
    async with Emulator(sites=3, products=3, seed=8) as emulator:
        yield emulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session for the test."""
    async with aiohttp.ClientSession() as s:
        yield s


async def token(session: aiohttp.ClientSession, emu: Emulator, instance: str) -> tuple[int, Any]:
    """POST /oauth2/token for ``instance``: (status, body)."""
    body = {
        "grant_type": "client_credentials",
        "client_id": emu.app_id,
        "client_secret": emu.app_secret,
        "instance_id": instance,
    }
    async with session.post(emu.url + "/oauth2/token", json=body) as r:
        return r.status, await r.json()


async def query(
    session: aiohttp.ClientSession, emu: Emulator, auth: str, site: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": auth, **({"wix-site-id": site} if site else {})}
    async with session.post(emu.url + QUERY, json={}, headers=headers) as r:
        return r.status, await r.json()


async def test_each_instance_token_reaches_exactly_its_site(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """A token per instance reads its own site's catalog; naming another site with it is a
    403, naming its own site is fine."""
    for site, instance in zip(emu.sites, emu.instances, strict=True):
        status, grant = await token(session, emu, instance)
        assert status == 200
        got, data = await query(session, emu, grant["access_token"])
        assert got == 200
        assert [i["id"] for i in data["inventoryItems"]] == [i.id for i in emu.site(site).items()]
        assert (await query(session, emu, grant["access_token"], site))[0] == 200
        other = next(s for s in emu.sites if s != site)
        got, data = await query(session, emu, grant["access_token"], other)
        assert got == 403
        assert data["details"]["applicationError"]["code"] == "FORBIDDEN"


async def test_the_api_key_reaches_every_site_by_header(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """The account's API key reaches any site through wix-site-id."""
    statuses = [(await query(session, emu, emu.api_key, s))[0] for s in emu.sites]
    assert statuses == [200, 200, 200]


async def test_a_revoked_instance_gets_401_and_no_new_token(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """After revoking an instance its tokens get 401 and token requests for it 401; the
    other instances' tokens and the API key still work; reinstating allows new tokens."""
    grants = [(await token(session, emu, i))[1]["access_token"] for i in emu.instances]
    victim = emu.instances[1]
    async with session.post(f"{emu.url}/_emulator/revoke?instance={victim}") as r:
        assert (r.status, await r.json()) == (200, {"instanceId": victim, "revoked": True})
    assert emu.is_revoked(victim) and emu.site_stats(emu.sites[1])["revoked"]
    statuses = [(await query(session, emu, g))[0] for g in grants]
    assert statuses == [200, 401, 200]
    status, data = await token(session, emu, victim)
    assert status == 401
    assert "revoked" in data["message"]
    assert (await query(session, emu, emu.api_key, emu.sites[1]))[0] == 200
    async with session.post(f"{emu.url}/_emulator/reinstate?site={emu.sites[1]}") as r:
        assert r.status == 200
    status, fresh = await token(session, emu, victim)
    assert status == 200
    assert (await query(session, emu, fresh["access_token"]))[0] == 200
    assert (await query(session, emu, grants[1]))[0] == 401


async def test_revoking_an_unknown_instance_is_a_404(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """The admin API refuses an unknown instance or site; the Python API raises KeyError."""
    async with session.post(f"{emu.url}/_emulator/revoke?instance=nope") as r:
        assert r.status == 404
    async with session.post(f"{emu.url}/_emulator/revoke?site=nope") as r:
        assert r.status == 404
    with pytest.raises(KeyError):
        emu.revoke("nope")


async def test_tokens_for_a_thousand_instances_need_no_catalog(
    session: aiohttp.ClientSession,
) -> None:
    """Fetching tokens does not make the sites (only a call on a site does); tokens issued
    are counted per instance."""
    async with Emulator(sites=1000, products=50) as emu:
        for instance in emu.instances[-20:] + emu.instances[-1:]:
            assert (await token(session, emu, instance))[0] == 200
        stats = emu.stats()
        assert list(stats["sites"]) == [emu.site_id]
        assert stats["tokens_issued"] == {
            **dict.fromkeys(emu.instances[-20:], 1),
            emu.instances[-1]: 2,
        }
        assert emu.site_stats(emu.sites[-1])["tokens_issued"] == 2


async def test_a_stalled_token_request_waits_for_its_plans_stall_seconds(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """A stall named for oauthToken lasts the plan's stall_seconds: the client times out
    (it is not reset at once)."""
    emu.set_faults(FaultPlan({"oauthToken": FaultRule(stall_after=1.0)}, stall_seconds=60))
    with pytest.raises(asyncio.TimeoutError):
        await session.post(
            emu.url + "/oauth2/token", json={}, timeout=aiohttp.ClientTimeout(total=0.2)
        )
    assert emu.stats()["requests"]["oauthToken"] == {"stall": 1}


async def test_the_librarys_client_per_instance_and_a_revoked_one() -> None:
    """InventoryClient with AppOAuth per instance reads each site's own catalog over one
    emulator; after a revocation that instance's client gets AuthenticationError (its token
    401, its refresh refused) while another instance's client keeps working."""
    async with Emulator(sites=4, products=3, seed=6, catalog="mixed") as emu:
        v1_sites = [(s, i) for s, i in zip(emu.sites, emu.instances, strict=True)][::2]
        clients = [
            InventoryClient(AppOAuth(emu.app_id, emu.app_secret, i), base_url=emu.url)
            for _, i in v1_sites
        ]
        async with clients[0], clients[1]:
            for (site, _), client in zip(v1_sites, clients, strict=True):
                page = await client.query_inventory()
                assert [i.id for i in page.inventory_items] == [
                    i.id for i in emu.site(site).items()
                ]
            emu.revoke(v1_sites[0][1])
            with pytest.raises(AuthenticationError):
                await clients[0].query_inventory()
            assert len((await clients[1].query_inventory()).inventory_items) == 3
        assert emu.stats()["tokens_issued"] == {v1_sites[0][1]: 1, v1_sites[1][1]: 1}
