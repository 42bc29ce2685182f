"""DeliveryMemory: duplicates within the window are caught, memory stays bounded."""

from __future__ import annotations

import pytest

from wixinv_async.errors import ConfigurationError
from wixinv_async.webhooks import DeliveryMemory


def test_second_claim_of_a_key_is_a_duplicate() -> None:
    """The first claim handles a delivery; a repeat within the window does not."""
    memory = DeliveryMemory(window=60)
    assert memory.claim("a", now=0.0)
    assert not memory.claim("a", now=30.0)
    assert memory.claim("b", now=30.0)


def test_keys_expire_after_the_window() -> None:
    """A key older than the window is forgotten and handled again."""
    memory = DeliveryMemory(window=60)
    memory.claim("a", now=0.0)
    memory.claim("b", now=50.0)
    assert memory.seen("a", now=59.9)
    assert memory.claim("a", now=60.0)
    assert memory.seen("b", now=60.0)
    assert len(memory) == 2


def test_oldest_keys_are_evicted_past_max_entries() -> None:
    """At most max_entries keys are kept; the oldest go first."""
    memory = DeliveryMemory(window=3600, max_entries=3)
    for i, key in enumerate("abcd"):
        memory.claim(key, now=float(i))
    assert len(memory) == 3
    assert memory.claim("a", now=5.0)
    assert not memory.claim("d", now=5.0)


def test_forget_lets_the_next_delivery_through() -> None:
    """A forgotten key (a failed callback) is handled on its next delivery."""
    memory = DeliveryMemory()
    memory.claim("a", now=0.0)
    memory.forget("a")
    memory.forget("never-seen")
    assert memory.claim("a", now=1.0)


def test_repr_shows_live_state() -> None:
    """repr tells the window, the bound and how many keys are remembered."""
    memory = DeliveryMemory(window=10, max_entries=5)
    memory.claim("a", now=0.0)
    assert repr(memory) == "DeliveryMemory(window=10.0, max_entries=5, remembered=1)"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"window": 0}, "window"),
        ({"window": -1.0}, "window"),
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": True}, "max_entries"),
        ({"max_entries": 2.5}, "max_entries"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], fragment: str) -> None:
    """Settings that cannot work raise ConfigurationError naming the field."""
    with pytest.raises(ConfigurationError, match=fragment):
        DeliveryMemory(**kwargs)  # type: ignore[arg-type]
