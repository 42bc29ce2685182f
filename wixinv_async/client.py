"""InventoryClient: one method per Catalog V1 inventory call, rate-limited and safely retried.

What a caller of ``increment_inventory`` / ``decrement_inventory`` can rely on:

- ``None``: the whole batch was applied (V1 batches are atomic).
- :class:`InvalidInputError`: refused client-side, nothing sent.
- ``BadRequestError``, ``NotFoundError``, ``PreconditionFailedError`` (``.code``), and
  ``AuthenticationError`` / ``PermissionDeniedError`` after the one OAuth refresh: the server
  refused the batch; nothing was applied.
- :class:`OutcomeUnknownError`: it may or may not have been applied (timeout after sending,
  connection lost, 500/502/504). Never retried here. If the answer's status line arrived and
  only its body was lost, the status decides: a 2xx write was applied, a 4xx refused.
- 429, 503 and failures that provably never reached the server are retried up to
  ``RetryPolicy.max_attempts``; if they run out, the last error is raised and nothing was applied.
  An app token that cannot be fetched raises :class:`ConnectError`: the call was never sent.

Reads are retried on every transient failure. Every error a call raises carries ``applied``
(``Applied.NO`` or ``Applied.MAYBE``), stamped from the one failure taxonomy of
:mod:`wixinv_async.core.failures`, which also holds the retry decisions; backoff arithmetic is
in :mod:`wixinv_async.core.backoff`, pacing in :class:`~wixinv_async.transport.RateLimiter`.

The Catalog V3 calls (``bulk_decrement_inventory_items`` ...) go through the same sending path,
so one client's V1 and V3 calls share its limiter, 429 pause and retries. Their requests are
built in :mod:`wixinv_async.inventory_v3`; a bulk write returns a
:class:`~wixinv_async.core.bulk_results.BulkResult` (one result per entry: applied, refused or
unknown) rather than ``None``; a 428 for the wrong catalog raises :class:`WrongCatalogError`
(nothing applied) and empties the cached catalog version (:mod:`wixinv_async.catalog`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal, NamedTuple, Protocol, Self, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
import msgspec
from msgspec import UNSET
from multidict import CIMultiDict, CIMultiDictProxy

from . import inventory_v3 as v3
from .auth import Auth
from .catalog import (
    CatalogCache,
    CatalogVersion,
    parse_catalog_version,
    probe_verdict,
    wrong_catalog_error,
)
from .core import validation
from .core.backoff import backoff_delay, parse_retry_after, site_seed
from .core.bulk_results import BulkResult, parse_bulk_body
from .core.failures import Decision, Failure, RequestKind, classify, decide, stamp
from .errors import (
    ApiError,
    ConfigurationError,
    ConflictError,
    ConnectError,
    ConnectionLostError,
    InvalidInputError,
    LateSendError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitedError,
    RevisionConflictError,
    ServerError,
    TransportError,
    WixInventoryError,
    WrongCatalogError,
    api_error_for_status,
)
from .models import (
    DecrementData,
    DecrementInventoryRequest,
    ErrorBody,
    GetInventoryVariantsRequest,
    GetInventoryVariantsResponse,
    GetProductResponse,
    IncrementData,
    IncrementInventoryRequest,
    InventoryItem,
    InventoryItemUpdate,
    Paging,
    PreorderInfo,
    Product,
    Query,
    QueryInventoryRequest,
    QueryInventoryResponse,
    UpdateInventoryVariantsRequest,
    VariantUpdate,
)
from .models_v3 import (
    BulkUpdateByFilterResponse,
    CatalogVersionResponse,
    DecrementDataById,
    DecrementDataByVariantAndLocation,
    IncrementDataById,
    IncrementDataByVariantAndLocation,
    InventoryItemResponse,
    InventoryItemsPage,
    InventoryItemV3,
    PreorderInfoV3,
    Reason,
    Sorting,
    UpdateInventoryItem,
)
from .settings import is_int
from .transport import (
    AiohttpTransport,
    Clock,
    HttpRequest,
    HttpResponse,
    LoopClock,
    RateLimit,
    RateLimiter,
    SiteLimiter,
    Transport,
)

__all__ = ["DEFAULT_BASE_URL", "ClientStats", "DetectionPacer", "InventoryClient", "RetryPolicy"]

logger = logging.getLogger("wixinv_async.client")
_T = TypeVar("_T")
OnWire = Callable[[], Awaitable[None]]
"""Awaited right before each attempt of a write goes on the wire (after its pacing slot)."""


class DetectionPacer(Protocol):
    """Paces catalog detection from outside the client (a fleet worker's budget in Redis):
    awaited right before each detection request, it returns when that request may go, with
    the request's send deadline (event-loop time, as ``not_after``) or ``None``. What it raises
    ends the detection (nothing cached)."""

    async def __call__(self) -> float | None: ...


DEFAULT_BASE_URL: Final = "https://www.wixapis.com"
_READER: Final = "/stores-reader/v2/inventoryItems"
_WRITER: Final = "/stores/v2/inventoryItems"

_ENCODER: Final = msgspec.json.Encoder()


class _BatchCall(NamedTuple):
    """What tells the V1 increment and decrement calls apart."""

    endpoint: str
    path: str
    field: str
    entry_type: type[IncrementData] | type[DecrementData]
    amount_field: str
    request: Callable[[Any], IncrementInventoryRequest | DecrementInventoryRequest]


_INCREMENT: Final = _BatchCall(
    "increment_inventory",
    f"{_WRITER}/increment",
    "incrementData",
    IncrementData,
    "incrementBy",
    lambda entries: IncrementInventoryRequest(increment_data=entries),
)
_DECREMENT: Final = _BatchCall(
    "decrement_inventory",
    f"{_WRITER}/decrement",
    "decrementData",
    DecrementData,
    "decrementBy",
    lambda entries: DecrementInventoryRequest(decrement_data=entries),
)
_QUERY_DECODER: Final = msgspec.json.Decoder(QueryInventoryResponse)
_VARIANTS_DECODER: Final = msgspec.json.Decoder(GetInventoryVariantsResponse)
_PRODUCT_DECODER: Final = msgspec.json.Decoder(GetProductResponse)
_PRODUCTS: Final = "/stores-reader/v1/products"
_ERROR_DECODER: Final = msgspec.json.Decoder(ErrorBody)
_CATALOG_DECODER: Final = msgspec.json.Decoder(CatalogVersionResponse)
_ITEM_DECODER: Final = msgspec.json.Decoder(InventoryItemResponse)
_PAGE_DECODER: Final = msgspec.json.Decoder(InventoryItemsPage)
_JOB_DECODER: Final = msgspec.json.Decoder(BulkUpdateByFilterResponse)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the client retries what is safe to retry.

    ``max_attempts``: attempts per call, the first included. ``base_delay`` / ``max_delay``:
    the capped exponential backoff with full jitter (``core.backoff.backoff_delay``).
    ``max_retry_after``: the longest ``Retry-After`` the client waits out; a longer one raises
    :class:`RateLimitedError` at once (and still pauses the site's other senders for that
    long). ``seed``: seeds the jitter, for reproducible runs; each client draws from a
    generator seeded from ``seed`` and its site (:meth:`jitter_seed`), so the sites of a hub
    sharing one policy do not retry in step after failing together.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigurationError(f"max_attempts must be an int, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not (0 <= self.base_delay <= self.max_delay and self.max_retry_after >= 0):
            raise ConfigurationError(
                f"need 0 <= base_delay ({self.base_delay}) <= max_delay ({self.max_delay}) "
                f"and max_retry_after ({self.max_retry_after}) >= 0"
            )

    def jitter_seed(self, site: str) -> int | None:
        """The seed of ``site``'s jitter (``None``, unseeded, without a ``seed``)."""
        return None if self.seed is None else site_seed(self.seed, site)


class ClientStats(NamedTuple):
    """Counters since the client was created (``InventoryClient.stats()``)."""

    requests: int
    """HTTP requests sent, retries and token fetches included."""
    requests_by_endpoint: Mapping[str, int]
    """The same, by endpoint (``decrement_inventory``, ``oauth_token``, ...)."""
    retries: int
    """Attempts repeated after a retryable failure."""
    rate_limited: int
    """429 answers received."""
    outcome_unknown: int
    """Writes that raised OutcomeUnknownError."""
    auth_refreshes: int
    """Forced token refreshes after a 401."""
    failures: int
    """Calls that raised (validation errors excluded)."""


_DEFAULT_RATE_LIMIT: Final = RateLimit()
_DEFAULT_RETRY: Final = RetryPolicy()


class InventoryClient:
    """The Wix Stores inventory API, Catalog V1 and V3, over one aiohttp session.

    An async context manager. ``session`` is borrowed (not closed); without one the client
    makes and closes its own. ``rate_limit`` is a :class:`RateLimit` (a private budget), a
    :class:`RateLimiter` shared with other clients, or ``None`` (no pacing; a 429 still pauses
    every sender of this client). ``timeout`` bounds connecting and each read. ``transport``
    replaces HTTP entirely (e.g. ``MockTransport``).
    ``clock`` is where backoff and pauses wait: a ``VirtualClock`` makes them instant in tests
    (a shared ``RateLimiter`` pauses on its own clock; pacing always runs on the event loop's).

    ::

        auth = ApiKeyAuth(api_key, site_id=site_id)
        async with InventoryClient(auth) as client:
            page = await client.query_inventory(filter={"numericId": {"$gt": 0}}, limit=100)
            await client.decrement_inventory(
                [DecrementData(product_id=pid, variant_id=DEFAULT_VARIANT_ID, decrement_by=1)]
            )
    """

    def __init__(
        self,
        auth: Auth,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        rate_limit: RateLimit | RateLimiter | None = _DEFAULT_RATE_LIMIT,
        timeout: float = 30.0,
        retry: RetryPolicy = _DEFAULT_RETRY,
        transport: Transport | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url must start with http:// or https://: {base_url!r}")
        if transport is not None and session is not None:
            raise ConfigurationError("give a session or a transport, not both")
        self._auth: Auth = auth
        self._base_url = base_url.rstrip("/")
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._retry = retry
        self._rng = random.Random(retry.jitter_seed(auth.site_key))
        self._owned: AiohttpTransport | None = None
        if transport is None:
            transport = self._owned = AiohttpTransport(session, timeout=timeout)
        self._transport = transport
        self._site = _site_limiter(rate_limit, auth.site_key, self._clock)
        self._closed = False
        self._by_endpoint: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._spare_buffers: list[bytearray] = []
        # Signed requests' headers by "has a body", with the auth headers they were made from.
        self._header_cache: list[tuple[dict[str, str], Mapping[str, str]] | None] = [None, None]
        self._catalog = CatalogCache()
        self._catalog_lock = asyncio.Lock()  # one detection at a time

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session the client made (a borrowed one stays open). Idempotent."""
        self._closed = True
        if self._owned is not None:
            await self._owned.aclose()

    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
        counts = self._counts
        return ClientStats(
            requests=sum(self._by_endpoint.values()),
            requests_by_endpoint=MappingProxyType(dict(self._by_endpoint)),
            retries=counts["retries"],
            rate_limited=counts["rate_limited"],
            outcome_unknown=counts["outcome_unknown"],
            auth_refreshes=counts["auth_refreshes"],
            failures=counts["failures"],
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<InventoryClient {self._base_url} auth={self._auth!r} {state}>"

    # --- the five calls ----------------------------------------------------------------

    async def query_inventory(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: Sequence[Mapping[str, str]] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> QueryInventoryResponse:
        """One page of inventory items. ``filter`` and ``sort`` are given as dicts/lists and
        sent as the JSON strings the API wants. A page reaching past the first 10,000 items
        (``offset + limit > 10000``) raises OffsetLimitError: crawl by numericId instead."""
        query = Query(
            paging=Paging(
                limit=validation.check_page_limit(limit),
                offset=validation.check_page_offset(offset, limit),
            ),
            filter=_json_text("query.filter", filter, Mapping),
            sort=_json_text("query.sort", sort, Sequence),
        )
        body = _ENCODER.encode(QueryInventoryRequest(query=query))
        response = await self._send("query_inventory", "POST", f"{_READER}/query", body)
        return _decode(_QUERY_DECODER, response)

    async def get_inventory_variants(
        self,
        *,
        inventory_id: str | None = None,
        product_id: str | None = None,
        variant_ids: Sequence[str] | None = None,
    ) -> InventoryItem:
        """One inventory item, by inventory id or by product id (exactly one), optionally
        narrowed to some variants."""
        if (inventory_id is None) == (product_id is None):
            raise InvalidInputError(
                "inventoryId", inventory_id, "give exactly one of inventory_id and product_id"
            )
        request = GetInventoryVariantsRequest()
        if inventory_id is not None:
            key = request.inventory_id = validation.check_entity_id("inventoryId", inventory_id)
        else:
            key = request.product_id = validation.check_entity_id("productId", product_id)
        if variant_ids is not None:
            request.variant_ids = validation.check_variant_ids(variant_ids)
        path = f"{_READER}/{_segment(key)}/getVariants"
        response = await self._send(
            "get_inventory_variants", "POST", path, _ENCODER.encode(request)
        )
        return _decode(_VARIANTS_DECODER, response).inventory_item

    async def get_product(self, product_id: str) -> Product:
        """A Catalog V1 product (``GET /stores-reader/v1/products/{id}``): its ``visible``
        flag and stock settings (the witness check reads them). Wix serves a hidden product
        only to credentials with the admin product-read scope."""
        validation.check_entity_id("productId", product_id)
        path = f"{_PRODUCTS}/{_segment(product_id)}"
        response = await self._send("get_product", "GET", path, b"")
        return _decode(_PRODUCT_DECODER, response).product

    async def update_inventory_variants(
        self,
        product_id: str,
        variants: Sequence[VariantUpdate],
        *,
        track_quantity: bool | Literal["keep"],
        preorder_info: PreorderInfo | None = None,
    ) -> None:
        """Set variants' quantity / inStock. ``trackQuantity`` is product-wide and always sent
        (absent, Wix reads it as false): pass it, or ``"keep"`` to read the current value first.
        A failure after sending raises OutcomeUnknownError (an overwrite is not retried: a
        retry could clobber a concurrent decrement)."""
        validation.check_entity_id("productId", product_id)
        checked = validation.check_variant_updates(variants)
        if track_quantity == "keep":
            track_quantity = await self._current_tracking(product_id)
        elif not isinstance(track_quantity, bool):
            raise InvalidInputError("trackQuantity", track_quantity, 'must be a bool or "keep"')
        item = InventoryItemUpdate(product_id=product_id, track_quantity=track_quantity)
        if checked:
            item.variants = checked
        if preorder_info is not None:
            item.preorder_info = preorder_info
        body = _ENCODER.encode(UpdateInventoryVariantsRequest(inventory_item=item))
        path = f"{_WRITER}/product/{_segment(product_id)}"
        await self._send("update_inventory_variants", "PATCH", path, body, RequestKind.WRITE)

    async def increment_inventory(
        self,
        entries: Sequence[IncrementData],
        *,
        validate: bool = True,
        on_wire: OnWire | None = None,
        not_after: float | None = None,
    ) -> str | None:
        """Add stock to 1 to 300 variants in one atomic batch; the answer's
        ``x-wix-request-id`` (``None`` if it had none) once applied.

        ``validate=False`` skips the per-entry checks, for callers that built the entries from
        input they already checked the same way (the adjuster does); the batch size is always
        checked. ``on_wire`` is awaited right before each attempt goes on the wire, once its
        pacing slot is granted (a journal marks the batch "sent" there); if it raises, nothing
        is sent and its error propagates. ``not_after``: an event-loop time (``loop.time()``)
        after which no attempt may leave; an attempt checked past it, or a retry whose wait
        would end past it, is not made: :class:`LateSendError` (nothing applied)."""
        return await self._write_batch(_INCREMENT, entries, validate, on_wire, not_after)

    async def decrement_inventory(
        self,
        entries: Sequence[DecrementData],
        *,
        validate: bool = True,
        on_wire: OnWire | None = None,
        not_after: float | None = None,
    ) -> str | None:
        """Take stock from 1 to 300 variants in one atomic batch (``validate``, ``on_wire``,
        ``not_after``, the request id returned: as for :meth:`increment_inventory`)."""
        return await self._write_batch(_DECREMENT, entries, validate, on_wire, not_after)

    async def send_batch_body(
        self,
        kind: Literal["increment", "decrement"],
        body: bytes,
        size: int,
        *,
        on_wire: OnWire | None = None,
    ) -> str | None:
        """Send a V1 batch whose body is already encoded (``size`` entries; see
        :mod:`wixinv_async.core.wirebody`, which writes the body :meth:`decrement_inventory`
        would from the adjuster's entries): sent, retried and answered exactly as that call.
        Nothing in the body is checked but its size."""
        call = _INCREMENT if kind == "increment" else _DECREMENT
        validation.check_batch_size(call.field, size)
        return await self._post_batch(call, body, on_wire)

    async def _write_batch(
        self,
        call: _BatchCall,
        entries: Sequence[IncrementData] | Sequence[DecrementData],
        validate: bool,
        on_wire: OnWire | None,
        not_after: float | None = None,
    ) -> str | None:
        """The one body of both batch calls (``call`` says which); the answer's request id."""
        if validate:
            validation.check_entries(call.field, entries, call.entry_type, call.amount_field)
        else:
            validation.check_batch_size(call.field, len(entries))
        body = self._encode_batch(call.request(_as_list(entries)))
        return await self._post_batch(call, body, on_wire, not_after)

    async def _post_batch(
        self,
        call: _BatchCall,
        body: bytes,
        on_wire: OnWire | None,
        not_after: float | None = None,
    ) -> str | None:
        """Send one encoded batch; the answer's request id."""
        response = await self._send(
            call.endpoint, "POST", call.path, body, RequestKind.WRITE, on_wire, not_after
        )
        return response.header("x-wix-request-id")

    def _encode_batch(
        self, request: IncrementInventoryRequest | DecrementInventoryRequest
    ) -> bytes:
        """A batch as JSON, encoded into one of this client's spare buffers and copied out.

        A 300-entry body is about 36 kB; encoding it into a fresh buffer regrows that buffer a
        dozen times, which measured about twice the cost of one copy out of a buffer already the
        right size (``benchmarks/bench_client.py``). A buffer is taken from the spares for the
        duration of one encoding (``list.pop``/``append`` are atomic), so even callers on other
        threads never share one."""
        spares = self._spare_buffers
        try:
            buffer = spares.pop()
        except IndexError:
            buffer = bytearray()
        try:
            _ENCODER.encode_into(request, buffer)
            return bytes(buffer)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
            error = _unencodable(request, exc)
        finally:
            spares.append(buffer)
        raise error from None  # outside the handler: only our error, naming the entry

    # --- Catalog V3 (requests built in inventory_v3.py, answers matched in bulk_results) --

    async def get_catalog_version(self) -> CatalogVersion:
        """The site's catalog, asked now (``GET /stores/v3/provision/version``; needs the
        catalog-read scope). :meth:`catalog_version` caches it and copes without the scope."""
        return await self._ask_catalog_version(None)

    async def catalog_version(self, *, pace: DetectionPacer | None = None) -> CatalogVersion:
        """The site's catalog, cached (the table in :mod:`wixinv_async.catalog`): asked once,
        probed with a V3 read when the version call answers 403, forgotten when a call is
        refused with :class:`WrongCatalogError`. Concurrent callers share one detection.
        ``pace``: awaited before each of detection's requests (the version call, then the probe
        only when needed), each sent by the deadline it returns (:class:`LateSendError`);
        without it they are paced as any other call."""
        if self._catalog.version is not None:
            return self._catalog.version
        async with self._catalog_lock:
            if self._catalog.version is not None:
                return self._catalog.version
            version, generation = await self._detect_catalog(pace or _unpaced)
            self._catalog.store(version, generation)
            return version

    async def _detect_catalog(self, pace: DetectionPacer) -> tuple[CatalogVersion, int]:
        """The catalog and the cache generation to store it under."""
        generation = self._catalog.generation
        not_after = await pace()
        try:
            return await self._ask_catalog_version(not_after), generation
        except PermissionDeniedError:
            logger.info("no catalog-read scope: probing the catalog with a V3 read")
        probe = v3.query_items(limit=1)
        try:
            _decode(_PAGE_DECODER, await self._send_v3(probe, await pace()))
        except WrongCatalogError as exc:
            if probe_verdict(exc) is None:
                raise
            return CatalogVersion.V1_CATALOG, self._catalog.generation  # fresh: just refused
        return CatalogVersion.V3_CATALOG, generation

    async def _ask_catalog_version(self, not_after: float | None) -> CatalogVersion:
        call = v3.catalog_version_call()
        answer = _decode(_CATALOG_DECODER, await self._send_v3(call, not_after))
        try:
            return parse_catalog_version(answer.catalog_version)
        except ValueError:
            raise TransportError(f"unknown catalogVersion {answer.catalog_version!r}") from None

    async def bulk_decrement_inventory_items(
        self,
        decrement_data: Sequence[DecrementDataById],
        *,
        restrict_inventory: bool | None = None,
        return_entity: bool | None = None,
        reason: Reason | None = None,
        validate: bool = True,
    ) -> BulkResult:
        """Take stock from 1 to 300 V3 inventory items (by id); one result per entry, in
        order: APPLIED, REFUSED (``code``, e.g. ``INSUFFICIENT_INVENTORY``) or UNKNOWN.
        ``None`` options are not sent (Wix's defaults: ``restrictInventory`` true). No
        idempotency key: a failure after sending raises OutcomeUnknownError, never resent.
        ``validate=False`` checks only the batch's size (as for :meth:`decrement_inventory`)."""
        call = v3.bulk_adjust_by_id(
            decrement_data,
            DecrementDataById,
            restrict_inventory=restrict_inventory,
            return_entity=return_entity,
            reason=reason,
            validate=validate,
        )
        return await self._send_bulk(call, [e.inventory_item_id for e in decrement_data])

    async def bulk_increment_inventory_items(
        self,
        increment_data: Sequence[IncrementDataById],
        *,
        return_entity: bool | None = None,
        reason: Reason | None = None,
        validate: bool = True,
    ) -> BulkResult:
        """Add stock to 1 to 300 V3 inventory items (by id); results as for
        :meth:`bulk_decrement_inventory_items`."""
        call = v3.bulk_adjust_by_id(
            increment_data,
            IncrementDataById,
            return_entity=return_entity,
            reason=reason,
            validate=validate,
        )
        return await self._send_bulk(call, [e.inventory_item_id for e in increment_data])

    async def bulk_decrement_inventory_items_by_variant_and_location(
        self,
        decrement_data: Sequence[DecrementDataByVariantAndLocation],
        *,
        restrict_inventory: bool | None = None,
        return_entity: bool | None = None,
        reason: Reason | None = None,
        validate: bool = True,
        not_after: float | None = None,
    ) -> BulkResult:
        """Take stock from the items of 1 to 300 (variant, location) pairs; results as for
        :meth:`bulk_decrement_inventory_items` (``not_after``: as for
        :meth:`increment_inventory`)."""
        call = v3.bulk_adjust_by_variant_and_location(
            decrement_data,
            DecrementDataByVariantAndLocation,
            restrict_inventory=restrict_inventory,
            return_entity=return_entity,
            reason=reason,
            validate=validate,
        )
        return await self._send_bulk(call, [None] * len(decrement_data), not_after)

    async def bulk_increment_inventory_items_by_variant_and_location(
        self,
        increment_data: Sequence[IncrementDataByVariantAndLocation],
        *,
        return_entity: bool | None = None,
        reason: Reason | None = None,
        validate: bool = True,
        not_after: float | None = None,
    ) -> BulkResult:
        """Add stock to the items of 1 to 300 (variant, location) pairs (``not_after``: as for
        :meth:`increment_inventory`)."""
        call = v3.bulk_adjust_by_variant_and_location(
            increment_data,
            IncrementDataByVariantAndLocation,
            return_entity=return_entity,
            reason=reason,
            validate=validate,
        )
        return await self._send_bulk(call, [None] * len(increment_data), not_after)

    async def send_bulk_call(
        self, call: v3.V3Call, expected_ids: Sequence[str | None]
    ) -> BulkResult:
        """Send a V3 bulk write whose body is already encoded
        (:func:`wixinv_async.inventory_v3.bulk_adjust_body`: the bytes the bulk methods above
        would send), one expected inventory item id per entry (``None`` by variant): sent
        and answered exactly as those methods."""
        return await self._send_bulk(call, expected_ids)

    async def get_inventory_item(self, inventory_item_id: str) -> InventoryItemV3:
        """One V3 inventory item, with the ``revision`` an update must send back."""
        item = _decode(_ITEM_DECODER, await self._send_v3(v3.get_item(inventory_item_id)))
        if item.inventory_item is UNSET:
            raise TransportError("Get Inventory Item answered without inventoryItem")
        return item.inventory_item

    async def update_inventory_item(
        self,
        inventory_item_id: str,
        *,
        revision: str | int,
        quantity: int | None = None,
        in_stock: bool | None = None,
        preorder_info: PreorderInfoV3 | None = None,
        reason: Reason | None = None,
    ) -> InventoryItemV3:
        """Set an item's ``quantity`` (tracked) or ``in_stock`` (untracked), and/or its
        preorder settings, if it is still at ``revision``: otherwise RevisionConflictError,
        nothing applied. A failure after sending raises OutcomeUnknownError (not resent).
        A 2xx whose body was lost still means applied: the item returned then holds only
        its id."""
        update = v3.check_update(
            inventory_item_id,
            revision,
            quantity=quantity,
            in_stock=in_stock,
            preorder_info=preorder_info,
        )
        try:
            response = await self._send_v3(v3.update_item(update, reason=reason))
        except ConflictError as exc:
            raise _revision_conflict(exc, update) from exc
        try:
            answer = _ITEM_DECODER.decode(response.body)
        except msgspec.DecodeError:
            answer = InventoryItemResponse()
        if answer.inventory_item is UNSET:
            return InventoryItemV3(id=update.id)
        return answer.inventory_item

    async def set_inventory_quantity(
        self,
        inventory_item_id: str,
        quantity: int | Callable[[InventoryItemV3], int],
        *,
        reason: Reason | None = None,
        max_attempts: int = 5,
    ) -> InventoryItemV3:
        """Set an item's quantity without clobbering a concurrent change: read it, write
        with its revision, and on a revision conflict read again and retry, up to
        ``max_attempts`` writes (then the last RevisionConflictError). ``quantity`` may be a
        function of the item read (read-modify-write: ``lambda item: item.quantity + 5``).
        A tracked item already at the target is returned unwritten. Any other failure
        raises as is; OutcomeUnknownError is never retried (the write may have landed)."""
        if not is_int(max_attempts) or max_attempts < 1:
            raise InvalidInputError("max_attempts", max_attempts, "must be an int >= 1")
        conflict: RevisionConflictError | None = None
        for _ in range(max_attempts):
            item = await self.get_inventory_item(inventory_item_id)
            target = quantity if isinstance(quantity, int) else quantity(item)
            if item.track_quantity is True and item.quantity == target:
                return item
            if item.revision is UNSET:
                raise TransportError(f"inventory item {inventory_item_id!r} lacks a revision")
            try:
                return await self.update_inventory_item(
                    inventory_item_id, revision=item.revision, quantity=target, reason=reason
                )
            except RevisionConflictError as exc:
                conflict = exc
                logger.info("revision conflict on %s; reading it again", inventory_item_id)
        assert conflict is not None
        raise conflict

    async def bulk_update_inventory_items(
        self,
        inventory_items: Sequence[UpdateInventoryItem],
        *,
        return_entity: bool | None = None,
        reason: Reason | None = None,
    ) -> BulkResult:
        """Update 1 to 1000 items, each with the revision read; one result per entry (a
        revision conflict is that entry's REFUSED result)."""
        call = v3.bulk_update(inventory_items, return_entity=return_entity, reason=reason)
        return await self._send_bulk(call, [u.id for u in inventory_items])

    async def bulk_update_inventory_items_by_filter(
        self,
        filter: Mapping[str, Any],
        *,
        quantity: int | None = None,
        in_stock: bool | None = None,
        preorder_info: PreorderInfoV3 | None = None,
    ) -> str | None:
        """Start an async job setting these fields on every item ``filter`` matches (no
        revision: it overwrites). The job id, or ``None`` if the 2xx answer was unreadable."""
        call = v3.bulk_update_by_filter(
            filter, quantity=quantity, in_stock=in_stock, preorder_info=preorder_info
        )
        response = await self._send_v3(call)
        try:
            job = _JOB_DECODER.decode(response.body)
        except msgspec.DecodeError:
            return None
        return job.job_id if isinstance(job.job_id, str) else None

    async def delete_inventory_item(self, inventory_item_id: str) -> None:
        """Delete one inventory item (a write: not resent after an ambiguous failure)."""
        await self._send_v3(v3.delete_item(inventory_item_id))

    async def query_inventory_items(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: Sequence[Sorting | Mapping[str, str]] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> InventoryItemsPage:
        """One page of V3 items: a first page (``filter``, ``sort``: plain objects, e.g.
        ``{"quantity": {"$lt": 5}}``, ``[Sorting(field_name="updatedDate", order="ASC")]``) or
        the page at ``cursor`` (``page.next_cursor``; sent alone). ``limit`` 1 to 1000."""
        call = v3.query_items(filter=filter, sort=sort, limit=limit, cursor=cursor)
        return _decode(_PAGE_DECODER, await self._send_v3(call))

    async def search_inventory_items(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: Sequence[Sorting | Mapping[str, str]] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> InventoryItemsPage:
        """One page of Search Inventory Items, paged as :meth:`query_inventory_items`."""
        call = v3.search_items(filter=filter, sort=sort, limit=limit, cursor=cursor)
        return _decode(_PAGE_DECODER, await self._send_v3(call))

    def query_all_inventory_items(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: Sequence[Sorting | Mapping[str, str]] | None = None,
        limit: int = 100,
    ) -> AsyncIterator[InventoryItemV3]:
        """Every item of a query, page after page (``limit`` per page) by cursor."""
        return _every_item(self.query_inventory_items, filter, sort, limit)

    def search_all_inventory_items(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: Sequence[Sorting | Mapping[str, str]] | None = None,
        limit: int = 100,
    ) -> AsyncIterator[InventoryItemV3]:
        """Every item of a search, page after page by cursor."""
        return _every_item(self.search_inventory_items, filter, sort, limit)

    async def _send_v3(self, call: v3.V3Call, not_after: float | None = None) -> HttpResponse:
        return await self._send(
            call.endpoint, call.method, call.path, call.body, call.kind, not_after=not_after
        )

    async def _send_bulk(
        self, call: v3.V3Call, expected_ids: Sequence[str | None], not_after: float | None = None
    ) -> BulkResult:
        """Send a bulk write; its per-entry results (all UNKNOWN if a 2xx body is unreadable)."""
        response = await self._send_v3(call, not_after)
        request_id = response.header("x-wix-request-id")
        return parse_bulk_body(
            len(expected_ids), response.body, expected_ids=expected_ids, request_id=request_id
        )

    async def _current_tracking(self, product_id: str) -> bool:
        item = await self.get_inventory_variants(product_id=product_id)
        if not isinstance(item.track_quantity, bool):
            raise TransportError(f"inventory item of product {product_id!r} lacks trackQuantity")
        return item.track_quantity

    # --- sending, retrying -------------------------------------------------------------

    async def _send(
        self,
        endpoint: str,
        method: str,
        path: str,
        body: bytes,
        kind: RequestKind = RequestKind.READ,
        on_wire: OnWire | None = None,
        not_after: float | None = None,
    ) -> HttpResponse:
        """Send a call with credentials and pacing, retrying what the decision table allows.
        Every error raised is stamped with whether the call may have been applied."""
        if self._closed:
            raise stamp(ConfigurationError("the InventoryClient is closed"))
        url = self._base_url + path
        try:
            return await self._retrying(endpoint, method, url, body, kind, True, on_wire, not_after)
        except WixInventoryError as exc:
            self._counts["failures"] += 1
            stamp(exc)
            wrong = wrong_catalog_error(exc)
            if wrong is None:
                raise
            self._catalog.invalidate()  # the site runs the other catalog now
            if wrong is exc:
                raise
            raise stamp(wrong) from exc

    async def _fetch_token(self, request: HttpRequest) -> HttpResponse:
        """How an auth fetches its token: a read, unpaced and unauthenticated."""
        url, body = request.url, request.body
        return await self._retrying("oauth_token", "POST", url, body, RequestKind.READ, False)

    async def _retrying(
        self,
        endpoint: str,
        method: str,
        url: str,
        body: bytes,
        kind: RequestKind,
        signed: bool,
        on_wire: OnWire | None = None,
        not_after: float | None = None,
    ) -> HttpResponse:
        """Attempt until a 2xx response, or until the decision table says to raise. With
        ``not_after``, the last check before the transport refuses an attempt past it; a
        write is retried only after attempts that provably were not applied, so the
        :class:`LateSendError` that ends such a call says nothing was applied."""
        attempt, refreshed = 1, False
        while True:
            slot = await self._site.acquire() if signed else None
            request = await self._request(method, url, body, signed, slot, not_after)
            if on_wire is not None:
                await on_wire()
            late = _late(request, attempt)
            if late is not None:
                self._site.unused(slot)  # nothing goes out in it
                raise late
            outcome = await self._attempt(endpoint, request, signed, kind)
            if isinstance(outcome, HttpResponse):
                return outcome
            failure, error = outcome
            can_refresh = signed and self._auth.can_refresh and not refreshed
            max_attempts = self._retry.max_attempts
            decision = decide(
                kind, failure, attempt=attempt, max_attempts=max_attempts, can_refresh=can_refresh
            )
            if decision is Decision.RETRY:
                await self._wait_before_retry(request, failure, error, attempt, signed)
                attempt += 1
            elif decision is Decision.REFRESH_AUTH:
                refreshed = True
                self._counts["auth_refreshes"] += 1
                refresh = self._auth.refresh(self._fetch_token, self._base_url, request.headers)
                await _token_step(method, url, refresh)
            else:
                raise self._final_error(decision, request, error)

    def _final_error(
        self, decision: Decision, request: HttpRequest, error: WixInventoryError
    ) -> WixInventoryError:
        """The error a failed call raises: the last one, or OutcomeUnknownError for a write
        that may have been applied (carrying the request without its headers)."""
        if decision is not Decision.OUTCOME_UNKNOWN:
            return error
        self._counts["outcome_unknown"] += 1
        unknown = OutcomeUnknownError(
            f"{request.method} {request.path}: outcome unknown ({error})",
            request=request.without_headers(),
        )
        unknown.__cause__ = error
        return unknown

    async def _request(
        self,
        method: str,
        url: str,
        body: bytes,
        signed: bool,
        slot: float | None = None,
        not_after: float | None = None,
    ) -> HttpRequest:
        if not signed:
            headers = {"Content-Type": "application/json"} if body else {}  # GETs bare, as the SDK
            return HttpRequest(method, url, body, headers)
        auth = self._auth.headers(self._fetch_token, self._base_url)
        try:
            given = await _token_step(method, url, auth)
        except BaseException:
            # Refused for want of a token: nothing was sent, so the pacing slot just taken
            # goes back (a resting site, refused batch after batch, spends no budget).
            self._site.unused(slot)
            raise
        return HttpRequest(method, url, body, self._signed_headers(given, bool(body)), not_after)

    def _signed_headers(self, auth: Mapping[str, str], has_body: bool) -> Mapping[str, str]:
        """A request's headers for these auth headers: one read-only multidict, reused while
        the token is the same (aiohttp then merges it without converting it first)."""
        cached = self._header_cache[has_body]
        if cached is not None and cached[0] == auth:
            return cached[1]
        merged = {"Content-Type": "application/json"} if has_body else {}  # GETs bare, as the SDK
        merged.update(auth)
        headers: Mapping[str, str] = CIMultiDictProxy(CIMultiDict(merged))
        self._header_cache[has_body] = (dict(auth), headers)
        return headers

    async def _attempt(
        self, endpoint: str, request: HttpRequest, signed: bool, kind: RequestKind
    ) -> HttpResponse | tuple[Failure, WixInventoryError]:
        """One exchange: the 2xx response, or why it failed and the error to raise."""
        self._by_endpoint[endpoint] += 1
        try:
            response = await self._transport.handle_request(request)
        except TransportError as exc:
            answered = _answered(exc, kind)
            if answered is None:
                return classify(exc), exc
            logger.info("%s %s: %s; its status decides", request.method, request.path, exc)
            response = answered
        status = response.status
        if signed and status != 429:
            self._site.succeeded()
        if 200 <= status < 300:
            if logger.isEnabledFor(logging.DEBUG):  # the path is parsed only to be logged
                logger.debug("%s %s -> %d", request.method, request.path, status)
            return response
        error = _api_error(response)
        logger.debug("%s %s -> %d %s", request.method, request.path, status, error.request_id)
        if status == 429:
            self._counts["rate_limited"] += 1
        return classify(error), error

    async def _wait_before_retry(
        self,
        request: HttpRequest,
        failure: Failure,
        error: WixInventoryError,
        attempt: int,
        signed: bool,
    ) -> None:
        """Back off before the next attempt; a 429 on a signed call pauses every sender of the
        site instead (the token endpoint is not paced, so it waits on its own)."""
        policy = self._retry
        if failure is Failure.RATE_LIMITED:
            delay = self._throttle_delay(error, attempt, signed)
        else:
            delay = backoff_delay(
                attempt, base=policy.base_delay, cap=policy.max_delay, rng=self._rng
            )
        late = _late(request, attempt + 1, delay)
        if late is not None:  # the retry could only leave past its deadline: not waited for
            raise late from error
        self._counts["retries"] += 1
        logger.info(
            "%s %s failed (%s), attempt %d; retrying in %.2f s",
            request.method,
            request.path,
            type(error).__name__,
            attempt,
            delay,
        )
        if failure is Failure.RATE_LIMITED and signed:
            return  # the paused site limiter makes every sender wait, this one included
        await self._clock.sleep(delay)

    def _throttle_delay(self, error: WixInventoryError, attempt: int, shared: bool) -> float:
        """How long a 429 pauses the site: ``Retry-After`` if given (and not too long), else
        backoff by the site's streak of 429s."""
        policy = self._retry
        retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
        site = self._site if shared else None
        if retry_after is not None and retry_after > policy.max_retry_after:
            if site is not None:  # not waited out here, but the site's other senders hold off
                site.throttled(retry_after)
            raise error
        if retry_after is None:
            streak = site.streak + 1 if site is not None else attempt
            retry_after = backoff_delay(
                streak, base=policy.base_delay, cap=policy.max_delay, rng=self._rng
            )
        if site is not None:
            return site.throttled(retry_after)
        return retry_after


# --- helpers -------------------------------------------------------------------------------


async def _unpaced() -> None:
    """Detection's requests paced as any other call, with no send deadline."""


def _late(request: HttpRequest, attempt: int, wait: float = 0.0) -> LateSendError | None:
    """The error refusing attempt ``attempt`` of ``request`` when, made ``wait`` seconds from
    now, it would leave past its ``not_after``; ``None`` when it may go."""
    not_after = request.not_after
    if not_after is None:
        return None
    late_by = asyncio.get_running_loop().time() + wait - not_after
    if late_by <= 0:
        return None
    what = "its retry's wait would end" if wait else "it is"
    return LateSendError(
        f"{request.method} {request.path}: attempt {attempt} not sent, {what} {late_by:.3f} s "
        "past its send deadline",
        late_by=late_by,
        attempt=attempt,
    )


def _site_limiter(
    rate_limit: RateLimit | RateLimiter | None, site_key: str, clock: Clock
) -> SiteLimiter:
    """The site's limiter; without a rate limit, one that only shares 429 pauses."""
    if rate_limit is None:
        return SiteLimiter(site_key, None, clock)
    if isinstance(rate_limit, RateLimit):
        rate_limit = RateLimiter(rate_limit, clock=clock)
    if not isinstance(rate_limit, RateLimiter):
        raise ConfigurationError("rate_limit must be a RateLimit, a RateLimiter or None")
    return rate_limit.site(site_key)


async def _token_step(method: str, url: str, step: Awaitable[_T]) -> _T:
    """Await an auth step (its headers, or a refresh after a 401) for a request.

    If the token cannot be fetched for a transient reason (a 5xx, a lost connection, a
    timeout, a malformed answer: already retried as a read), ``request`` was never sent. That
    raises :class:`ConnectError` (provably not applied), since a 500 or a lost connection
    surfacing from a write would read as "maybe applied". Refusals (400, 401, 403, 429) stay
    as they are: nothing was applied either way."""
    try:
        return await step
    except (TransportError, ServerError) as exc:
        what = f"{method} {urlsplit(url).path}"
        raise ConnectError(f"{what}: not sent, no app token ({exc})") from exc


_Filter = Mapping[str, Any] | None
_Sort = Sequence[Sorting | Mapping[str, str]] | None


class _PageFetcher(Protocol):
    def __call__(
        self, *, filter: _Filter, sort: _Sort, limit: int, cursor: str | None = None
    ) -> Awaitable[InventoryItemsPage]: ...


async def _every_item(
    fetch: _PageFetcher, filter: _Filter, sort: _Sort, limit: int
) -> AsyncIterator[InventoryItemV3]:
    """Every item of a query or a search: its first page, then every page after it by cursor;
    a cursor that does not move on raises TransportError (the paging would never end)."""
    page = await fetch(filter=filter, sort=sort, limit=limit)
    previous: str | None = None
    while True:
        for item in page.inventory_items:
            yield item
        cursor = page.next_cursor
        if cursor is None:
            return
        if cursor == previous:
            raise TransportError("the server answered the same next cursor twice")
        previous = cursor
        page = await fetch(filter=None, sort=None, limit=limit, cursor=cursor)


def _revision_conflict(exc: ConflictError, update: UpdateInventoryItem) -> RevisionConflictError:
    """A 409 to an update, as the typed revision conflict it is."""
    return RevisionConflictError(
        exc.status,
        exc.message,
        code=exc.code,
        field_violations=exc.field_violations,
        request_id=exc.request_id,
        data=exc.data,
        inventory_item_id=update.id,
        revision=update.revision,
    )


def _unencodable(
    request: IncrementInventoryRequest | DecrementInventoryRequest, exc: BaseException
) -> InvalidInputError:
    """The entry a batch body could not be encoded for (a value only ``validate=False`` lets
    through, such as a lone surrogate in an id): refused before sending, as validation would."""
    entries: Sequence[IncrementData | DecrementData]
    if isinstance(request, IncrementInventoryRequest):
        field, entries = "incrementData", request.increment_data
    else:
        field, entries = "decrementData", request.decrement_data
    for index, entry in enumerate(entries):
        try:
            _ENCODER.encode(entry)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as entry_exc:
            return InvalidInputError(field, entry, f"cannot be encoded: {entry_exc}", index=index)
    return InvalidInputError(field, "<the batch>", f"cannot be encoded: {exc}")


def _segment(value: str) -> str:
    """An id as one path segment: percent-encoded, so an id holding ``/``, ``?``, ``#`` or
    ``..`` cannot send the request to another path (a GUID is unchanged)."""
    return quote(value, safe="")


def _answered(exc: TransportError, kind: RequestKind) -> HttpResponse | None:
    """The answer of an exchange whose body was lost after its status line arrived, when the
    status alone decides: a write needs no body (a 2xx was applied, a 4xx refused, a 5xx is as
    a 5xx always is), nor does an error status. A read's 2xx does: ``None``, lost, retried."""
    if not isinstance(exc, ConnectionLostError) or exc.status is None:
        return None
    if kind is not RequestKind.WRITE and 200 <= exc.status < 300:
        return None
    return HttpResponse(exc.status, b"", exc.headers)


def _api_error(response: HttpResponse) -> ApiError:
    """The ApiError for an error response, from Wix's error body when it has one."""
    try:
        parsed = _ERROR_DECODER.decode(response.body) if response.body.strip() else ErrorBody()
    except msgspec.DecodeError:
        parsed = ErrorBody(message=response.body[:200].decode("utf-8", "replace"))
    code, data, violations, message = None, None, [], parsed.message
    if parsed.details is not UNSET:
        app = parsed.details.application_error
        if app is not UNSET:
            code, data = app.code or None, (None if app.data is UNSET else app.data)
            if not message and isinstance(app.description, str):
                message = app.description
        if parsed.details.validation_error is not UNSET:
            violations = parsed.details.validation_error.field_violations
    if code is None and isinstance(parsed.error, str) and parsed.error:
        code = parsed.error  # an OAuth error (RFC 6749): invalid_client tells app from instance
        if not message and isinstance(parsed.error_description, str):
            message = parsed.error_description
    kwargs: dict[str, Any] = {
        "code": code,
        "field_violations": violations,
        "request_id": response.header("x-wix-request-id"),
        "data": data,
    }
    cls = api_error_for_status(response.status)
    if cls is RateLimitedError:
        kwargs["retry_after"] = parse_retry_after(response.header("retry-after"), now=time.time())
    return cls(response.status, message, **kwargs)


def _decode(decoder: msgspec.json.Decoder[_T], response: HttpResponse) -> _T:
    try:
        return decoder.decode(response.body)
    except msgspec.DecodeError as exc:
        raise TransportError(f"malformed response body: {exc}") from None


def _as_list(entries: Sequence[_T]) -> list[_T]:
    return entries if type(entries) is list else list(entries)


def _json_text(field: str, value: object, kind: type) -> str | msgspec.UnsetType:
    """A filter or sort as the JSON string the API wants (absent when ``None``)."""
    if value is None:
        return UNSET
    if not isinstance(value, kind) or isinstance(value, str | bytes):
        raise InvalidInputError(field, value, f"must be a {kind.__name__}")
    try:
        return _ENCODER.encode(value).decode()
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidInputError(field, value, f"is not JSON-encodable: {exc}") from None
