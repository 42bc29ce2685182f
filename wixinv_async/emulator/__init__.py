"""A faithful local Wix Stores Inventory emulator (Catalog V1 and V3): a real HTTP server.

``async with Emulator(products=1000, variants_per_product=3, seed=1) as emu:`` serves the five
inventory calls on ``emu.url`` (port 0: any free port) over seeded, deterministic catalogs
(one site, or ``sites=N`` / a list of :class:`SiteSpec`: many sites in one server),
with API-key and OAuth authentication, a strict rolling-window rate limit, fault injection and
an admin API under ``/_emulator/`` (``state``, ``journal``, ``stats``, ``reset``, ``faults``,
``migrate``, ``sites``, ``revoke``, ``reinstate``, ``edit``; ``?site=`` picks the site).
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
- Auth: one API key for every site (the account's: ``wix-site-id`` required with it: missing
  -> 400, unknown -> 403); one OAuth app (``app_id``/``app_secret``) and one instance id per
  site; tokens are opaque, per instance, accepted with or without ``Bearer``; 401
  ``UNAUTHENTICATED`` for missing, wrong or expired credentials; an unknown ``instance_id`` is
  a 400; ``expires_in`` is the token lifetime rounded down to whole seconds. Time comes from
  ``clock`` (injectable). A token authorises exactly its instance's site: a ``wix-site-id``
  naming another site is a 403 ``FORBIDDEN`` (stricter than Wix may be, to catch a client
  sending one site's token for another), naming its own site is accepted.
- Revocation (the app removed from a site: the hub's "revoked installation"):
  ``Emulator.revoke(instance_id)`` or ``POST /_emulator/revoke?instance=`` (or ``?site=``).
  The instance's tokens then get 401 ``UNAUTHENTICATED`` and token requests for it 401
  (Wix documents neither status; 401 is what an invalid token gets). The API key belongs to
  the account, not the app, so it still reaches the site. ``reinstate`` allows new tokens;
  tokens issued before stay dead. ``reset`` keeps revocations.
- Rate limit: per site, i.e. per app instance as Wix documents (API key and OAuth calls of a site
  share it), a strict rolling window counting only accepted requests; authentication is checked
  first, and the token endpoint and admin API are not limited; 429 ``TOO_MANY_REQUESTS`` with
  ``Retry-After`` in whole seconds rounded up (switchable off).
- Faults are drawn after authentication, before the rate limit (a fault before applying is not
  counted by it). A fault after applying happens only if the write succeeded. A stall ends when
  the client disconnects, after ``stall_seconds`` (the connection is then aborted) or at
  shutdown. ``"*"`` rules cover the five inventory calls, not ``oauthToken``. A client that
  disconnects while its request waits (latency) cancels it: nothing is applied.
- Late applies (issue 18: the request applied after the client gave up). ``late_504``,
  ``late_reset`` and ``late_stall`` answer like ``error_504``, ``reset_after`` and
  ``stall_after`` but WITHOUT applying; the request (its body, path and query as received) is
  applied ``late_seconds`` plus a uniform draw in ``[0, late_jitter]`` after that answer: after
  the 504 is sent, the connection reset, or the stall ended (client gone, ``stall_seconds``).
  Counting from the answer, not from arrival, makes "after the client gave up" hold for any
  client timeout. The kind and the delay come from the site's seeded generator, so a seed gives
  the same late faults and delays for the same requests. Such a request was admitted: it holds
  its slot in the rate window. It is applied synchronously against the state of that moment
  (it may then be refused, e.g. the stock went: counted in ``stats()["late"]["refused"]``, not
  journaled), journaled with the request id its ambiguous answer carried, ``at`` the wall time
  it was applied and ``source="late"``. A V3 bulk call applied late draws no per-item faults.
  Late applies still pending at shutdown are dropped (``dropped``); ``await
  Emulator.wait_late_applies()`` returns once none is pending, so tests wait without sleeping.
  On ``oauthToken`` the late kinds answer as their plain twins and apply nothing.
- Third-party edits (a dashboard user or another app moving a variant, e.g. a witness):
  ``Emulator.edit_quantity`` or ``POST /_emulator/edit`` sets a quantity or adds a delta (the
  result 0 to 99999, as the dashboard allows), journaled as endpoint ``thirdPartyEdit``,
  request id ``""``, ``source="third_party"``, with ``quantityBefore``/``quantityAfter``. On a
  V1 site it names the product and variant (untracked variants too: the hidden quantity),
  moves ``lastUpdated`` and reaches listeners; on a V3 site it names a tracked inventory item
  and bumps its revision. ``SiteStore.set_quantity`` stays the unjournaled direct change.
- Products (Catalog V1, for the witness check): ``GET /stores-reader/v1/products/{id}`` (and
  ``/stores/v1/products/{id}``) answers ``{"product": {id, name, slug, visible, productType,
  manageVariants, stock: {trackInventory, inStock, inventoryStatus}}}`` from the inventory
  item of that product id, 404 ``NOT_FOUND`` for another; name and slug are made up from the
  id, ``productType`` is ``physical``. Seeded products are visible; ``add_product(visible=
  False)``, ``SiteStore.set_visible`` or ``POST /_emulator/products`` (``{"variants",
  "quantity", "track", "visible"}``, answering ``{"productId", "inventoryId",
  "variantIds"}``) make hidden ones. Wix serves hidden products only to credentials with the
  admin read scope; the emulator's one API key has it.
- Catalogs: numericIds are creation times in microseconds in 2021-2024 (16 digits), clustered
  in bursts like bulk imports (or ``uniform``, or ``skewed``: 80 % in a tenth of the range); a
  quarter of multi-variant catalogs' products have only the default variant; about 15 % are
  untracked and 10 % have preorder. Site ``i`` is seeded with ``seed + i``; ``reset``
  reseeds every site made (products added since vanish) and clears journals, stats and rate
  windows, keeping fault plans, issued tokens and revocations.
- The journal holds every applied write in order, each with its ``source``: ``"api"`` (applied as
  it arrived), ``"late"`` (a late apply) or ``"third_party"`` (an edit). Batch entries are
  normalized to ``productId``, ``variantId``, the amount and (decrements) ``preorderRequest``; a
  batch naming any entry by ``inventoryId`` is kept exactly as sent; an update keeps its
  ``inventoryItem``. ``entries_applied`` counts batch entries, and one per applied update.
  ``SiteStore.set_quantity`` (a dashboard edit) reaches listeners with request id ``""`` and is
  not journaled.
- Every Wix response (errors included) carries ``x-wix-request-id``.

Many sites (issue 15: ``Emulator(sites=1000)``, ``wixinv-async emulator --sites N``):

- ``sites`` is a count or one :class:`SiteSpec` per site; a spec's fields left ``None`` take
  the emulator's settings (``products``, ``variants_per_product``, ``locations``, ``catalog``,
  ``rate_limit``, ``faults``), its ``seed`` defaults to the emulator's seed plus the site's
  index (so the first site of any emulator is the single-site catalog of old), its
  ``rate_limit`` ``"off"`` removes the window. ``extra_sites=K`` (older spelling) is
  ``sites=K+1``; both at once is an error, as are duplicate site ids. ``site_id=`` names the
  first site. ``catalog="mixed"`` (``--catalog mixed``): V1 and V3 in turn, the first site V1.
- Site ids and instance ids are GUIDs drawn at construction from the seed (the same seed, the
  same ids); a site's catalog, rate window and fault generator are made on first use (a
  request authenticated for it, an admin call naming it, ``Emulator.site``), from its own
  seed, so a site made late equals one made early. Tokens and ``instance_of`` need no
  catalog. Measured: ``Emulator(sites=10_000)`` starts in about 0.03 s and adds about 3 MB;
  each site made costs about 6 ms and 0.2 MB at 100 products (a V3 site keeps its seeded V1
  store too, for ``reset``). ``make_sites()`` (``--make-sites``) makes every site before
  serving, so a benchmark's first requests pay no seeding. ``reset`` touches only sites
  made. A webhook sink is attached to each site's store when the site is made.
- Every site has its own strict rolling window, fault generator, journal, stats and admin view
  (``?site=`` on every admin call; ``GET /_emulator/sites`` lists site and instance ids).
  The emulator's fault plan applies to every site without a plan of its own, each drawing from
  ``plan.seed + index`` (sites do not fault in lockstep, and one site's faults depend only on
  its own requests); a site's own plan draws from its seed. ``set_faults(plan)`` replaces
  every site's plan (site plans included), ``set_faults(plan, site_id=)`` one site's. Faults
  of the token endpoint (``oauthToken``, which belongs to no site) are drawn from the first
  site's plan. ``stats()`` keeps the totals and adds ``sites`` (each site made so far:
  requests by endpoint and status, entries applied, faults, catalog version, rate limit,
  ``peak_in_window``, ``revoked``, ``tokens_issued``), ``sites_total``, ``late`` and
  ``tokens_issued`` (by instance id, sites made or not); ``site_stats(site_id)`` and
  ``GET /_emulator/stats?site=`` give one site's. Requests refused before a site is known (bad
  credentials, unknown site) count only in the totals.

Catalog V3 (``Emulator(catalog="v3")``, or one name per site; ``wixinv-async emulator --catalog
v3``). Shapes and limits follow the SDK's typings and capture (``tests/wire/v3/``); the
emulator's choices where they are silent:

- A site runs one catalog. A V1 call on a V3 site answers 428
  ``CATALOG_V3_SITE_CALLING_CATALOG_V1_API`` and a V3 call on a V1 site 428
  ``CATALOG_V1_SITE_CALLING_CATALOG_V3_API`` (the live API's codes, which Wix documents
  nowhere: they are what third-party clients of the real API test for), with ``data``
  ``{catalogVersion, requiredCatalogVersion}``;
  the check is made when the request is applied, after authentication, faults and the rate
  limit (such a 428 counts in the site's window, shared by its V1 and V3 calls). ``GET
  /stores/v3/provision/version`` answers ``{"catalogVersion": "V1_CATALOG" | "V3_CATALOG"}``
  on any site; with ``version_scope=False`` (credentials without the catalog-read scope, also
  settable on a running emulator) it answers 403 ``FORBIDDEN`` and the other calls still work,
  so a client probes with a V3 read (200: V3 site, 428: V1 site). ``STORES_NOT_INSTALLED`` is
  not modelled.
- Seeding: a V3 site is its seeded V1 catalog converted, each variant an item at the default
  location (the first of ``locations`` seeded ids) and, with more locations, at each of them
  with a seeded quantity (0 to 200) and no preorder. V1's shared default variant id becomes a
  fresh GUID per product, because ``(variantId, locationId)`` is unique. Items get ids from the
  seed, ``revision`` "1", ``createdDate`` the V1 creation time, a ``product`` summary ("Product
  N", "Default" or "Option K", a SKU unique per variant, no categories, visible).
- Migration (``POST /_emulator/migrate?site=`` or ``Emulator.migrate_to_v3``) happens at once
  between two requests: every V1 variant becomes an item at the default location with its
  quantity (or ``inStock``), tracking and preorder settings (a null preorder limit becomes
  100000; negative stock becomes the preorder counter), journaled as one ``migrateToV3`` entry
  (request id ``""``). From then V1 calls answer 428. A second migration is a 409; ``reset``
  returns every site to its seeded catalog, so a migrated V1 site is V1 again.
- Items show one tracking method: ``quantity`` (``trackQuantity`` true) or ``inStock``.
  Filters see the item's REST document: a field it does not show is absent and fails every
  test but ``$ne``, ``$nin`` and ``$exists: false``. ``preorderInfo.limit``, ``counter`` and
  ``quantity`` (``limit - counter``) are shown for tracked items only. ``availabilityStatus``:
  IN_STOCK with stock (or ``inStock``), else PREORDER when preorder is enabled with capacity
  left, else OUT_OF_STOCK. ``revision`` grows by 1 on every applied change of the item
  (increments, decrements and updates, even one that sets the same values).
- Bulk increments and decrements are settled entry by entry in order (the same item twice is
  applied twice), always HTTP 200 once the request is valid: results in request order,
  ``itemMetadata`` {id (absent when no item was found by variant and location),
  originalIndex, success, error {code, description, data}}, ``item`` only for a success with
  ``returnEntity``; ``totalFailures`` counts every failed entry, ``undetailedFailures`` those
  without a result. A request outside the typings' limits (1 to 300 entries, amounts 1 to
  99999, GUIDs, required fields, the reason enum, unknown fields) is a 400 naming the field and
  applies nothing.
- ``restrictInventory``: the two calls document it differently ("restricted from going below
  zero, default true" by id; "whether to allow negative inventory, default false" by variant
  and location). Both calls read it the first way: absent or true, a decrement past the stock
  fails with ``INSUFFICIENT_INVENTORY`` (``data.quantity``: the stock it met); false allows
  negative stock down to -99999 (below: ``MIN_QUANTITY_LIMIT_REACHED``).
- Preorder: a decrement with ``preorderRequest`` on an item with preorder enabled may go below
  zero by up to the remaining capacity (``limit - counter``, counter at most 99999); the units
  below zero are added to ``counter``; past the capacity it is ``INSUFFICIENT_INVENTORY``. An
  increment that lifts negative stock settles that many preordered units (counter goes down).
  Preorder applies at any location. Untracked items: increments and decrements fail with
  ``INVENTORY_QUANTITY_NOT_TRACKED``. An increment past 99999: ``MAX_QUANTITY_LIMIT_REACHED``.
  An unknown item or (variant, location): ``NOT_FOUND`` (by variant and location, a missing
  ``locationId`` means the default location; items are never created by these calls).
- Updates (``PATCH``, bulk update): ``revision`` is required (400) and must be the current one,
  else 409 ``REVISION_MISMATCH`` with ``data.currentRevision`` (per item in a bulk). Writable:
  ``quantity`` (switches to tracking by quantity), ``inStock`` (switches to tracking by
  status; both at once is a 400), ``preorderInfo`` {enabled, message, limit}. Read-only fields
  sent back are ignored; ``variantId``, ``locationId`` and ``productId``, if sent, must be the
  item's (400 ``IMMUTABLE_FIELD``). A negative quantity set is 428
  ``REQUESTED_QUANTITY_MUST_BE_NON_NEGATIVE_DECREASING`` (decrement instead); a preorder limit
  on an untracked item, or below the counter, is 428 ``PRE_ORDER_VALIDATION``. Single-item
  application errors are 428, NOT_FOUND 404. Update by filter is applied at once (no revision
  check; refused items stay as they were) and answers a fresh ``jobId``; there is no job API.
  Delete removes the item (404 after).
- Query and search: GET with the base64url JSON in ``.r`` or the same JSON as a POST body;
  other query parameters are a 400. Cursor paging ``limit`` 1 to 1000 (default 100), ``sort``
  at most 10 (``id``, ``variantId`` and ``locationId`` are not sortable, as the typings say),
  cursors up to 16000 characters; offset ``paging`` is served by query. No sort means id
  order; the id breaks every tie. Cursors are keyset positions (the sort values and id of the
  page's last or first item, with the query they belong to, base64url JSON): they stay valid
  while the catalog changes, and a crawl in an order that does not change (no sort, or
  ``createdDate``) reads every item that exists throughout exactly once; an item whose sort
  field changes mid-crawl may be read twice or missed. A cursor sent with a filter, sort or
  search, or to the other call, is a 400. ``cursors.prev`` is given when items precede the
  page; ``hasNext`` is sent by both calls. Operators: ``$eq $ne $gt $gte $lt $lte $in $nin
  $exists $startsWith`` (case-insensitive) on the typings' fields, ``$hasSome $hasAll`` on
  ``product.directCategoryIds``, and ``$and $or $not``; dates are RFC 3339 strings or
  ``{"$date": ...}``. Search's free text matches case-insensitive substrings of the
  searchable fields (mode OR: any term, AND: every term; ``fuzzy`` ignored); aggregations are
  a 400 (not modelled).
- Faults, stats and the rate limit cover the V3 calls by their SDK names (``"*"`` included).
  ``FaultRule.item_error`` / ``item_undetailed`` fail single entries of a V3 bulk call
  (``INTERNAL_ERROR``, not applied; undetailed ones get no result), drawn in entry order from
  the plan's seeded generator. The journal (``Emulator.journal``, ``GET /_emulator/journal``)
  lists a site's V1 entries then its V3 ones; each V3 bulk entry records ``originalIndex``,
  the item's ids, what was sent, ``success`` (and the ``error`` code), ``change`` (the signed
  amount applied, 0 when refused), ``quantityBefore`` / ``quantityAfter`` and ``reason``;
  updates record the fields set and the tracked stock before and after. A V3 bulk request
  whose every entry failed is journaled too. ``GET /_emulator/state`` shows a V3 site's V3
  items and every state carries ``catalogVersion``. With a webhook sender, V3 changes send V3
  events (``emulator/webhook_sender.py`` says which) and a migrated site sends V3 events only.
"""

from __future__ import annotations

from .faults import FAULT_KINDS, FaultPlan, FaultRule
from .server import Emulator, WebhookSink
from .sites import SiteSpec
from .store import ChangeEvent, JournalEntry, Listener, SiteStore
from .v3_items import V3Item
from .v3_store import V3Store

__all__ = [
    "FAULT_KINDS",
    "ChangeEvent",
    "Emulator",
    "FaultPlan",
    "FaultRule",
    "JournalEntry",
    "Listener",
    "SiteSpec",
    "SiteStore",
    "V3Item",
    "V3Store",
    "WebhookSink",
]
