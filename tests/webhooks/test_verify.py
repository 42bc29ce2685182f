"""verify_webhook: RS256 only, exp enforced, every JSON level checked, events typed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
from typing import Any

import jwt
import pytest

from wixinv_async.errors import ConfigurationError, WebhookVerificationError
from wixinv_async.models import (
    ChangedVariant,
    FieldMask,
    InventoryItemChanged,
    InventoryVariantsChanged,
    PreorderInfo,
    VariantValues,
    WebhookIdentity,
)
from wixinv_async.webhooks import (
    ITEM_CHANGED,
    VARIANTS_CHANGED,
    InventoryItemChangedEvent,
    InventoryVariantsChangedEvent,
    RawWebhookEvent,
    WebhookReceiver,
    load_public_key,
    sign_webhook,
    verify_webhook,
)

NOW = 1_800_000_000.0
VARIANTS = InventoryVariantsChanged(
    inventory_item_id="inv-1",
    external_id="prod-1",
    product_id="prod-1",
    variants=[
        ChangedVariant(
            id="00000000-0000-0000-0000-000000000000",
            old_value=VariantValues(quantity=10, in_stock=True),
            new_value=VariantValues(quantity=0, in_stock=False),
        )
    ],
)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def envelope(data: Any = None, **overrides: Any) -> dict[str, Any]:
    """A valid envelope dict around a variants payload, with fields overridden."""
    body: dict[str, Any] = {
        "eventType": VARIANTS_CHANGED,
        "instanceId": "inst-1",
        "data": json.dumps(data if data is not None else json.loads(_encode(VARIANTS))),
        "identity": json.dumps({"identityType": "APP", "appId": "app-1"}),
        "accountInfo": {"siteId": "site-1"},
    }
    body.update(overrides)
    return body


def _encode(struct: Any) -> str:
    import msgspec

    return msgspec.json.encode(struct).decode()


def signed(claims: Any, key: Any, *, alg: str = "RS256", raw: bytes | None = None) -> str:
    """A JWS over ``claims`` (or ``raw`` bytes), signed with ``key``."""
    payload = raw if raw is not None else json.dumps(claims).encode()
    return jwt.PyJWS().encode(payload, key, algorithm=alg)


def claims_of(env: Any, *, exp: float = NOW + 300) -> dict[str, Any]:
    return {"data": env if isinstance(env, str) else json.dumps(env), "iat": NOW, "exp": exp}


def rejection(body: str | bytes, key: bytes) -> WebhookVerificationError:
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(body, key, now=NOW)
    return info.value


# --- accepted ----------------------------------------------------------------------------


def test_variants_event_decodes_with_its_envelope(app_keys: Any) -> None:
    """A signed variants event comes back typed, with instance, identity and account info."""
    token = signed(claims_of(envelope()), app_keys.private)
    event = verify_webhook(token, app_keys.public_pem, now=NOW)
    assert isinstance(event, InventoryVariantsChangedEvent)
    assert event.payload == VARIANTS
    assert event.instance_id == "inst-1"
    assert event.identity == WebhookIdentity(identity_type="APP", app_id="app-1")
    assert event.account_info == {"siteId": "site-1"}


def test_item_event_decodes_from_sign_webhook(app_keys: Any) -> None:
    """sign_webhook and verify_webhook round-trip an item event, bytes body and base64 key."""
    payload = InventoryItemChanged(
        inventory_item_id="inv-1",
        track_inventory=False,
        preorder_info=PreorderInfo(enabled=True, message="soon", limit=5),
        field_mask=FieldMask(paths=["trackInventory"]),
    )
    token = sign_webhook(ITEM_CHANGED, payload, app_keys.private_pem, instance_id="i", now=NOW)
    event = verify_webhook(token.encode(), base64.b64encode(app_keys.public_pem), now=NOW)
    assert isinstance(event, InventoryItemChangedEvent)
    assert event.payload == payload
    assert event.identity is None


def test_unknown_event_type_is_a_raw_event(app_keys: Any) -> None:
    """An event type the library does not model is returned raw, not raised."""
    env = envelope(data={"orderId": "o-1", "total": 3}, eventType="wix.ecom.v1.order_created")
    event = verify_webhook(signed(claims_of(env), app_keys.private), app_keys.public_pem, now=NOW)
    assert isinstance(event, RawWebhookEvent)
    assert event.payload == {"orderId": "o-1", "total": 3}
    assert event.event_type == "wix.ecom.v1.order_created"


def test_resigned_delivery_keeps_its_key_but_another_event_does_not(app_keys: Any) -> None:
    """The delivery key ignores iat/exp and key order, and differs for different content."""
    env = envelope()
    first = verify_webhook(signed(claims_of(env), app_keys.private), app_keys.public_pem, now=NOW)
    reordered = dict(reversed(list(env.items())))
    again = signed(claims_of(reordered, exp=NOW + 999), app_keys.private)
    other = signed(claims_of(envelope(instanceId="inst-2")), app_keys.private)
    assert verify_webhook(again, app_keys.public_pem, now=NOW).delivery_key == first.delivery_key
    assert verify_webhook(other, app_keys.public_pem, now=NOW).delivery_key != first.delivery_key


def test_leeway_accepts_a_token_just_expired(app_keys: Any) -> None:
    """leeway tolerates clock skew past exp."""
    token = signed(claims_of(envelope(), exp=NOW - 5), app_keys.private)
    assert verify_webhook(token, app_keys.public_pem, now=NOW, leeway=10).instance_id == "inst-1"


# --- rejected: algorithm, key, signature, expiry ---------------------------------------


def test_alg_none_is_rejected(app_keys: Any) -> None:
    """An unsigned token (alg none) is refused before any key is used."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    token = f"{header}.{b64url(json.dumps(claims_of(envelope())).encode())}."
    error = rejection(token, app_keys.public_pem)
    assert error.reason == "algorithm"
    assert "'none'" in str(error)


