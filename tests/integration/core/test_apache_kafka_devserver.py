"""The private Apache Kafka that tests, benchmarks and `madina up --kafka apache` start."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

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
        # Read up to the end offset rather than until the consumer has been idle a while: as
        # strong (exactly these records) without the idle wait.
        consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, auto_offset_reset="earliest")
        partition = TopicPartition("kept", 0)
        consumer.assign([partition])
        end = consumer.end_offsets([partition])[partition]
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while consumer.position(partition) < end and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values += [record.value for record in records]
        assert consumer.partitions_for_topic("kept") == {0}
        assert values == [b"before restart"]
        consumer.close()
    finally:
        cluster.stop()
