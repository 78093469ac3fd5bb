"""Prometheus metrics shared by every service, and ways to expose them.

HTTP services mount :func:`metrics_response` at ``/metrics``; processes without HTTP (stream
processors, the broker) call :func:`start_metrics_server` on their own port.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest, start_http_server


@dataclass(frozen=True)
class BusMetrics:
    produced: Counter
    consumed: Counter
    dead_lettered: Counter
    handle_seconds: Histogram


BUS_METRICS = BusMetrics(
    produced=Counter("madina_bus_records_produced_total", "Records produced", ["topic"]),
    consumed=Counter("madina_bus_records_consumed_total", "Records consumed", ["topic"]),
    dead_lettered=Counter(
        "madina_bus_records_dead_lettered_total", "Records sent to a dead-letter topic", ["topic", "reason"]
    ),
    handle_seconds=Histogram(
        "madina_bus_handle_seconds", "Time spent handling one consumed batch", ["topic"]
    ),
)


def metrics_response() -> tuple[bytes, str]:
    """Body and content type of a /metrics scrape."""
    return generate_latest(), CONTENT_TYPE_LATEST


def start_metrics_server(port: int, host: str = "127.0.0.1") -> None:
    start_http_server(port, addr=host)
