"""Catalog version detection: asked once, probed without the scope, forgotten on a 428."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.catalog import CatalogCache, CatalogVersion, probe_verdict, wrong_catalog_error
from wixinv_async.client import InventoryClient
from wixinv_async.errors import (
    ConflictError,
    PermissionDeniedError,
    PreconditionFailedError,
    RevisionConflictError,
    WrongCatalogError,
)
from wixinv_async.models import DEFAULT_VARIANT_ID, DecrementData
from wixinv_async.transport import HttpRequest, HttpResponse, MockTransport

V1, V3, NONE = (
    CatalogVersion.V1_CATALOG,
    CatalogVersion.V3_CATALOG,
    CatalogVersion.STORES_NOT_INSTALLED,
)


def wrong(code: str = "CATALOG_V1_SITE_CALLING_CATALOG_V3_API", data: Any = None) -> HttpResponse:
    error: dict[str, Any] = {"code": code, "description": "wrong catalog"}
    if data is not None:
        error["data"] = data
    return HttpResponse.from_json(
        428, {"message": "wrong catalog", "details": {"applicationError": error}}
    )


class Site:
    """A mock site: its catalog, whether the token has the catalog-read scope."""

    def __init__(self, catalog: CatalogVersion, *, scope: bool = True) -> None:
        self.catalog, self.scope = catalog, scope
        self.paths: list[str] = []

    def handle(self, request: HttpRequest) -> HttpResponse:
        self.paths.append(request.path)
        if request.path.endswith("/provision/version"):
            if not self.scope:
                return HttpResponse.from_json(403, {"message": "forbidden"})
            return HttpResponse.from_json(200, {"catalogVersion": self.catalog.value})
        is_v3 = request.path.startswith("/stores/v3/")
        if is_v3 and self.catalog is V1:
            return wrong("CATALOG_V1_SITE_CALLING_CATALOG_V3_API")
        if not is_v3 and self.catalog is V3:
            return wrong("CATALOG_V3_SITE_CALLING_CATALOG_V1_API")
        if is_v3:
            return HttpResponse.from_json(200, {"inventoryItems": []})
        return HttpResponse.from_json(200, {})


def client_for(site: Site) -> InventoryClient:
    return InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"), transport=MockTransport(site.handle), rate_limit=None
    )


@pytest.mark.parametrize("catalog", [V1, V3])
async def test_the_version_call_answers_and_is_asked_once(catalog: CatalogVersion) -> None:
    """With the scope, one version call; later callers get the cached answer."""
    site = Site(catalog)
    async with client_for(site) as client:
        assert await client.catalog_version() is catalog
        assert await client.catalog_version() is catalog
    assert site.paths == ["/stores/v3/provision/version"]


@pytest.mark.parametrize(("catalog", "probe_answer"), [(V1, 428), (V3, 200)])
async def test_without_the_scope_a_v3_read_probes(
    catalog: CatalogVersion, probe_answer: int
) -> None:
    """403 from the version call: a V3 read decides (428 = V1 site, 2xx = V3), and is cached."""
    site = Site(catalog, scope=False)
    async with client_for(site) as client:
        assert await client.catalog_version() is catalog
        assert await client.catalog_version() is catalog
    assert site.paths == ["/stores/v3/provision/version", "/stores/v3/inventory-items/query"]


async def test_stores_not_installed_is_answered_but_not_cached() -> None:
    """A site without stores may install them: it is asked again next time."""
    site = Site(NONE)
    async with client_for(site) as client:
        assert await client.catalog_version() is NONE
        assert await client.catalog_version() is NONE
    assert len(site.paths) == 2


async def test_a_wrong_catalog_428_forgets_the_version_and_is_retriable() -> None:
    """After a migration a V1 write gets 428: WrongCatalogError (nothing applied, retriable,
    naming V3), the cache is emptied, and the next catalog_version() asks again."""
    site = Site(V1)
    entry = DecrementData(product_id="p1", variant_id=DEFAULT_VARIANT_ID, decrement_by=1)
    async with client_for(site) as client:
        assert await client.catalog_version() is V1
        site.catalog = V3  # the site moves
        with pytest.raises(WrongCatalogError) as caught:
            await client.decrement_inventory([entry])
        assert caught.value.retriable and caught.value.site_catalog is V3
        assert caught.value.status == 428
        assert isinstance(caught.value.__cause__, PreconditionFailedError)
        assert await client.catalog_version() is V3
    assert site.paths.count("/stores/v3/provision/version") == 2


async def test_concurrent_callers_share_one_detection() -> None:
    """Ten concurrent catalog_version() calls send one version call."""
    site = Site(V3)
    async with client_for(site) as client:
        versions = await asyncio.gather(*(client.catalog_version() for _ in range(10)))
    assert set(versions) == {V3} and site.paths == ["/stores/v3/provision/version"]


async def test_a_probe_refused_for_another_reason_raises() -> None:
    """No scope for the version call nor for the read: the 403 of the read is raised, nothing
    is cached."""

    def handle(request: HttpRequest) -> HttpResponse:
        return HttpResponse.from_json(403, {"message": "forbidden"})

    async with InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"), transport=MockTransport(handle), rate_limit=None
    ) as client:
        with pytest.raises(PermissionDeniedError):
            await client.catalog_version()
        assert client._catalog.version is None


def test_a_detection_overtaken_by_an_invalidation_is_not_stored() -> None:
    """An answer found before the cache was emptied is stale: not kept."""
    cache = CatalogCache()
    generation = cache.generation
    cache.invalidate()
    assert not cache.store(V1, generation)
    assert cache.store(V3, cache.generation) and cache.version is V3
    assert "V3_CATALOG" in repr(cache)


@pytest.mark.parametrize(
    ("code", "data", "site", "probe"),
    [
        ("CATALOG_V1_SITE_CALLING_CATALOG_V3_API", None, V1, V1),
        ("CATALOG_V3_SITE_CALLING_CATALOG_V1_API", None, V3, None),
        ("CATALOG_V3_SITE_PROVISIONING", None, None, None),
    ],
)
def test_wrong_catalog_codes_say_what_the_site_runs(
    code: str, data: Any, site: CatalogVersion | None, probe: CatalogVersion | None
) -> None:
    """Each known 428 code becomes a WrongCatalogError naming the site's catalog if it can."""
    error = PreconditionFailedError(428, "no", code=code, data=data, request_id="r")
    converted = wrong_catalog_error(error)
    assert converted is not None and converted.site_catalog is site
    assert converted.request_id == "r" and converted.code == code
    assert probe_verdict(converted) is probe


