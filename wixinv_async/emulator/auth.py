"""Who is calling: API key plus ``wix-site-id``, or an OAuth access token of one instance.

Pure bookkeeping (the clock comes in as a callable): the server asks :meth:`Credentials.site_of`
for the site a request may act on, and :meth:`Credentials.issue` for new tokens. Secrets never
appear in a repr or an error message.
"""

from __future__ import annotations

import math
import secrets
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

    def __repr__(self) -> str:
        return f"Credentials(app_id={self.app_id!r}, tokens={len(self._tokens)})"

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
        return grant.site_id

    def issue(self, body: TokenBody) -> TokenResponse:
        """A new access token for ``body.instance_id``'s site, or a 400/401."""
        if body.grant_type != "client_credentials":
            text = f"must be client_credentials, got {body.grant_type!r}"
            raise validation_error([("grant_type", text)])
        if body.client_id != self.app_id or body.client_secret != self.app_secret:
            raise unauthorized("wrong client_id or client_secret")
        site_id = self._instances.get(body.instance_id)
        if site_id is None:
            raise validation_error([("instance_id", f"unknown instance {body.instance_id!r}")])
        now = self._clock()
        self._tokens = {t: g for t, g in self._tokens.items() if g.expires_at > now}
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Grant(site_id, now + self.token_lifetime)
        return TokenResponse(access_token=token, expires_in=math.floor(self.token_lifetime))
