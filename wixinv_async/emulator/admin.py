"""The admin API under ``/_emulator/`` (outside Wix's paths, no authentication).

``GET state`` (every item of a site in its catalog's wire format: V1 inventory items, or V3
inventory items on a V3 site; ``catalogVersion`` says which), ``GET journal`` (applied writes
in order, V1 then V3), ``GET stats``, ``POST reset``, ``GET``/``POST faults``, ``POST
migrate`` (the site moves to V3 now; 409 if it runs V3 already). ``?site=`` picks a site
(default: the first); ``?since=N`` skips the first N journal entries.
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

__all__ = ["add_admin_routes", "journal_json"]

_encode = msgspec.json.Encoder().encode
_ids = itertools.count(1)


def journal_json(journal: list[JournalEntry], since: int = 0) -> dict[str, Any]:
    """The journal in JSON form: ``{"journal": [{"requestId", "endpoint", "entries", "at"}]}``."""
    return {
        "journal": [
            {"requestId": e.request_id, "endpoint": e.endpoint, "entries": e.entries, "at": e.at}
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


class _Admin:
    """The admin handlers of one emulator."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def _site_of(self, request: web.Request) -> str | web.Response:
        """The ``?site=`` site id (default: the first site), or a 404 answer."""
        site_id = request.query.get("site", self.emu.site_id)
        if site_id not in self.emu.sites:
            return _problem(404, f"no site {site_id!r}: sites are {self.emu.sites}")
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
        return _json(self.emu.stats())

    async def reset(self, request: web.Request) -> web.Response:
        self.emu.reset()
        return _json({})

    async def get_faults(self, request: web.Request) -> web.Response:
        plan = self.emu.faults
        return _json(plan.to_dict() if plan is not None else None)

    async def set_faults(self, request: web.Request) -> web.Response:
        """Install the JSON plan in the body (``null`` or ``{}``: no faults)."""
        try:
            data = msgspec.json.decode(await request.read() or b"null")
            plan = FaultPlan.from_dict(data) if data else None
        except (msgspec.DecodeError, ValueError, TypeError) as exc:
            return _problem(400, f"bad fault plan: {exc}")
        self.emu.set_faults(plan)
        return _json(plan.to_dict() if plan is not None else None)