def test_other_428s_stay_entry_refusals() -> None:
    """INSUFFICIENT_INVENTORY is no catalog matter."""
    error = PreconditionFailedError(428, "no", code="INSUFFICIENT_INVENTORY")
    assert wrong_catalog_error(error) is None


@pytest.mark.parametrize(
    "error",
    [
        WrongCatalogError(
            428, "m", code="CATALOG_V1_SITE_CALLING_CATALOG_V3_API", request_id="r", site_catalog=V1
        ),
        RevisionConflictError(
            409, "m", code="REVISION_MISMATCH", inventory_item_id="i", revision="4", data={"a": 1}
        ),
    ],
)
def test_the_new_errors_pickle_whole(error: Any) -> None:
    """They cross process boundaries with every attribute and the same message."""
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert type(copy) is type(error) and str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def test_the_new_errors_sit_in_the_tree() -> None:
    """A revision conflict is a 409 ConflictError; a wrong catalog is not an entry refusal."""
    assert issubclass(RevisionConflictError, ConflictError)
    assert not issubclass(WrongCatalogError, PreconditionFailedError)


async def test_a_detection_overtaken_by_a_migration_does_not_cache_its_stale_answer() -> None:
    """The version call answers V1 after a concurrent write already met the V3 site's 428:
    that V1 is returned to its caller but not cached; the next call asks again."""
    release = asyncio.Event()
    site = Site(V1)

    async def handle(request: HttpRequest) -> HttpResponse:
        if request.path.endswith("/provision/version") and not release.is_set():
            await release.wait()
            return HttpResponse.from_json(200, {"catalogVersion": "V1_CATALOG"})  # stale
        return site.handle(request)

    entry = DecrementData(product_id="p1", variant_id=DEFAULT_VARIANT_ID, decrement_by=1)
    async with InventoryClient(
        ApiKeyAuth("KEY", site_id="SITE"), transport=MockTransport(handle), rate_limit=None
    ) as client:
        detecting = asyncio.create_task(client.catalog_version())
        await asyncio.sleep(0)
        site.catalog = V3  # the site moved while the version call was in flight
        with pytest.raises(WrongCatalogError):
            await client.decrement_inventory([entry])
        release.set()
        assert await detecting is V1
        assert await client.catalog_version() is V3
