"""The sans-IO core: pure logic with no event loop, clock or randomness of its own.

Every function here takes ``now`` and ``rng`` as arguments where it needs them and returns what
must happen next; the async drivers around it only wait and do I/O.
"""
