"""The emulator's request models: strict (``forbid_unknown_fields``), one typed decoder each.

Strict on purpose: the emulator should catch a client that sends a misspelt or invented
field, where Wix might silently ignore it. Decoding errors become 400 answers naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import Struct

from ._errors import WixApiError, validation_error

__all__ = [
    "DecrementBody",
    "DecrementEntry",
    "GetVariantsBody",
    "IncrementBody",
    "IncrementEntry",
    "ItemUpdateIn",
    "PagingIn",
    "PreorderIn",
    "QueryBody",
    "QueryIn",
    "TokenBody",
    "UpdateBody",
    "VariantIn",
    "decode",
    "decode_with",
]


class _Req(
    Struct, kw_only=True, omit_defaults=True, rename="camel", forbid_unknown_fields=True, gc=False
):
    """Base of the emulator's request models."""


_Amount = Annotated[int, msgspec.Meta(le=2**31 - 1)]
"""decrementBy / incrementBy: Wix's int32 (the lower bound, 1, is checked per entry in batch.py)."""


class DecrementEntry(_Req, kw_only=True):
    product_id: str | None = None
    inventory_id: str | None = None
    variant_id: str
    decrement_by: _Amount
    preorder_request: bool = False


class IncrementEntry(_Req, kw_only=True):
    product_id: str | None = None
    inventory_id: str | None = None
    variant_id: str
    increment_by: _Amount


class DecrementBody(_Req, kw_only=True):
    decrement_data: list[DecrementEntry]


class IncrementBody(_Req, kw_only=True):
    increment_data: list[IncrementEntry]


class PagingIn(_Req, kw_only=True):
    limit: int | None = None
    offset: int | None = None


class QueryIn(_Req, kw_only=True):
    paging: PagingIn | None = None
    filter: str | None = None
    sort: str | None = None


class QueryBody(_Req, kw_only=True):
    query: QueryIn | None = None


class GetVariantsBody(_Req, kw_only=True):
    inventory_id: str | None = None
    product_id: str | None = None
    variant_ids: list[str] | None = None


class VariantIn(_Req, kw_only=True):
    variant_id: str
    quantity: int | None = None
    in_stock: bool | None = None


class PreorderIn(_Req, kw_only=True):
    enabled: bool | None = None
    message: str | None = None
    limit: int | None = None


class ItemUpdateIn(_Req, kw_only=True):
    product_id: str | None = None
    track_quantity: bool | None = None
    variants: list[VariantIn] | None = None
    preorder_info: PreorderIn | None = None


class UpdateBody(_Req, kw_only=True):
    inventory_item: ItemUpdateIn


class TokenBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /oauth2/token``: snake_case on the wire. Never repr'd with its secret."""

    grant_type: str
    client_id: str
    client_secret: str
    instance_id: str

    def __repr__(self) -> str:
        return f"TokenBody(client_id={self.client_id!r}, instance_id={self.instance_id!r})"


T = TypeVar("T")

_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    model: msgspec.json.Decoder(model)
    for model in (DecrementBody, IncrementBody, QueryBody, GetVariantsBody, UpdateBody, TokenBody)
}
_AT: Final = re.compile(r"(.*?)(?: - at `\$\.?(.*)`)?$", re.DOTALL)
_UNKNOWN: Final = re.compile(r"Object contains unknown field `([^`]*)`")
_MISSING: Final = re.compile(r"Object missing required field `([^`]*)`")


def decode(model: type[T], body: bytes) -> T:
    """Decode ``body`` as ``model`` or raise a 400 :class:`WixApiError` naming the field."""
    result: T = decode_with(_DECODERS[model], body)
    return result


def decode_with(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """Decode ``body`` with ``decoder`` or raise a 400 :class:`WixApiError` naming the field."""
    try:
        result = decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _violation(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise validation_error([("body", f"not valid JSON: {exc}")]) from None
    return result


def _violation(text: str) -> WixApiError:
    match = _AT.match(text)
    assert match is not None
    reason, path = match.group(1), match.group(2) or ""
    named = _UNKNOWN.match(reason) or _MISSING.match(reason)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return validation_error([(path or "body", reason)])
