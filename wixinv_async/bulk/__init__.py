"""Bulk adjustment: stream a file of deltas through the adjuster, crash-safely."""
