"""One give-up budget for a whole bulk run: once the host is taken for gone, nothing goes out.

The first request that gives up connecting (an outcome whose error never reached the site,
after the client's retries and the adjuster's resends) spends it, and so does the ``probe``
(the CLI's: one TCP connection to the host, no request) failing before a resend. After that
every request is refused before the wire (REJECTED retriable: not applied, so the rerun sends
its rows) and the run stops with the error that spent the budget.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ..errors import ConfigurationError, ConnectError, RequestTimeoutError

__all__ = ["GiveUpBudget", "Probe"]

logger = logging.getLogger("wixinv_async.bulk.runner")  # the run's log, under the run's name

Probe = Callable[[], Awaitable[None]]
"""Raises when the host no longer accepts connections."""


class GiveUpBudget:
    """The run's one give-up budget (see the module doc); ``spent_by``: the error that spent it."""

    __slots__ = ("_probe", "spent_by")

    def __init__(self, probe: Probe | None) -> None:
        self._probe = probe
        self.spent_by: BaseException | None = None

    def __repr__(self) -> str:
        return f"<GiveUpBudget spent_by={self.spent_by!r}>"

    async def before_send(self, attempt: int) -> None:
        """Probe the host before a resend (``attempt`` > 1: the site failed it once); raise
        :class:`ConnectError` instead of sending once the budget is spent."""
        if attempt > 1 and self._probe is not None and self.spent_by is None:
            try:
                await self._probe()
            except Exception as exc:
                self._spend(exc)
        if self.spent_by is not None:
            raise ConnectError(f"not sent: the site stopped answering ({self.spent_by})")

    def saw(self, error: BaseException | None) -> None:
        """Spend the budget on an outcome's error that never reached the site (the host is
        gone for every site of the run)."""
        if self.spent_by is None and error is not None and _never_connected(error):
            self._spend(error)

    def _spend(self, error: BaseException) -> None:
        logger.error("the site stopped answering (%s): the run stops", error)
        self.spent_by = error

    def raise_if_spent(self) -> None:
        """Stop the run with why the host was taken for gone."""
        if isinstance(self.spent_by, ConfigurationError):  # the probe's: it names the address
            raise self.spent_by
        if self.spent_by is not None:
            raise ConnectError(
                f"the site stopped answering ({self.spent_by}); the run stopped. Rows not sent "
                "were not applied: run the same command again once the site answers"
            )


def _never_connected(error: BaseException) -> bool:
    """Whether a request gave up without ever reaching the site (an outcome's error is such
    only after every retry and resend): no connection, or none in time."""
    if isinstance(error, RequestTimeoutError):
        return not error.sent
    return isinstance(error, ConnectError)
