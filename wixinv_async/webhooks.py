"""Wix inventory webhooks: verify and decode signed events, remember deliveries, receive them.

Wix posts each event as a JWT signed RS256 with the app's key pair. Its ``data`` claim is a
JSON *string* holding ``{eventType, instanceId, data, identity, accountInfo}``, where ``data``
and ``identity`` are JSON strings again. Deliveries are retried for 48 hours, so they arrive
duplicated and out of order, and the receiver must answer 200 within 1250 ms.

- :func:`verify_webhook` checks the signature (RS256 only), ``exp`` and every JSON level, and
  returns an :class:`InventoryItemChangedEvent`, an :class:`InventoryVariantsChangedEvent` or,
  for any other event type, a :class:`RawWebhookEvent`. Anything else raises
  :class:`~wixinv_async.errors.WebhookVerificationError`.
- :class:`DeliveryMemory` is a pure, bounded, time-windowed memory of handled deliveries.
- :class:`WebhookReceiver` is the aiohttp handler: it verifies, answers at once and hands the
  events to your async callback through a bounded queue.

JWT support is the optional extra ``pip install "wixinv-async[webhooks]"`` (PyJWT with
cryptography), imported only when a webhook function is used.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Self, TypeAlias

import msgspec
from aiohttp import web

from .errors import ConfigurationError, WebhookVerificationError
from .models import (
    InventoryItemChanged,
    InventoryVariantsChanged,
    WebhookEnvelope,
    WebhookIdentity,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "ITEM_CHANGED",
    "VARIANTS_CHANGED",
    "DeliveryMemory",
    "InventoryItemChangedEvent",
    "InventoryVariantsChangedEvent",
    "PrivateKeyInput",
    "PublicKeyInput",
    "RawWebhookEvent",
    "WebhookCallback",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookReceiverStats",
    "delivery_key",
    "load_private_key",
    "load_public_key",
    "sign_webhook",
    "verify_webhook",
]

ITEM_CHANGED: Final = "com.wix.ecommerce.inventory.api.v1.InventoryItemChanged"
VARIANTS_CHANGED: Final = "com.wix.ecommerce.inventory.api.v1.InventoryVariantsChanged"
_ALGORITHM: Final = "RS256"
_MISSING_EXTRA: Final = (
    'webhooks need PyJWT with cryptography: pip install "wixinv-async[webhooks]"'
)
_log = logging.getLogger(__name__)

PublicKeyInput: TypeAlias = "str | bytes | RSAPublicKey"
PrivateKeyInput: TypeAlias = "str | bytes | RSAPrivateKey"


# --- Events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEvent:
    """The envelope every event carries, decoded.

    ``delivery_key`` identifies the event across Wix's redeliveries (see :func:`delivery_key`).
    """

    event_type: str
    instance_id: str | None
    identity: WebhookIdentity | None
    account_info: Any
    delivery_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryItemChangedEvent(WebhookEvent):
    """``InventoryItemChanged``: tracking or preorder settings of an item changed."""

    payload: InventoryItemChanged


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryVariantsChangedEvent(WebhookEvent):
    """``InventoryVariantsChanged``: quantity, inStock or availableForPreorder changed."""

    payload: InventoryVariantsChanged


@dataclass(frozen=True, slots=True, kw_only=True)
class RawWebhookEvent(WebhookEvent):
    """An event type this library does not model; ``payload`` is its decoded JSON."""

    payload: Any


WebhookCallback: TypeAlias = Callable[[WebhookEvent], Awaitable[None]]


# --- Keys ------------------------------------------------------------------------------


def _key_bytes(key: str | bytes, what: str, *, der: bool) -> bytes:
    """PEM bytes from PEM text or base64 of it; with ``der``, also DER from base64 of DER (the
    PEM body without its armour lines, as keys are often pasted)."""
    raw = (key.encode() if isinstance(key, str) else bytes(key)).strip()
    if raw.startswith(b"-----BEGIN"):
        return raw
    try:
        decoded = binascii.a2b_base64(b"".join(raw.split()), strict_mode=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if decoded.lstrip().startswith(b"-----BEGIN"):
        return decoded.strip()
    if der and decoded:
        return decoded
    raise ConfigurationError(f"{what}: neither a PEM block nor base64 of one")


def load_public_key(key: PublicKeyInput) -> RSAPublicKey:
    """The app's RSA public key from PEM, base64 of PEM, base64 of DER, or a loaded key.

    Raises :class:`~wixinv_async.errors.ConfigurationError` for anything else, and when the
    ``webhooks`` extra is not installed.
    """
    try:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
        from cryptography.hazmat.primitives.serialization import (
            load_der_public_key,
            load_pem_public_key,
        )
    except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
        raise ConfigurationError(_MISSING_EXTRA) from exc
    if isinstance(key, RSAPublicKey):
        return key
    if not isinstance(key, str | bytes):
        raise ConfigurationError(f"public key: expected PEM text, got {type(key).__name__}")
    data = _key_bytes(key, "public key", der=True)
    load = load_pem_public_key if data.startswith(b"-----BEGIN") else load_der_public_key
    try:
        loaded = load(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError("public key: not a valid PEM or DER public key") from exc
    if not isinstance(loaded, RSAPublicKey):
        raise ConfigurationError(f"public key: RS256 needs RSA, got {type(loaded).__name__}")
    return loaded


def load_private_key(key: PrivateKeyInput) -> RSAPrivateKey:
    """An RSA private key (unencrypted PEM, base64 of PEM, or loaded), to sign test events."""
    try:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
        raise ConfigurationError(_MISSING_EXTRA) from exc
    if isinstance(key, RSAPrivateKey):
        return key
    if not isinstance(key, str | bytes):
        raise ConfigurationError(f"private key: expected PEM text, got {type(key).__name__}")
    try:
        loaded = load_pem_private_key(_key_bytes(key, "private key", der=False), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Never chain or echo the key's text: the message names the problem only.
        raise ConfigurationError("private key: not an unencrypted PEM private key") from None
    if not isinstance(loaded, RSAPrivateKey):
        raise ConfigurationError(f"private key: RS256 needs RSA, got {type(loaded).__name__}")
    return loaded


# --- Verify and decode ---------------------------------------------------------------


class _Claims(msgspec.Struct):
    """The JWT claims Wix sends; others (iat, ...) are ignored."""

    data: str
    exp: int | float


_ANY = msgspec.json.Decoder()
_CANONICAL = msgspec.json.Encoder(order="sorted")


def _reject(message: str, reason: str) -> WebhookVerificationError:
    return WebhookVerificationError(f"webhook rejected: {message}", reason=reason)


def _signed_claims(token: str, key: RSAPublicKey) -> bytes:
    """The claims bytes of an RS256 JWS whose signature matches ``key``."""
    try:
        import jwt
    except ImportError as exc:
        raise ConfigurationError(_MISSING_EXTRA) from exc
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:  # DecodeError, and header checks (kid, crit)
        raise _reject(f"not a JWT ({exc})", "malformed") from None
    alg = header.get("alg")
    if alg != _ALGORITHM:
        raise _reject(f"alg {alg!r} is not accepted, only {_ALGORITHM}", "algorithm")
    try:
        payload: bytes = jwt.PyJWS().decode(token, key, algorithms=[_ALGORITHM])
    except jwt.InvalidSignatureError:
        raise _reject(
            "signature does not match the key (wrong key or tampered)", "signature"
        ) from None
    except jwt.InvalidTokenError as exc:
        raise _reject(f"not a valid JWS ({exc})", "malformed") from None
    return payload


def _decode_level(text: str | bytes, where: str) -> Any:
    try:
        return _ANY.decode(text)
    except msgspec.DecodeError as exc:
        raise _reject(f"malformed JSON in {where}: {exc}", "malformed") from None


def _convert(value: Any, kind: type[Any], where: str) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise _reject(f"unexpected shape of {where}: {exc}", "malformed") from None


def delivery_key(envelope: WebhookEnvelope, payload: Any, identity: Any) -> str:
    """SHA-256 of the event's canonical content: stable across Wix's redeliveries.

    Not the raw body's hash: a redelivery may be signed again, with new ``iat``/``exp``, so the
    same event arrives as different bytes. Not an event id: V1 inventory events carry none, and
    an ``id`` in other payloads may be the entity's, shared by many events. The content
    (type, instance, decoded payload and identity, account info) with sorted keys is what one
    event keeps across deliveries.

    The price: two distinct events with equal content share a key. ``InventoryVariantsChanged``
    carries no timestamp, so stock going 5 -> 4, back to 5, then 4 again within the memory's
    window makes the second 5 -> 4 look like a duplicate of the first. A receiver that must
    see every change should re-read the item (Get Inventory Variants) rather than trust the
    sequence of events alone.
    """
    fields = [envelope.event_type, envelope.instance_id, payload, identity, envelope.account_info]
    canonical = _CANONICAL.encode([None if f is msgspec.UNSET else f for f in fields])
    return hashlib.sha256(canonical).hexdigest()


def _decode_event(envelope: WebhookEnvelope) -> WebhookEvent:
    """The typed event of a verified envelope: its two nested JSON strings decoded."""
    name = envelope.event_type.rsplit(".", 1)[-1]
    where = f"the {name} payload (envelope 'data')"
    raw_payload = _decode_level(envelope.data, where)
    raw_identity = None
    identity = None
    if isinstance(envelope.identity, str):
        raw_identity = _decode_level(envelope.identity, "envelope 'identity'")
        identity = _convert(raw_identity, WebhookIdentity, "envelope 'identity'")
    account_info = envelope.account_info
    common: dict[str, Any] = {
        "event_type": envelope.event_type,
        "instance_id": envelope.instance_id if isinstance(envelope.instance_id, str) else None,
        "identity": identity,
        "account_info": None if account_info is msgspec.UNSET else account_info,
        "delivery_key": delivery_key(envelope, raw_payload, raw_identity),
    }
    if envelope.event_type == ITEM_CHANGED:
        item = _convert(raw_payload, InventoryItemChanged, where)
        return InventoryItemChangedEvent(payload=item, **common)
    if envelope.event_type == VARIANTS_CHANGED:
        variants = _convert(raw_payload, InventoryVariantsChanged, where)
        return InventoryVariantsChangedEvent(payload=variants, **common)
    return RawWebhookEvent(payload=raw_payload, **common)


def verify_webhook(
    body: str | bytes, public_key: PublicKeyInput, *, now: float | None = None, leeway: float = 0.0
) -> WebhookEvent:
    """Verify a webhook body (the raw JWT) and decode it into a typed event.

    Checks, in order: a JWT at all; ``alg`` exactly RS256 (so ``none``, HS256 and the HS256
    signed-with-the-public-key attack fail before any key is used); the signature against
    ``public_key``; ``exp`` present and later than ``now - leeway`` (``now`` defaults to
    ``time.time()``; no issuer or audience check, as Wix documents, and no ``iat``/``nbf`` check,
    so a sender's clock running ahead does not reject good events); then JSON at all three
    levels. An unknown ``eventType`` is a :class:`RawWebhookEvent`, not an error.

    Raises :class:`~wixinv_async.errors.WebhookVerificationError` whose ``reason`` is
    ``malformed``, ``algorithm``, ``signature`` or ``expired``.
    """
    key = load_public_key(public_key)
    try:
        token = body.decode("ascii") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise _reject("body is not ASCII JWT text", "malformed") from None
    claims_json = _decode_level(_signed_claims(token.strip(), key), "the JWT claims")
    if isinstance(claims_json, dict) and "exp" not in claims_json:
        raise _reject("no exp claim: a token that never expires is refused", "expired")
    claims = _convert(claims_json, _Claims, "the JWT claims")
    moment = time.time() if now is None else now
    if claims.exp + leeway <= moment:
        raise _reject(f"expired at {claims.exp} (now {moment:.0f})", "expired")
    envelope = _convert(
        _decode_level(claims.data, "claim 'data' (the envelope)"),
        WebhookEnvelope,
        "claim 'data' (the envelope)",
    )
    return _decode_event(envelope)


def sign_webhook(
    event_type: str,
    payload: Any,
    private_key: PrivateKeyInput,
    *,
    instance_id: str | None = None,
    identity: WebhookIdentity | None = None,
    account_info: Any = None,
    now: float | None = None,
    lifetime: float = 300.0,
) -> str:
    """A webhook body as Wix builds it: the payload nested in the envelope, signed RS256.

    For the emulator and for tests of your receiver. ``payload`` is a msgspec struct or
    JSON-able value; ``iat`` is ``now`` (default ``time.time()``) and ``exp`` ``now + lifetime``.
    """
    try:
        import jwt
    except ImportError as exc:
        raise ConfigurationError(_MISSING_EXTRA) from exc
    envelope: dict[str, Any] = {"eventType": event_type, "data": _encode_str(payload)}
    if instance_id is not None:
        envelope["instanceId"] = instance_id
    if identity is not None:
        envelope["identity"] = _encode_str(identity)
    if account_info is not None:
        envelope["accountInfo"] = account_info
    issued = int(time.time() if now is None else now)
    claims = {"data": _encode_str(envelope), "iat": issued, "exp": issued + int(lifetime)}
    return jwt.encode(claims, load_private_key(private_key), algorithm=_ALGORITHM)


def _require_jwt() -> None:
    """Fail at setup, not at the first delivery, when the ``webhooks`` extra is missing."""
    try:
        import jwt  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(_MISSING_EXTRA) from exc


def _encode_str(value: Any) -> str:
    return msgspec.json.encode(value).decode()


# --- Idempotency -------------------------------------------------------------------------


class DeliveryMemory:
    """Which deliveries were handled, for ``window`` seconds, at most ``max_entries`` of them.

    Pure: ``now`` is passed in. Keys are :attr:`WebhookEvent.delivery_key`. The default
    window covers Wix's 48 hours of retries plus an hour; past ``max_entries`` the oldest
    keys are forgotten first (a bounded memory may let a very late duplicate through: size it
    to your event rate times the window).
    """

    __slots__ = ("_max_entries", "_seen", "_window")

    def __init__(self, *, window: float = 49 * 3600.0, max_entries: int = 100_000):
        if not window > 0:
            raise ConfigurationError(f"window={window!r}: must be > 0 seconds")
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError(f"max_entries={max_entries!r}: must be an int >= 1")
        self._window = float(window)
        self._max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def claim(self, key: str, now: float) -> bool:
        """Remember ``key``; ``True`` if it is new (handle it), ``False`` if a duplicate."""
        self._expire(now)
        if key in self._seen:
            return False
        self._seen[key] = now
        while len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)
        return True

    def seen(self, key: str, now: float) -> bool:
        """Whether ``key`` was claimed within the window, without claiming it."""
        self._expire(now)
        return key in self._seen

    def forget(self, key: str) -> None:
        """Drop ``key``, so its next delivery is handled (after a failed or refused one)."""
        self._seen.pop(key, None)

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if oldest > horizon:
                break
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)

    def __repr__(self) -> str:
        return (
            f"DeliveryMemory(window={self._window}, max_entries={self._max_entries}, "
            f"remembered={len(self._seen)})"
        )


# --- The aiohttp receiver ----------------------------------------------------------------


class WebhookReceiverStats(NamedTuple):
    """Counters of a :class:`WebhookReceiver` since it was made."""

    received: int
    """Requests answered."""
    accepted: int
    """New events queued for the callback."""
    duplicates: int
    """Deliveries already handled (answered 200, not queued)."""
    rejected: int
    """Bodies that failed verification (answered 400 or 401)."""
    refused: int
    """Valid new events refused with 503 because the queue was full or the receiver closed."""
    handled: int
    """Callbacks that returned."""
    failed: int
    """Callbacks that raised."""
    queued: int
    """Events waiting for a worker now."""


class WebhookReceiver:
    """An aiohttp handler for Wix webhooks that never makes Wix wait for your code.

    Each request is verified (:func:`verify_webhook`), checked against a
    :class:`DeliveryMemory`, put on a bounded queue and answered at once: 200 for a new or
    duplicate event, 401 for a bad algorithm, signature or expiry, 400 for a malformed body.
    ``workers`` tasks take events off the queue and await ``callback(event)``, so a slow
    callback delays only later events, never the answer.

    When the queue is full the answer is 503 and the delivery is not remembered: Wix retries
    a non-200 for 48 hours, so the event comes back when there is room; dropping it after a
    200 would lose it for good, and waiting for room would miss the 1250 ms deadline. A
    callback that raises is logged, passed to ``on_error`` and forgotten by the memory, so a
    redelivery of that event is handled again.

    Start and stop the workers with ``async with receiver:``, or :meth:`install` the receiver
    on an ``aiohttp.web.Application``, which ties them to its startup and cleanup. Until
    started, and once closing, new events are answered 503.
    """

    def __init__(
        self,
        public_key: PublicKeyInput,
        callback: WebhookCallback,
        *,
        max_queue: int = 1000,
        workers: int = 1,
        memory: DeliveryMemory | None = None,
        leeway: float = 0.0,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[WebhookEvent, Exception], None] | None = None,
    ):
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ConfigurationError(f"max_queue={max_queue!r}: must be an int >= 1")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigurationError(f"workers={workers!r}: must be an int >= 1")
        _require_jwt()
        self._key = load_public_key(public_key)
        self._callback = callback
        self._queue: asyncio.Queue[WebhookEvent] = asyncio.Queue(max_queue)
        self._worker_count = workers
        self._memory = DeliveryMemory() if memory is None else memory
        self._leeway = leeway
        self._clock = clock
        self._on_error = on_error
        self._workers: list[asyncio.Task[None]] = []
        self._open = False
        self._counts = dict.fromkeys(WebhookReceiverStats._fields[:-1], 0)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler (``app.router.add_post(path, receiver.handle)``): verify,
        remember, enqueue, answer."""
        self._counts["received"] += 1
        body = await request.read()
        try:
            event = verify_webhook(body, self._key, now=self._clock(), leeway=self._leeway)
        except WebhookVerificationError as exc:
            self._counts["rejected"] += 1
            status = 400 if exc.reason == "malformed" else 401
            return web.Response(status=status, text=str(exc))
        return self._accept(event)

    def _accept(self, event: WebhookEvent) -> web.Response:
        if not self._open:
            self._counts["refused"] += 1
            return web.Response(status=503, text="receiver not running", headers=_RETRY)
        if not self._memory.claim(event.delivery_key, self._clock()):
            self._counts["duplicates"] += 1
            return web.Response(status=200, text="duplicate")
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._memory.forget(event.delivery_key)
            self._counts["refused"] += 1
            return web.Response(status=503, text="busy, retry later", headers=_RETRY)
        self._counts["accepted"] += 1
        return web.Response(status=200, text="ok")

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._callback(event)
            except asyncio.CancelledError:  # cut off by aclose: not handled, so not remembered
                self._memory.forget(event.delivery_key)
                raise
            except Exception as exc:
                self._counts["failed"] += 1
                self._memory.forget(event.delivery_key)
                _log.exception("webhook callback failed for %s", event.event_type)
                if self._on_error is not None:
                    try:
                        self._on_error(event, exc)
                    except Exception:  # a raising hook must not kill the worker
                        _log.exception("webhook on_error hook failed")
            else:
                self._counts["handled"] += 1
            finally:
                self._queue.task_done()

    async def start(self) -> None:
        """Start the workers (idempotent) and begin accepting events."""
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"wixinv-webhook-worker-{i}")
                for i in range(self._worker_count)
            ]
        self._open = True

    async def join(self) -> None:
        """Wait until every queued event has been handed to the callback and returned."""
        await self._queue.join()

    async def aclose(self, *, grace: float | None = 10.0) -> None:
        """Stop accepting (503), let the workers finish the queue for up to ``grace`` s,
        then cancel them; events still queued are dropped (they were answered 200 already) and,
        like those whose callback was cut off, forgotten by the memory."""
        self._open = False
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        while not self._queue.empty():
            self._memory.forget(self._queue.get_nowait().delivery_key)
            self._queue.task_done()

    def install(self, app: web.Application, path: str = "/webhooks") -> None:
        """Route ``POST path`` to this receiver and run it for the app's lifetime."""
        app.router.add_post(path, self.handle)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)

    async def _on_startup(self, app: web.Application) -> None:
        await self.start()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def stats(self) -> WebhookReceiverStats:
        """Counters so far, and the events queued now."""
        return WebhookReceiverStats(**self._counts, queued=self._queue.qsize())

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return (
            f"<WebhookReceiver {state} queued={self._queue.qsize()} workers={len(self._workers)}>"
        )


_RETRY: Final = {"Retry-After": "5"}
