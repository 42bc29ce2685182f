"""Which catalog a site runs: the version call, 428 across catalogs, the missing read scope,
migration from V1 to V3 mid-traffic, and faults, rate limits and the admin API on V3."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from wixinv_async.emulator import Emulator, FaultPlan, FaultRule
from wixinv_async.errors import ConfigurationError

V1_WRITE = "/stores/v2/inventoryItems"
ITEM = "11111111-1111-1111-1111-111111111111"
V1_CALLS = [
    ("POST", "/stores-reader/v2/inventoryItems/query", {"query": {}}),
    ("POST", f"/stores-reader/v2/inventoryItems/{ITEM}/getVariants", {}),
    ("PATCH", f"{V1_WRITE}/product/{ITEM}", {"inventoryItem": {"trackQuantity": True}}),
    ("POST", f"{V1_WRITE}/decrement", {"decrementData": []}),
    ("POST", f"{V1_WRITE}/increment", {"incrementData": []}),
]
V3_CALLS = [
    ("POST", "/stores/v3/bulk/inventory-items/decrement", {"decrementData": []}),
    ("POST", "/stores/v3/bulk/inventory-items/increment", {"incrementData": []}),
    ("POST", "/stores/v3/bulk/inventory-items/decrement-by-variant-and-location", {}),
    ("POST", "/stores/v3/bulk/inventory-items/increment-by-variant-and-location", {}),
    ("POST", "/stores/v3/bulk/inventory-items/update", {}),
    ("POST", "/stores/v3/bulk/inventory-items/update-by-filter", {}),
    ("GET", "/stores/v3/inventory-items/query", None),
    ("POST", "/stores/v3/inventory-items/query", {}),
    ("GET", "/stores/v3/inventory-items/search", None),
    ("POST", "/stores/v3/inventory-items/search", {}),
    ("GET", f"/stores/v3/inventory-items/{ITEM}", None),
    ("PATCH", f"/stores/v3/inventory-items/{ITEM}", {}),
    ("DELETE", f"/stores/v3/inventory-items/{ITEM}", None),
]


def _code(data: dict[str, Any]) -> str:
    return str(data["details"]["applicationError"]["code"])


@pytest.mark.parametrize(("catalog", "version"), [("v1", "V1_CATALOG"), ("v3", "V3_CATALOG")])
async def test_version_call_answers_the_sites_catalog(
    v3_api_of: Any, catalog: str, version: str
) -> None:
    """GET /stores/v3/provision/version answers V1_CATALOG or V3_CATALOG."""
    async with Emulator(products=3, catalog=catalog) as emu:
        status, data, _ = await v3_api_of(emu).call("GET", "/stores/v3/provision/version")
    assert (status, data) == (200, {"catalogVersion": version})


@pytest.mark.parametrize(("method", "path", "body"), V1_CALLS)
async def test_a_v1_call_on_a_v3_site_is_428_v3_site_calling_v1_api(
    api3: Any, method: str, path: str, body: Any
) -> None:
    """Every V1 endpoint on a V3 site: 428 with the live API's code, saying both versions."""
    status, data, _ = await api3.call(method, path, body)
    assert status == 428 and _code(data) == "CATALOG_V3_SITE_CALLING_CATALOG_V1_API"
    assert data["details"]["applicationError"]["data"] == {
        "catalogVersion": "V3_CATALOG",
        "requiredCatalogVersion": "V1_CATALOG",
    }


@pytest.mark.parametrize(("method", "path", "body"), V3_CALLS)
async def test_a_v3_call_on_a_v1_site_is_428_v1_site_calling_v3_api(
    api: Any, method: str, path: str, body: Any
) -> None:
    """Every V3 endpoint on a V1 site: 428 with the live API's code, before the body is read."""
    status, data, _ = await api.call(method, path, body)
    assert status == 428 and _code(data) == "CATALOG_V1_SITE_CALLING_CATALOG_V3_API"
    assert data["details"]["applicationError"]["data"]["catalogVersion"] == "V1_CATALOG"


async def test_credentials_without_the_catalog_read_scope_get_403_from_the_version_call(
    v3_api_of: Any,
) -> None:
    """version_scope=False: the version call is 403 FORBIDDEN; a V3 read still tells the
    version by answering 200 (V3 site) or 428 (V1 site)."""
    async with (
        Emulator(products=3, catalog=["v1", "v3"], extra_sites=1, version_scope=False) as emu,
    ):
        api = v3_api_of(emu)
        status, data, _ = await api.call("GET", "/stores/v3/provision/version")
        assert status == 403 and _code(data) == "FORBIDDEN"
        probe = "/stores/v3/inventory-items/query"
        assert (await api.call("GET", probe))[0] == 428
        api.headers["wix-site-id"] = emu.sites[1]
        assert (await api.call("GET", probe))[0] == 200
        emu.version_scope = True
        _, data, _ = await api.call("GET", "/stores/v3/provision/version")
        assert data == {"catalogVersion": "V3_CATALOG"}


