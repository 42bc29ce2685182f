"""Credentials: API key headers, the app token's cache, single-flight refresh, redaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from wixinv_async.auth import ApiKeyAuth, AppOAuth
from wixinv_async.client import InventoryClient
from wixinv_async.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectError,
    ConnectionLostError,
    OutcomeUnknownError,
    RequestTimeoutError,
    WixInventoryError,
)
from wixinv_async.models import DecrementData
from wixinv_async.transport import HttpRequest, HttpResponse, RateLimit, VirtualClock

from .conftest import Routes

BASE = "https://www.wixapis.com"
TOKEN = f"{BASE}/oauth2/token"
QUERY = f"{BASE}/stores-reader/v2/inventoryItems/query"
DECREMENT = f"{BASE}/stores/v2/inventoryItems/decrement"
SECRET = "app-secret-Zx81"
Entries = Callable[..., list[DecrementData]]


def tokens(http: Routes, *values: str, expires_in: int = 14_400) -> None:
    """Register token answers, one per fetch, in order."""
    for value in values:
        http.post(TOKEN, payload={"access_token": value, "expires_in": expires_in})


def authorizations(http: Routes, url: str) -> list[str]:
    """The Authorization header of each request sent to ``url``."""
    return [request.headers["Authorization"] for request in http.requests_to("POST", url)]


def oauth(clock: VirtualClock | None = None) -> AppOAuth:
    return AppOAuth("app-1", SECRET, "inst-1", clock=clock)


def test_api_key_headers_and_site_key() -> None:
    """An API key goes raw in Authorization, with the site id beside it."""
    auth = ApiKeyAuth("KEY", site_id="SITE")
    assert auth._headers == {"Authorization": "KEY", "wix-site-id": "SITE"}
    assert auth.site_key == "SITE"
    assert ApiKeyAuth("KEY", account_id="ACC").site_key == "ACC"


@pytest.mark.parametrize(
    "args",
    [
        ("", "SITE", None),
        ("KEY", "", None),
        (None, "SITE", None),
        ("KEY-SENSITIVE\r\nX-Evil: 1", "SITE", None),
        ("KEY", "SITE\n", None),
        ("KEY", None, "ACC\x00"),
    ],
)
def test_bad_api_key_settings_are_refused(args: tuple[Any, ...]) -> None:
    """A missing key, an empty site, or a header value with control characters
    (aiohttp would raise a bare ValueError when sending) is a configuration error."""
    with pytest.raises(ConfigurationError) as caught:
        ApiKeyAuth(*args)
    assert "SENSITIVE" not in str(caught.value)


async def test_app_token_is_fetched_once_and_reused(
    new_client: Callable[..., InventoryClient], http: Routes
) -> None:
    """The token is fetched on first use and sent, raw, on every call after."""
    tokens(http, "tok-1")
    http.post(QUERY, payload={}, repeat=True)
    auth = oauth()
    async with new_client(auth=auth) as client:
        await client.query_inventory()
        await client.query_inventory()
    assert authorizations(http, QUERY) == ["tok-1", "tok-1"]
    [fetch] = http.requests_to("POST", TOKEN)
    assert fetch.headers.get("Authorization") is None
    assert auth.fetches == 1


async def test_token_request_body_is_client_credentials(
    new_client: Callable[..., InventoryClient], http: Routes, sent: Any
) -> None:
    """POST /oauth2/token carries the client-credentials grant for the instance."""
    tokens(http, "tok-1")
    http.post(QUERY, payload={})
    async with new_client(auth=oauth()) as client:
        await client.query_inventory()
    assert sent(http, "POST", TOKEN) == [
        {
            "grant_type": "client_credentials",
            "client_id": "app-1",
            "client_secret": SECRET,
            "instance_id": "inst-1",
        }
    ]


async def test_single_flight_token_fetch_under_50_concurrent_calls(
    new_client: Callable[..., InventoryClient], http: Routes
) -> None:
    """Fifty calls needing a token at once cause exactly one token request."""

    async def slow_token(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(0)
        return HttpResponse.from_json(200, {"access_token": "tok-1", "expires_in": 14_400})

    http.post(TOKEN, callback=slow_token, repeat=True)
    http.post(QUERY, payload={}, repeat=True)
    async with new_client(auth=oauth()) as client:
        await asyncio.gather(*(client.query_inventory() for _ in range(50)))
    assert len(http.requests_to("POST", TOKEN)) == 1
    assert authorizations(http, QUERY) == ["tok-1"] * 50


async def test_token_is_renewed_shortly_before_it_expires(
    new_client: Callable[..., InventoryClient], http: Routes, clock: VirtualClock
) -> None:
    """A token is used until a tenth of its lifetime (at most 60 s) before expiry."""
    tokens(http, "tok-1", "tok-2", expires_in=100)
    http.post(QUERY, payload={}, repeat=True)
    async with new_client(auth=oauth(clock)) as client:
        await client.query_inventory()
        await clock.sleep(89)
        await client.query_inventory()
        await clock.sleep(2)
        await client.query_inventory()
    assert authorizations(http, QUERY) == ["tok-1", "tok-1", "tok-2"]


async def test_401_refreshes_once_and_replays(
    new_client: Callable[..., InventoryClient], http: Routes, decrements: Entries
) -> None:
    """A 401 on a write fetches a new token and sends the same batch again."""
    tokens(http, "tok-old", "tok-new")
    http.post(DECREMENT, status=401)
    http.post(DECREMENT, payload={})
    async with new_client(auth=oauth()) as client:
        await client.decrement_inventory(decrements(2))
        assert client.stats().auth_refreshes == 1
    assert authorizations(http, DECREMENT) == ["tok-old", "tok-new"]


async def test_a_second_401_is_final(
    new_client: Callable[..., InventoryClient], http: Routes, decrements: Entries
) -> None:
    """After the one refresh, another 401 raises AuthenticationError (no loop)."""
    tokens(http, "tok-1", "tok-2", "tok-3")
    http.post(DECREMENT, status=401, repeat=True)
    async with new_client(auth=oauth()) as client:
        with pytest.raises(AuthenticationError):
            await client.decrement_inventory(decrements())
    assert len(authorizations(http, DECREMENT)) == 2


async def test_50_callers_rejected_together_share_one_refresh(
    new_client: Callable[..., InventoryClient], http: Routes
) -> None:
    """Fifty 401s for the same stale token lead to a single new token."""
    rejected: list[str] = []
    all_rejected = asyncio.Event()

    async def server(request: HttpRequest) -> HttpResponse:
        if request.headers["Authorization"] != "tok-old":
            return HttpResponse.from_json(200, {})
        rejected.append("tok-old")
        if len(rejected) == 50:
            all_rejected.set()
        await all_rejected.wait()  # answer no 401 before all fifty were sent
        return HttpResponse.from_json(401, {})

    tokens(http, "tok-old", "tok-new")
    http.post(QUERY, callback=server, repeat=True)
    async with new_client(auth=oauth()) as client:
        await asyncio.gather(*(client.query_inventory() for _ in range(50)))
        assert client.stats().auth_refreshes == 50
    assert len(http.requests_to("POST", TOKEN)) == 2
    assert sorted(authorizations(http, QUERY)) == ["tok-new"] * 50 + ["tok-old"] * 50


async def test_an_api_key_401_is_not_refreshed(
    client: InventoryClient, http: Routes, decrements: Entries
) -> None:
    """An API key cannot be refreshed: the 401 is raised after one request."""
    http.post(DECREMENT, status=401, repeat=True)
    with pytest.raises(AuthenticationError):
        await client.decrement_inventory(decrements())
    assert client.stats().requests == 1


async def test_secrets_never_reach_repr_logs_or_errors(
    new_client: Callable[..., InventoryClient],
    http: Routes,
    decrements: Entries,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Key, app secret and token appear in no repr, log record or exception text."""
    caplog.set_level(logging.DEBUG, logger="wixinv_async")
    tokens(http, "tok-SENSITIVE", "tok-SENSITIVE-2")
    http.post(DECREMENT, status=401)
    http.post(DECREMENT, status=503)
    http.post(DECREMENT, status=500)
    auth = oauth()
    texts = []
    async with new_client(auth=auth) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.decrement_inventory(decrements())
        texts += [repr(client), repr(auth), repr(client.stats())]
    error = caught.value
    texts += [str(error), repr(error), repr(error.request), str(error.__cause__)]
    texts += [repr(ApiKeyAuth("KEY-SENSITIVE", site_id="S"))]
    texts += [record.getMessage() for record in caplog.records]
    assert len(caplog.records) >= 3
    for text in texts:
        assert SECRET not in text
        assert "tok-SENSITIVE" not in text  # both tokens
        assert "KEY-SENSITIVE" not in text


