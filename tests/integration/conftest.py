"""Integration fixtures: a session-wide Kafka-wire broker reached over TCP.

By default the embedded broker runs as a separate process (`madina broker --port 0 --memory`), so
tests exercise the same bytes on the wire as production. Set MADINA_TEST_KAFKA_BOOTSTRAP to run the
same tests against any real Kafka instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.processes import BrokerProcess


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("MADINA_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = BrokerProcess.start(memory=True, default_partitions=1)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