async def test_sites_of_one_emulator_may_run_different_catalogs() -> None:
    """catalog=[...] gives each site its own; a bad name or count is a ConfigurationError."""
    async with Emulator(products=2, extra_sites=1, catalog=["v3", "v1"]) as emu:
        assert [emu.catalog_version(s) for s in emu.sites] == ["V3_CATALOG", "V1_CATALOG"]
        with pytest.raises(LookupError):
            emu.v3_store(emu.sites[1])
    for bad in ("v2", ["v1"], ["v1", "v4"]):
        with pytest.raises(ConfigurationError, match="catalog="):
            Emulator(extra_sites=1, catalog=bad)
    with pytest.raises(ConfigurationError, match="locations="):
        Emulator(locations=0)


async def test_v3_seeding_is_deterministic_and_matches_the_v1_catalog() -> None:
    """The same seed gives the same V3 items; each V1 variant is at the default location with
    its stock, and extra locations hold every variant too."""
    one = Emulator(products=20, seed=7, catalog="v3", locations=3)
    two = Emulator(products=20, seed=7, catalog="v3", locations=3)
    assert one.v3_store().items() == two.v3_store().items()
    store = one.v3_store()
    assert len(store) == 3 * sum(len(i.variants) for i in one.store.records())
    v1 = one.store.records()
    home = [i for i in store.records() if i.location_id == store.default_location]
    quantities = {(i.product_id, i.track, i.quantity if i.track else i.in_stock) for i in home}
    expected = {
        (item.product_id, item.track, v.quantity if item.track else v.in_stock)
        for item in v1
        for v in item.variants.values()
    }
    assert quantities == expected


async def test_migration_mid_traffic_conserves_stock_and_turns_v1_calls_away(
    v3_api_of: Any,
) -> None:
    """V1 decrements race a migration: each one applied before it shows in the V3 stock, each
    after it is a 428 and applied nowhere; the journal records the migration in between."""
    async with Emulator(products=30, variants_per_product=1, seed=11) as emu:
        api = v3_api_of(emu)
        tracked = [i for i in emu.store.records() if i.track]
        initial = {
            i.product_id: i.variants["00000000-0000-0000-0000-000000000000"].quantity
            for i in tracked
        }
        statuses: list[int] = []
        busy = asyncio.Event()

        async def writer(item_product: str) -> None:
            for _ in range(10):
                entry = {
                    "productId": item_product,
                    "variantId": "00000000-0000-0000-0000-000000000000",
                    "decrementBy": 1,
                }
                status, _ = await api.decrement([entry])
                statuses.append(status)
                if len(statuses) >= 40:
                    busy.set()

        async def migrate_soon() -> None:
            await busy.wait()
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{emu.url}/_emulator/migrate") as response,
            ):
                assert response.status == 200
                assert (await response.json())["catalogVersion"] == "V3_CATALOG"

        probes: list[int] = []
        done = asyncio.Event()

        async def v3_reader() -> None:
            while not done.is_set():
                status, _, _ = await api.call("GET", "/stores/v3/inventory-items/query")
                probes.append(status)

        async def writers() -> None:
            await asyncio.gather(*(writer(p) for p in eligible[:8]))
            done.set()

        eligible = [p for p, q in initial.items() if q >= 10]
        await asyncio.gather(migrate_soon(), v3_reader(), writers())
        assert 200 in statuses and 428 in statuses
        assert set(statuses) == {200, 428}
        assert set(probes) == {200, 428} and probes[-1] == 200
        assert probes == sorted(probes, reverse=True)  # 428 while V1, then 200 for good
        journal = emu.journal()
        names = [e.endpoint for e in journal]
        migration = names.index("migrateToV3")
        assert set(names[:migration]) == {"decrementInventory"}
        applied: dict[str, int] = {}
        for entry in journal[:migration]:
            for e in entry.entries:
                applied[e["productId"]] = applied.get(e["productId"], 0) + e["decrementBy"]
        assert sum(applied.values()) == statuses.count(200)
        migrated = {e["productId"]: e for e in journal[migration].entries}
        for product, quantity in initial.items():
            assert migrated[product]["quantity"] == quantity - applied.get(product, 0)
            assert (
                emu.v3_store().at(migrated[product]["variantId"]).quantity
                == migrated[product]["quantity"]
            )
        status, _, _ = await api.call("POST", "/_emulator/migrate")
        assert status == 409
        _, version, _ = await api.call("GET", "/stores/v3/provision/version")
        assert version == {"catalogVersion": "V3_CATALOG"}