async def test_a_token_error_echoing_the_secret_is_scrubbed(
    new_client: Callable[..., InventoryClient], http: Routes
) -> None:
    """If the token endpoint echoes the secret in its error, the exception hides it."""
    http.post(TOKEN, status=400, payload={"message": f"bad client_secret {SECRET}"})
    async with new_client(auth=oauth()) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.query_inventory()
    assert "bad client_secret ***" in str(caught.value)
    error: BaseException | None = caught.value
    while error is not None:  # nor does its __cause__ or __context__ lead back to the original
        assert SECRET not in f"{error} {error!r}"
        error = error.__cause__ or error.__context__


async def test_a_throttled_token_fetch_waits_on_its_own(
    new_client: Callable[..., InventoryClient], http: Routes, clock: VirtualClock
) -> None:
    """A 429 from the token endpoint is waited out there, without pausing the site."""
    fetched_at: list[float] = []

    def token(request: HttpRequest) -> HttpResponse:
        fetched_at.append(clock.time())
        return HttpResponse.from_json(200, {"access_token": "tok-1", "expires_in": 14_400})

    http.post(TOKEN, status=429, headers={"Retry-After": "2"})
    http.post(TOKEN, callback=token)
    http.post(QUERY, payload={})
    async with new_client(auth=oauth(), rate_limit=RateLimit(100, 1)) as client:
        await client.query_inventory()
    assert fetched_at == [2.0]
    assert clock.slept == [2.0]
    assert authorizations(http, QUERY) == ["tok-1"]


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500},
        {"status": 502},
        {"exception": ConnectionLostError("server disconnected")},
        {"exception": RequestTimeoutError("no answer", sent=True)},
        {"body": b"not json"},
    ],
)
async def test_a_write_whose_token_cannot_be_fetched_fails_as_never_sent(
    new_client: Callable[..., InventoryClient],
    http: Routes,
    decrements: Entries,
    failure: Any,
) -> None:
    """When the token endpoint keeps failing, the decrement was never sent: the call raises
    ConnectError (provably not applied), never a 500 or a lost connection, which on a write
    mean "maybe applied"."""
    http.post(TOKEN, **failure, repeat=True)
    async with new_client(auth=oauth()) as client:
        with pytest.raises(ConnectError, match="token") as caught:
            await client.decrement_inventory(decrements())
    assert http.requests_to("POST", DECREMENT) == []
    assert isinstance(caught.value.__cause__, WixInventoryError)
    assert SECRET not in str(caught.value)


