"""Benchmarks of the energy service: ``python -m bench.energy.domain`` (pure step function)."""
