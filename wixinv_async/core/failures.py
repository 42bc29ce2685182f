"""The one failure taxonomy, pure: what a failed request means, for the client and the adjuster.

Every error is classified once, by :func:`classify`, into a :class:`Failure`; each failure was
either provably not applied or maybe applied (:data:`APPLIED`). The client stamps that on every
error it raises (:func:`stamp`, ``error.applied``), retries by :func:`decide` within its
``RetryPolicy``, and the adjuster decides what a failed request means for its entries by
:func:`verdict` within its ``BatchPolicy``. Nothing here sleeps, reads a clock or draws
randomness of its own (``rng`` comes in).

The client's table (``decide``):

===============================  ==============  ==========================================
failure                          read            write (increment, decrement, update)
===============================  ==============  ==========================================
429 rate limited                 retry           retry (refused before processing)
503 unavailable                  retry           retry (not processed)
connect refused / timeout        retry           retry (provably never sent)
401 unauthorized                 refresh, once   refresh, once (refused before processing)
500, 502, 504, other 5xx         retry           outcome unknown
read timeout after sending       retry           outcome unknown
connection lost after sending    retry           outcome unknown
other 4xx                        raise           raise (refused: nothing applied)
===============================  ==============  ==========================================

A retry becomes "raise" once ``max_attempts`` attempts have been made.

The adjuster's table (``verdict``), for a request of its entries that the client raised on:

=============================================  ==========================================
failure                                        verdict
=============================================  ==========================================
400, 404, 428, refused client-side (INVALID)   bisect: some entries caused it; the server's
                                               index hint, when given, names one
429, 503, connect error, connect timeout       resend after ``Retry-After`` or backoff;
                                               REJECTED (retriable) after ``max_sends``
outcome unknown (timeout, reset, other 5xx)    IN_DOUBT, or resend at once with
                                               ``retry_ambiguous`` (``ambiguous_sends``)
other API error (401, 403, 409, ...)           REJECTED (retriable): refused whole
the client refused to send (closed client)     REJECTED (retriable): ``NOT_SENT``
anything else (a bug, an unknown error)        IN_DOUBT: it may have been sent
=============================================  ==========================================
"""

from __future__ import annotations

import enum
import re
from typing import Any, Final, NamedTuple

from ..errors import (
    ApiError,
    Applied,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectError,
    ConnectionLostError,
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    PreconditionFailedError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    WixInventoryError,
)
from ..outcomes import Outcome, OutcomeStatus
from ..settings import BatchPolicy, is_int
from .backoff import Uniform, backoff_delay

__all__ = [
    "APPLIED",
    "Bisect",
    "Decision",
    "Failure",
    "RequestKind",
    "Resend",
    "Verdict",
    "applied",
    "classify",
    "decide",
    "hint_index",
    "outcome_for",
    "stamp",
    "verdict",
]


class RequestKind(enum.Enum):
    """Whether repeating a request is harmless."""

    READ = "read"
    """Queries and token fetches: repeating them changes nothing."""
    WRITE = "write"
    """Increments, decrements and updates: repeating one may apply it twice."""


class Failure(enum.Enum):
    """Why a request failed, as far as any retry decision cares."""

    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    """503: not processed."""
    NOT_SENT = "not_sent"
    """No connection, a connect timeout, or no app token: provably never sent."""
    UNAUTHORIZED = "unauthorized"
    INVALID = "invalid"
    """400, 404, 428 or refused client-side: something in the request was refused."""
    REFUSED = "refused"
    """Another 4xx (403, 409, ...): the request was refused whole."""
    SERVER_ERROR = "server_error"
    """A 5xx other than 503: it may have been processed."""
    SENT_TIMEOUT = "sent_timeout"
    CONNECTION_LOST = "connection_lost"
    OUTCOME_UNKNOWN = "outcome_unknown"
    """The client's verdict on a write that failed after it may have been processed."""
    NOT_ATTEMPTED = "not_attempted"
    """The client refused to send (it is closed, or a setting is wrong)."""
    UNEXPECTED = "unexpected"
    """Anything else (a bug, a foreign error): it may have been sent."""


APPLIED: Final[dict[Failure, Applied]] = {
    failure: Applied.MAYBE
    if failure
    in {
        Failure.SERVER_ERROR,
        Failure.SENT_TIMEOUT,
        Failure.CONNECTION_LOST,
        Failure.OUTCOME_UNKNOWN,
        Failure.UNEXPECTED,
    }
    else Applied.NO
    for failure in Failure
}
"""Whether a request that failed so may have been applied."""

_INVALID = (BadRequestError, NotFoundError, PreconditionFailedError, InvalidInputError)


def classify(error: BaseException) -> Failure:
    """The failure an error stands for (the only place errors are told apart)."""
    if isinstance(error, ApiError):
        return _api_failure(error)
    if isinstance(error, InvalidInputError):
        return Failure.INVALID
    if isinstance(error, ConnectError):
        return Failure.NOT_SENT
    if isinstance(error, RequestTimeoutError):
        return Failure.SENT_TIMEOUT if error.sent else Failure.NOT_SENT
    if isinstance(error, ConnectionLostError):
        return Failure.CONNECTION_LOST
    if isinstance(error, OutcomeUnknownError):
        return Failure.OUTCOME_UNKNOWN
    if isinstance(error, ConfigurationError):
        return Failure.NOT_ATTEMPTED
    return Failure.UNEXPECTED


def _api_failure(error: ApiError) -> Failure:
    if isinstance(error, RateLimitedError):
        return Failure.RATE_LIMITED
    if isinstance(error, ServerError):
        return Failure.UNAVAILABLE if error.status == 503 else Failure.SERVER_ERROR
    if isinstance(error, AuthenticationError):
        return Failure.UNAUTHORIZED
    if isinstance(error, _INVALID):
        return Failure.INVALID
    return Failure.REFUSED