def test_hs256_signed_with_the_public_key_is_rejected(app_keys: Any) -> None:
    """The classic key-confusion attack (HMAC keyed with the public PEM) fails."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims_of(envelope())).encode())
    mac = hmac.new(app_keys.public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    error = rejection(f"{header}.{body}.{b64url(mac)}", app_keys.public_pem)
    assert error.reason == "algorithm"
    assert "HS256" in str(error)


@pytest.mark.parametrize("alg", ["HS256", "RS384", "RS512", "PS256"])
def test_other_algorithms_are_rejected(app_keys: Any, alg: str) -> None:
    """Only RS256 is accepted, even when the signature itself would verify."""
    key = "a-shared-secret-long-enough-for-hmac-sha256" if alg == "HS256" else app_keys.private
    error = rejection(signed(claims_of(envelope()), key, alg=alg), app_keys.public_pem)
    assert error.reason == "algorithm"


def test_wrong_key_is_rejected(app_keys: Any, other_keys: Any) -> None:
    """A token signed by another key does not verify with the app's public key."""
    error = rejection(signed(claims_of(envelope()), other_keys.private), app_keys.public_pem)
    assert error.reason == "signature"


def test_tampered_payload_is_rejected(app_keys: Any) -> None:
    """Changing the claims after signing breaks the signature."""
    header, _, signature = signed(claims_of(envelope()), app_keys.private).split(".")
    forged = envelope(instanceId="someone-else")
    tampered = f"{header}.{b64url(json.dumps(claims_of(forged)).encode())}.{signature}"
    assert rejection(tampered, app_keys.public_pem).reason == "signature"


def test_tampered_signature_is_rejected(app_keys: Any) -> None:
    """A flipped byte in the signature is refused."""
    header, body, signature = signed(claims_of(envelope()), app_keys.private).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 1
    assert rejection(f"{header}.{body}.{b64url(bytes(raw))}", app_keys.public_pem).reason == (
        "signature"
    )


def test_expired_token_is_rejected(app_keys: Any) -> None:
    """A token past its exp is refused, naming the expiry."""
    error = rejection(
        signed(claims_of(envelope(), exp=NOW - 1), app_keys.private), app_keys.public_pem
    )
    assert error.reason == "expired"
    assert "expired" in str(error)


def test_token_without_exp_is_rejected(app_keys: Any) -> None:
    """exp is required: a token that never expires is refused."""
    claims = {"data": json.dumps(envelope()), "iat": NOW}
    assert rejection(signed(claims, app_keys.private), app_keys.public_pem).reason == "expired"


# --- rejected: malformed at each level -----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"hello", b"a.b", b"\xff\xfe.x.y", b"!!!.###.$$$"],
    ids=["empty", "one-part", "two-parts", "not-ascii", "not-base64"],
)
def test_not_a_jwt_is_malformed(app_keys: Any, body: bytes) -> None:
    """Bodies that are not a JWT at all are malformed."""
    assert rejection(body, app_keys.public_pem).reason == "malformed"


@pytest.mark.parametrize(
    ("claims", "raw", "fragment"),
    [
        (None, b"{not json", "JWT claims"),
        ([1, 2], None, "JWT claims"),
        ({"data": {"eventType": "x"}, "exp": NOW + 60}, None, "JWT claims"),
        (claims_of("{not json"), None, "claim 'data'"),
        (claims_of(envelope(eventType=None)), None, "claim 'data'"),
        (claims_of(json.dumps([envelope()])), None, "claim 'data'"),
        (claims_of(envelope(data="{not json")), None, "payload"),
        (claims_of(envelope(data='{"inventoryItemId": "i", "variants": "x"}')), None, "payload"),
        (claims_of(envelope(data=json.dumps({"variants": []}))), None, "payload"),
        (claims_of(envelope(identity="{not json")), None, "identity"),
        (claims_of(envelope(identity='{"identityType": 3}')), None, "identity"),
    ],
    ids=[
        "claims-not-json",
        "claims-not-object",
        "data-claim-not-string",
        "envelope-not-json",
        "envelope-without-event-type",
        "envelope-not-object",
        "payload-not-json",
        "payload-wrong-shape",
        "payload-missing-item-id",
        "identity-not-json",
        "identity-wrong-shape",
    ],
)
def test_malformed_json_at_each_level(
    app_keys: Any, claims: Any, raw: bytes | None, fragment: str
) -> None:
    """Well-signed tokens with bad JSON at any level are malformed, naming the level."""
    error = rejection(signed(claims, app_keys.private, raw=raw), app_keys.public_pem)
    assert error.reason == "malformed"
    assert fragment in str(error)


