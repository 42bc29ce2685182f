"""Key loading, verifying and decoding signed webhook bodies, and signing them (for tests).

PyJWT and cryptography (the ``webhooks`` extra) are imported inside the functions that need them,
so this module imports without them.
"""

from __future__ import annotations

import binascii
import time
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import msgspec

from ..errors import ConfigurationError, WebhookVerificationError
from ..models import (
    InventoryItemChanged,
    InventoryVariantsChanged,
    WebhookEnvelope,
    WebhookIdentity,
)
from ._events import (
    ITEM_CHANGED,
    VARIANTS_CHANGED,
    InventoryItemChangedEvent,
    InventoryVariantsChangedEvent,
    RawWebhookEvent,
    WebhookEvent,
)
from ._memory import delivery_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

_ALGORITHM: Final = "RS256"
_MISSING_EXTRA: Final = (
    'webhooks need PyJWT with cryptography: pip install "wixinv-async[webhooks]"'
)

PublicKeyInput: TypeAlias = "str | bytes | RSAPublicKey"
PrivateKeyInput: TypeAlias = "str | bytes | RSAPrivateKey"


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
    except RecursionError:
        raise _reject(f"JSON nested too deeply in {where}", "malformed") from None


def _convert(value: Any, kind: type[Any], where: str) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise _reject(f"unexpected shape of {where}: {exc}", "malformed") from None


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
