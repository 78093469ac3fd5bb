"""Reading a whole topic as a table: every partition from the start, no consumer group.

For state every replica needs in full (the latest KPI per key, the latest status per station, the
alert revisions already published): each replica reads all partitions itself, so nothing is
committed and nothing is dead-lettered here (one bad record would otherwise be parked once per
replica); unreadable records are logged and skipped. That includes records ``on_record`` refuses
(it raises InvalidRecord when a message does not convert to a valid domain value): on a compacted
topic such a value lives as long as its key, and a reader that served it, or died on it, would
fail for that long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from madina.bus.codec import InvalidRecord, decode
from madina.bus.topics import TopicSpec
from madina.settings import kafka_security_options

log = logging.getLogger(__name__)

OnRecord = Callable[[str, Any], None]  # (key, decoded message or None for a tombstone); may raise InvalidRecord


async def read_topic(
    bootstrap: str,
    spec: TopicSpec,
    on_record: OnRecord,
    *,
    caught_up: asyncio.Event | None = None,
    follow: bool = True,
    wait_for_topic: bool = True,
) -> None:
    """Feed every record of ``spec`` to ``on_record``; set ``caught_up`` once the backlog is read.

    With ``follow=False`` it returns once caught up (a snapshot read); otherwise it keeps feeding
    new records until cancelled.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka_security_options(),
    )
    await consumer.start()
    try:
        assignment = await _all_partitions(consumer, spec.name, wait_for_topic)
        if not assignment:
            if caught_up is not None:
                caught_up.set()
            return
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        end = await consumer.end_offsets(assignment)
        done = caught_up or asyncio.Event()
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batches.values():
                for record in records:
                    _feed(spec, record, on_record)
            if not done.is_set():
                positions = [await consumer.position(tp) for tp in assignment]
                if all(position >= end[tp] for position, tp in zip(positions, assignment, strict=True)):
                    done.set()
            if done.is_set() and not follow:
                return
    finally:
        await consumer.stop()


def _feed(spec: TopicSpec, record: Any, on_record: OnRecord) -> None:
    key = record.key.decode("utf-8", "replace") if record.key is not None else ""
    try:
        if record.value is None:
            on_record(key, None)
            return
        on_record(key, decode(spec, record.value, record.headers, record.key))
    except InvalidRecord as error:
        log.warning("unreadable record skipped", extra={
            "topic": spec.name, "key": key[:200], "offset": record.offset, "error": str(error)})
    except Exception:
        log.exception("record skipped: reading it failed", extra={
            "topic": spec.name, "key": key[:200], "offset": record.offset})


async def _all_partitions(consumer: AIOKafkaConsumer, topic: str, wait: bool) -> list[TopicPartition]:
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        if partitions or not wait:
            return [TopicPartition(topic, p) for p in sorted(partitions or ())]
        await asyncio.sleep(1.0)
