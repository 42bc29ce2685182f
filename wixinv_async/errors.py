"""Every exception wixinv_async raises, under one base class.

::

    WixInventoryError
    ├── InvalidInputError (ValueError)        bad input caught before anything was sent
    ├── ConfigurationError (ValueError)       bad settings or credentials setup
    ├── TransportError                        the HTTP exchange itself failed
    │   ├── ConnectError (ConnectionError)    could not connect: the request was never sent
    │   ├── ConnectionLostError (ConnectionError)  the connection failed after sending began
    │   └── RequestTimeoutError (TimeoutError)
    ├── OutcomeUnknownError                   a write may or may not have been applied
    ├── LateSendError                         not sent: its send deadline had passed
    ├── ApiError                              the server answered with an error status
    │   ├── BadRequestError (400)
    │   ├── AuthenticationError (401)
    │   ├── PermissionDeniedError (403)
    │   ├── NotFoundError (404)
    │   ├── ConflictError (409)
    │   │   └── RevisionConflictError         V3 update: the item changed since it was read
    │   ├── PreconditionFailedError (428)     insufficient inventory, untracked item, ...
    │   ├── WrongCatalogError (428)           the site runs the other catalog (V1 / V3)
    │   ├── RateLimitedError (429)
    │   └── ServerError (5xx)
    ├── AdjusterError
    │   ├── AdjusterFull                      submit_nowait with max_pending keys pending
    │   └── AdjusterClosed                    submit after close
    ├── OffsetLimitError (ValueError)         offset paging past 10,000 items: use the crawler
    ├── FleetError                            the fleet's Redis refused a step (wixinv_async.fleet)
    │   └── FleetUnavailable (ConnectionError)    Redis unreachable, or the connection died
    └── WebhookError
        └── WebhookVerificationError (ValueError)

Third-party exceptions (aiohttp, asyncio timeouts, msgspec) are translated at the transport
boundary and never escape it; redis-py's at the fleet's (``fleet/_boundary.py``). No exception
message or repr contains a secret.

Every error the client raises says whether its request may have been applied: ``applied`` is
:attr:`Applied.NO` or :attr:`Applied.MAYBE` (stamped by the client from the one failure
taxonomy, ``core/failures.py``; ``None`` on an error nobody stamped). Every exception pickles
with its fields (for multiprocessing and task queues); ``__cause__`` and the traceback do not
travel, as with any pickled exception.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import FieldViolation

__all__ = [
    "AdjusterClosed",
    "AdjusterError",
    "AdjusterFull",
    "ApiError",
    "Applied",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "ConnectError",
    "ConnectionLostError",
    "FleetError",
    "FleetUnavailable",
    "InvalidInputError",
    "LateSendError",
    "NotFoundError",
    "OffsetLimitError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RateLimitedError",
    "RequestTimeoutError",
    "RevisionConflictError",
    "ServerError",
    "TransportError",
    "WebhookError",
    "WebhookVerificationError",
    "WixInventoryError",
    "WrongCatalogError",
    "api_error_for_status",
]


class Applied(enum.Enum):
    """Whether a failed request may have been applied."""

    NO = "no"
    """Provably not applied (refused, never sent, rate limited): sending it again is safe."""
    MAYBE = "maybe"
    """It may have been applied (a timeout after sending, a lost connection, a 5xx but 503):
    reconcile before sending it again."""


def _restore(cls: type[WixInventoryError], args: tuple[Any, ...]) -> WixInventoryError:
    """Unpickle an error without calling its ``__init__`` (whose keywords are in its state)."""
    error = cls.__new__(cls, *args)
    error.args = args  # OSError's subclasses leave args to an __init__ we do not call
    return error


class WixInventoryError(Exception):
    """Base class of every exception raised by wixinv_async."""

    applied: Applied | None = None
    """Whether the request may have been applied (see the module docstring)."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduces to cls(*args), which fails for keyword-only fields.
        return (_restore, (type(self), self.args), dict(self.__dict__))


