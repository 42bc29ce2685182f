"""The aiohttp receiver: verify, remember, enqueue, answer at once; workers run the callback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, NamedTuple, Self

from aiohttp import web

from ..errors import ConfigurationError, WebhookVerificationError
from ..settings import is_int
from ._events import WebhookCallback, WebhookEvent
from ._memory import DeliveryMemory
from ._verify import PublicKeyInput, _require_jwt, load_public_key, verify_webhook

# The package's logger, as before the split into modules.
_log = logging.getLogger(__name__.rpartition(".")[0])
_RETRY: Final = {"Retry-After": "5"}


class WebhookReceiverStats(NamedTuple):
    """Counters of a :class:`WebhookReceiver` since it was made."""

    received: int
    """Requests answered."""
    accepted: int
    """New events queued for the callback."""
    duplicates: int
    """Deliveries already handled (answered 200, not queued)."""
    rejected: int
    """Bodies that failed verification (answered 400 or 401)."""
    refused: int
    """Valid new events refused with 503 because the queue was full or the receiver closed."""
    handled: int
    """Callbacks that returned."""
    failed: int
    """Callbacks that raised."""
    queued: int
    """Events waiting for a worker now."""


class WebhookReceiver:
    """An aiohttp handler for Wix webhooks that never makes Wix wait for your code.

    Each request is verified (:func:`verify_webhook`), checked against a
    :class:`DeliveryMemory`, put on a bounded queue and answered at once: 200 for a new or
    duplicate event, 401 for a bad algorithm, signature or expiry, 400 for a malformed body.
    ``workers`` tasks take events off the queue and await ``callback(event)``, so a slow
    callback delays only later events, never the answer.

    When the queue is full the answer is 503 and the delivery is not remembered: Wix retries
    a non-200 for 48 hours, so the event comes back when there is room; dropping it after a
    200 would lose it for good, and waiting for room would miss the 1250 ms deadline. A
    callback that raises is logged, passed to ``on_error`` and forgotten by the memory, so a
    redelivery of that event is handled again.

    Start and stop the workers with ``async with receiver:``, or :meth:`install` the receiver
    on an ``aiohttp.web.Application``, which ties them to its startup and cleanup. Until
    started, and once closing, new events are answered 503.
    """

    def __init__(
        self,
        public_key: PublicKeyInput,
        callback: WebhookCallback,
        *,
        max_queue: int = 1000,
        workers: int = 1,
        memory: DeliveryMemory | None = None,
        leeway: float = 0.0,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[WebhookEvent, Exception], None] | None = None,
    ):
        if not is_int(max_queue) or max_queue < 1:
            raise ConfigurationError(f"max_queue={max_queue!r}: must be an int >= 1")
        if not is_int(workers) or workers < 1:
            raise ConfigurationError(f"workers={workers!r}: must be an int >= 1")
        _require_jwt()
        self._key = load_public_key(public_key)
        self._callback = callback
        self._queue: asyncio.Queue[WebhookEvent] = asyncio.Queue(max_queue)
        self._worker_count = workers
        self._memory = DeliveryMemory() if memory is None else memory
        self._leeway = leeway
        self._clock = clock
        self._on_error = on_error
        self._workers: list[asyncio.Task[None]] = []
        self._open = False
        self._counts = dict.fromkeys(WebhookReceiverStats._fields[:-1], 0)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler (``app.router.add_post(path, receiver.handle)``): verify,
        remember, enqueue, answer."""
        self._counts["received"] += 1
        body = await request.read()
        try:
            event = verify_webhook(body, self._key, now=self._clock(), leeway=self._leeway)
        except WebhookVerificationError as exc:
            self._counts["rejected"] += 1
            status = 400 if exc.reason == "malformed" else 401
            return web.Response(status=status, text=str(exc))
        return self._accept(event)

    def _accept(self, event: WebhookEvent) -> web.Response:
        if not self._open:
            self._counts["refused"] += 1
            return web.Response(status=503, text="receiver not running", headers=_RETRY)
        if not self._memory.claim(event.delivery_key, self._clock()):
            self._counts["duplicates"] += 1
            return web.Response(status=200, text="duplicate")
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._memory.forget(event.delivery_key)
            self._counts["refused"] += 1
            return web.Response(status=503, text="busy, retry later", headers=_RETRY)
        self._counts["accepted"] += 1
        return web.Response(status=200, text="ok")

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._callback(event)
            except asyncio.CancelledError:  # cut off by aclose: not handled, so not remembered
                self._memory.forget(event.delivery_key)
                raise
            except Exception as exc:
                self._counts["failed"] += 1
                self._memory.forget(event.delivery_key)
                _log.exception("webhook callback failed for %s", event.event_type)
                if self._on_error is not None:
                    try:
                        self._on_error(event, exc)
                    except Exception:  # a raising hook must not kill the worker
                        _log.exception("webhook on_error hook failed")
            else:
                self._counts["handled"] += 1
            finally:
                self._queue.task_done()

    async def start(self) -> None:
        """Start the workers (idempotent) and begin accepting events."""
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"wixinv-webhook-worker-{i}")
                for i in range(self._worker_count)
            ]
        self._open = True

    async def join(self) -> None:
        """Wait until every queued event has been handed to the callback and returned."""
        await self._queue.join()

    async def aclose(self, *, grace: float | None = 10.0) -> None:
        """Stop accepting (503), let the workers finish the queue for up to ``grace`` s,
        then cancel them; events still queued are dropped (they were answered 200 already) and,
        like those whose callback was cut off, forgotten by the memory."""
        self._open = False
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        while not self._queue.empty():
            self._memory.forget(self._queue.get_nowait().delivery_key)
            self._queue.task_done()

    def install(self, app: web.Application, path: str = "/webhooks") -> None:
        """Route ``POST path`` to this receiver and run it for the app's lifetime."""
        app.router.add_post(path, self.handle)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)

    async def _on_startup(self, app: web.Application) -> None:
        await self.start()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def stats(self) -> WebhookReceiverStats:
        """Counters so far, and the events queued now."""
        return WebhookReceiverStats(**self._counts, queued=self._queue.qsize())

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return (
            f"<WebhookReceiver {state} queued={self._queue.qsize()} workers={len(self._workers)}>"
        )
