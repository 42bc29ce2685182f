"""Credentials: a Wix API key, or an app's OAuth client-credentials token.

Both give the headers that authenticate a request and a ``site_key`` (the site, account or app
instance the budget of 200 requests per minute belongs to), which the client rate-limits by.
:class:`AppOAuth` fetches its token from ``POST /oauth2/token``, caches it until shortly before
it expires, lets one refresh run however many requests need a token, and refreshes once more
when the server answers 401.

Secrets (the API key, the app secret, the token) never appear in a ``repr``, a log line or an
exception message.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

import msgspec

from .errors import ApiError, ConfigurationError, TransportError, WixInventoryError
from .models import TokenRequest, TokenResponse
from .transport import Clock, HttpRequest, HttpResponse, LoopClock

__all__ = ["ApiKeyAuth", "AppCredentials", "AppOAuth", "Auth", "Fetch"]

logger = logging.getLogger("wixinv_async.auth")

Fetch = Callable[[HttpRequest], Awaitable[HttpResponse]]
"""How an auth sends its own requests: the client's retrying sender for reads, which raises
:class:`~wixinv_async.errors.ApiError` on an error status."""

_TOKEN_ENCODER = msgspec.json.Encoder()
_TOKEN_DECODER = msgspec.json.Decoder(TokenResponse)
_REDACTED = "***"


class Auth(Protocol):
    """What the client needs of credentials."""

    @property
    def site_key(self) -> str: ...

    @property
    def can_refresh(self) -> bool: ...

    async def headers(self, fetch: Fetch, base_url: str) -> Mapping[str, str]: ...

    async def refresh(self, fetch: Fetch, base_url: str, rejected: Mapping[str, str]) -> None: ...


def _check_text(name: str, value: object) -> str:
    """A non-empty string setting, else ConfigurationError (without echoing the value)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string")
    return value


_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _check_header(name: str, value: object) -> str:
    """A non-empty string that can go in a header (no control characters, which aiohttp
    would refuse with a bare ValueError at send time), else ConfigurationError."""
    text = _check_text(name, value)
    if _CONTROL_CHARACTERS.search(text):
        raise ConfigurationError(f"{name} must not contain control characters")
    return text


class ApiKeyAuth:
    """A Wix API key: ``Authorization: <key>`` plus ``wix-site-id`` and/or ``wix-account-id``.

    Site-level calls (all inventory calls) need ``site_id``; ``account_id`` is for
    account-level calls. A client needs at least one; ``ApiKeyAuth(key)`` alone is the
    account's key for an :class:`~wixinv_async.hub.InventoryHub`, which makes one
    :meth:`for_site` per site it serves.
    """

    __slots__ = ("_headers", "account_id", "site_id")

    def __init__(
        self, api_key: str, site_id: str | None = None, account_id: str | None = None
    ) -> None:
        _check_header("api_key", api_key)
        headers = {"Authorization": api_key}
        if site_id is not None:
            headers["wix-site-id"] = _check_header("site_id", site_id)
        if account_id is not None:
            headers["wix-account-id"] = _check_header("account_id", account_id)
        self._headers: Mapping[str, str] = headers
        self.site_id = site_id
        self.account_id = account_id

    @property
    def site_key(self) -> str:
        """The site id (or, without one, the account id)."""
        key = self.site_id if self.site_id is not None else self.account_id
        if key is None:
            raise ConfigurationError(
                "ApiKeyAuth needs site_id (or account_id) for a client; "
                "a key alone is for InventoryHub"
            )
        return key

    def for_site(self, site_id: str) -> ApiKeyAuth:
        """The same key (and account id) for the site ``site_id``."""
        return ApiKeyAuth(
            self._headers["Authorization"], site_id=site_id, account_id=self.account_id
        )

    @property
    def can_refresh(self) -> bool:
        """An API key cannot be refreshed: a 401 is final."""
        return False

    async def headers(self, fetch: Fetch, base_url: str) -> Mapping[str, str]:
        return self._headers

    async def refresh(self, fetch: Fetch, base_url: str, rejected: Mapping[str, str]) -> None:
        """Nothing to refresh."""

    def __repr__(self) -> str:
        ids = f"site_id={self.site_id!r}, account_id={self.account_id!r}"
        return f"ApiKeyAuth(api_key={_REDACTED}, {ids})"


