"""The aiohttp transport: exceptions mapped at the seam, bytes and headers passed through."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

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


class Server:
    """A real HTTP/1.1 server on 127.0.0.1 that answers every request with ``reply``, keeps
    connections alive, and counts the connections opened and those the client closed."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.opened = 0
        self.closed_by_client = 0
        self.all_closed = asyncio.Event()
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        self.all_closed.clear()
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(_content_length(head))
                writer.write(self.reply)
                await writer.drain()
        except asyncio.IncompleteReadError:  # the client closed its end
            self.closed_by_client += 1
        finally:
            writer.close()
            if self.closed_by_client == self.opened:
                self.all_closed.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stores/v2/inventoryItems/decrement"


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.partition(b":")[2])
    return 0


@contextlib.asynccontextmanager
async def serving(reply: bytes) -> AsyncIterator[Server]:
    """Run a :class:`Server` for the block."""
    server = Server(reply)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    yield port


@pytest.fixture
def aiohttp_raises() -> Iterator[aioresponses]:
    """aiohttp's session raising the exceptions registered (aioresponses, at the session's
    boundary: it cannot build responses for aiohttp 3.14, so only exceptions are mocked)."""
    with aioresponses() as mocked:
        yield mocked


@pytest.mark.parametrize(
    ("raised", "expected", "sent"),
    [
        (aiohttp.ConnectionTimeoutError(), RequestTimeoutError, False),
        (aiohttp.SocketTimeoutError(), RequestTimeoutError, True),
        (TimeoutError(), RequestTimeoutError, True),
        (aiohttp.ServerDisconnectedError(), ConnectionLostError, True),
        (aiohttp.ClientConnectionResetError("reset"), ConnectionLostError, True),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), ConnectionLostError, True),
        (aiohttp.ClientPayloadError("truncated"), ConnectionLostError, True),
        (aiohttp.InvalidURL("nope"), ConfigurationError, False),
    ],
)
async def test_aiohttp_exceptions_become_ours(
    aiohttp_raises: aioresponses, raised: Exception, expected: type[Exception], sent: bool
) -> None:
    """Each aiohttp failure surfaces as our type, telling whether it can have been sent."""
    aiohttp_raises.post(URL, exception=raised)
    async with AiohttpTransport() as transport:
        with pytest.raises(expected) as caught:
            await transport.handle_request(HttpRequest("POST", URL, b"{}"))
    assert not isinstance(caught.value, aiohttp.ClientError)
    assert isinstance(caught.value, WixInventoryError)
    assert caught.value.__cause__ is raised
    if isinstance(caught.value, RequestTimeoutError):
        assert caught.value.sent is sent
    assert "/stores/v2/inventoryItems/decrement" in str(caught.value)


async def test_a_refused_connection_is_a_connect_error() -> None:
    """A port nothing listens on gives ConnectError: the request was provably never sent."""
    with closed_port() as port:
        async with AiohttpTransport() as transport:
            with pytest.raises(ConnectError) as caught:
                await transport.handle_request(HttpRequest("POST", f"http://127.0.0.1:{port}/x"))
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert "POST /x: could not connect" in str(caught.value)


async def test_response_status_headers_and_body_come_back() -> None:
    """The response's status, headers (any case looks them up) and raw body are returned."""
    body = b'{"message":"x"}'
    reply = b"HTTP/1.1 428 Precondition Failed\r\nX-Wix-Request-Id: r1\r\n"
    reply += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    async with serving(reply) as server, AiohttpTransport() as transport:
        response = await transport.handle_request(HttpRequest("POST", server.url, b"{}"))
    assert response.status == 428
    assert response.headers["x-wix-request-id"] == "r1"
    assert response.header("X-WIX-REQUEST-ID") == "r1"
    assert response.body == body
    assert response.json() == {"message": "x"}


async def test_a_borrowed_session_stays_open() -> None:
    """Closing the transport leaves a borrowed session, and its connection, to its owner."""
    async with serving(OK) as server, aiohttp.ClientSession() as session:
        async with AiohttpTransport(session) as transport:
            await transport.handle_request(HttpRequest("POST", server.url, b"{}"))
        assert not session.closed
        await AiohttpTransport(session).handle_request(HttpRequest("POST", server.url, b"{}"))
        assert (server.opened, server.closed_by_client) == (1, 0)  # the same kept-alive one


async def test_an_own_session_is_closed() -> None:
    """The session the transport made is closed by aclose (its connection with it), and
    aclose is idempotent."""
    async with serving(OK) as server:
        transport = AiohttpTransport()
        await transport.handle_request(HttpRequest("POST", server.url, b"{}"))
        await transport.aclose()
        await transport.aclose()
        await asyncio.wait_for(server.all_closed.wait(), timeout=10)
        assert (server.opened, server.closed_by_client) == (1, 1)


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
    async with serving(OK) as server:
        transport = AiohttpTransport()
        await transport.handle_request(HttpRequest("POST", server.url, b"{}"))
        await transport.aclose()
        with pytest.raises(ConfigurationError, match="closed"):
            await transport.handle_request(HttpRequest("POST", server.url, b"{}"))
        await asyncio.wait_for(server.all_closed.wait(), timeout=10)
    assert server.opened == 1  # no new connection was made


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
