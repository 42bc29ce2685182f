"""pytest plugin and helpers for testing code that uses wixinv_async (filled by the emulator)."""