class AppOAuth:
    """An app's client-credentials token for one installation (``instance_id``).

    The token is fetched on first use from ``token_url`` (default ``<base_url>/oauth2/token``)
    and reused until ``refresh_margin`` seconds (at most a tenth of its lifetime) before it
    expires. Concurrent callers share one fetch. After a 401 the client calls ``refresh`` once;
    callers that were rejected with the same token share that one refresh too.
    """

    __slots__ = (
        "_clock",
        "_completed",
        "_failure",
        "_lock",
        "_refresh_at",
        "_secret",
        "_token",
        "app_id",
        "fetches",
        "instance_id",
        "refresh_margin",
        "token_url",
    )

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        instance_id: str,
        *,
        token_url: str | None = None,
        refresh_margin: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        self.app_id = _check_text("app_id", app_id)
        self._secret = _check_text("app_secret", app_secret)
        self.instance_id = _check_text("instance_id", instance_id)
        if not refresh_margin >= 0:
            raise ConfigurationError(f"refresh_margin must be >= 0, got {refresh_margin!r}")
        self.token_url = token_url
        self.refresh_margin = refresh_margin
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self._completed = 0  # token fetches that ended, with a token or an error
        self._failure: WixInventoryError | None = None  # how the latest one failed, if it did
        self.fetches = 0
        """How many tokens were fetched."""

    @property
    def site_key(self) -> str:
        """The app instance id: Wix's rate limit is per instance."""
        return self.instance_id

    @property
    def can_refresh(self) -> bool:
        return True

    def _fresh_token(self) -> str | None:
        if self._token is not None and self._clock.time() < self._refresh_at:
            return self._token
        return None

    async def headers(self, fetch: Fetch, base_url: str) -> Mapping[str, str]:
        """``Authorization: <token>``, fetching a token first if none is fresh."""
        token = self._fresh_token()
        if token is None:
            token = await self._renew(fetch, base_url, stale=self._token)
        return {"Authorization": token}

    async def refresh(self, fetch: Fetch, base_url: str, rejected: Mapping[str, str]) -> None:
        """Drop the token that was answered 401 and fetch another (once for all callers)."""
        await self._renew(fetch, base_url, stale=rejected.get("Authorization"))

    async def _renew(self, fetch: Fetch, base_url: str, *, stale: str | None) -> str:
        """One fetch at a time. Callers that waited for one share its token or, if it failed
        (after the client's retries), its error: each running the whole retried fetch again
        in turn would cost every caller before it its wait and requests."""
        asked = self._completed
        async with self._lock:
            token = self._fresh_token()
            if token is not None and token != stale:
                return token  # another caller renewed it while we waited
            if self._completed != asked and self._failure is not None:
                raise self._failure  # the fetch that ended while we waited failed
            try:
                token = await self._fetch(fetch, base_url)
            except WixInventoryError as exc:
                self._failure = exc
                self._completed += 1
                raise
            self._failure = None
            self._completed += 1
            return token

    async def _fetch(self, fetch: Fetch, base_url: str) -> str:
        url = self.token_url or f"{base_url.rstrip('/')}/oauth2/token"
        body = TokenRequest(
            client_id=self.app_id, client_secret=self._secret, instance_id=self.instance_id
        )
        request = HttpRequest(
            "POST", url, _TOKEN_ENCODER.encode(body), {"Content-Type": "application/json"}
        )
        started = self._clock.time()
        try:
            response = await fetch(request)
            token = _TOKEN_DECODER.decode(response.body)
        except msgspec.DecodeError:
            raise TransportError("POST /oauth2/token: malformed token response") from None
        except WixInventoryError as exc:
            scrubbed = self._scrubbed(exc)
            if scrubbed is exc:
                raise
        else:
            return self._keep(token, started)
        raise scrubbed from None  # outside the handler: the original is not its __context__

    def _keep(self, token: TokenResponse, started: float) -> str:
        """Cache a fetched token until shortly before it expires; return it."""
        lifetime = float(token.expires_in)
        margin = min(self.refresh_margin, lifetime / 10)
        self._token = token.access_token
        self._refresh_at = started + lifetime - margin
        self.fetches += 1
        logger.debug(
            "fetched an app token for instance %s, valid %.0f s", self.instance_id, lifetime
        )
        return token.access_token

    def _scrubbed(self, exc: WixInventoryError) -> WixInventoryError:
        """``exc``, or a copy without the app secret if the server echoed it back.

        Only an API error can hold server text; our own messages never name a secret.
        """
        if not isinstance(exc, ApiError) or self._secret not in str(exc):
            return exc
        return type(exc)(
            exc.status,
            exc.message.replace(self._secret, _REDACTED),
            code=exc.code.replace(self._secret, _REDACTED) if exc.code else None,
            request_id=exc.request_id,
        )

    def __repr__(self) -> str:
        state = "token cached" if self._token is not None else "no token"
        return (
            f"AppOAuth(app_id={self.app_id!r}, app_secret={_REDACTED}, "
            f"instance_id={self.instance_id!r}, {state})"
        )


class AppCredentials:
    """An app's id and secret, for any number of its installations: :meth:`for_instance`
    gives the :class:`AppOAuth` of one app instance (its own token, fetched and refreshed
    on its own). What an :class:`~wixinv_async.hub.InventoryHub` of an app takes."""

    __slots__ = ("_secret", "app_id")

    def __init__(self, app_id: str, app_secret: str) -> None:
        self.app_id = _check_text("app_id", app_id)
        self._secret = _check_text("app_secret", app_secret)

    def for_instance(
        self, instance_id: str, *, token_url: str | None = None, refresh_margin: float = 60.0
    ) -> AppOAuth:
        """The token provider of the installation ``instance_id``."""
        return AppOAuth(
            self.app_id,
            self._secret,
            instance_id,
            token_url=token_url,
            refresh_margin=refresh_margin,
        )

    def __repr__(self) -> str:
        return f"AppCredentials(app_id={self.app_id!r}, app_secret={_REDACTED})"
