"""The admin API under /_emulator/ and the emulator's lifecycle."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from wixinv_async.emulator import Emulator, SiteStore
from wixinv_async.errors import ConfigurationError

WRITE = "/stores/v2/inventoryItems"


async def test_state_lists_every_item_in_wire_format(api: Any) -> None:
    """GET state returns every item of the default site, as the query endpoint shows them."""
    status, data, _ = await api.call("GET", "/_emulator/state")
    assert status == 200
    assert [i["id"] for i in data["inventoryItems"]] == [i.id for i in api.emu.store.items()]
    _, page = await api.query({"paging": {"limit": 100}})
    assert data["inventoryItems"] == page["inventoryItems"]


async def test_state_and_journal_of_another_site() -> None:
    """?site= picks a site; an unknown site is 404."""
    async with (
        Emulator(products=3, extra_sites=1, seed=2) as emu,
        aiohttp.ClientSession() as session,
    ):
        other = emu.sites[1]
        async with session.get(f"{emu.url}/_emulator/state?site={other}") as r:
            ids = [i["id"] for i in (await r.json())["inventoryItems"]]
        assert ids == [i.id for i in emu.site(other).items()]
        async with session.get(f"{emu.url}/_emulator/journal?site=nope") as missing:
            assert missing.status == 404


async def test_journal_lists_applied_writes_with_request_ids(api: Any) -> None:
    """GET journal lists applied writes in order; ?since skips the first ones; refusals are absent."""
    pid, _, vid = api.tracked()
    _, _, first = await api.call(
        "POST",
        f"{WRITE}/decrement",
        {"decrementData": [{"productId": pid, "variantId": vid, "decrementBy": 1}]},
    )
    await api.decrement([{"productId": pid, "variantId": vid, "decrementBy": 10**6}])
    _, _, second = await api.call(
        "POST",
        f"{WRITE}/increment",
        {"incrementData": [{"productId": pid, "variantId": vid, "incrementBy": 1}]},
    )
    _, data, _ = await api.call("GET", "/_emulator/journal")
    assert [(j["requestId"], j["endpoint"]) for j in data["journal"]] == [
        (first.headers["x-wix-request-id"], "decrementInventory"),
        (second.headers["x-wix-request-id"], "incrementInventory"),
    ]
    assert data["journal"][0]["entries"] == [
        {"productId": pid, "variantId": vid, "decrementBy": 1, "preorderRequest": False}
    ]
    _, later, _ = await api.call("GET", "/_emulator/journal?since=1")
    assert [j["endpoint"] for j in later["journal"]] == ["incrementInventory"]
    assert (await api.call("GET", "/_emulator/journal?since=x"))[0] == 400


async def test_stats_count_requests_entries_and_faults(api: Any) -> None:
    """GET stats counts requests by endpoint and status and the entries applied."""
    pid, _, vid = api.tracked()
    await api.decrement([{"productId": pid, "variantId": vid, "decrementBy": 1}] * 3)
    await api.decrement([{"productId": "nope", "variantId": vid, "decrementBy": 1}])
    await api.query({})
    _, stats, _ = await api.call("GET", "/_emulator/stats")
    assert stats["requests"] == {
        "decrementInventory": {"200": 1, "404": 1},
        "queryInventory": {"200": 1},
    }
    assert stats["entries_applied"] == 3
    assert stats["faults"] == {}


async def test_reset_restores_catalog_and_clears_journal_and_stats(api: Any) -> None:
    """POST reset brings back the seeded quantities, empties the journal and the stats."""
    pid, _, vid = api.tracked()
    before = api.emu.store.quantity(pid, vid)
    await api.decrement([{"productId": pid, "variantId": vid, "decrementBy": 2}])
    status, _, _ = await api.call("POST", "/_emulator/reset")
    assert status == 200
    assert api.emu.store.quantity(pid, vid) == before
    assert api.emu.store.journal == []
    assert api.emu.stats()["requests"] == {}


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nowhere"), ("POST", "/stores/v2/inventoryItems/explode")]
)
async def test_unknown_paths_are_wix_404s_with_request_id(api: Any, method: str, path: str) -> None:
    """Unknown routes answer 404 NOT_FOUND with a Wix body and a request id."""
    status, data, response = await api.call(method, path, {})
    assert status == 404
    assert data["details"]["applicationError"]["code"] == "NOT_FOUND"
    assert response.headers["x-wix-request-id"]


async def test_request_ids_are_unique(api: Any) -> None:
    """Every response carries its own x-wix-request-id."""
    ids = {
        (await api.call("POST", "/stores-reader/v2/inventoryItems/query", {}))[2].headers[
            "x-wix-request-id"
        ]
        for _ in range(5)
    }
    assert len(ids) == 5


class RecordingSink:
    """A webhook sink that records what the emulator asks of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.stores: list[SiteStore] = []

    def attach(self, store: SiteStore) -> None:
        self.calls.append("attach")
        self.stores.append(store)

    async def start(self) -> None:
        self.calls.append("start")

    async def aclose(self) -> None:
        self.calls.append("aclose")