def applied(error: BaseException) -> Applied:
    """Whether the request behind ``error`` may have been applied: the client's stamp when
    there is one, else what :func:`classify` says."""
    if isinstance(error, WixInventoryError) and error.applied is not None:
        return error.applied
    return APPLIED[classify(error)]


def stamp(error: WixInventoryError) -> WixInventoryError:
    """Stamp ``error.applied`` (unless already stamped) and return the error."""
    if error.applied is None:
        error.applied = APPLIED[classify(error)]
    return error


class Decision(enum.Enum):
    """What the client does after a failed attempt."""

    RETRY = "retry"
    REFRESH_AUTH = "refresh_auth"
    RAISE = "raise"
    OUTCOME_UNKNOWN = "outcome_unknown"


_ALWAYS_RETRYABLE = frozenset({Failure.RATE_LIMITED, Failure.UNAVAILABLE, Failure.NOT_SENT})
_AMBIGUOUS = frozenset({Failure.SERVER_ERROR, Failure.SENT_TIMEOUT, Failure.CONNECTION_LOST})


def decide(
    kind: RequestKind,
    failure: Failure,
    *,
    attempt: int,
    max_attempts: int,
    can_refresh: bool = False,
) -> Decision:
    """The client's next step after attempt number ``attempt`` (1-based) failed with
    ``failure``. ``can_refresh``: the credentials can be refreshed and have not been refreshed
    for this call yet (one forced refresh per call)."""
    if failure is Failure.UNAUTHORIZED:
        return Decision.REFRESH_AUTH if can_refresh else Decision.RAISE
    if failure in _AMBIGUOUS and kind is RequestKind.WRITE:
        return Decision.OUTCOME_UNKNOWN
    if failure in _ALWAYS_RETRYABLE or failure in _AMBIGUOUS:
        return Decision.RETRY if attempt < max_attempts else Decision.RAISE
    return Decision.RAISE


# --- the adjuster's verdict ------------------------------------------------------------


class Resend(NamedTuple):
    """Send the same entries again after ``delay`` seconds; ``maybe_applied``: the failed
    attempt may have applied them (an ambiguous resend)."""

    delay: float
    maybe_applied: bool


class Bisect(NamedTuple):
    """The request was refused for some entries' sake: nothing was applied. ``hint``: the index
    of the entry the server blamed, when it said."""

    hint: int | None


Verdict = Outcome | Resend | Bisect

_INDEXED_FIELD = re.compile(r"(?:increment|decrement)Data\[(\d+)\]")


def hint_index(error: BaseException, size: int) -> int | None:
    """The index of the entry the server (or the client's validation) blamed, if it said.

    Read from ``InvalidInputError.index``, ``applicationError.data["index"]`` or a field
    violation such as ``decrementData[17].variantId``. Only a hint: the bisection stays correct
    without it.
    """
    index: Any = None
    if isinstance(error, InvalidInputError):
        index = error.index
    elif isinstance(error, ApiError):
        if isinstance(error.data, dict):
            index = error.data.get("index")
        if index is None:
            for violation in error.field_violations:
                match = _INDEXED_FIELD.search(violation.field or "")
                if match:
                    index = int(match.group(1))
                    break
    if is_int(index) and 0 <= index < size:
        return index
    return None


def outcome_for(
    status: OutcomeStatus, error: BaseException, default_code: str, *, retriable: bool = False
) -> Outcome:
    """An outcome carrying the error, its Wix code, message and request id."""
    if isinstance(error, ApiError):
        code = error.code or default_code
        return Outcome(status, code, error.message, error.request_id, retriable, error)
    return Outcome(status, default_code, str(error), retriable=retriable, error=error)


_RESENDABLE = frozenset({Failure.RATE_LIMITED, Failure.UNAVAILABLE, Failure.NOT_SENT})


def verdict(
    error: BaseException,
    send: int,
    *,
    size: int,
    policy: BatchPolicy,
    retry_ambiguous: bool,
    rng: Uniform,
) -> Verdict:
    """What send number ``send`` (1-based) of ``size`` entries failing with ``error`` means
    for them: bisect, resend, or their final outcome (the table in the module docstring)."""
    failure = classify(error)
    if failure is Failure.INVALID:
        return Bisect(hint_index(error, size))
    if failure in _RESENDABLE and applied(error) is Applied.NO:
        if send >= policy.max_sends:
            return outcome_for(OutcomeStatus.REJECTED, error, "GAVE_UP_NOT_APPLIED", retriable=True)
        retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
        if retry_after is not None:
            return Resend(float(retry_after), maybe_applied=False)
        delay = backoff_delay(send, base=policy.base_delay, cap=policy.max_delay, rng=rng)
        return Resend(delay, maybe_applied=False)
    if failure in (Failure.OUTCOME_UNKNOWN, Failure.SERVER_ERROR):
        if retry_ambiguous and send < min(policy.ambiguous_sends, policy.max_sends):
            return Resend(0.0, maybe_applied=True)
        return outcome_for(OutcomeStatus.IN_DOUBT, error, "OUTCOME_UNKNOWN")
    if isinstance(error, ApiError):
        return outcome_for(OutcomeStatus.REJECTED, error, "REFUSED", retriable=True)
    if failure is Failure.NOT_ATTEMPTED:
        return outcome_for(OutcomeStatus.REJECTED, error, "NOT_SENT", retriable=True)
    return outcome_for(OutcomeStatus.IN_DOUBT, error, type(error).__name__)
