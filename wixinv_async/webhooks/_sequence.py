"""Stale V3 events: the highest ``entityEventSequence`` handled per entity."""

from __future__ import annotations

from collections import OrderedDict

from ..errors import ConfigurationError
from ..settings import is_int
from ._events import InventoryItemV3Event


class EntitySequences:
    """Says whether a V3 event is stale: older than one already handled for its entity.

    Wix delivers events out of order (retries for 48 hours), and each V3 event carries
    ``entityEventSequence``, which grows with every change of its entity. Wix's advice: keep
    the latest sequence per entity and ignore an event with a lower one. This keeps it, pure
    and bounded: past ``max_entities`` the entity updated least recently is forgotten (its
    next event counts as current). An equal sequence is not stale (Wix only promises that a
    later change has a higher number, and ``updated`` and ``updated_with_reason`` report the
    same change); an event without a sequence is never stale.

    Keep one per receiver and call :meth:`accept` in the callback, before acting on the
    event::

        sequences = EntitySequences()

        async def on_event(event):
            if isinstance(event, InventoryItemV3Event) and not sequences.accept(event):
                return  # stale: a newer state of this item was handled already
            ...
    """

    __slots__ = ("_latest", "_max_entities")

    def __init__(self, *, max_entities: int = 100_000):
        if not is_int(max_entities) or max_entities < 1:
            raise ConfigurationError(f"max_entities={max_entities!r}: must be an int >= 1")
        self._max_entities = max_entities
        self._latest: OrderedDict[str, int] = OrderedDict()

    def is_stale(self, entity_id: str, sequence: int | None) -> bool:
        """Whether ``sequence`` is lower than the highest recorded for ``entity_id``."""
        latest = self._latest.get(entity_id)
        return sequence is not None and latest is not None and sequence < latest

    def observe(self, entity_id: str, sequence: int | None) -> bool:
        """Record ``sequence`` for ``entity_id``: ``True`` if current (handle the event),
        ``False`` if stale (drop it; nothing is recorded)."""
        if self.is_stale(entity_id, sequence):
            return False
        if sequence is not None:
            self._latest[entity_id] = sequence
            self._latest.move_to_end(entity_id)
            while len(self._latest) > self._max_entities:
                self._latest.popitem(last=False)
        return True

    def accept(self, event: InventoryItemV3Event) -> bool:
        """:meth:`observe` of an event's entity id and sequence."""
        return self.observe(event.entity_id, event.entity_event_sequence)

    def latest(self, entity_id: str) -> int | None:
        """The highest sequence recorded for ``entity_id``, if any."""
        return self._latest.get(entity_id)

    def __len__(self) -> int:
        return len(self._latest)

    def __repr__(self) -> str:
        return f"EntitySequences(max_entities={self._max_entities}, entities={len(self._latest)})"
