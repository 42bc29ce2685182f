"""After a crash, resolve the rows of witnessed requests that were on the wire.

A run with a witness journals each request's witness entry (:class:`~wixinv_async.outcomes.
WitnessMark`: the slot's variant, the step, the quantity expected before it, the slot's
unconfirmed steps) in the same transaction as its lines. When a run ends without their
outcome (``kill -9``, a power cut), only each slot's last request can have lines still
``sent``. The next run, before sending anything on the witness, waits the settle delay (the
killed run's requests may still be in the server's hands: the kill is the moment its client
gave up, and it is no later than now), reads the witness once and resolves each such request
by :func:`~wixinv_async.core.witness.resolve_sent`:

================================  ==========================================================
the read                          its lines
================================  ==========================================================
moved by exactly the step         ``committed``, code ``COMMITTED_BY_WITNESS``: skipped
unchanged                         ``not_applied``, code ``NOT_APPLIED``: sent once more now
anything else, or an earlier      ``in_doubt`` with the reason: listed in the in-doubt file,
ambiguous send of its lines       never resent unless ``--retry-in-doubt``
================================  ==========================================================

If the witness cannot be read the run stops (a configuration error: nothing was sent, and a
rerun tries again); sending first would move the witness and make the read meaningless.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from ..adjuster import Witness
from ..adjuster._witness import WitnessReader
from ..core.witness import Resolution, resolve_sent
from ..errors import ConfigurationError, WixInventoryError
from .journal import NOT_APPLIED, Journal, WitnessedSend

__all__ = ["resolve_in_flight"]

logger = logging.getLogger(__name__)

Verdict = tuple[str, str, str]
"""A line's journal state, code and message."""


async def resolve_in_flight(
    reader: WitnessReader, journal: Journal, witness: Witness
) -> Counter[str]:
    """Resolve the rows an earlier run left on the wire on ``witness``'s slots; returns how
    many rows ended in each journal state."""
    sends = journal.witnessed_in_flight(witness.product_id)
    if not sends:
        return Counter()
    logger.info(
        "%d witnessed request(s) were on the wire when the last run ended: reading the "
        "witness in %.1f s",
        len(sends),
        witness.settle,
    )
    await asyncio.sleep(witness.settle)
    variants = sorted({send.mark.variant_id for send in sends})
    try:
        item = await reader.get_inventory_variants(
            product_id=witness.product_id, variant_ids=variants
        )
    except WixInventoryError as exc:
        raise ConfigurationError(
            f"cannot read the witness {witness.product_id} to resolve the {len(sends)} "
            f"request(s) the last run left on the wire ({exc}); run again once the site "
            "answers (or without --witness: their rows then stay in doubt)"
        ) from None
    quantities = {v.variant_id: v.quantity for v in item.variants}
    counts: Counter[str] = Counter()
    for send in sends:
        state, code, message = _verdict(send, quantities.get(send.mark.variant_id))
        journal.record_outcomes_now((line, state, code, message) for line in send.lines)
        counts[state] += len(send.lines)
        logger.info("request %d (%d rows): %s by witness", send.batch, len(send.lines), code)
    return counts


def _verdict(send: WitnessedSend, quantity: int | None) -> Verdict:
    why = "on the wire when the last run ended"
    if send.maybe_applied:
        return "in_doubt", "OUTCOME_UNKNOWN", f"{why}; an earlier send may have applied it"
    if quantity is None:
        return "in_doubt", "OUTCOME_UNKNOWN", f"{why}; the witness variant is missing"
    mark = send.mark
    read = resolve_sent(mark.expected, mark.suspects, mark.step, quantity)
    if read.resolution is Resolution.COMMITTED:
        return "committed", "COMMITTED_BY_WITNESS", f"{why}; applied, resolved by witness"
    if read.resolution is Resolution.NOT_APPLIED:
        return NOT_APPLIED, "NOT_APPLIED", f"{why}; not applied (resolved by witness): sent again"
    return "in_doubt", "OUTCOME_UNKNOWN", f"{why}; unresolved by witness: {read.reason}"
