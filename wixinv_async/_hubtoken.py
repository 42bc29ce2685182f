"""A hub's app tokens: a site resting after its installation refused it, and the whole app
resting after the token endpoint refused the app's own credentials (issue 15).

Two kinds of refusal, told apart by what ``POST /oauth2/token`` answers, never by its status
alone (401 is used for both, and RFC 6749 lets ``invalid_client`` be 400 or 401):

- **the app's credentials** (a wrong app id or secret): the answer's OAuth error code is
  ``invalid_client`` (or ``unauthorized_client``), RFC 6749 section 5.2, which Wix documents
  its token errors follow. It holds for every instance at once, so :class:`AppGate` (one per
  hub) rests the whole app: one token request at a time (any site's) until one succeeds,
  each refused one starting a rest of :func:`refused_backoff` seconds during which no site asks
  for a token. Every site's deltas meanwhile are REJECTED retriable with a reason naming the
  app id (never the secret); it is logged once, not once per site. A site with a token still
  cached goes on using it (an issued token outlives a reset secret).
- **one installation** (any other 400, 401 or 403: the app removed from the site, an instance
  the app is not installed on): :class:`GuardedToken` rests that site alone, refusing its
  requests itself (nothing sent) for :func:`refused_backoff` seconds, growing with each refusal
  in a row, so the site asks at most once per rest instead of once per batch. A token fetched
  again (the app reinstalled) ends it. A refused token request is raised as
  :class:`AuthenticationError` whatever its status (a 401 or 403 keeps its own class): it says
  nothing of the deltas, so the adjuster rejects them retriable with the reason rather than
  bisecting the batch as it would for a 400 of the write itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from functools import partial
from typing import Final

from .auth import AppOAuth, Fetch
from .errors import ApiError, AuthenticationError
from .transport import Clock, HttpRequest, HttpResponse

__all__ = [
    "APP_REFUSALS",
    "REFUSED_CAP",
    "REFUSED_FIRST",
    "AppGate",
    "GuardedToken",
    "refused_backoff",
]

logger = logging.getLogger("wixinv_async.hub")  # one of the hub's SITE_LOGGERS

REFUSED_FIRST = 1.0
"""Seconds of rest after the first refused token request (a site's, or the app's)."""
REFUSED_CAP = 60.0
"""The longest rest: a reinstalled app (or fixed credentials) is served again within this."""
APP_REFUSALS: Final = frozenset({"invalid_client", "unauthorized_client"})
"""OAuth error codes (RFC 6749 section 5.2) that refuse the app itself, for every instance."""
_REFUSED = (400, 401, 403)


def refused_backoff(refusals: int) -> float:
    """Seconds without token requests after ``refusals`` refused ones in a row (>= 1):
    ``min(REFUSED_CAP, REFUSED_FIRST * 2 ** (refusals - 1))``: 1, 2, 4, ... 32, 60, 60 s."""
    return min(REFUSED_CAP, REFUSED_FIRST * 2.0 ** min(refusals - 1, 32))


class AppGate:
    """The app's credentials as the token endpoint last judged them, shared by every site's
    token of one hub (see the module doc). Token requests go through :meth:`fetch`.

    Until a token was issued (at start, and after a refusal of the app) one token request is
    in flight at a time, so a wrong secret costs one refused request, not one per site; once
    one is issued, the sites fetch theirs concurrently.
    """

    __slots__ = ("_clock", "_line", "_until", "app_id", "open", "refusal", "refusals")

    def __init__(self, app_id: str, clock: Clock) -> None:
        self.app_id = app_id
        self._clock = clock
        self._line = asyncio.Lock()
        self._until = 0.0
        self.open = False
        """A token was issued since the app was last refused: no probing, no rest."""
        self.refusal: ApiError | None = None
        """The latest refusal of the app's credentials (until a token is issued)."""
        self.refusals = 0
        """Refusals of the app's credentials in a row."""

    def gated(self, fetch: Fetch) -> Fetch:
        """``fetch`` (a client's token sender) through this gate."""
        return partial(self.fetch, fetch)

    async def fetch(self, fetch: Fetch, request: HttpRequest) -> HttpResponse:
        """Send a token request with ``fetch``, unless the app rests (then raise its refusal
        at once); until a token is issued, one at a time."""
        if not self.open:
            async with self._line:
                if not self.open:
                    self._check_rest()
                    return await self._send(fetch, request, probe=True)
        return await self._send(fetch, request, probe=False)

    async def _send(self, fetch: Fetch, request: HttpRequest, *, probe: bool) -> HttpResponse:
        try:
            response = await fetch(request)
        except ApiError as exc:
            if exc.code in APP_REFUSALS:
                raise self._refused(exc, probe=probe) from None
            raise  # the instance's own answer (or a transient failure): the site's business
        if not self.open:
            self._accepted()
        return response

    def _accepted(self) -> None:
        if self.refusal is not None:
            logger.warning(
                "app %r: a token was issued again: every site asks for its own as usual",
                self.app_id,
                extra={"site": None},
            )
        self.open, self.refusal, self.refusals = True, None, 0

    def _check_rest(self) -> None:
        refusal = self.refusal
        if refusal is not None:
            left = self._until - self._clock.time()
            if left > 0:
                raise self._error(refusal, left)

    def _refused(self, exc: ApiError, *, probe: bool) -> AuthenticationError:
        """The error for a refusal of the app; it starts a rest if it is news: the first one
        since a token was issued, or a probe's (not the other requests that were in flight
        when the first came back)."""
        now = self._clock.time()
        if probe or self.open:
            self.open, self.refusal = False, exc
            self.refusals += 1
            self._until = now + refused_backoff(self.refusals)
            # The server's text is left out of the log: it may echo the secret.
            log = logger.error if self.refusals == 1 else logger.debug
            log(
                "app %r: the token endpoint refused the app's credentials (HTTP %d %s): every "
                "site's deltas are REJECTED (retriable) and no token is asked for %g s, then "
                "one site at a time until one is issued; check the app id and secret",
                self.app_id,
                exc.status,
                exc.code,
                refused_backoff(self.refusals),
                extra={"site": None},
            )
        return self._error(exc, self._until - now)

    def _error(self, exc: ApiError, left: float) -> AuthenticationError:
        """What a site's token request raises while the app is refused (the app id, the
        server's text, which AppOAuth scrubs of the secret, and the rest left)."""
        message = (
            f"the token endpoint refused the app's credentials (app id {self.app_id!r}): "
            f"{exc.message} (app token refused: no site asks again for {max(left, 0):.1f} s)"
        )
        return AuthenticationError(exc.status, message, code=exc.code, request_id=exc.request_id)

    def __repr__(self) -> str:
        state = "open" if self.open else f"refusals={self.refusals}"
        return f"<AppGate app_id={self.app_id!r} {state}>"


