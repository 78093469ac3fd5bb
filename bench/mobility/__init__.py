"""Benchmark of the mobility pipeline: trip updates -> delay detection -> alerts (see run.py)."""