async def test_a_failed_refresh_after_a_401_fails_as_never_sent(
    new_client: Callable[..., InventoryClient], http: Routes, decrements: Entries
) -> None:
    """A 401 refused the batch; if the new token cannot be fetched, it still was not applied."""
    tokens(http, "tok-1")
    http.post(TOKEN, status=500, repeat=True)
    http.post(DECREMENT, status=401)
    async with new_client(auth=oauth()) as client:
        with pytest.raises(ConnectError, match="token"):
            await client.decrement_inventory(decrements())
    assert authorizations(http, DECREMENT) == ["tok-1"]


async def test_50_callers_share_one_failed_token_fetch(
    new_client: Callable[..., InventoryClient], http: Routes, clock: VirtualClock
) -> None:
    """Callers that waited on a token fetch that failed get its failure instead of each
    running the whole retried fetch again in turn; the next call after it tries anew."""
    http.post(TOKEN, status=500, repeat=5)
    tokens(http, "tok-1")
    http.post(QUERY, payload={}, repeat=True)
    async with new_client(auth=oauth()) as client:
        results = await asyncio.gather(
            *(client.query_inventory() for _ in range(50)), return_exceptions=True
        )
        assert all(isinstance(result, ConnectError) for result in results)
        assert len(http.requests_to("POST", TOKEN)) == 5  # one fetch, five attempts
        assert len(clock.slept) == 4
        await client.query_inventory()
    assert authorizations(http, QUERY) == ["tok-1"]