class GuardedToken:
    """An :class:`AppOAuth` (the :class:`~wixinv_async.auth.Auth` a client takes) that rests
    after a refused token request, its token requests going through the hub's
    :class:`AppGate` (see the module doc)."""

    __slots__ = ("_clock", "_gate", "_refusal", "_until", "inner", "refusals")

    def __init__(self, inner: AppOAuth, clock: Clock, gate: AppGate | None = None) -> None:
        self.inner = inner
        self._clock = clock
        self._gate = gate
        self._until = 0.0
        self._refusal: ApiError | None = None
        """The latest refused token request's error, until a token is fetched again."""
        self.refusals = 0
        """Refused token requests in a row (the instance's; the app's are the gate's)."""

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

    def _gated(self, fetch: Fetch) -> Fetch:
        return fetch if self._gate is None else self._gate.gated(fetch)

    async def headers(self, fetch: Fetch, base_url: str) -> Mapping[str, str]:
        if self._refusal is not None:
            return await self._after_refusal(fetch, base_url)
        try:
            return await self.inner.headers(self._gated(fetch), base_url)
        except ApiError as exc:
            raise self._refused(exc) from None

    async def refresh(self, fetch: Fetch, base_url: str, rejected: Mapping[str, str]) -> None:
        self._check_rest()
        try:
            await self.inner.refresh(self._gated(fetch), base_url, rejected)
        except ApiError as exc:
            raise self._refused(exc) from None
        self._refusal, self.refusals = None, 0

    async def _after_refusal(self, fetch: Fetch, base_url: str) -> Mapping[str, str]:
        """After a rest, a new token first: one cached from before the refusal is dropped."""
        self._check_rest()
        inner, fetch = self.inner, self._gated(fetch)
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
        """The error to raise for ``exc``; a refused token request of the instance (400, 401,
        403) starts a rest, once for all the callers that shared its fetch. A refusal of the
        app is the gate's: the site does not rest on its own for it."""
        if exc.status not in _REFUSED or exc.code in APP_REFUSALS:
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
    """``exc`` with ``message``; a refused token request stays an authentication failure
    whatever its status (a 400 is not a bad write: nothing of the deltas was judged)."""
    cls = type(exc) if exc.status in (401, 403) else AuthenticationError
    code = exc.code or "TOKEN_REFUSED"
    return cls(exc.status, message, code=code, request_id=exc.request_id)
