"""Fixtures of the environment integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from madina.devservers.apache_kafka import ApacheKafkaCluster, KafkaUnavailable
from tests.support.processes import BrokerProcess


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of the test's own: the processor's topics and consumer group have fixed names.

    The embedded broker by default; ``@pytest.mark.parametrize("broker", ["embedded",
    "apache-kafka"], indirect=True)`` runs a test on a fresh Apache Kafka node too.
    """
    if getattr(request, "param", "embedded") == "apache-kafka":
        try:
            cluster = ApacheKafkaCluster.start(
                Path(tmp_path_factory.mktemp("apache-kafka")),
                nodes=1,
                config={"group.initial.rebalance.delay.ms": "0"},  # as BrokerProcess: see there
            )
        except KafkaUnavailable as error:
            pytest.skip(f"Apache Kafka not available: {error}")
        try:
            yield cluster.bootstrap
        finally:
            cluster.stop()
        return
    process = BrokerProcess.start(memory=True, default_partitions=2)
    try:
        yield process.bootstrap
    finally:
        process.stop()
