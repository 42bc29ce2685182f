"""A faithful local Wix Stores Inventory (Catalog V1) emulator: a real HTTP server.

``async with Emulator(products=1000, variants_per_product=3, seed=1) as emu:`` serves the five
inventory calls on ``emu.url`` over seeded, deterministic catalogs, with API-key and OAuth
authentication, a strict rolling-window rate limit, fault injection and an admin API under
``/_emulator/``. ``emu.store`` is the default site's :class:`SiteStore`, for direct inspection.

The emulator's choices where Wix documents nothing (``wix-api-notes.md`` lists the facts):

- Errors: decrement below zero -> 428 ``INSUFFICIENT_INVENTORY``; increment/decrement of an
  untracked item -> 428 ``INVENTORY_QUANTITY_NOT_TRACKED``; a quantity above 99999 (by increment
  or by update) -> 428 ``MAX_QUANTITY_LIMIT_REACHED``; unknown product, inventory item or variant
  -> 404 ``NOT_FOUND``. Application errors carry ``data.index`` (the entry at fault) plus its
  ids. Malformed input is a 400 listing every violation; a batch with any 400 problem is refused
  as 400 before any 404/428 is considered. A batch is validated whole, then applied all or
  nothing; the same key twice in a batch is applied in order.
- ``decrementBy``/``incrementBy`` must be 1 to 2^31-1 (Wix's int32); an entry names
  ``productId`` or ``inventoryId`` (both: they must name the same item, else 404).
- Preorder: a decrement with ``preorderRequest: true`` on an item with preorder enabled may go
  down to ``-limit`` (no floor when the limit is null); ``availableForPreorder`` is true while
  preorder is enabled and (tracked items) the quantity is above ``-limit``. ``inStock`` of a
  tracked variant is ``quantity > 0``.
- Untracked variants show no ``quantity``; the emulator keeps the last one internally and shows
  it again if tracking is switched back on (0 for items seeded untracked). Switching tracking
  off sets each variant's ``inStock`` to ``quantity > 0``; in an update, ``inStock`` given wins,
  else a ``quantity`` given sets ``inStock`` to ``quantity > 0``.
- Update Inventory Variants: ``trackQuantity`` omitted is read as ``false`` (Wix's trap); a
  ``productId`` in the body must equal the path's; ``preorderInfo.limit`` 0 to 100000,
  ``message`` 1 to 250 characters; every applied update touches ``lastUpdated``.
- Get Inventory Variants: the path id is an inventory id (a product id is accepted too);
  ``productId`` in the body looks up by product; unknown ``variantIds`` are left out.
- Query: no sort means numericId ascending; sort ties are broken by numericId ascending;
  ``paging.limit`` defaults to 100 and must be 1 to 100; ``offset + limit`` above 10,000 is a
  400 telling the client to crawl by numericId. Filter values for ``numericId`` are numbers or
  digit strings; for ``lastUpdated`` RFC 3339 strings, ``{"$date": ...}`` or epoch milliseconds.
  ``$in`` and ``$hasSome`` both mean "one of". Unknown fields or operators are a 400.
- Auth: one API key for all sites (``wix-site-id`` required with it: missing -> 400, unknown ->
  403); one OAuth app (``app_id``/``app_secret``), one instance id per site; tokens are opaque,
  accepted with or without ``Bearer``; 401 ``UNAUTHENTICATED`` for missing, wrong or expired
  credentials; ``expires_in`` is the token lifetime rounded down to whole seconds.
- Rate limit: per site, a strict rolling window counting only accepted requests (authenticated
  inventory calls; the token endpoint and admin API are not limited); 429 ``TOO_MANY_REQUESTS``
  with ``Retry-After`` in whole seconds rounded up (switchable off).
- Faults are drawn after authentication and before the rate limit; a fault before applying is
  not counted by the rate limit. A stall ends when the client disconnects, after
  ``stall_seconds`` (then the connection is aborted) or at shutdown. ``"*"`` rules cover the five
  inventory calls, not ``oauthToken``.
- Catalogs: numericIds are creation times in microseconds in 2021-2024 (16 digits), clustered
  in bursts like bulk imports (or ``uniform``, or ``skewed``: 80 % in a tenth of the range); a
  quarter of multi-variant catalogs' products have only the default variant; 15 % untracked; 10 %
  preorder. Extra sites are seeded with ``seed + i``. ``reset`` reseeds (added products vanish).
- ``SiteStore.set_quantity`` (a dashboard edit) fires listeners with request id ``""`` and is
  not journaled; ``entries_applied`` counts batch entries, and one per applied update.
"""

from __future__ import annotations

from .faults import FAULT_KINDS, FaultPlan, FaultRule
from .server import Emulator, WebhookSink
from .store import ChangeEvent, JournalEntry, SiteStore

__all__ = [
    "FAULT_KINDS",
    "ChangeEvent",
    "Emulator",
    "FaultPlan",
    "FaultRule",
    "JournalEntry",
    "SiteStore",
    "WebhookSink",
]
