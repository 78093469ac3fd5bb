"""Unmodified aiokafka, kafka-python and confluent-kafka clients against the broker over TCP:
produce/consume round trips, cross-client compression, and each client's admin API."""

from __future__ import annotations

import asyncio
import time

import aiokafka
import confluent_kafka
import kafka
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin import NewTopic as AioNewTopic
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kafka.admin import ConfigResource as KafkaConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient
from kafka.admin import NewTopic as KafkaNewTopic

RECORDS = 200


def _eventually(check, timeout_s: float = 15.0) -> None:
    """Apache Kafka answers CreateTopics and DeleteTopics once its controller has them; the
    broker's metadata cache follows a moment later (about 0.5 s here), so metadata checks wait,
    boundedly, as a client would. The embedded broker answers at once."""
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert check()


async def _eventually_async(check, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check() and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a remote broker
        await asyncio.sleep(0.1)
    assert await check()


def _confluent_produce(bootstrap: str, topic: str, values: list[bytes], **config) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    failures = []
    for index, value in enumerate(values):
        producer.produce(
            topic,
            value,
            key=str(index % 7).encode(),
            on_delivery=lambda error, _msg: failures.append(error) if error else None,
        )
    assert producer.flush(20) == 0
    assert not failures


def _confluent_consume(bootstrap: str, topic: str, group: str, count: int, timeout_s: float = 20) -> list:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(received) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            received.append(message)
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return received


async def test_aiokafka_round_trip_preserves_order_keys_and_headers(broker_bootstrap, topic_name, group_name):
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker_bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic_name, f"value-{i}".encode(), key=b"same-key", headers=[("index", str(i).encode())]
            )
            for i in range(RECORDS)
        ]
        offsets = [metadata.offset for metadata in await asyncio.gather(*sent)]
    finally:
        await producer.stop()
    assert offsets == list(range(RECORDS))
    consumer = aiokafka.AIOKafkaConsumer(
        topic_name,
        bootstrap_servers=broker_bootstrap,
        group_id=group_name,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received = []
    try:
        async with asyncio.timeout(20):
            while len(received) < RECORDS:
                batches = await consumer.getmany(timeout_ms=1000)
                for messages in batches.values():
                    received.extend(messages)
        await consumer.commit()
        partition = aiokafka.TopicPartition(topic_name, 0)
        assert await consumer.committed(partition) == RECORDS
    finally:
        await consumer.stop()
    assert [message.value for message in received] == [f"value-{i}".encode() for i in range(RECORDS)]
    assert [message.offset for message in received] == list(range(RECORDS))
    assert received[7].key == b"same-key"
    assert received[7].headers == (("index", b"7"),)


def test_kafka_python_round_trip_and_committed_offset(broker_bootstrap, topic_name, group_name):
    producer = kafka.KafkaProducer(bootstrap_servers=broker_bootstrap, acks="all", linger_ms=5)
    futures = [producer.send(topic_name, f"kp-{i}".encode(), key=b"k") for i in range(RECORDS)]
    producer.flush()
    assert [future.get(10).offset for future in futures] == list(range(RECORDS))
    producer.close()
    consumer = kafka.KafkaConsumer(
        topic_name,
        bootstrap_servers=broker_bootstrap,
        group_id=group_name,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10000,
    )
    received = []
    for message in consumer:
        received.append(message)
        if len(received) == RECORDS:
            break
    consumer.commit()
    partition = kafka.TopicPartition(topic_name, 0)
    assert consumer.committed(partition) == RECORDS
    consumer.close()
    assert [message.value for message in received] == [f"kp-{i}".encode() for i in range(RECORDS)]


def test_confluent_round_trip_with_idempotent_producer(broker_bootstrap, topic_name, group_name):
    values = [f"ck-{i}".encode() for i in range(RECORDS)]
    _confluent_produce(broker_bootstrap, topic_name, values, **{"enable.idempotence": True, "acks": "all"})
    received = _confluent_consume(broker_bootstrap, topic_name, group_name, RECORDS)
    assert [message.value() for message in received] == values
    assert [message.offset() for message in received] == list(range(RECORDS))


@pytest.mark.parametrize("compression", ["gzip", "lz4", "zstd", "snappy"])
def test_compressed_batches_from_librdkafka_are_served_back_intact(
    broker_bootstrap, topic_name, group_name, compression
):
    values = [f"compressed-{i}-{'x' * 50}".encode() for i in range(RECORDS)]
    _confluent_produce(broker_bootstrap, topic_name, values, **{"compression.type": compression})
    received = _confluent_consume(broker_bootstrap, topic_name, group_name, RECORDS)
    assert [message.value() for message in received] == values


def test_gzip_from_kafka_python_is_read_by_aiokafka_from_the_middle(broker_bootstrap, topic_name):
    producer = kafka.KafkaProducer(bootstrap_servers=broker_bootstrap, compression_type="gzip", linger_ms=20)
    for i in range(RECORDS):
        producer.send(topic_name, f"gz-{i}".encode())
    producer.flush()
    producer.close()

    async def read_from(offset: int) -> list[bytes]:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=broker_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partition = aiokafka.TopicPartition(topic_name, 0)
            consumer.assign([partition])
            consumer.seek(partition, offset)
            values: list[bytes] = []
            async with asyncio.timeout(20):
                while len(values) < RECORDS - offset:
                    for messages in (await consumer.getmany(timeout_ms=1000)).values():
                        values.extend(message.value for message in messages)
            return values
        finally:
            await consumer.stop()

    # Offset 123 sits inside a compressed batch: the whole batch is served and the client skips ahead.
    assert asyncio.run(read_from(123)) == [f"gz-{i}".encode() for i in range(123, RECORDS)]


def test_offsets_by_time_and_bounds_with_confluent(broker_bootstrap, topic_name):
    producer = confluent_kafka.Producer({"bootstrap.servers": broker_bootstrap})
    base = int(time.time() * 1000) - 100_000
    for i in range(10):
        producer.produce(topic_name, b"t", timestamp=base + i * 1000)
        producer.flush(10)  # one batch per record, so each timestamp is findable
    consumer = confluent_kafka.Consumer({"bootstrap.servers": broker_bootstrap, "group.id": "unused"})
    partition = confluent_kafka.TopicPartition(topic_name, 0)
    assert consumer.get_watermark_offsets(partition, timeout=10) == (0, 10)
    found = consumer.offsets_for_times(
        [confluent_kafka.TopicPartition(topic_name, 0, base + 4500)], timeout=10
    )
    assert found[0].offset == 5
    beyond = consumer.offsets_for_times(
        [confluent_kafka.TopicPartition(topic_name, 0, base + 10**7)], timeout=10
    )
    assert beyond[0].offset == -1
    consumer.close()


# ---- admin APIs --------------------------------------------------------------------------


async def test_aiokafka_admin_creates_lists_describes_and_deletes(broker_bootstrap, topic_name, group_name):
    admin = AIOKafkaAdminClient(bootstrap_servers=broker_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([AioNewTopic(topic_name, 3, 1, topic_configs={"retention.ms": "3600000"})])

        async def listed() -> bool:
            return topic_name in await admin.list_topics()

        await _eventually_async(listed)
        described = await admin.describe_topics([topic_name])
        assert len(described[0]["partitions"]) == 3
        consumer = aiokafka.AIOKafkaConsumer(
            topic_name,
            bootstrap_servers=broker_bootstrap,
            group_id=group_name,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        try:
            async with asyncio.timeout(20):
                while not consumer.assignment():  # noqa: ASYNC110 - aiokafka exposes no assignment event
                    await asyncio.sleep(0.05)
            assert (group_name, "consumer") in await admin.list_consumer_groups()
            groups = await admin.describe_consumer_groups([group_name])
            error_code, group_id, state = groups[0].groups[0][:3]
            assert (error_code, group_id, state) == (0, group_name, "Stable")
        finally:
            await consumer.stop()
        await admin.delete_topics([topic_name])

        async def gone() -> bool:
            return topic_name not in await admin.list_topics()

        await _eventually_async(gone)
    finally:
        await admin.close()


def test_kafka_python_admin_creates_configures_lists_and_deletes(broker_bootstrap, topic_name, group_name):
    admin = KafkaAdminClient(bootstrap_servers=broker_bootstrap)
    try:
        admin.create_topics(
            [
                KafkaNewTopic(
                    topic_name, 2, 1, topic_configs={"cleanup.policy": "compact", "segment.bytes": "1048576"}
                )
            ]
        )
        _eventually(lambda: topic_name in admin.list_topics())
        configs = admin.describe_configs([KafkaConfigResource(ConfigResourceType.TOPIC, topic_name)])
        text = repr(configs)
        assert "cleanup.policy" in text and "compact" in text and "1048576" in text
        consumer = kafka.KafkaConsumer(
            topic_name,
            bootstrap_servers=broker_bootstrap,
            group_id=group_name,
            auto_offset_reset="earliest",
            consumer_timeout_ms=3000,
        )
        list(consumer)  # joins, gets an assignment, times out on the empty topic
        consumer.commit()
        consumer.close()
        assert group_name in [entry["group_id"] for entry in admin.list_groups()]
        assert admin.describe_groups([group_name])
        admin.delete_topics([topic_name])
        _eventually(lambda: topic_name not in admin.list_topics())
    finally:
        admin.close()


def test_confluent_admin_creates_lists_describes_and_deletes(broker_bootstrap, topic_name, group_name):
    admin = AdminClient({"bootstrap.servers": broker_bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic_name, num_partitions=4, replication_factor=1, config={"retention.bytes": "1000000"})]
    )
    futures[topic_name].result(10)
    _eventually(lambda: topic_name in admin.list_topics(timeout=10).topics)
    assert len(admin.list_topics(timeout=10).topics[topic_name].partitions) == 4
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    described = admin.describe_configs([resource])[resource].result(10)
    assert described["retention.bytes"].value == "1000000"
    assert described["cleanup.policy"].value == "delete"
    _confluent_produce(broker_bootstrap, topic_name, [b"a", b"b"])
    _confluent_consume(broker_bootstrap, topic_name, group_name, 2)
    listed = admin.list_consumer_groups().result(10)
    assert group_name in [group.group_id for group in listed.valid]
    groups = admin.describe_consumer_groups([group_name])
    assert groups[group_name].result(10).group_id == group_name
    admin.delete_topics([topic_name])[topic_name].result(10)
    _eventually(lambda: topic_name not in admin.list_topics(timeout=10).topics)
    failed = admin.create_topics([NewTopic("bad name!", num_partitions=1, replication_factor=1)])
    with pytest.raises(confluent_kafka.KafkaException):
        failed["bad name!"].result(10)