async def test_webhook_sink_is_attached_to_every_site_then_started_and_closed() -> None:
    """The sink is attached to each site's store (a lazy site's when it is made), started,
    and closed on exit."""
    sink = RecordingSink()
    async with Emulator(products=2, sites=3, webhooks=sink) as emu:
        assert sink.calls == ["attach", "start"]
        emu.site(emu.sites[2])
        emu.site(emu.sites[1])
        emu.site(emu.sites[2])
        assert sink.calls == ["attach", "start", "attach", "attach"]
        assert [s.site_id for s in sink.stores] == [emu.sites[0], emu.sites[2], emu.sites[1]]
    assert sink.calls[-1] == "aclose"


async def test_fixed_port_and_url() -> None:
    """The URL names the bound host and port; starting twice is refused."""
    async with Emulator(products=1) as emu:
        assert emu.url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError):
            await emu.start()


@pytest.mark.parametrize(
    "settings",
    [
        {"products": -1},
        {"variants_per_product": 0},
        {"extra_sites": -1},
        {"latency_ms": -5},
        {"token_lifetime": 0},
        {"id_distribution": "lumpy"},
    ],
)
def test_bad_settings_are_configuration_errors(settings: dict[str, Any]) -> None:
    """Impossible settings fail at construction, naming the setting."""
    (name,) = settings
    with pytest.raises(ConfigurationError, match=name):
        Emulator(**settings)


def test_emulator_without_loop_has_no_url_yet() -> None:
    """Before start the URL is empty and the stores are already seeded for inspection."""
    emu = Emulator(products=4, site_id="my-site")
    assert (emu.url, emu.site_id, len(emu.store)) == ("", "my-site", 4)
    with pytest.raises(KeyError):
        emu.site("other")


def test_emulator_all_is_sorted_and_complete() -> None:
    """wixinv_async.emulator's __all__ is sorted, importable and lists every public class."""
    import wixinv_async.emulator as package

    names = package.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(package, name) for name in names)
    public = {n for n, v in vars(package).items() if not n.startswith("_") and isinstance(v, type)}
    assert public <= set(names)


async def test_journal_keeps_inventory_ids_as_sent(api: Any) -> None:
    """A batch naming an entry by inventoryId is journaled with that id, as sent."""
    pid, iid, vid = api.tracked()
    sent = [
        {"inventoryId": iid, "variantId": vid, "decrementBy": 1},
        {"productId": pid, "variantId": vid, "decrementBy": 2, "preorderRequest": True},
    ]
    assert (await api.decrement(sent))[0] == 200
    _, data, _ = await api.call("GET", "/_emulator/journal")
    assert data["journal"][0]["entries"] == sent
