"""A consumer-group member run as its own process by the group tests, so it can be killed -9.

    python group_member.py CLIENT BOOTSTRAP TOPIC GROUP

CLIENT is aiokafka, kafka-python or confluent. The member commits synchronously after each
record. It prints a "processing" line before the commit and a "committed" or "failed" line
after it; a record whose commit fails (the group rebalanced meanwhile) is left for its next
owner. So across all members the committed records must be unique, and together with the
one record a killed member may have had in flight they must cover everything produced.
"""

from __future__ import annotations

import asyncio
import json
import sys

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def processing(partition: int, offset: int) -> None:
    emit(p=partition, o=offset, stage="processing")


def finished(partition: int, offset: int, committed: bool) -> None:
    emit(p=partition, o=offset, stage="committed" if committed else "failed")


async def run_aiokafka(bootstrap: str, topic: str, group: str) -> None:
    import aiokafka
    from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
    from aiokafka.structs import OffsetAndMetadata

    consumer = aiokafka.AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        max_poll_records=1,
    )
    await consumer.start()
    while True:
        message = await consumer.getone()
        partition = aiokafka.TopicPartition(message.topic, message.partition)
        processing(message.partition, message.offset)
        try:
            await consumer.commit({partition: OffsetAndMetadata(message.offset + 1, "")})
        except (CommitFailedError, IllegalStateError, KafkaError):
            finished(message.partition, message.offset, False)
            continue
        finished(message.partition, message.offset, True)


def run_kafka_python(bootstrap: str, topic: str, group: str) -> None:
    import kafka
    from kafka.errors import CommitFailedError, KafkaError
    from kafka.structs import OffsetAndMetadata

    consumer = kafka.KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        max_poll_records=1,
    )
    for message in consumer:
        partition = kafka.TopicPartition(message.topic, message.partition)
        processing(message.partition, message.offset)
        try:
            consumer.commit({partition: OffsetAndMetadata(message.offset + 1, "", -1)})
        except (CommitFailedError, KafkaError):
            finished(message.partition, message.offset, False)
            continue
        finished(message.partition, message.offset, True)


def run_confluent(bootstrap: str, topic: str, group: str) -> None:
    import confluent_kafka

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        }
    )
    consumer.subscribe([topic])
    while True:
        message = consumer.poll(0.2)
        if message is None or message.error() is not None:
            continue
        processing(message.partition(), message.offset())
        try:
            consumer.commit(message=message, asynchronous=False)
        except confluent_kafka.KafkaException:
            finished(message.partition(), message.offset(), False)
            continue
        finished(message.partition(), message.offset(), True)


def main() -> None:
    client, bootstrap, topic, group = sys.argv[1:5]
    if client == "aiokafka":
        asyncio.run(run_aiokafka(bootstrap, topic, group))
    elif client == "kafka-python":
        run_kafka_python(bootstrap, topic, group)
    elif client == "confluent":
        run_confluent(bootstrap, topic, group)
    else:
        raise SystemExit(f"unknown client {client}")


if __name__ == "__main__":
    main()
