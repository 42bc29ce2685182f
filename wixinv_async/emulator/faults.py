"""Fault injection: a :class:`FaultPlan` value and the seeded injector that draws from it.

Each request to an endpoint draws one uniform number from the plan's seeded generator and
walks the fault probabilities in :data:`FAULT_KINDS` order, so the same plan and the same
sequence of requests give the same faults. Latency (with jitter) is added to every request
the rule covers. Pure: no clock, no asyncio; the server performs what :meth:`decide` returns.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, NamedTuple

__all__ = [
    "AFTER_APPLY",
    "APPLIED_LATE",
    "ENDPOINTS",
    "FAULT_KINDS",
    "Fault",
    "FaultInjector",
    "FaultPlan",
    "FaultRule",
    "ItemFaults",
]

ENDPOINTS: Final = (
    "queryInventory",
    "getInventoryVariants",
    "updateInventoryVariants",
    "decrementInventory",
    "incrementInventory",
    "getCatalogVersion",
    "bulkDecrementInventoryItems",
    "bulkIncrementInventoryItems",
    "bulkDecrementInventoryItemsByVariantAndLocation",
    "bulkIncrementInventoryItemsByVariantAndLocation",
    "getInventoryItem",
    "updateInventoryItem",
    "bulkUpdateInventoryItems",
    "bulkUpdateInventoryItemsByFilter",
    "deleteInventoryItem",
    "queryInventoryItems",
    "searchInventoryItems",
    "oauthToken",
)
"""Endpoint names (the official SDKs' method names, V1 then V3; ``oauthToken`` for ``POST
/oauth2/token``). A plan's ``"*"`` rule covers every endpoint but ``oauthToken``, which must
be named."""

FAULT_KINDS: Final = (
    "rate_limited",
    "error_500",
    "error_503",
    "reset_before",
    "error_502",
    "error_504",
    "reset_after",
    "stall_after",
    "late_504",
    "late_reset",
    "late_stall",
)
"""Every kind: 429, 500 and 503 and a connection reset before applying; 502, 504, a reset and a
stall (until the client gives up) after applying; and the ``late_`` kinds, which answer 504,
reset or stall WITHOUT applying and apply the request later (``FaultPlan.late_seconds`` after
that answer, when the client has given up). New kinds are appended, so an older plan draws the
same faults."""

AFTER_APPLY: Final = frozenset({"error_502", "error_504", "reset_after", "stall_after"})
APPLIED_LATE: Final = frozenset({"late_504", "late_reset", "late_stall"})


@dataclass(frozen=True, slots=True)
class FaultRule:
    """What happens to requests of one endpoint: latency plus one probability per fault kind.

    ``latency_ms`` is added to every request, give or take a uniform ``jitter_ms``. The
    probabilities are of one draw per request, so they must sum to at most 1.

    ``item_error`` and ``item_undetailed`` are per entry of a V3 bulk call that reached the
    store (a draw each, in entry order, after the request's draw): the entry is refused with
    ``INTERNAL_ERROR`` and not applied, with its result (``item_error``) or without one,
    counted in ``undetailedFailures`` (``item_undetailed``). They must sum to at most 1.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limited: float = 0.0
    error_500: float = 0.0
    error_503: float = 0.0
    reset_before: float = 0.0
    error_502: float = 0.0
    error_504: float = 0.0
    reset_after: float = 0.0
    stall_after: float = 0.0
    late_504: float = 0.0
    late_reset: float = 0.0
    late_stall: float = 0.0
    item_error: float = 0.0
    item_undetailed: float = 0.0

    def __post_init__(self) -> None:
        for name in ("latency_ms", "jitter_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value!r}: must be a finite number >= 0")
        total = 0.0
        for kind in FAULT_KINDS:
            p = getattr(self, kind)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{kind}={p!r}: a probability must be from 0 to 1")
            total += p
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities sum to {total}: must be at most 1")
        for kind in ("item_error", "item_undetailed"):
            p = getattr(self, kind)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{kind}={p!r}: a probability must be from 0 to 1")
        if self.item_error + self.item_undetailed > 1.0 + 1e-9:
            raise ValueError("item_error + item_undetailed must be at most 1")

    def probability(self, kind: str) -> float:
        value: float = getattr(self, kind)
        return value


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Faults by endpoint name (or ``"*"``), drawn from ``seed``.

    ``stall_seconds`` bounds a stall (the client is expected to time out first);
    ``retry_after`` is the ``Retry-After`` sent with an injected 429 (``None``: no header).
    A ``late_`` fault applies its request ``late_seconds`` plus a uniform draw from 0 to
    ``late_jitter`` seconds after its ambiguous answer (the delay is drawn with the fault, so a
    seed gives the same delays).
    """

    endpoints: Mapping[str, FaultRule] = field(default_factory=dict)
    seed: int = 0
    stall_seconds: float = 30.0
    retry_after: int | None = 1
    late_seconds: float = 1.0
    late_jitter: float = 0.0

    def __post_init__(self) -> None:
        for name in self.endpoints:
            if name != "*" and name not in ENDPOINTS:
                raise ValueError(f"endpoint {name!r}: must be '*' or one of {', '.join(ENDPOINTS)}")
        if not (math.isfinite(self.stall_seconds) and self.stall_seconds >= 0):
            raise ValueError(f"stall_seconds={self.stall_seconds!r}: must be >= 0")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"retry_after={self.retry_after!r}: must be >= 0 or None")
        for name in ("late_seconds", "late_jitter"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value!r}: must be a finite number >= 0")

    def rule(self, endpoint: str) -> FaultRule | None:
        rule = self.endpoints.get(endpoint)
        if rule is None and endpoint != "oauthToken":
            rule = self.endpoints.get("*")
        return rule

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        """From ``{"seed", "stall_seconds", "retry_after", "endpoints": {name: {rule}}}``."""
        known = {"seed", "stall_seconds", "retry_after", "late_seconds", "late_jitter", "endpoints"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault plan keys {sorted(unknown)}: use {sorted(known)}")
        rule_fields = {f.name for f in fields(FaultRule)}
        endpoints: dict[str, FaultRule] = {}
        for name, rule in dict(data.get("endpoints") or {}).items():
            if not isinstance(rule, Mapping) or set(rule) - rule_fields:
                raise ValueError(
                    f"endpoint {name!r}: a rule is an object with keys {sorted(rule_fields)}"
                )
            endpoints[name] = FaultRule(**{k: float(v) for k, v in rule.items()})
        return cls(
            endpoints=endpoints,
            seed=int(data.get("seed", 0)),
            stall_seconds=float(data.get("stall_seconds", 30.0)),
            retry_after=None
            if data.get("retry_after", 1) is None
            else int(data.get("retry_after", 1)),
            late_seconds=float(data.get("late_seconds", 1.0)),
            late_jitter=float(data.get("late_jitter", 0.0)),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> FaultPlan:
        """Read a JSON plan (the shape of :meth:`from_dict`)."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        endpoints = {
            name: {
                f.name: getattr(rule, f.name) for f in fields(FaultRule) if getattr(rule, f.name)
            }
            for name, rule in self.endpoints.items()
        }
        return {
            "seed": self.seed,
            "stall_seconds": self.stall_seconds,
            "retry_after": self.retry_after,
            "late_seconds": self.late_seconds,
            "late_jitter": self.late_jitter,
            "endpoints": endpoints,
        }


