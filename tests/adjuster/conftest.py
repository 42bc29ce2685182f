"""A fake inventory client with the error contract of ARCHITECTURE.md, for the driver tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from wixinv_async.errors import (
    AuthenticationError,
    ConnectError,
    NotFoundError,
    OutcomeUnknownError,
    PreconditionFailedError,
    RateLimitedError,
    ServerError,
)
from wixinv_async.models import DecrementData, IncrementData

VARIANTS = [f"00000000-0000-0000-0000-{i:012d}" for i in range(1000)]


class FakeClient:
    """An atomic in-memory inventory: quantities per (product id, variant id).

    ``script`` holds the fault of each next call (``"429"``, ``"429_long"`` (Retry-After 60), ``"503"``, ``"connect"``,
    ``"unknown_before"``, ``"unknown_after"``, ``"auth"``, ``None``). ``gate``, when set, makes
    every call wait for it (after applying, for ``stall_after``). ``hints`` puts the offending
    index in ``applicationError.data`` as the emulator does.
    """

    def __init__(self, quantities: dict[tuple[str, str], int] | None = None) -> None:
        self.quantities: dict[tuple[str, str], int] = dict(quantities or {})
        self.script: list[str | None] = []
        self.calls: list[tuple[str, list[tuple[str, str, int, bool]]]] = []
        self.applied: list[tuple[str, list[tuple[str, str, int, bool]]]] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        """Set once a call has started."""
        self.hints = True
        self.active = 0
        self.peak = 0

    def seed(self, products: int, variants: int, quantity: int = 1000) -> None:
        for p in range(products):
            for v in range(variants):
                self.quantities[(f"p{p}", VARIANTS[v])] = quantity

    async def increment_inventory(self, entries: Sequence[IncrementData]) -> None:
        rows = [(_id(e), e.variant_id, e.increment_by, False) for e in entries]
        await self._call("increment", rows)

    async def decrement_inventory(self, entries: Sequence[DecrementData]) -> None:
        rows = [(_id(e), e.variant_id, -e.decrement_by, e.preorder_request) for e in entries]
        await self._call("decrement", rows)

    async def _call(self, kind: str, rows: list[tuple[str, str, int, bool]]) -> None:
        self.calls.append((kind, rows))
        self.entered.set()
        fault = self.script.pop(0) if self.script else None
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(0)
            self._fault_before(fault)
            self._check(rows)
            if fault == "unknown_before":
                raise OutcomeUnknownError("timed out", request=None)
            self._apply(kind, rows)
            if self.gate is not None:
                await self.gate.wait()
            if fault == "unknown_after":
                raise OutcomeUnknownError("connection reset after sending", request=None)
        finally:
            self.active -= 1

    def _fault_before(self, fault: str | None) -> None:
        if fault == "429":
            raise RateLimitedError(429, "slow down", code="TOO_MANY_REQUESTS", retry_after=0.0)
        if fault == "429_long":
            raise RateLimitedError(429, "slow down", code="TOO_MANY_REQUESTS", retry_after=60.0)
        if fault == "503":
            raise ServerError(503, "unavailable")
        if fault == "connect":
            raise ConnectError("connection refused")
        if fault == "auth":
            raise AuthenticationError(401, "bad key", code="UNAUTHENTICATED")

    def _check(self, rows: list[tuple[str, str, int, bool]]) -> None:
        for index, (pid, vid, amount, preorder) in enumerate(rows):
            data: dict[str, Any] = {"index": index} if self.hints else {}
            have = self.quantities.get((pid, vid))
            if have is None:
                raise NotFoundError(404, f"no variant {vid}", code="NOT_FOUND", data=data)
            if have + amount < 0 and not preorder:
                raise PreconditionFailedError(
                    428, "not enough stock", code="INSUFFICIENT_INVENTORY", data=data
                )

    def _apply(self, kind: str, rows: list[tuple[str, str, int, bool]]) -> None:
        for pid, vid, amount, _ in rows:
            self.quantities[(pid, vid)] += amount
        self.applied.append((kind, rows))


def _id(entry: IncrementData | DecrementData) -> str:
    value = entry.product_id if isinstance(entry.product_id, str) else entry.inventory_id
    assert isinstance(value, str)
    return value


@pytest.fixture
def fake() -> FakeClient:
    """A fake client over 10 products x 20 variants with 1000 units each."""
    client = FakeClient()
    client.seed(10, 20)
    return client


@pytest.fixture
def variants() -> list[str]:
    """GUID variant ids."""
    return VARIANTS


@pytest.fixture
def fake_factory() -> type[FakeClient]:
    """The fake client class, for tests that seed their own catalog."""
    return FakeClient
