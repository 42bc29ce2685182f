"""A hub site's app token, resting after the installation refused it (issue 15).

A revoked installation (the app removed from the site) answers every token request 401 or
403. Without a rest, every batch of that site would ask again: a token request per batch, for
as long as deltas come. :class:`GuardedToken` wraps the site's :class:`AppOAuth` and, after
a refused token request, refuses the site's requests itself (nothing is sent) for
:func:`refused_backoff` seconds, growing with each refusal in a row, so the hub asks at most
once per rest. Deltas refused meanwhile are REJECTED retriable (the adjuster's verdict for a
401 or 403) with the reason and when the next token request may go. A token fetched again
(the app reinstalled) ends it.
"""

from __future__ import annotations

from collections.abc import Mapping

from .auth import AppOAuth, Fetch
from .errors import ApiError
from .transport import Clock

__all__ = ["REFUSED_CAP", "REFUSED_FIRST", "GuardedToken", "refused_backoff"]

REFUSED_FIRST = 1.0
"""Seconds of rest after a site's first refused token request."""
REFUSED_CAP = 60.0
"""The longest rest: a reinstalled app is served again within this long."""
_REFUSED = (401, 403)


def refused_backoff(refusals: int) -> float:
    """Seconds without token requests after ``refusals`` refused ones in a row (>= 1):
    ``min(REFUSED_CAP, REFUSED_FIRST * 2 ** (refusals - 1))``: 1, 2, 4, ... 32, 60, 60 s."""
    return min(REFUSED_CAP, REFUSED_FIRST * 2.0 ** min(refusals - 1, 32))


class GuardedToken:
    """An :class:`AppOAuth` (the :class:`~wixinv_async.auth.Auth` a client takes) that rests
    after a refused token request (see the module doc)."""

    __slots__ = ("_clock", "_refusal", "_until", "inner", "refusals")

    def __init__(self, inner: AppOAuth, clock: Clock) -> None:
        self.inner = inner
        self._clock = clock
        self._until = 0.0
        self._refusal: ApiError | None = None
        """The latest refused token request's error, until a token is fetched again."""
        self.refusals = 0
        """Refused token requests in a row."""

    @property
    def site_key(self) -> str:
        return self.inner.site_key

    @property
    def can_refresh(self) -> bool:
        return True

    @property
    def fetches(self) -> int:
        """Tokens fetched."""
        return self.inner.fetches

    async def headers(self, fetch: Fetch, base_url: str) -> Mapping[str, str]:
        if self._refusal is not None:
            return await self._after_refusal(fetch, base_url)
        try:
            return await self.inner.headers(fetch, base_url)
        except ApiError as exc:
            raise self._refused(exc) from None

    async def refresh(self, fetch: Fetch, base_url: str, rejected: Mapping[str, str]) -> None:
        self._check_rest()
        try:
            await self.inner.refresh(fetch, base_url, rejected)
        except ApiError as exc:
            raise self._refused(exc) from None
        self._refusal, self.refusals = None, 0

    async def _after_refusal(self, fetch: Fetch, base_url: str) -> Mapping[str, str]:
        """After a rest, a new token first: one cached from before the refusal is dropped."""
        self._check_rest()
        inner = self.inner
        fetched = inner.fetches
        try:
            headers = await inner.headers(fetch, base_url)
            if inner.fetches == fetched:
                await inner.refresh(fetch, base_url, headers)
                headers = await inner.headers(fetch, base_url)
        except ApiError as exc:
            raise self._refused(exc) from None
        self._refusal, self.refusals = None, 0  # a token was fetched: the app is back
        return headers

    def _check_rest(self) -> None:
        """While resting, raise the refusal again (a copy: each raise its own traceback)."""
        refusal = self._refusal
        if refusal is None:
            return
        left = self._until - self._clock.time()
        if left > 0:
            raise _copy(
                refusal, f"{refusal.message} (token refused: not asked again for {left:.1f} s)"
            )

    def _refused(self, exc: ApiError) -> ApiError:
        """The error to raise for ``exc``; a refused token request (401, 403) starts a rest,
        once for all the callers that shared its fetch."""
        if exc.status not in _REFUSED:
            return exc
        if exc is not self._refusal:
            self._refusal = exc
            self.refusals += 1
            self._until = self._clock.time() + refused_backoff(self.refusals)
        rest = refused_backoff(self.refusals)
        return _copy(exc, f"{exc.message} (token refused: not asked again for {rest:g} s)")

    def __repr__(self) -> str:
        return f"GuardedToken({self.inner!r}, refusals={self.refusals})"


def _copy(exc: ApiError, message: str) -> ApiError:
    return type(exc)(exc.status, message, code=exc.code, request_id=exc.request_id)