class Fault(NamedTuple):
    """What to do to one request: sleep ``delay`` seconds first, then ``kind`` (or nothing);
    a ``late_`` kind applies the request ``late`` seconds after its answer."""

    kind: str | None
    delay: float
    late: float = 0.0


_NO_FAULT: Final = Fault(None, 0.0)


class FaultInjector:
    """Draws faults for a plan, deterministically for its seed (or ``seed``, which overrides
    it: each site of a shared plan draws from its own generator) and the request order."""

    __slots__ = ("_rng", "plan")

    def __init__(self, plan: FaultPlan, *, seed: int | None = None) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed if seed is None else seed)

    def __repr__(self) -> str:
        return f"FaultInjector(endpoints={sorted(self.plan.endpoints)}, seed={self.plan.seed})"

    def decide(self, endpoint: str) -> Fault:
        rule = self.plan.rule(endpoint)
        if rule is None:
            return _NO_FAULT
        rng = self._rng
        delay = 0.0
        if rule.latency_ms or rule.jitter_ms:
            jitter = rng.uniform(-rule.jitter_ms, rule.jitter_ms) if rule.jitter_ms else 0.0
            delay = max(0.0, rule.latency_ms + jitter) / 1000
        draw = rng.random()
        for kind in FAULT_KINDS:
            draw -= rule.probability(kind)
            if draw < 0:
                return Fault(kind, delay, self._late(kind))
        return Fault(None, delay)

    def _late(self, kind: str) -> float:
        if kind not in APPLIED_LATE:
            return 0.0
        plan = self.plan
        jitter = self._rng.uniform(0, plan.late_jitter) if plan.late_jitter else 0.0
        return plan.late_seconds + jitter

    def item_faults(self, endpoint: str) -> ItemFaults | None:
        """The per-entry draws for one V3 bulk request, or ``None`` when its rule has none."""
        rule = self.plan.rule(endpoint)
        if rule is None or not (rule.item_error or rule.item_undetailed):
            return None
        return ItemFaults(self._rng, rule.item_error, rule.item_undetailed)


class ItemFaults:
    """Draws one entry's fault per call, from the injector's generator (so a plan, a seed and
    the order of requests and entries give the same per-item failures)."""

    __slots__ = ("_error", "_rng", "_undetailed")

    def __init__(self, rng: random.Random, error: float, undetailed: float) -> None:
        self._rng, self._error, self._undetailed = rng, error, undetailed

    def __call__(self) -> str | None:
        draw = self._rng.random()
        if draw < self._error:
            return "error"
        if draw < self._error + self._undetailed:
            return "undetailed"
        return None
