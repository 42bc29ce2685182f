"""The pure retry arithmetic: backoff delays, Retry-After parsing, the client's decision table
(the one failure taxonomy of core/failures.py)."""

from __future__ import annotations

import random

import pytest

from wixinv_async.core.backoff import backoff_delay, parse_retry_after
from wixinv_async.core.failures import Decision, Failure, RequestKind, classify, decide
from wixinv_async.errors import api_error_for_status

READ, WRITE = RequestKind.READ, RequestKind.WRITE


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 10, 100])
def test_backoff_stays_within_the_capped_exponential_ceiling(attempt: int) -> None:
    """Every delay lies in [0, min(cap, base * 2**(attempt-1))]."""
    rng = random.Random(attempt)
    ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
    delays = [backoff_delay(attempt, base=0.5, cap=8.0, rng=rng) for _ in range(200)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling * 0.8  # full jitter reaches near the ceiling


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    """The same seed gives the same delays."""
    first = [backoff_delay(a, base=1, cap=30, rng=random.Random(3)) for a in range(1, 6)]
    again = [backoff_delay(a, base=1, cap=30, rng=random.Random(3)) for a in range(1, 6)]
    assert first == again


def test_backoff_rejects_attempt_zero() -> None:
    """Attempts count from 1."""
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0, base=1, cap=1, rng=random.Random(0))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-4", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:10", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, expected: float | None
) -> None:
    """Delta-seconds and HTTP dates give seconds from now; junk gives None."""
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(header, now=now) == expected


@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (429, Failure.RATE_LIMITED),
        (503, Failure.UNAVAILABLE),
        (401, Failure.UNAUTHORIZED),
        (500, Failure.SERVER_ERROR),
        (502, Failure.SERVER_ERROR),
        (504, Failure.SERVER_ERROR),
        (400, Failure.INVALID),
        (403, Failure.REFUSED),
        (404, Failure.INVALID),
        (409, Failure.REFUSED),
        (428, Failure.INVALID),
    ],
)
def test_statuses_are_classified(status: int, failure: Failure) -> None:
    """429/503/401 are refusals before processing, other 5xx may have been processed; 400,
    404 and 428 refuse something in the request, other 4xx the request whole."""
    assert classify(api_error_for_status(status)(status, "no")) is failure


@pytest.mark.parametrize(
    ("kind", "failure", "expected"),
    [
        (READ, Failure.RATE_LIMITED, Decision.RETRY),
        (WRITE, Failure.RATE_LIMITED, Decision.RETRY),
        (WRITE, Failure.UNAVAILABLE, Decision.RETRY),
        (WRITE, Failure.NOT_SENT, Decision.RETRY),
        (READ, Failure.SERVER_ERROR, Decision.RETRY),
        (READ, Failure.SENT_TIMEOUT, Decision.RETRY),
        (READ, Failure.CONNECTION_LOST, Decision.RETRY),
        (WRITE, Failure.SERVER_ERROR, Decision.OUTCOME_UNKNOWN),
        (WRITE, Failure.SENT_TIMEOUT, Decision.OUTCOME_UNKNOWN),
        (WRITE, Failure.CONNECTION_LOST, Decision.OUTCOME_UNKNOWN),
        (READ, Failure.REFUSED, Decision.RAISE),
        (WRITE, Failure.REFUSED, Decision.RAISE),
        (WRITE, Failure.INVALID, Decision.RAISE),
    ],
)
def test_decision_table(kind: RequestKind, failure: Failure, expected: Decision) -> None:
    """Writes are retried only when provably unprocessed; reads whenever transient."""
    assert decide(kind, failure, attempt=1, max_attempts=3) is expected


@pytest.mark.parametrize("failure", [Failure.RATE_LIMITED, Failure.NOT_SENT, Failure.UNAVAILABLE])
def test_retries_stop_at_max_attempts(failure: Failure) -> None:
    """The last allowed attempt raises instead of retrying."""
    assert decide(WRITE, failure, attempt=2, max_attempts=3) is Decision.RETRY
    assert decide(WRITE, failure, attempt=3, max_attempts=3) is Decision.RAISE


def test_ambiguous_write_is_unknown_even_on_the_last_attempt() -> None:
    """A maybe-applied write is never reported as a plain error."""
    assert (
        decide(WRITE, Failure.SERVER_ERROR, attempt=9, max_attempts=3) is Decision.OUTCOME_UNKNOWN
    )


@pytest.mark.parametrize("kind", [READ, WRITE])
def test_unauthorized_refreshes_once(kind: RequestKind) -> None:
    """A 401 refreshes refreshable credentials once, then raises."""
    assert decide(kind, Failure.UNAUTHORIZED, attempt=1, max_attempts=5, can_refresh=True) is (
        Decision.REFRESH_AUTH
    )
    assert decide(kind, Failure.UNAUTHORIZED, attempt=1, max_attempts=5) is Decision.RAISE
