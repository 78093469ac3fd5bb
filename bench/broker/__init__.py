"""Benchmark of the embedded broker: ``python -m bench.broker [--quick]``."""
