"""The event bus over real TCP: what madina.bus produces is consumed intact, and bad records are parked."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from google.protobuf.timestamp_pb2 import Timestamp

from madina.bus import EventConsumer, EventProducer, TopicSpec, ensure_topics
from madina.bus.codec import HEADER_CONTENT_TYPE, HEADER_EVENT_ID, header
from madina.bus.producer import HEADER_DLQ_OFFSET, HEADER_DLQ_REASON, HEADER_DLQ_TOPIC
from madina_proto.alerts.v1 import alerts_pb2


def _spec(unique: str) -> TopicSpec:
    return TopicSpec(
        name=f"test.bus-{unique}.v1",
        message_type=alerts_pb2.AlertEvent,
        key="alert_id",
        description="test topic",
        partitions=2,
    )


def _event(n: int) -> alerts_pb2.AlertEvent:
    return alerts_pb2.AlertEvent(
        alert_id=f"alert-{n}",
        revision=1,
        domain="test",
        rule_id="r",
        severity=alerts_pb2.SEVERITY_MINOR,
        state=alerts_pb2.ALERT_STATE_RAISED,
        observed_value=n + 0.5,
        raise_time=Timestamp(seconds=1_700_000_000 + n),
        message="é ünïcode ✓",
        labels={"n": str(n)},
    )


async def test_event_produced_through_the_bus_is_consumed_intact(kafka_bootstrap: str, unique: str) -> None:
    spec = _spec(unique)
    created = await ensure_topics(kafka_bootstrap, [spec], default_partitions=1)
    assert spec.name in created and spec.dead_letter.name in created
    assert await ensure_topics(kafka_bootstrap, [spec], default_partitions=1) == []

    async with EventProducer(kafka_bootstrap, source="bus-test") as producer:
        await producer.send_and_wait(spec, "alert-7", _event(7), event_time_ms=1_700_000_000_000)

    consumer = AIOKafkaConsumer(
        spec.name, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=f"g-{unique}"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()
    assert record.key == b"alert-7"
    assert record.timestamp == 1_700_000_000_000
    assert header(record.headers, HEADER_CONTENT_TYPE) == spec.content_type.encode()
    assert header(record.headers, HEADER_EVENT_ID)
    decoded = alerts_pb2.AlertEvent.FromString(record.value)
    assert decoded == _event(7)


async def test_corrupt_record_lands_in_dlq_with_reason_and_next_good_record_is_processed(
    kafka_bootstrap: str, unique: str
) -> None:
    spec = _spec(unique)
    await ensure_topics(kafka_bootstrap, [spec], default_partitions=1)
    raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await raw.start()
    try:
        # One partition, so all three are read in this order; events are keyed by their alert id
        # (a key that is not the entity would be refused too).
        await raw.send_and_wait(spec.name, _event(1).SerializeToString(), key=b"alert-1", partition=0)
        await raw.send_and_wait(
            spec.name, b"\x0a\xff\xff not protobuf", key=b"k", headers=[("trace", b"t-1")], partition=0
        )
        await raw.send_and_wait(spec.name, _event(3).SerializeToString(), key=b"alert-3", partition=0)
    finally:
        await raw.stop()

    handled: list[alerts_pb2.AlertEvent] = []
    done = asyncio.Event()

    async def handle(events: list) -> None:  # type: ignore[type-arg]
        handled.extend(event.message for event in events)
        if len(handled) >= 2:
            done.set()

    async with EventProducer(kafka_bootstrap, source="bus-test") as producer:
        consumer = EventConsumer(
            kafka_bootstrap, [spec], group_id=f"g-{unique}", handler=handle, producer=producer
        )
        task = asyncio.create_task(consumer.run())
        try:
            await asyncio.wait_for(done.wait(), 30)
        finally:
            consumer.stop()
            await task
    assert [event.alert_id for event in handled] == ["alert-1", "alert-3"]

    dlq = AIOKafkaConsumer(
        spec.dead_letter.name,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"dlq-{unique}",
    )
    await dlq.start()
    try:
        parked = await asyncio.wait_for(dlq.getone(), 20)
    finally:
        await dlq.stop()
    assert parked.value == b"\x0a\xff\xff not protobuf"
    assert parked.key == b"k"
    assert b"AlertEvent" in header(parked.headers, HEADER_DLQ_REASON)
    assert header(parked.headers, HEADER_DLQ_TOPIC) == spec.name.encode()
    assert header(parked.headers, HEADER_DLQ_OFFSET) == b"1"
    assert header(parked.headers, "trace") == b"t-1"
