"""The emulator's benchmarks (``benchmarks/bench_emulator.py`` runs them): the servers in child
processes, the raw HTTP load generators, and one module per measurement."""
