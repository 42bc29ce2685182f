"""catalog_version(pace=...): a pacer from outside the client (a fleet worker's budget) is
awaited right before each detection request, and each request keeps the deadline it gave."""

from __future__ import annotations

import asyncio

import pytest

from wixinv_async.auth import ApiKeyAuth
from wixinv_async.catalog import CatalogVersion
from wixinv_async.client import InventoryClient
from wixinv_async.errors import LateSendError
from wixinv_async.transport import HttpRequest, HttpResponse, MockTransport

V1, V3 = CatalogVersion.V1_CATALOG, CatalogVersion.V3_CATALOG
VERSION, PROBE = "/stores/v3/provision/version", "/stores/v3/inventory-items/query"


class Site:
    """A mock site that writes what reaches it into the shared ``events``."""

    def __init__(self, catalog: CatalogVersion, events: list[str], *, scope: bool) -> None:
        self.catalog, self.events, self.scope = catalog, events, scope

    def handle(self, request: HttpRequest) -> HttpResponse:
        self.events.append(request.path)
        if request.path == VERSION:
            if not self.scope:
                return HttpResponse.from_json(403, {"message": "forbidden"})
            return HttpResponse.from_json(200, {"catalogVersion": self.catalog.value})
        if self.catalog is V1:
            error = {"code": "CATALOG_V1_SITE_CALLING_CATALOG_V3_API", "description": "wrong"}
            body = {"message": "wrong catalog", "details": {"applicationError": error}}
            return HttpResponse.from_json(428, body)
        return HttpResponse.from_json(200, {"inventoryItems": []})


class Pacer:
    """Notes each step in ``events``; gives each request a deadline ``ahead`` seconds from now
    (a negative one: already past), ``None`` if not given."""

    def __init__(self, events: list[str], ahead: list[float | None]) -> None:
        self.events, self.ahead = events, ahead

    async def __call__(self) -> float | None:
        self.events.append("pace")
        ahead = self.ahead.pop(0) if self.ahead else None
        return None if ahead is None else asyncio.get_running_loop().time() + ahead


def client_for(site: Site) -> InventoryClient:
    transport = MockTransport(site.handle)
    return InventoryClient(ApiKeyAuth("KEY", site_id="SITE"), transport=transport, rate_limit=None)


@pytest.mark.parametrize("catalog", [V1, V3])
async def test_each_detection_request_is_paced_right_before_it(catalog: CatalogVersion) -> None:
    """Without the scope: pace, version call (403), pace, probe; the answer is cached, so a
    second call neither paces nor asks."""
    events: list[str] = []
    async with client_for(Site(catalog, events, scope=False)) as client:
        assert await client.catalog_version(pace=Pacer(events, [5.0, 5.0])) is catalog
        assert await client.catalog_version(pace=Pacer(events, [])) is catalog
    assert events == ["pace", VERSION, "pace", PROBE]


async def test_with_the_scope_one_request_one_step() -> None:
    events: list[str] = []
    async with client_for(Site(V3, events, scope=True)) as client:
        assert await client.catalog_version(pace=Pacer(events, [None])) is V3
    assert events == ["pace", VERSION]


@pytest.mark.parametrize("late", ["version", "probe"])
async def test_a_request_past_its_deadline_is_not_sent_and_nothing_is_cached(late: str) -> None:
    """The pacer's deadline already past: that request never reaches the site, LateSendError
    ends the detection, nothing is cached, and the next detection asks from the start."""
    events: list[str] = []
    ahead: list[float | None] = [-1.0] if late == "version" else [5.0, -1.0]
    async with client_for(Site(V1, events, scope=False)) as client:
        with pytest.raises(LateSendError):
            await client.catalog_version(pace=Pacer(events, ahead))
        sent = [e for e in events if e != "pace"]
        assert sent == ([] if late == "version" else [VERSION])
        events.clear()
        assert await client.catalog_version(pace=Pacer(events, [5.0, 5.0])) is V1
    assert events == ["pace", VERSION, "pace", PROBE]


async def test_what_the_pacer_raises_ends_the_detection_before_the_probe() -> None:
    """A pacer that refuses the probe's slot: the probe is not sent, nothing is cached."""
    events: list[str] = []

    class Refused(Exception):
        pass

    async def once_then_refuse() -> float | None:
        events.append("pace")
        if events.count("pace") > 1:
            raise Refused
        return None

    async with client_for(Site(V3, events, scope=False)) as client:
        with pytest.raises(Refused):
            await client.catalog_version(pace=once_then_refuse)
        assert events == ["pace", VERSION, "pace"]
        assert await client.catalog_version() is V3  # unpaced: as any other call
    assert events[3:] == [VERSION, PROBE]
