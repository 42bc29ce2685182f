"""A faithful local Wix Stores Inventory (Catalog V1) emulator: a real HTTP server.

``async with Emulator(products=1000, variants_per_product=3, seed=1) as emu:`` serves the five
inventory calls on ``emu.url`` (port 0: any free port) over seeded, deterministic catalogs,
with API-key and OAuth authentication, a strict rolling-window rate limit, fault injection and
an admin API under ``/_emulator/`` (``state``, ``journal``, ``stats``, ``reset``, ``faults``).
``emu.store`` is the default site's :class:`SiteStore`, for direct inspection in tests; the
``wix_emulator`` pytest fixture (``wixinv_async.testing``) and ``wixinv-async emulator`` give
the same to users. Reads answer under ``/stores-reader/v2/...`` and ``/stores/v2/...``.

The emulator's choices where Wix documents nothing (``wix-api-notes.md`` lists the facts):

- Errors: decrement below zero -> 428 ``INSUFFICIENT_INVENTORY``; increment or decrement of an
  untracked item -> 428 ``INVENTORY_QUANTITY_NOT_TRACKED``; a quantity above 99999 (by
  increment or by update) -> 428 ``MAX_QUANTITY_LIMIT_REACHED``; unknown product, inventory
  item or variant -> 404 ``NOT_FOUND``. Application errors carry ``data.index`` (the entry at
  fault) with its ids (and ``quantity``, the stock it met). Malformed input is a 400 whose
  ``fieldViolations`` name each field (``decrementData[3].decrementBy``); unknown request
  fields are refused (the emulator is stricter than Wix, to catch client typos).
- Batches are validated whole and applied all or nothing: 400 wins over 404, which wins over
  428; among equals, the first entry. The same key twice is applied in order.
- ``decrementBy``/``incrementBy`` must be 1 to 2^31-1 (Wix's int32); an entry names
  ``productId`` or ``inventoryId`` (both: they must name the same item, else 404).
- Preorder: a decrement with ``preorderRequest: true`` on an item with preorder enabled may go
  down to ``-limit`` (no floor when the limit is null). ``availableForPreorder`` is true while
  preorder is enabled and (tracked items) the quantity is above ``-limit``. ``inStock`` of a
  tracked variant is ``quantity > 0``.
- Untracked variants show no ``quantity``; the emulator keeps the last one internally and shows
  it again when tracking is switched back on (0 for items seeded untracked). Switching tracking
  off sets each variant's ``inStock`` to ``quantity > 0``; in an update, an ``inStock`` given
  wins, else a ``quantity`` given sets ``inStock`` to ``quantity > 0``.
- Update Inventory Variants: ``trackQuantity`` omitted is read as ``false`` (Wix's trap); a
  ``productId`` in the body must equal the path's; ``preorderInfo.limit`` 0 to 100000 and
  ``message`` 1 to 250 characters; every applied update moves ``lastUpdated``.
- Get Inventory Variants: the path id is an inventory id (a product id is accepted too); a
  ``productId`` in the body looks up by product; unknown ``variantIds`` are left out.
- Query: no sort means numericId ascending; ties are broken by numericId ascending;
  ``paging.limit`` defaults to 100 and must be 1 to 100; ``offset + limit`` above 10,000 is a
  400 telling the client to crawl by numericId. ``numericId`` operands are numbers or digit
  strings; ``lastUpdated`` operands RFC 3339 strings, ``{"$date": ...}`` or epoch milliseconds
  (``lastUpdated`` has millisecond precision). ``$in`` and ``$hasSome`` both mean "one of";
  ``trackQuantity`` takes ``$eq``/``$ne``/``$in``/``$hasSome``. Unknown fields or operators
  are a 400. Responses always carry ``inventoryItems``, ``metadata`` and ``totalResults``.
- Auth: one API key for every site (``wix-site-id`` required with it: missing -> 400, unknown
  -> 403); one OAuth app (``app_id``/``app_secret``) and one instance id per site; tokens are
  opaque, accepted with or without ``Bearer``; 401 ``UNAUTHENTICATED`` for missing, wrong or
  expired credentials; an unknown ``instance_id`` is a 400; ``expires_in`` is the token
  lifetime rounded down to whole seconds. Time comes from ``clock`` (injectable).
- Rate limit: per site (API key and OAuth calls of a site share it), a strict rolling window
  counting only accepted requests; authentication is checked first, and the token endpoint and
  admin API are not limited; 429 ``TOO_MANY_REQUESTS`` with ``Retry-After`` in whole seconds
  rounded up (switchable off).
- Faults are drawn after authentication, before the rate limit (a fault before applying is not
  counted by it). A fault after applying happens only if the write succeeded. A stall ends when
  the client disconnects, after ``stall_seconds`` (the connection is then aborted) or at
  shutdown. ``"*"`` rules cover the five inventory calls, not ``oauthToken``. A client that
  disconnects while its request waits (latency) cancels it: nothing is applied.
- Catalogs: numericIds are creation times in microseconds in 2021-2024 (16 digits), clustered
  in bursts like bulk imports (or ``uniform``, or ``skewed``: 80 % in a tenth of the range); a
  quarter of multi-variant catalogs' products have only the default variant; about 15 % are
  untracked and 10 % have preorder. Extra sites are seeded with ``seed + i``; ``reset``
  reseeds every site (products added since vanish) and clears journals, stats and rate
  windows, keeping the fault plan and issued tokens.
- The journal holds every applied write in order. Batch entries are normalized to
  ``productId``, ``variantId``, the amount and (decrements) ``preorderRequest``; a batch naming
  any entry by ``inventoryId`` is kept exactly as sent; an update keeps its ``inventoryItem``.
  ``entries_applied`` counts batch entries, and one per applied update.
  ``SiteStore.set_quantity`` (a dashboard edit) reaches listeners with request id ``""`` and
  is not journaled.
- Every Wix response (errors included) carries ``x-wix-request-id``.
"""

from __future__ import annotations

from .faults import FAULT_KINDS, FaultPlan, FaultRule
from .server import Emulator, WebhookSink
from .store import ChangeEvent, JournalEntry, Listener, SiteStore

__all__ = [
    "FAULT_KINDS",
    "ChangeEvent",
    "Emulator",
    "FaultPlan",
    "FaultRule",
    "JournalEntry",
    "Listener",
    "SiteStore",
    "WebhookSink",
]