class InvalidInputError(WixInventoryError, ValueError):
    """Input that the API would refuse, caught before anything was sent.

    ``index`` is the position of the offending entry in a batch (``None`` for a scalar
    argument), ``field`` the wire name of the field and ``value`` what was given.
    """

    applied = Applied.NO

    def __init__(self, field: str, value: object, reason: str, *, index: int | None = None):
        self.field = field
        self.value = value
        self.reason = reason
        self.index = index
        where = f"entry {index}: " if index is not None else ""
        super().__init__(f"{where}{field}={value!r}: {reason}")


class ConfigurationError(WixInventoryError, ValueError):
    """Settings that cannot work (a bad rate, missing credentials, a closed client, ...)."""

    applied = Applied.NO


class TransportError(WixInventoryError):
    """The HTTP exchange failed without an HTTP response."""


class ConnectError(TransportError, ConnectionError):
    """No connection could be made, or no app token fetched for the request, so the request
    was provably never sent."""


class ConnectionLostError(TransportError, ConnectionError):
    """The connection was reset or closed after the request may have been sent.

    The server may have processed the request: for writes it surfaces as
    :class:`OutcomeUnknownError`. ``status`` and ``headers``: the answer's status line and
    headers, when they arrived before the body was lost (``None`` and ``{}`` otherwise); the
    client then lets that status decide (a 2xx write was applied, a 4xx was refused).
    """

    def __init__(
        self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None
    ):
        self.status = status
        self.headers = headers or {}
        super().__init__(message)


class RequestTimeoutError(TransportError, TimeoutError):
    """No response arrived in time.

    ``sent`` tells whether the request may have reached the server: a timeout while
    connecting is safe to retry, one after sending is not (for writes it surfaces as
    :class:`OutcomeUnknownError`).
    """

    def __init__(self, message: str, *, sent: bool):
        self.sent = sent
        super().__init__(message)


class OutcomeUnknownError(WixInventoryError):
    """A non-idempotent write failed after its body may have been processed.

    The server may or may not have applied it: the caller must reconcile before retrying.
    ``request`` is the request that was sent (method, path, body; never headers, which
    carry secrets) and ``__cause__`` the failure that made the outcome unknown.
    """

    def __init__(self, message: str, *, request: Any):
        self.request = request
        super().__init__(message)


class LateSendError(WixInventoryError):
    """A request was not sent because the deadline its caller gave (``not_after``) had passed:
    the process stalled before the request could leave, or a retry's wait would have ended
    past it. Nothing was applied: the attempt was not made, and the client retries a write
    only after attempts that provably were not applied. ``late_by``: seconds past the
    deadline when it was checked (for a retry not waited for, how far past it the wait would
    have ended); ``attempt``: the attempt that was not made (1: the first)."""

    applied = Applied.NO

    def __init__(self, message: str, *, late_by: float, attempt: int):
        self.late_by = late_by
        self.attempt = attempt
        super().__init__(message)