def test_public_key_accepts_base64_of_der(app_keys: Any) -> None:
    """The PEM body without its armour lines (base64 of DER), as often pasted, works too."""
    body = b"".join(app_keys.public_pem.splitlines()[1:-1])
    token = signed(claims_of(envelope()), app_keys.private)
    assert verify_webhook(token, body, now=NOW).instance_id == "inst-1"


# --- keys and the optional extra -------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "not a key", base64.b64encode(b"just text").decode(), "-----BEGIN PUBLIC KEY-----\nx"],
)
def test_bad_public_key_is_a_configuration_error(key: str) -> None:
    """A public key that is neither PEM nor base64 of PEM is refused up front."""
    with pytest.raises(ConfigurationError, match="public key"):
        load_public_key(key)


@pytest.mark.parametrize("use", ["verify", "sign", "receiver"])
def test_missing_extra_names_the_install_command(
    app_keys: Any, monkeypatch: pytest.MonkeyPatch, use: str
) -> None:
    """Without PyJWT, each webhook entry point raises ConfigurationError saying what to install."""
    calls = {
        "verify": lambda: verify_webhook("a.b.c", app_keys.public_pem, now=NOW),
        "sign": lambda: sign_webhook(ITEM_CHANGED, {}, app_keys.private_pem),
        "receiver": lambda: WebhookReceiver(app_keys.public_pem, _ignore),
    }
    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(ConfigurationError, match=r'pip install "wixinv-async\[webhooks\]"'):
        calls[use]()


async def _ignore(event: object) -> None:
    """A callback that does nothing."""


def test_package_imports_without_the_extra() -> None:
    """wixinv_async and its webhooks module import with PyJWT and cryptography blocked."""
    code = (
        "import sys\n"
        "sys.modules['jwt'] = None\n"
        "sys.modules['cryptography'] = None\n"
        "import wixinv_async, wixinv_async.webhooks as w\n"
        "try:\n"
        "    w.load_public_key('x')\n"
        "except wixinv_async.ConfigurationError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert 'pip install "wixinv-async[webhooks]"' in out.stdout


@pytest.mark.parametrize(
    "header",
    [{"alg": "RS256", "kid": 5}, {"alg": "RS256", "crit": ["unknown-extension"]}],
    ids=["kid-not-a-string", "unknown-crit"],
)
def test_bad_header_parameters_are_malformed_not_raw_jwt_errors(
    app_keys: Any, header: dict[str, Any]
) -> None:
    """A header PyJWT refuses while parsing is a typed malformed rejection, not a jwt exception."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims_of(envelope())).encode())
    assert rejection(f"{head}.{body}.{b64url(b'x' * 256)}", app_keys.public_pem).reason == (
        "malformed"
    )


NESTED_TOO_DEEPLY = "webhook rejected: JSON nested too deeply in the order_created payload " + (
    "(envelope 'data')"
)


def _raw_event_nested(depth: int) -> dict[str, Any]:
    env = envelope(eventType="wix.ecom.v1.order_created")  # raw: no shape check stops it early
    env["data"] = "[" * depth + "]" * depth
    return env


def test_deeply_nested_payload_is_malformed(app_keys: Any) -> None:
    """A signed event whose data nests JSON 100,000 deep is malformed, naming the level."""
    token = signed(claims_of(_raw_event_nested(100_000)), app_keys.private)
    error = rejection(token, app_keys.public_pem)
    assert error.reason == "malformed"
    assert "nested too deeply in the order_created payload" in str(error)


def test_nesting_at_the_recursion_limit_never_escapes_as_recursion_error(app_keys: Any) -> None:
    """Around the recursion limit, each depth decodes to an event or is refused as malformed."""
    keys = app_keys
    outcomes = set()
    for depth in range(sys.getrecursionlimit() - 150, sys.getrecursionlimit()):
        token = signed(claims_of(_raw_event_nested(depth)), keys.private)
        try:
            verify_webhook(token, keys.public_pem, now=NOW)
            outcomes.add("event")
        except WebhookVerificationError as exc:
            outcomes.add(f"{exc.reason}: {exc}")
    assert outcomes == {"event", "malformed: " + NESTED_TOO_DEEPLY}
