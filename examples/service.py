"""The README's example: an aiohttp service that decrements stock when an order is paid.

Run it with ``WIX_API_KEY``, ``WIX_SITE_ID`` (and ``WIX_BASE_URL`` for the emulator) set:
``python examples/service.py``. ``tests/test_example_service.py`` runs it against the emulator.
"""

import os
from collections.abc import AsyncIterator

from aiohttp import web

from wixinv_async import ApiKeyAuth, InventoryAdjuster, InventoryClient, OutcomeStatus

ADJUSTER = web.AppKey("adjuster", InventoryAdjuster)


async def inventory(app: web.Application) -> AsyncIterator[None]:
    auth = ApiKeyAuth(os.environ["WIX_API_KEY"], site_id=os.environ["WIX_SITE_ID"])
    base_url = os.environ.get("WIX_BASE_URL", "https://www.wixapis.com")
    async with (
        InventoryClient(auth, base_url=base_url) as client,
        InventoryAdjuster(client) as adjuster,
    ):
        app[ADJUSTER] = adjuster
        yield  # on shutdown, close() drains: every pending delta is sent and gets its outcome


async def order_paid(request: web.Request) -> web.Response:
    adjuster = request.app[ADJUSTER]
    order = await request.json()
    tickets = [
        await adjuster.submit(line["productId"], line["variantId"], -line["quantity"])
        for line in order["lineItems"]
    ]
    outcomes = [await ticket for ticket in tickets]  # deltas of other requests ride along
    failed = [o for o in outcomes if o.status is not OutcomeStatus.COMMITTED]
    return web.json_response({"ok": not failed, "problems": [o.code for o in failed]})


def make_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(inventory)
    app.router.add_post("/orders/paid", order_paid)
    return app


if __name__ == "__main__":
    web.run_app(make_app())
