"""Transactions end to end with librdkafka: a consume-transform-produce loop that commits its
input offsets inside each transaction (read_committed), on both brokers, and on the embedded
broker across a ``kill -9`` in the middle of a transaction.

What must hold: a read_committed consumer of the output sees every input exactly once, never
a record of an aborted or abandoned transaction, and every transaction acknowledged as
committed before the crash is still there after it.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# A fresh Apache Kafka takes over a minute to create __consumer_offsets on this machine.
pytestmark = pytest.mark.timeout(600)

BATCH = 50
INPUTS = 300


def _create_topics(bootstrap: str, *topics: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1) for topic in topics])
    for future in futures.values():
        future.result(30)


def _fill_input(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for number in range(INPUTS):
        producer.produce(topic, value=str(number).encode())
    assert producer.flush(30) == 0


def _producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 60_000,
            "linger.ms": 5,
        }
    )
    producer.init_transactions(30)
    return producer


def _consumer(bootstrap: str, group: str | None, topic: str, committed: bool = True) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"reader-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed" if committed else "read_uncommitted",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, 0)])
    return consumer


def _started_consumer(bootstrap: str, group: str, topic: str) -> Consumer:
    """The loop's input consumer, once it reads. On a fresh Apache Kafka the first consumer
    of a group can sit without fetching while __consumer_offsets is created and loaded (a
    minute or more here, and librdkafka did not always recover): start a new one until a
    record arrives, then rewind to the committed position."""
    deadline = time.monotonic() + 300
    while True:
        consumer = _consumer(bootstrap, group, topic)
        if _take(consumer, 1, timeout_s=30.0):
            committed = consumer.committed(consumer.assignment(), 30)
            consumer.assign([TopicPartition(topic, 0, max(committed[0].offset, 0))])
            return consumer
        consumer.close()
        assert time.monotonic() < deadline, f"no consumer of {topic} read anything for 5 minutes"


def _take(consumer: Consumer, count: int, timeout_s: float = 30.0) -> list:
    taken: list = []
    deadline = time.monotonic() + timeout_s
    while len(taken) < count and time.monotonic() < deadline:
        for message in consumer.consume(count - len(taken), 0.5):
            if message.error() is None:
                taken.append(message)
    return taken


def _process(
    producer: Producer, consumer: Consumer, out_topic: str, *, commit: bool = True, timeout_s: float = 60.0
) -> list[bytes]:
    """One transaction: up to BATCH inputs copied to the output, their offsets committed with them."""
    messages = _take(consumer, BATCH, timeout_s)
    if not messages:
        return []
    producer.begin_transaction()
    for message in messages:
        producer.produce(out_topic, value=message.value())
    producer.send_offsets_to_transaction(
        consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
    )
    if commit:
        producer.commit_transaction(30)
    else:
        producer.flush(30)  # written to the output partition, but left open
    return [message.value() for message in messages]


def _read_output(bootstrap: str, topic: str, committed: bool, expected_at_least: int) -> list[bytes]:
    reader = _consumer(bootstrap, None, topic, committed)
    try:
        values = [message.value() for message in _take(reader, expected_at_least, timeout_s=30.0)]
        # Anything beyond what we expect would show up now.
        values += [message.value() for message in _take(reader, 10_000, timeout_s=2.0)]
        return values
    finally:
        reader.close()


def _names() -> tuple[str, str, str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"txn-in-{tag}", f"txn-out-{tag}", f"txn-group-{tag}", f"txn-id-{tag}"


def test_transactional_loop_is_exactly_once_and_aborts_stay_invisible(broker_bootstrap: str):
    in_topic, out_topic, group, transactional_id = _names()
    _create_topics(broker_bootstrap, in_topic, out_topic)
    _fill_input(broker_bootstrap, in_topic)
    producer = _producer(broker_bootstrap, transactional_id)
    consumer = _started_consumer(broker_bootstrap, group, in_topic)
    try:
        # An aborted transaction first: its records must never be read as committed.
        producer.begin_transaction()
        for number in range(20):
            producer.produce(out_topic, value=b"aborted-%d" % number)
        producer.flush(30)
        producer.abort_transaction(30)
        processed: list[bytes] = []
        while len(processed) < INPUTS:
            batch = _process(producer, consumer, out_topic)
            assert batch, f"input stalled after {len(processed)} records"
            processed += batch
    finally:
        consumer.close()
    committed = _read_output(broker_bootstrap, out_topic, True, INPUTS)
    assert committed == [str(number).encode() for number in range(INPUTS)]
    uncommitted = _read_output(broker_bootstrap, out_topic, False, INPUTS + 20)
    assert len(uncommitted) == INPUTS + 20  # the aborted records are in the log, just not committed


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(broker_bootstrap: str):
    in_topic, out_topic, _group, transactional_id = _names()
    _create_topics(broker_bootstrap, in_topic, out_topic)
    first = _producer(broker_bootstrap, transactional_id)
    first.begin_transaction()
    first.produce(out_topic, value=b"zombie")
    first.flush(30)
    second = _producer(broker_bootstrap, transactional_id)  # aborts the zombie's transaction
    second.begin_transaction()
    second.produce(out_topic, value=b"live")
    second.commit_transaction(30)
    with pytest.raises(KafkaException) as raised:
        first.commit_transaction(30)
    assert raised.value.args[0].fatal() or raised.value.args[0].txn_requires_abort()
    assert _read_output(broker_bootstrap, out_topic, True, 1) == [b"live"]


def test_transactional_loop_survives_kill_9_mid_transaction(own_broker_factory, tmp_path):
    data_dir = str(tmp_path / "data")
    broker = own_broker_factory("--data-dir", data_dir, "--group-initial-rebalance-delay-ms", "0")
    in_topic, out_topic, group, transactional_id = _names()
    _create_topics(broker.bootstrap, in_topic, out_topic)
    _fill_input(broker.bootstrap, in_topic)

    producer = _producer(broker.bootstrap, transactional_id)
    consumer = _consumer(broker.bootstrap, group, in_topic)
    acknowledged: list[bytes] = []
    for _ in range(3):
        acknowledged += _process(producer, consumer, out_topic)
    assert len(acknowledged) == 3 * BATCH
    in_flight = _process(producer, consumer, out_topic, commit=False)
    assert in_flight
    broker.kill()  # kill -9 with a transaction open on the output and on the group's offsets
    consumer.close()
    del producer

    broker = own_broker_factory("--data-dir", data_dir, "--group-initial-rebalance-delay-ms", "0")
    # Before anyone resumes, the open transaction holds back read_committed readers: nothing
    # of it, and everything acknowledged before the crash.
    assert _read_output(broker.bootstrap, out_topic, True, len(acknowledged)) == acknowledged

    producer = _producer(broker.bootstrap, transactional_id)  # fences the old one, aborts its transaction
    consumer = _consumer(broker.bootstrap, group, in_topic)
    processed = list(acknowledged)
    try:
        while len(processed) < INPUTS:
            batch = _process(producer, consumer, out_topic)
            assert batch, f"input stalled after {len(processed)} records"
            processed += batch
    finally:
        consumer.close()

    committed = _read_output(broker.bootstrap, out_topic, True, INPUTS)
    assert committed == [str(number).encode() for number in range(INPUTS)]
    # The abandoned transaction's records are in the log, marked aborted.
    assert len(_read_output(broker.bootstrap, out_topic, False, INPUTS + len(in_flight))) == INPUTS + len(in_flight)


def test_admin_tools_see_the_open_transaction_and_its_producer(broker_bootstrap: str):
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka import TopicPartition as KafkaTopicPartition

    _in_topic, out_topic, _group, transactional_id = _names()
    _create_topics(broker_bootstrap, out_topic)
    producer = KafkaProducer(bootstrap_servers=broker_bootstrap, transactional_id=transactional_id)
    admin = KafkaAdminClient(bootstrap_servers=broker_bootstrap)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(out_topic, b"open", partition=0).get(30)
        listed = [entry for entries in admin.list_transactions().values() for entry in entries]
        assert any(entry.transactional_id == transactional_id and entry.state.value == "Ongoing" for entry in listed)
        described = admin.describe_transactions([transactional_id])[transactional_id]
        assert described.state.value == "Ongoing"
        assert described.topic_partitions == {KafkaTopicPartition(out_topic, 0)}
        producers = admin.describe_producers([KafkaTopicPartition(out_topic, 0)])
        (state,) = producers[KafkaTopicPartition(out_topic, 0)].active_producers
        assert state.current_transaction_start_offset == 0
        producer.commit_transaction()
        # Kafka answers EndTxn at PrepareCommit and writes the markers after; we do both first.
        deadline = time.monotonic() + 15
        while admin.describe_transactions([transactional_id])[transactional_id].state.value != "CompleteCommit":
            assert time.monotonic() < deadline, "transaction never reached CompleteCommit"
            time.sleep(0.2)
    finally:
        producer.close()
        admin.close()
