"""``python -m wixinv_async``: the same as the ``wixinv-async`` command."""

from .cli import main

raise SystemExit(main())
