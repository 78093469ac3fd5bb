"""Structured logs and Prometheus metrics, set up the same way in every process."""

from madina.observability.logging import configure_logging
from madina.observability.metrics import BUS_METRICS, metrics_response, start_metrics_server

__all__ = ["BUS_METRICS", "configure_logging", "metrics_response", "start_metrics_server"]
