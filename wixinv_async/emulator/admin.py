"""The admin API under ``/_emulator/`` (outside Wix's paths, no authentication).

``GET state`` (every item of a site in its catalog's wire format: V1 inventory items, or V3
inventory items on a V3 site; ``catalogVersion`` says which), ``GET journal`` (applied writes
in order, V1 then V3), ``GET stats`` (every site; with ``?site=`` that site's alone), ``POST
reset``, ``GET``/``POST faults`` (with ``?site=`` that site's plan, else the default site's
to read and every site's to set), ``POST migrate`` (the site moves to V3 now; 409 if it runs
V3 already), ``GET sites`` (every site id with its instance id), ``POST revoke`` and ``POST
reinstate`` (``?instance=``, or ``?site=``: the app removed from, or installed again on, the
site), ``POST edit`` (a third party's quantity edit: ``{"productId", "variantId"}`` on a V1
site or ``{"inventoryItemId"}`` on a V3 site, with ``"quantity"`` or ``"delta"``; answers
``{"quantityBefore", "quantityAfter"}``), ``POST products`` (a new V1 product:
``{"variants": 1, "quantity": 10, "track": true, "visible": true}``, all optional; answers
``{"productId", "inventoryId", "variantIds"}``). ``?site=`` picks a site (default: the first);
``?since=N`` skips the first N journal entries. Bad input is a 400, an unknown site or
instance a 404.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from .faults import FaultPlan
from .store import JournalEntry

if TYPE_CHECKING:
    from .server import Emulator

__all__ = ["EditBody", "ProductBody", "add_admin_routes", "journal_json"]

_encode = msgspec.json.Encoder().encode
_ids = itertools.count(1)


def journal_json(journal: list[JournalEntry], since: int = 0) -> dict[str, Any]:
    """The journal in JSON form: ``{"journal": [{"requestId", "endpoint", "entries", "at",
    "source"}]}``."""
    return {
        "journal": [
            {
                "requestId": e.request_id,
                "endpoint": e.endpoint,
                "entries": e.entries,
                "at": e.at,
                "source": e.source,
            }
            for e in journal[since:]
        ]
    }


def _json(data: Any, status: int = 200) -> web.Response:
    return _bytes(_encode(data), status)


def _bytes(body: bytes, status: int = 200) -> web.Response:
    headers = {"x-wix-request-id": f"admin.{next(_ids)}", "Content-Type": "application/json"}
    return web.Response(status=status, body=body, headers=headers)


def _problem(status: int, text: str) -> web.Response:
    return _json({"message": text}, status)


def add_admin_routes(app: web.Application, emu: Emulator) -> None:
    """Add the ``/_emulator/`` routes for ``emu`` to ``app``."""
    admin = _Admin(emu)
    app.router.add_get("/_emulator/state", admin.state)
    app.router.add_get("/_emulator/journal", admin.journal)
    app.router.add_get("/_emulator/stats", admin.stats)
    app.router.add_post("/_emulator/reset", admin.reset)
    app.router.add_get("/_emulator/faults", admin.get_faults)
    app.router.add_post("/_emulator/faults", admin.set_faults)
    app.router.add_post("/_emulator/migrate", admin.migrate)
    app.router.add_get("/_emulator/sites", admin.sites)
    app.router.add_post("/_emulator/revoke", admin.revoke)
    app.router.add_post("/_emulator/reinstate", admin.reinstate)
    app.router.add_post("/_emulator/edit", admin.edit)
    app.router.add_post("/_emulator/products", admin.add_product)


class EditBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """``POST /_emulator/edit``: the variant (V1) or inventory item (V3), and the change."""

    product_id: str | None = None
    variant_id: str | None = None
    inventory_item_id: str | None = None
    quantity: int | None = None
    delta: int | None = None


class ProductBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /_emulator/products``: the new product's variants, stock and visibility."""

    variants: int = 1
    quantity: int = 10
    track: bool = True
    visible: bool = True