async def test_migration_carries_tracking_and_preorder_settings() -> None:
    """Each V1 variant becomes one V3 item at the default location with its tracking, stock
    and preorder settings (a null preorder limit becomes 100000)."""
    async with Emulator(products=80, seed=5) as emu:
        v1 = {
            (i.product_id, vid): (i, v)
            for i in emu.store.records()
            for vid, v in i.variants.items()
        }
        store = emu.migrate_to_v3()
        assert len(store) == len(v1)
        for entry in emu.journal()[-1].entries:
            vid = entry.get("v1VariantId", entry["variantId"])
            item, variant = v1[(entry["productId"], vid)]
            record = store.find(entry["inventoryItemId"])
            assert record.location_id == store.default_location
            assert record.track == item.track == entry["trackQuantity"]
            if item.track:
                assert record.quantity == variant.quantity
            else:
                assert record.in_stock == variant.in_stock
            assert record.preorder_enabled == item.preorder_enabled
            if item.preorder_enabled:
                assert record.preorder_limit == (item.preorder_limit or 100_000)
                assert record.preorder_message == item.preorder_message


async def test_admin_state_shows_v3_items_and_reset_returns_to_the_seeded_catalog(
    v3_api_of: Any,
) -> None:
    """GET state on a V3 site lists its V3 items; reset makes a migrated site V1 again."""
    async with Emulator(products=4, seed=2) as emu:
        api = v3_api_of(emu)
        _, state, _ = await api.call("GET", "/_emulator/state")
        assert state["catalogVersion"] == "V1_CATALOG"
        emu.migrate_to_v3()
        _, state, _ = await api.call("GET", "/_emulator/state")
        assert state["catalogVersion"] == "V3_CATALOG"
        assert state["inventoryItems"] == emu.v3_store().items()
        _, journal, _ = await api.call("GET", "/_emulator/journal")
        assert [e["endpoint"] for e in journal["journal"]] == ["migrateToV3"]
        await api.call("POST", "/_emulator/reset")
        assert emu.catalog_version() == "V1_CATALOG" and emu.journal() == []
        status, _, _ = await api.call("POST", "/_emulator/migrate?site=nope")
        assert status == 404


async def test_v1_and_v3_calls_of_a_site_share_its_rate_window(v3_api_of: Any) -> None:
    """One rolling window per site: V3 calls count against it like V1 ones, 428s included."""
    async with Emulator(products=3, catalog="v3", rate_limit="3/60") as emu:
        api = v3_api_of(emu)
        assert (await api.call("GET", "/stores/v3/provision/version"))[0] == 200
        assert (await api.call("GET", "/stores/v3/inventory-items/query"))[0] == 200
        assert (await api.call("POST", f"{V1_WRITE}/decrement", {"decrementData": []}))[0] == 428
        status, data, response = await api.call("GET", "/stores/v3/inventory-items/query")
        assert status == 429 and _code(data) == "TOO_MANY_REQUESTS"
        assert response.headers["Retry-After"]


async def test_a_fault_before_applying_a_v3_write_applies_nothing(v3_api_of: Any) -> None:
    """An injected 503 on a V3 bulk call: nothing applied, nothing journaled; stats count it."""
    plan = FaultPlan({"bulkDecrementInventoryItems": FaultRule(error_503=1.0)})
    async with Emulator(products=5, catalog="v3", faults=plan) as emu:
        api = v3_api_of(emu)
        item = api.tracked3(minimum=0)
        entry = {"inventoryItemId": item["id"], "decrementBy": 1}
        data = await api.bulk("decrement", {"decrementData": [entry]}, expect=503)
        assert _code(data) == "SERVICE_UNAVAILABLE"
        assert emu.v3_store().find(item["id"]).quantity == item["quantity"]
        assert emu.journal() == []
        assert emu.stats()["requests"]["bulkDecrementInventoryItems"] == {"503": 1}


async def test_a_fault_after_applying_a_v3_write_applied_it(v3_api_of: Any) -> None:
    """An injected 504 after applying: the client sees a failure but the write happened."""
    plan = FaultPlan({"bulkIncrementInventoryItems": FaultRule(error_504=1.0)})
    async with Emulator(products=5, catalog="v3", faults=plan) as emu:
        api = v3_api_of(emu)
        item = api.tracked3(minimum=0)
        entry = {"inventoryItemId": item["id"], "incrementBy": 2}
        await api.bulk("increment", {"incrementData": [entry]}, expect=504)
        assert emu.v3_store().find(item["id"]).quantity == item["quantity"] + 2
        assert emu.stats()["entries_applied"] == 1
