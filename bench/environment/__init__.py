"""Benchmark of the environment pipeline, faust processor beside a plain aiokafka loop:
``python -m bench.environment [--quick]``."""
