"""A local TCP proxy in front of Redis that drops the reply to a chosen script: Redis runs the
command, the client never hears back and its connection is closed (a network failure at the
worst moment)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib


class ReplyDroppingProxy:
    """Forwards ``127.0.0.1:port`` to Redis; the first ``drops`` requests that run the script
    ``lua`` (by EVALSHA of its SHA1 or EVAL of its text) are executed, their replies dropped."""

    def __init__(self, redis_port: int, lua: str, drops: int) -> None:
        self.redis_port = redis_port
        self.markers = (hashlib.sha1(lua.encode()).hexdigest().encode(), lua[-200:].encode())  # noqa: S324
        self.drops_left = drops
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def __aenter__(self) -> ReplyDroppingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for handler in self._handlers:  # 3.11's wait_closed does not wait for them
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        for writer in self._writers:
            writer.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._relay(client_r, client_w)
        finally:
            client_w.close()  # also when cancelled before the relay's own cleanup ran
            self._handlers.discard(handler)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.redis_port)
        self._writers.add(redis_w)
        dropping = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self.drops_left and any(m in data for m in self.markers):
                    self.drops_left -= 1
                    dropping.set()  # redis-py waits for each reply: what comes back is this one
                redis_w.write(data)
                await redis_w.drain()

        async def downstream() -> None:
            while data := await redis_r.read(65536):
                if dropping.is_set():
                    self.dropped += 1
                    return  # Redis ran it; the reply never reaches the client
                client_w.write(data)
                await client_w.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except (ConnectionError, OSError):
            pass
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (client_w, redis_w):
                writer.close()
                with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                    await writer.wait_closed()