class _Admin:
    """The admin handlers of one emulator."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def _site_of(self, request: web.Request) -> str | web.Response:
        """The ``?site=`` site id (default: the first site), or a 404 answer."""
        site_id = request.query.get("site", self.emu.site_id)
        if not self.emu.has_site(site_id):
            return _problem(404, f"no site {site_id!r}")
        return site_id

    async def state(self, request: web.Request) -> web.Response:
        site_id = self._site_of(request)
        if isinstance(site_id, web.Response):
            return site_id
        version = self.emu.catalog_version(site_id)
        if version == "V3_CATALOG":
            body = self.emu.v3_store(site_id).state_json()
        else:
            body = self.emu.site(site_id).state_json()
        return _bytes(body[:-1] + b',"catalogVersion":"' + version.encode() + b'"}')

    async def journal(self, request: web.Request) -> web.Response:
        site_id = self._site_of(request)
        since = request.query.get("since", "0")
        if isinstance(site_id, web.Response):
            return site_id
        if not since.isdigit():
            return _problem(400, f"since={since!r}: must be a whole number")
        return _json(journal_json(self.emu.journal(site_id), int(since)))

    async def migrate(self, request: web.Request) -> web.Response:
        """Move the site to Catalog V3 now; answers its version and item count."""
        site_id = self._site_of(request)
        if isinstance(site_id, web.Response):
            return site_id
        try:
            store = self.emu.migrate_to_v3(site_id)
        except ValueError as exc:
            return _problem(409, str(exc))
        return _json({"catalogVersion": "V3_CATALOG", "inventoryItems": len(store)})

    async def stats(self, request: web.Request) -> web.Response:
        if "site" not in request.query:
            return _json(self.emu.stats())
        site_id = self._site_of(request)
        if isinstance(site_id, web.Response):
            return site_id
        return _json(self.emu.site_stats(site_id))

    async def sites(self, request: web.Request) -> web.Response:
        pairs = zip(self.emu.sites, self.emu.instances, strict=True)
        return _json({"sites": [{"siteId": s, "instanceId": i} for s, i in pairs]})

    def _instance_of(self, request: web.Request) -> str | web.Response:
        """``?instance=``, or the instance of ``?site=``; a 404 answer when unknown."""
        instance = request.query.get("instance")
        if instance is not None:
            if instance not in self.emu.instances:
                return _problem(404, f"no app instance {instance!r}")
            return instance
        site_id = self._site_of(request)
        if isinstance(site_id, web.Response):
            return site_id
        return self.emu.instance_of(site_id)

    async def revoke(self, request: web.Request) -> web.Response:
        instance = self._instance_of(request)
        if isinstance(instance, web.Response):
            return instance
        self.emu.revoke(instance)
        return _json({"instanceId": instance, "revoked": True})

    async def reinstate(self, request: web.Request) -> web.Response:
        instance = self._instance_of(request)
        if isinstance(instance, web.Response):
            return instance
        self.emu.reinstate(instance)
        return _json({"instanceId": instance, "revoked": False})

    async def edit(self, request: web.Request) -> web.Response:
        site_id = self._site_of(request)
        if isinstance(site_id, web.Response):
            return site_id
        try:
            edit = msgspec.json.decode(await request.read(), type=EditBody)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _problem(400, f"bad edit: {exc}")
        target = edit.inventory_item_id or edit.product_id
        if target is None or (edit.quantity is None) == (edit.delta is None):
            text = (
                "name productId and variantId (V1) or inventoryItemId (V3), "
                "and one of quantity or delta"
            )
            return _problem(400, text)
        try:
            before, after = self.emu.edit_quantity(
                target,
                edit.variant_id,
                quantity=edit.quantity,
                delta=edit.delta or 0,
                site_id=site_id,
            )
        except KeyError as exc:
            return _problem(404, str(exc.args[0]))
        except ValueError as exc:
            return _problem(400, str(exc))
        return _json({"quantityBefore": before, "quantityAfter": after})

    async def add_product(self, request: web.Request) -> web.Response:
        site_id = self._site_of(request)
        if isinstance(site_id, web.Response):
            return site_id
        if self.emu.catalog_version(site_id) != "V1_CATALOG":
            return _problem(409, f"site {site_id!r} runs Catalog V3: products are added on V1")
        try:
            body = msgspec.json.decode(await request.read() or b"{}", type=ProductBody)
            if not 1 <= body.variants <= 100 or not 0 <= body.quantity <= 99_999:
                raise ValueError("variants must be 1 to 100 and quantity 0 to 99999")
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            return _problem(400, f"bad product: {exc}")
        item = self.emu.site(site_id).add_product(
            variants=body.variants, quantity=body.quantity, track=body.track, visible=body.visible
        )
        variant_ids = [v.variant_id for v in item.variants]
        return _json(
            {"productId": item.product_id, "inventoryId": item.id, "variantIds": variant_ids}
        )

    async def reset(self, request: web.Request) -> web.Response:
        self.emu.reset()
        return _json({})

    async def get_faults(self, request: web.Request) -> web.Response:
        site_id = self._site_of(request)
        if isinstance(site_id, web.Response):
            return site_id
        plan = self.emu.faults_of(site_id)
        return _json(plan.to_dict() if plan is not None else None)

    async def set_faults(self, request: web.Request) -> web.Response:
        """Install the JSON plan in the body (``null`` or ``{}``: no faults)."""
        try:
            data = msgspec.json.decode(await request.read() or b"null")
            plan = FaultPlan.from_dict(data) if data else None
        except (msgspec.DecodeError, ValueError, TypeError) as exc:
            return _problem(400, f"bad fault plan: {exc}")
        if "site" in request.query:
            site_id = self._site_of(request)
            if isinstance(site_id, web.Response):
                return site_id
            self.emu.set_faults(plan, site_id=site_id)
        else:
            self.emu.set_faults(plan)
        return _json(plan.to_dict() if plan is not None else None)
