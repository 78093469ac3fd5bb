"""Benchmarks of the operations center (``python -m bench.operations [--quick]``)."""
