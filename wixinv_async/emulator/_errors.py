"""Wix error bodies, raised by the store and turned into responses by the server.

The body shapes are Wix's (``wix-api-notes.md``): ``{"message", "details": {"applicationError":
{"code", "description", "data"}}}`` or ``{"message", "details": {"validationError":
{"fieldViolations": [...]}}}``.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["WixApiError", "application_error", "validation_error"]

_encode = msgspec.json.Encoder().encode


class WixApiError(Exception):
    """An error answer: HTTP ``status`` and the Wix JSON ``body`` (a dict, encoded on demand)."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        super().__init__(f"HTTP {status}: {body.get('message', '')}")

    @property
    def code(self) -> str:
        """The ``applicationError.code``, or ``""`` for a validation error."""
        app = self.body.get("details", {}).get("applicationError", {})
        return str(app.get("code", ""))

    def encode(self) -> bytes:
        """The body as JSON bytes."""
        return _encode(self.body)


def application_error(
    status: int, code: str, description: str, data: dict[str, Any] | None = None
) -> WixApiError:
    """An ``applicationError`` answer, e.g. 428 ``INSUFFICIENT_INVENTORY``."""
    error = {"code": code, "description": description, "data": data or {}}
    return WixApiError(status, {"message": description, "details": {"applicationError": error}})


def validation_error(
    violations: list[tuple[str, str]], *, rule: str = "INVALID_FIELD"
) -> WixApiError:
    """A 400 ``validationError`` naming each ``(field, description)``."""
    field_violations = [
        {"field": field, "description": text, "violatedRule": "OTHER", "ruleName": rule, "data": {}}
        for field, text in violations
    ]
    message = "; ".join(f"{field}: {text}" for field, text in violations)
    body = {
        "message": message,
        "details": {"validationError": {"fieldViolations": field_violations}},
    }
    return WixApiError(400, body)
