"""Consumers of one group started together share its first generation.

Kafka's coordinator holds a new group's first rebalance for group.initial.rebalance.delay.ms
(3 s by default) and again for each member that arrives meanwhile. Without that, the first
librdkafka consumer up forms a generation alone, takes every partition and drains them before
the second is let in, which hides bugs that only show with the load split.
"""

from __future__ import annotations

import threading
import time

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

PARTITIONS = 4
RECORDS_PER_PARTITION = 25
# Well inside Kafka's default delay, and long enough that without the delay the first
# consumer has formed a generation alone before the second sends JoinGroup at all.
SECOND_CONSUMER_AFTER_S = 1.0
DELAY_CONFIG = "group.initial.rebalance.delay.ms"


class GroupConsumer(threading.Thread):
    """A confluent-kafka consumer polling in its own thread, remembering its first assignment."""

    def __init__(self, bootstrap: str, topic: str, group: str):
        super().__init__(daemon=True)
        self.consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self.consumer.subscribe([topic], on_assign=self._assigned)
        self.first_assignment: set[int] | None = None
        self.records: list[tuple[int, int]] = []
        self.halt = threading.Event()

    def _assigned(self, _consumer, partitions) -> None:
        if self.first_assignment is None:
            self.first_assignment = {partition.partition for partition in partitions}

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                message = self.consumer.poll(0.1)
                if message is not None and message.error() is None:
                    self.records.append((message.partition(), message.offset()))
        finally:
            self.consumer.close()


def _configured_delay_ms(admin: AdminClient) -> int | None:
    broker_id = next(iter(admin.list_topics(timeout=10).brokers))
    resource = ConfigResource(ResourceType.BROKER, str(broker_id))
    entry = admin.describe_configs([resource])[resource].result(10).get(DELAY_CONFIG)
    return int(entry.value) if entry is not None and entry.value is not None else None


def _wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_two_consumers_started_together_both_get_partitions_in_the_first_generation(
    broker_bootstrap, topic_name, group_name
):
    admin = AdminClient({"bootstrap.servers": broker_bootstrap})
    if _configured_delay_ms(admin) == 0:
        # testcontainers' Kafka and Kafka's sample server.properties turn the delay off.
        pytest.skip(f"the broker runs with {DELAY_CONFIG}=0, so nothing holds the first generation")
    admin.create_topics([NewTopic(topic_name, num_partitions=PARTITIONS, replication_factor=1)])[
        topic_name
    ].result(10)
    producer = confluent_kafka.Producer({"bootstrap.servers": broker_bootstrap, "acks": "all"})
    for partition in range(PARTITIONS):
        for sequence in range(RECORDS_PER_PARTITION):
            producer.produce(topic_name, f"r{sequence}".encode(), partition=partition)
    assert producer.flush(20) == 0
    produced = {(p, o) for p in range(PARTITIONS) for o in range(RECORDS_PER_PARTITION)}

    first = GroupConsumer(broker_bootstrap, topic_name, group_name)
    first.start()
    time.sleep(SECOND_CONSUMER_AFTER_S)
    second = GroupConsumer(broker_bootstrap, topic_name, group_name)
    second.start()
    consumers = [first, second]
    try:
        assert _wait_until(lambda: all(c.first_assignment is not None for c in consumers), 30), (
            "a consumer was never assigned partitions"
        )
        _wait_until(lambda: {r for c in consumers for r in c.records} >= produced, 20)
    finally:
        for consumer in consumers:
            consumer.halt.set()
        for consumer in consumers:
            consumer.join(15)

    assignments = [consumer.first_assignment or set() for consumer in consumers]
    assert all(assignments) and all(len(assignment) < PARTITIONS for assignment in assignments), (
        f"first assignments {assignments}: one consumer had a generation to itself"
    )
    assert assignments[0].isdisjoint(assignments[1]), f"first assignments {assignments} overlap"
    assert assignments[0] | assignments[1] == set(range(PARTITIONS)), assignments
    consumed = [set(consumer.records) for consumer in consumers]
    assert consumed[0] | consumed[1] == produced
    assert all(records and records != produced for records in consumed), (
        f"consumed {[len(records) for records in consumed]} of {len(produced)} records: "
        "one consumer drained the topic"
    )
