"""A counting TCP relay in front of the emulator, shared by the hub's pool tests."""

from __future__ import annotations

import asyncio

__all__ = ["CountingProxy"]


class CountingProxy:
    """A TCP relay to the emulator that counts the connections made through it and the most
    open at once: what the hub's shared connector opened, seen from the wire."""

    def __init__(self, port: int, *, backlog: int = 100) -> None:
        self.port = port
        self.backlog = backlog
        self.accepted = 0
        self.open = 0
        self.peak = 0
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=self.backlog)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._relays:
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        relays = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self._relays.update(relays)
        try:
            await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.open -= 1
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            self._relays.difference_update(relays)
            for w in (writer, up_writer):
                w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