class ApiError(WixInventoryError):
    """The server answered with an error status.

    Carries the HTTP ``status``, Wix's ``code`` (``applicationError.code`` or a status name),
    its ``message``, the ``field_violations`` of a validation error and ``request_id``
    (``x-wix-request-id``), which Wix support asks for.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        field_violations: Sequence[FieldViolation] = (),
        request_id: str | None = None,
        data: Any = None,
    ):
        self.status = status
        self.message = message
        self.code = code
        self.field_violations = tuple(field_violations)
        self.request_id = request_id
        self.data = data
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.code:
            parts.append(self.code)
        if self.message:
            parts.append(self.message)
        for violation in self.field_violations:
            detail = violation.description if isinstance(violation.description, str) else ""
            parts.append(f"{violation.field}: {detail}".rstrip(": "))
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        return " | ".join(parts)


class BadRequestError(ApiError):
    """400: the request was refused as invalid; nothing was applied."""


class AuthenticationError(ApiError):
    """401: missing, wrong or expired credentials."""


class PermissionDeniedError(ApiError):
    """403: the credentials may not do this (Wix also throttles some calls with 403)."""


class NotFoundError(ApiError):
    """404: an unknown product, inventory item or variant."""


class ConflictError(ApiError):
    """409: the request conflicts with the current state."""


class PreconditionFailedError(ApiError):
    """428: e.g. ``INSUFFICIENT_INVENTORY``, ``INVENTORY_QUANTITY_NOT_TRACKED``."""


class RevisionConflictError(ConflictError):
    """409 from a Catalog V3 update: the item's ``revision`` is no longer the one sent, so
    another writer changed it since it was read. Nothing was applied; read the item again
    and decide anew (``InventoryClient.set_inventory_quantity`` does). ``inventory_item_id``
    and ``revision`` (the one sent) say which write lost."""

    def __init__(
        self,
        *args: Any,
        inventory_item_id: str | None = None,
        revision: str | None = None,
        **kwargs: Any,
    ):
        self.inventory_item_id = inventory_item_id
        self.revision = revision
        super().__init__(*args, **kwargs)


class WrongCatalogError(ApiError):
    """428 with a code saying the site runs the other catalog: a V3 call on a V1 site
    (``CATALOG_V1_SITE_CALLING_CATALOG_V3_API``), a V1 call on a V3 site
    (``CATALOG_V3_SITE_CALLING_CATALOG_V1_API``), or a site being moved to V3
    (``CATALOG_V3_SITE_PROVISIONING``).

    The request was refused whole: nothing was applied, so it is safe to send again through
    the other catalog's calls (``retriable`` is always true). ``site_catalog`` is the
    catalog the code says the site runs (a ``CatalogVersion``), or ``None`` when it does not
    say. The client forgets its cached catalog version when it sees one. Not a
    :class:`PreconditionFailedError`: that one refuses an entry, this one the whole call.
    """

    retriable = True

    def __init__(self, *args: Any, site_catalog: Any = None, **kwargs: Any):
        self.site_catalog = site_catalog
        super().__init__(*args, **kwargs)


class RateLimitedError(ApiError):
    """429: too many requests; ``retry_after`` in seconds when the server said."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any):
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class ServerError(ApiError):
    """5xx: the server failed."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    428: PreconditionFailedError,
    429: RateLimitedError,
}


def api_error_for_status(status: int) -> type[ApiError]:
    """The :class:`ApiError` subclass for an HTTP status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, ApiError)


class AdjusterError(WixInventoryError):
    """Base of the adjuster's own errors."""


class AdjusterFull(AdjusterError):
    """``submit_nowait`` for a new key while ``max_pending`` keys are pending."""


class AdjusterClosed(AdjusterError):
    """A submit after the adjuster was closed."""


class OffsetLimitError(WixInventoryError, ValueError):
    """Offset paging past the 10,000 items Wix serves by offset; crawl by numericId instead
    (:func:`wixinv_async.crawl_inventory`)."""


class FleetError(WixInventoryError):
    """The fleet's Redis failed or refused a step (``wixinv_async.fleet``).

    ``operation`` names the step (``"submit"``, ``"outcome"``, ``"worker start"``, ...),
    ``server`` the Redis it spoke to as ``host:port/db`` (never the URL's password) and
    ``reason`` what Redis or the connection said. ``applied`` is :attr:`Applied.MAYBE` for a
    write that may have landed (``submit``: submit again with the same event id, which
    applies once) and :attr:`Applied.NO` for a read or a step that wrote nothing.
    """

    def __init__(self, operation: str, server: str, reason: str, *, applied: Applied):
        self.operation = operation
        self.server = server
        self.reason = reason
        self.applied = applied
        super().__init__(f"fleet {operation} on Redis {server}: {reason}")


class FleetUnavailable(FleetError, ConnectionError):
    """Redis could not be reached, or the connection died under the command (a server
    restart, a network cut), and the one retry a safe step gets failed too."""


class WebhookError(WixInventoryError):
    """Base of webhook errors."""


class WebhookVerificationError(WebhookError, ValueError):
    """A webhook body that is not a valid, correctly signed, unexpired Wix event.

    ``reason`` names the failed check, so a receiver can choose its answer: ``"malformed"``
    (not a JWT, or bad JSON at any of its levels), ``"algorithm"`` (anything but RS256),
    ``"signature"`` (a wrong key or a tampered token) or ``"expired"`` (past ``exp``, or none).
    """

    def __init__(self, message: str, *, reason: str = "malformed"):
        self.reason = reason
        super().__init__(message)
