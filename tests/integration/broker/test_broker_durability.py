"""Durability of the embedded broker's own process: kill -9 and restart on the same data
directory keeps every acknowledged record and committed offset; a torn tail is cut off."""

from __future__ import annotations

import os
import time
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from madina.broker.records import scan_valid_prefix

RECORDS = 3000


def _produce(bootstrap: str, topic: str, count: int, start: int = 0, partitions: int = 1) -> list:
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2, "batch.num.messages": 200}
    )
    acked: list = []

    def delivered(error, message):
        assert error is None, error
        acked.append((message.partition(), message.offset(), message.value()))

    for number in range(start, start + count):
        producer.produce(
            topic, f"record-{number:06d}".encode(), partition=number % partitions, on_delivery=delivered
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    return acked


def _read_all(bootstrap: str, topic: str, partition: int, expected: int, timeout_s: float = 30) -> list:
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False}
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, partition, confluent_kafka.OFFSET_BEGINNING)])
    received = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(received) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                received.append((message.offset(), message.value()))
    finally:
        consumer.close()
    return received


def _create_topic(bootstrap: str, topic: str, partitions: int, **config: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config)])[
        topic
    ].result(10)


def test_acknowledged_records_and_group_offsets_survive_kill_9(
    own_broker_factory, tmp_path: Path, topic_name, group_name
):
    data_dir = str(tmp_path / "data")
    broker = own_broker_factory("--data-dir", data_dir)
    _create_topic(broker.bootstrap, topic_name, 2, **{"retention.ms": "86400000"})
    acked = _produce(broker.bootstrap, topic_name, RECORDS, partitions=2)
    assert len(acked) == RECORDS
    committer = confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group_name})
    committer.commit(
        offsets=[
            confluent_kafka.TopicPartition(topic_name, 0, 1234, "state-a"),
            confluent_kafka.TopicPartition(topic_name, 1, 777),
        ],
        asynchronous=False,
    )
    committer.close()
    broker.kill()

    restarted = own_broker_factory("--data-dir", data_dir)
    for partition in (0, 1):
        expected = [(offset, value) for p, offset, value in sorted(acked) if p == partition]
        assert _read_all(restarted.bootstrap, topic_name, partition, len(expected)) == expected
    reader = confluent_kafka.Consumer({"bootstrap.servers": restarted.bootstrap, "group.id": group_name})
    committed = reader.committed(
        [confluent_kafka.TopicPartition(topic_name, 0), confluent_kafka.TopicPartition(topic_name, 1)],
        timeout=10,
    )
    reader.close()
    assert [(entry.partition, entry.offset) for entry in committed] == [(0, 1234), (1, 777)]
    assert committed[0].metadata == "state-a"
    admin = AdminClient({"bootstrap.servers": restarted.bootstrap})
    resource = confluent_kafka.admin.ConfigResource(
        confluent_kafka.admin.ConfigResource.Type.TOPIC, topic_name
    )
    assert admin.describe_configs([resource])[resource].result(10)["retention.ms"].value == "86400000"
    more = _produce(restarted.bootstrap, topic_name, 10, start=RECORDS, partitions=2)
    assert min(offset for partition, offset, _ in more if partition == 0) == RECORDS // 2


def _last_segment(data_dir: Path, topic: str) -> Path:
    return sorted((data_dir / f"{topic}-0").glob("*.log"))[-1]


@pytest.mark.parametrize("damage", ["garbage", "partial-batch"])
def test_torn_tail_is_truncated_at_start_and_the_good_prefix_served(
    own_broker_factory, tmp_path: Path, topic_name, damage
):
    data_dir = tmp_path / "data"
    broker = own_broker_factory("--data-dir", str(data_dir))
    acked = _produce(broker.bootstrap, topic_name, 500)
    broker.kill()
    segment = _last_segment(data_dir, topic_name)
    content = segment.read_bytes()
    headers, valid_end, problem = scan_valid_prefix(content, 0)
    assert problem is None and valid_end == len(content)
    with open(segment, "ab") as handle:
        if damage == "garbage":
            handle.write(os.urandom(200))
        else:
            last = headers[-1]
            handle.write(content[last.position : last.position + last.size // 2])

    restarted = own_broker_factory("--data-dir", str(data_dir))
    assert _read_all(restarted.bootstrap, topic_name, 0, len(acked)) == [(o, v) for _p, o, v in acked]
    more = _produce(restarted.bootstrap, topic_name, 5, start=500)
    assert [offset for _p, offset, _v in more] == list(range(500, 505))
    assert "truncating" in restarted.log_text()
    assert segment.stat().st_size > valid_end  # the new records went after the cut


def test_clean_shutdown_on_sigterm_returns_zero_and_keeps_data(
    own_broker_factory, tmp_path: Path, topic_name
):
    data_dir = str(tmp_path / "data")
    broker = own_broker_factory("--data-dir", data_dir)
    acked = _produce(broker.bootstrap, topic_name, 100)
    assert broker.stop() == 0
    assert "broker stopped" in broker.log_text()
    restarted = own_broker_factory("--data-dir", data_dir)
    assert len(_read_all(restarted.bootstrap, topic_name, 0, len(acked))) == len(acked)
