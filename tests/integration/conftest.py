"""Integration fixtures: Kafka brokers reached over TCP.

- ``kafka_bootstrap``: the embedded broker as a separate process (`madina broker --port 0
  --memory`), so tests exercise the same bytes on the wire as production; or any Kafka named by
  MADINA_TEST_KAFKA_BOOTSTRAP.
- ``apache_kafka``: Apache Kafka itself (the pinned release from Maven Central, KRaft, one node on
  loopback), started once per session on first use and shared (in a parallel run, once per
  worker: each worker is a session with its own free ports and tmp dirs, and the artifacts' download
  is behind a file lock). Where Java, Maven or the artifacts cannot be had, the tests that need it
  skip and say why.
- ``broker``: a broker of the test's own (a processor's topics and consumer group have fixed
  names), embedded or a fresh Apache Kafka node; see tests/support/processor_kit.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from madina.devservers.apache_kafka import ApacheKafkaCluster, KafkaUnavailable
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


@pytest.fixture(scope="session")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafkaCluster]:
    """One Apache Kafka node for the session (about 10 s to start)."""
    try:
        cluster = ApacheKafkaCluster.start(tmp_path_factory.mktemp("apache-kafka"), nodes=1)
    except KafkaUnavailable as error:
        pytest.skip(f"Apache Kafka not available: {error}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of the test's own: a processor's topics and consumer group have fixed names.

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
