"""The exception tree: one base, builtin bases where they fit, context in the message."""

from __future__ import annotations

import pickle

import pytest

from wixinv_async import errors
from wixinv_async.core import failures
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


def _one_of_each() -> list[errors.WixInventoryError]:
    """An instance of every exception class, with every field set."""
    NO, MAYBE = errors.Applied.NO, errors.Applied.MAYBE
    violation = FieldViolation(field="decrementData[2].variantId", description="bad")
    samples: list[errors.WixInventoryError] = [
        errors.WixInventoryError("base"),
        InvalidInputError("variantId", "x", "must be a GUID", index=2),
        errors.ConfigurationError("bad rate"),
        errors.TransportError("broken"),
        errors.ConnectError("refused"),
        errors.ConnectionLostError("reset", status=200, headers={"x-wix-request-id": "r1"}),
        errors.RequestTimeoutError("slow", sent=True),
        errors.OutcomeUnknownError("maybe", request={"method": "POST"}),
        errors.AdjusterError("adjuster"),
        errors.AdjusterFull("full"),
        errors.AdjusterClosed("closed"),
        errors.OffsetLimitError("past 10000"),
        errors.LateSendError("POST /x: not sent", late_by=0.25, attempt=2),
        errors.WebhookError("webhook"),
        errors.FleetError("resolve", "127.0.0.1:6379/0", "ResponseError: OOM", applied=NO),
        errors.FleetUnavailable("submit", "10.0.0.2:6379/1", "closed", applied=MAYBE),
        errors.WebhookVerificationError("bad signature", reason="signature"),
        RateLimitedError(429, "slow", code="TOO_MANY_REQUESTS", request_id="r2", retry_after=3.0),
        errors.RevisionConflictError(
            409, "stale", code="REVISION_MISMATCH", inventory_item_id="i1", revision="3"
        ),
        errors.WrongCatalogError(
            428, "wrong", code="CATALOG_V3_SITE_CALLING_CATALOG_V1_API", site_catalog="V3_CATALOG"
        ),
    ]
    for status in (400, 401, 403, 404, 409, 418, 428, 500, 503):
        samples.append(
            api_error_for_status(status)(
                status,
                "refused",
                code="CODE",
                field_violations=[violation],
                request_id="r3",
                data={"index": 2},
            )
        )
    return samples


def test_every_exception_class_has_a_sample_below() -> None:
    """The pickle test covers every exception class errors.py defines."""
    classes = {v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)}
    assert classes == {type(e) for e in _one_of_each()}


@pytest.mark.parametrize("error", _one_of_each(), ids=lambda e: type(e).__name__)
def test_every_exception_round_trips_through_pickle(error: errors.WixInventoryError) -> None:
    """Unpickled, an error has its class, message and every field (multiprocessing, queues)."""
    error.applied = errors.Applied.MAYBE
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(again) is type(error) and str(again) == str(error)
    assert vars(again) == vars(error) and again.applied is errors.Applied.MAYBE


@pytest.mark.parametrize("error", _one_of_each(), ids=lambda e: type(e).__name__)
def test_the_stamp_agrees_with_what_the_class_says(error: errors.WixInventoryError) -> None:
    """Errors raised before anything is sent say Applied.NO by their class; the client's
    stamp (one taxonomy) never contradicts that."""
    default = type(error).applied
    stamped = failures.stamp(error).applied
    assert stamped is not None and (default is None or stamped is default)


@pytest.mark.parametrize(
    ("error", "applied"),
    [
        (RateLimitedError(429, "slow"), errors.Applied.NO),
        (ServerError(503, "busy"), errors.Applied.NO),
        (ServerError(500, "boom"), errors.Applied.MAYBE),
        (errors.RequestTimeoutError("t", sent=False), errors.Applied.NO),
        (errors.RequestTimeoutError("t", sent=True), errors.Applied.MAYBE),
        (errors.OutcomeUnknownError("reset", request=None), errors.Applied.MAYBE),
        (NotFoundError(404, "no"), errors.Applied.NO),
    ],
)
def test_applied_says_no_only_when_provably_not_applied(
    error: errors.WixInventoryError, applied: errors.Applied
) -> None:
    """The stamp: NO for refusals and what never reached the server, MAYBE otherwise."""
    assert failures.stamp(error).applied is applied
