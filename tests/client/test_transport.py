"""The aiohttp transport: exceptions mapped at the seam, bytes and headers passed through."""

from __future__ import annotations

import asyncio
from unittest import mock

import aiohttp
import pytest
from aioresponses import aioresponses

from wixinv_async.errors import (
    ConfigurationError,
    ConnectError,
    ConnectionLostError,
    RequestTimeoutError,
    TransportError,
    WixInventoryError,
)
from wixinv_async.transport import AiohttpTransport, HttpRequest, HttpResponse, MockTransport

URL = "https://www.wixapis.com/stores/v2/inventoryItems/decrement"
SECRET = "KEY-SENSITIVE-42"


def refused() -> aiohttp.ClientConnectorError:
    """What aiohttp raises when the server refuses the connection."""
    key = mock.Mock(host="www.wixapis.com", port=443, ssl=True)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize(
    ("raised", "expected", "sent"),
    [
        (aiohttp.ConnectionTimeoutError(), RequestTimeoutError, False),
        (aiohttp.SocketTimeoutError(), RequestTimeoutError, True),
        (TimeoutError(), RequestTimeoutError, True),
        (refused(), ConnectError, False),
        (aiohttp.ServerDisconnectedError(), ConnectionLostError, True),
        (aiohttp.ClientConnectionResetError("reset"), ConnectionLostError, True),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), ConnectionLostError, True),
        (aiohttp.ClientPayloadError("truncated"), ConnectionLostError, True),
        (aiohttp.InvalidURL("nope"), ConfigurationError, False),
    ],
)
async def test_aiohttp_exceptions_become_ours(
    http: aioresponses, raised: Exception, expected: type[Exception], sent: bool
) -> None:
    """Each aiohttp failure surfaces as our type, telling whether it can have been sent."""
    http.post(URL, exception=raised)
    async with AiohttpTransport() as transport:
        with pytest.raises(expected) as caught:
            await transport.handle_request(HttpRequest("POST", URL, b"{}"))
    assert not isinstance(caught.value, aiohttp.ClientError)
    assert isinstance(caught.value, WixInventoryError)
    assert caught.value.__cause__ is raised
    if isinstance(caught.value, RequestTimeoutError):
        assert caught.value.sent is sent
    assert "/stores/v2/inventoryItems/decrement" in str(caught.value)


async def test_response_status_headers_and_body_come_back(http: aioresponses) -> None:
    """The response's status, lower-cased headers and raw body are returned."""
    http.post(URL, status=428, body=b'{"message":"x"}', headers={"X-Wix-Request-Id": "r1"})
    async with AiohttpTransport() as transport:
        response = await transport.handle_request(HttpRequest("POST", URL, b"{}"))
    assert response.status == 428
    assert response.header("x-wix-request-id") == "r1"
    assert response.header("X-WIX-REQUEST-ID") == "r1"
    assert response.json() == {"message": "x"}


async def test_a_borrowed_session_stays_open(http: aioresponses) -> None:
    """Closing the transport leaves a borrowed session to its owner."""
    http.post(URL, payload={})
    async with aiohttp.ClientSession() as session:
        async with AiohttpTransport(session) as transport:
            await transport.handle_request(HttpRequest("POST", URL, b"{}"))
        assert not session.closed


async def test_an_own_session_is_closed() -> None:
    """The session the transport made is closed by aclose, and aclose is idempotent."""
    transport = AiohttpTransport()
    session = transport._get_session()
    await transport.aclose()
    await transport.aclose()
    assert session.closed


def test_bad_timeout_is_refused() -> None:
    """A timeout must be positive."""
    with pytest.raises(ConfigurationError, match="timeout"):
        AiohttpTransport(timeout=0)


async def test_mock_transport_accepts_sync_and_async_handlers() -> None:
    """A handler may return a response or an awaitable of one, or raise our errors."""

    async def slow(request: HttpRequest) -> HttpResponse:
        return HttpResponse(201)

    def failing(request: HttpRequest) -> HttpResponse:
        raise ConnectError("down")

    assert (await MockTransport(slow).handle_request(HttpRequest("GET", URL))).status == 201
    with pytest.raises(TransportError):
        await MockTransport(failing).handle_request(HttpRequest("GET", URL))


def test_request_repr_hides_headers_and_body() -> None:
    """A request's repr names method and path only."""
    request = HttpRequest("POST", URL, b'{"secret":1}', {"Authorization": "KEY-123"})
    assert "KEY-123" not in repr(request)
    assert "secret" not in repr(request)
    assert request.without_headers().headers == {}
    assert request.path == "/stores/v2/inventoryItems/decrement"


async def test_a_closed_borrowed_session_is_a_clear_error() -> None:
    """Sending over a session its owner closed raises ConfigurationError, not aiohttp's."""
    session = aiohttp.ClientSession()
    await session.close()
    transport = AiohttpTransport(session)
    with pytest.raises(ConfigurationError, match="closed"):
        await transport.handle_request(HttpRequest("POST", URL, b"{}"))


async def test_a_closed_own_session_is_not_reopened() -> None:
    """After aclose, a request (say a retry that was backing off) fails instead of opening a
    new session that nothing would ever close."""
    transport = AiohttpTransport()
    transport._get_session()
    await transport.aclose()
    with pytest.raises(ConfigurationError, match="closed"):
        await transport.handle_request(HttpRequest("POST", URL, b"{}"))
    assert transport._session is None


async def test_a_malformed_response_leaves_no_credentials_in_the_error_chain() -> None:
    """aiohttp's error for an unparsable response holds the request headers in its repr and
    args; the chain below our error must not, so a repr of a cause never shows the key."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    request = HttpRequest("POST", f"http://127.0.0.1:{port}/x", b"{}", {"Authorization": SECRET})
    try:
        async with AiohttpTransport() as transport:
            with pytest.raises(ConnectionLostError) as caught:
                await transport.handle_request(request)
    finally:
        server.close()
        await server.wait_closed()
    chain: list[BaseException] = []
    error: BaseException | None = caught.value
    while error is not None and len(chain) < 10:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert len(chain) > 1  # the cause is kept, for debugging
    for link in chain:
        assert SECRET not in f"{link} {link!r} {link.args!r}"
