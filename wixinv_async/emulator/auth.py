"""Who is calling: API key plus ``wix-site-id``, or an OAuth access token of one instance.

A token authorises exactly its instance's site (a ``wix-site-id`` naming another site is a
403); an instance can be revoked (the app removed from its site): its tokens then get 401 and
new tokens for it are refused with 401. The API key is the account's, not the app's, so it
still reaches a site whose app instance was revoked.

Wix documents that ``POST /oauth2/token`` reports errors "following the conventions of the
IETF", i.e. RFC 6749 section 5.2: client credentials that do not authenticate (a wrong
``client_id`` or ``client_secret``) are answered 401 with ``{"error": "invalid_client",
"error_description": ...}``, the one answer that says the *app's* credentials are wrong (for
every instance at once). The emulator's choice for a refused *instance* (unknown: 400 naming
``instance_id``; revoked: 401 ``UNAUTHENTICATED``) is Wix's usual error body, which carries no
``invalid_client``: a client tells the two apart by that code, never by the status.

Pure bookkeeping (the clock comes in as a callable): the server asks :meth:`Credentials.site_of`
for the site a request may act on, and :meth:`Credentials.issue` for new tokens. Secrets never
appear in a repr or an error message.
"""

from __future__ import annotations

import math
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from typing import NamedTuple

from ..models import TokenResponse
from ._errors import WixApiError, application_error, validation_error
from .requests import TokenBody

__all__ = ["Credentials", "unauthorized"]


class _Grant(NamedTuple):
    site_id: str
    expires_at: float


def unauthorized(text: str) -> WixApiError:
    """A 401 ``UNAUTHENTICATED`` answer."""
    return application_error(401, "UNAUTHENTICATED", text)


def invalid_client(text: str) -> WixApiError:
    """RFC 6749 section 5.2: the client (the app) failed to authenticate, a 401."""
    return WixApiError(401, {"error": "invalid_client", "error_description": text})


class Credentials:
    """The emulator's API key, its one OAuth app, and the tokens issued so far."""

    def __init__(
        self,
        *,
        api_key: str,
        app_id: str,
        app_secret: str,
        instances: Mapping[str, str],
        token_lifetime: float,
        clock: Callable[[], float],
    ) -> None:
        self.api_key = api_key
        self.app_id = app_id
        self.app_secret = app_secret
        self.token_lifetime = token_lifetime
        self._instances = dict(instances)  # instance id -> site id
        self._clock = clock
        self._tokens: dict[str, _Grant] = {}
        self._issued: deque[tuple[float, str]] = deque()
        """(expiry, token) in issue order: with one lifetime and a clock that does not go
        back, also in expiry order, so expired tokens are pruned from the left in O(1) each
        (thousands of instances fetch tokens)."""
        self._revoked: set[str] = set()  # site ids whose app instance was revoked
        self.issued: dict[str, int] = {}
        """Tokens issued per instance id (a hub proves one token request per instance)."""

    def __repr__(self) -> str:
        return (
            f"Credentials(app_id={self.app_id!r}, tokens={len(self._tokens)}, "
            f"revoked={len(self._revoked)})"
        )

    def _prune(self, now: float) -> None:
        issued = self._issued
        while issued and issued[0][0] <= now:
            self._tokens.pop(issued.popleft()[1], None)

    def revoke(self, instance_id: str) -> None:
        """The app is removed from the instance's site: its tokens stop working."""
        self._revoked.add(self._site_of_instance(instance_id))

    def reinstate(self, instance_id: str) -> None:
        """The app is installed again: new tokens can be fetched (old ones stay dead)."""
        site_id = self._site_of_instance(instance_id)
        self._revoked.discard(site_id)
        self._tokens = {t: g for t, g in self._tokens.items() if g.site_id != site_id}

    def is_revoked(self, instance_id: str) -> bool:
        return self._site_of_instance(instance_id) in self._revoked

    def _site_of_instance(self, instance_id: str) -> str:
        site_id = self._instances.get(instance_id)
        if site_id is None:
            raise KeyError(f"no app instance {instance_id!r}")
        return site_id

    def site_of(self, authorization: str | None, site_header: str | None) -> str:
        """The site id a request may act on, or a 401 (missing, wrong or expired credentials)
        or 400 (an API key without ``wix-site-id``)."""
        if not authorization:
            raise unauthorized("missing Authorization header")
        token = authorization[7:] if authorization[:7].lower() == "bearer " else authorization
        if token == self.api_key:
            if not site_header:
                raise validation_error([("wix-site-id", "header required with an API key")])
            return site_header
        grant = self._tokens.get(token)
        if grant is None:
            raise unauthorized("invalid API key or access token")
        if grant.expires_at <= self._clock():
            raise unauthorized("access token expired")
        if grant.site_id in self._revoked:
            raise unauthorized("the app instance was revoked (the app was removed from the site)")
        if site_header and site_header != grant.site_id:
            text = f"the access token is for another site, not {site_header!r}"
            raise application_error(403, "FORBIDDEN", text)
        return grant.site_id

    def issue(self, body: TokenBody) -> TokenResponse:
        """A new access token for ``body.instance_id``'s site, or a 400/401."""
        if body.grant_type != "client_credentials":
            text = f"must be client_credentials, got {body.grant_type!r}"
            raise validation_error([("grant_type", text)])
        if body.client_id != self.app_id or body.client_secret != self.app_secret:
            raise invalid_client("the client credentials (client_id, client_secret) are invalid")
        site_id = self._instances.get(body.instance_id)
        if site_id is None:
            raise validation_error([("instance_id", f"unknown instance {body.instance_id!r}")])
        if site_id in self._revoked:
            text = f"the app instance {body.instance_id!r} was revoked (the app was removed)"
            raise unauthorized(text)
        now = self._clock()
        self._prune(now)
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Grant(site_id, now + self.token_lifetime)
        self._issued.append((now + self.token_lifetime, token))
        self.issued[body.instance_id] = self.issued.get(body.instance_id, 0) + 1
        return TokenResponse(access_token=token, expires_in=math.floor(self.token_lifetime))
