"""The exception tree: one base, builtin bases where they fit, context in the message."""

from __future__ import annotations

import pytest

from wixinv_async import errors
from wixinv_async.errors import (
    ApiError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitedError,
    ServerError,
    WixInventoryError,
    api_error_for_status,
)
from wixinv_async.models import FieldViolation


def test_every_exception_derives_from_the_base() -> None:
    """Every exception class in errors.py is a WixInventoryError."""
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) > 15
    assert all(issubclass(c, WixInventoryError) for c in classes)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, NotFoundError),
        (409, errors.ConflictError),
        (428, PreconditionFailedError),
        (429, RateLimitedError),
        (500, ServerError),
        (503, ServerError),
        (418, ApiError),
    ],
)
def test_status_maps_to_its_class(status: int, expected: type[ApiError]) -> None:
    """Each HTTP status gets its own ApiError subclass."""
    assert api_error_for_status(status) is expected


def test_invalid_input_names_index_field_and_value() -> None:
    """InvalidInputError says which entry, which field and what value, and is a ValueError."""
    error = InvalidInputError("decrementBy", 0, "must be from 1 to 99999", index=7)
    assert isinstance(error, ValueError)
    assert "entry 7" in str(error) and "decrementBy=0" in str(error)


def test_api_error_message_carries_code_violations_and_request_id() -> None:
    """The message of an API error holds what support needs."""
    error = errors.BadRequestError(
        400,
        "bad",
        code="INVALID_ARGUMENT",
        request_id="req-1",
        field_violations=[FieldViolation(field="paging.limit", description="must be <= 100")],
    )
    text = str(error)
    assert "INVALID_ARGUMENT" in text and "paging.limit: must be <= 100" in text and "req-1" in text


def test_rate_limited_carries_retry_after() -> None:
    """A 429 error keeps the server's Retry-After."""
    error = RateLimitedError(429, "slow down", retry_after=2.5)
    assert error.retry_after == 2.5 and error.status == 429
