"""Client-side checks of what the API would refuse, so bad input fails before it is sent.

Each check raises :class:`~wixinv_async.errors.InvalidInputError` naming the field, the value
and, in a batch, the entry index.
"""

from __future__ import annotations

import re
from typing import Final

from ..errors import InvalidInputError
from ..models import MAX_BATCH, MAX_ID_LENGTH, MAX_PAGE_LIMIT, MAX_QUANTITY

__all__ = [
    "check_amount",
    "check_batch_size",
    "check_entity_id",
    "check_page_limit",
    "check_variant_id",
    "is_guid",
]

_HEX = "[0-9a-fA-F]"
_GUID: Final = re.compile(f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}")


def is_guid(value: object) -> bool:
    """Whether ``value`` is a GUID string such as ``00000000-0000-0000-0000-000000000000``."""
    return isinstance(value, str) and _GUID.fullmatch(value) is not None


def check_entity_id(field: str, value: object, *, index: int | None = None) -> str:
    """A productId or inventoryId: a non-empty string of at most 36 characters."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(field, value, "must be a non-empty string", index=index)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(
            field, value, f"must be at most {MAX_ID_LENGTH} characters", index=index
        )
    return value


def check_variant_id(value: object, *, index: int | None = None, field: str = "variantId") -> str:
    """A variantId: a GUID."""
    if not is_guid(value):
        raise InvalidInputError(field, value, "must be a GUID", index=index)
    assert isinstance(value, str)
    return value


def check_amount(field: str, value: object, *, index: int | None = None) -> int:
    """An incrementBy or decrementBy: an int (not a bool) from 1 to 99999."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(field, value, "must be an int", index=index)
    if not 1 <= value <= MAX_QUANTITY:
        raise InvalidInputError(field, value, f"must be from 1 to {MAX_QUANTITY}", index=index)
    return value


def check_batch_size(field: str, size: int) -> None:
    """A batch holds 1 to 300 entries."""
    if not 1 <= size <= MAX_BATCH:
        raise InvalidInputError(field, size, f"must hold 1 to {MAX_BATCH} entries")


def check_page_limit(value: object) -> int:
    """A paging.limit: an int from 1 to 100."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_LIMIT:
        raise InvalidInputError("paging.limit", value, f"must be an int from 1 to {MAX_PAGE_LIMIT}")
    return value
