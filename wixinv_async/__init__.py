"""wixinv_async: move Wix Stores inventory at high throughput, safely.

Public names are listed in ``__all__``; a test keeps that list honest.
"""

from __future__ import annotations

from .errors import (
    AdjusterClosed,
    AdjusterError,
    AdjusterFull,
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ConnectError,
    InvalidInputError,
    NotFoundError,
    OffsetLimitError,
    OutcomeUnknownError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    WebhookError,
    WebhookVerificationError,
    WixInventoryError,
)
from .models import DEFAULT_VARIANT_ID, DecrementData, IncrementData, InventoryItem

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_VARIANT_ID",
    "AdjusterClosed",
    "AdjusterError",
    "AdjusterFull",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "ConnectError",
    "DecrementData",
    "IncrementData",
    "InvalidInputError",
    "InventoryItem",
    "NotFoundError",
    "OffsetLimitError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServerError",
    "TransportError",
    "WebhookError",
    "WebhookVerificationError",
    "WixInventoryError",
    "__version__",
]
