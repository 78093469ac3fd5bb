"""The private Apache Kafka that tests, benchmarks and `madina up --kafka apache` start."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from madina.devservers import apache_kafka
from madina.devservers.apache_kafka import ApacheKafkaCluster, KafkaUnavailable
from madina.devservers.ports import free_port


def test_a_node_formats_with_any_cluster_id_and_keeps_its_data_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One random id in 64 starts with "-", which Kafka's argument parser took for an option.
    monkeypatch.setattr(apache_kafka, "_cluster_id", lambda: "-zm51EbGSUOIw53hdq57Zg")
    port = free_port()
    try:
        cluster = ApacheKafkaCluster.start(tmp_path, nodes=1, ports=[port])
    except KafkaUnavailable as error:
        pytest.skip(f"Apache Kafka not available: {error}")
    try:
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
        producer.send("kept", b"before restart").get(30)
        producer.close()
    finally:
        cluster.stop()

    # `madina up --kafka apache` starts the same folder again: no new format, the data is there.
    cluster = ApacheKafkaCluster.start(tmp_path, nodes=1, ports=[port])
    try:
        consumer = KafkaConsumer(
            "kept", bootstrap_servers=cluster.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10000
        )
        assert [record.value for record in consumer] == [b"before restart"]
        consumer.close()
    finally:
        cluster.stop()
