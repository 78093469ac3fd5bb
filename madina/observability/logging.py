"""JSON logs on stderr, one object per line, so a log shipper needs no parsing rules.

Every record carries the service name; extra fields passed with ``logger.info(..., extra={...})``
become keys of the object.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

_CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(service)s %(name)s: %(message)s"


class _ServiceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route every logger (ours, faust's, uvicorn's, grpc's) through one handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ServiceFilter(service))
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_CONSOLE_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty client libraries log every reconnect and rebalance step at INFO.
    for noisy in ("aiokafka", "kafka", "faust.transport", "mode", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
