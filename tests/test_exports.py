"""``__all__`` is sorted, complete and importable (after httpx's test_exported_members)."""

from __future__ import annotations

import wixinv_async


def test_all_is_sorted_and_importable() -> None:
    """Every name in __all__ exists, and the list is sorted."""
    names = wixinv_async.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n)) or names == sorted(names)
    for name in names:
        assert hasattr(wixinv_async, name), name


def test_every_public_attribute_is_exported() -> None:
    """No public class or function of the package is missing from __all__."""
    public = {
        name
        for name, value in vars(wixinv_async).items()
        if not name.startswith("_") and (isinstance(value, type) or callable(value))
    }
    assert public <= set(wixinv_async.__all__)
