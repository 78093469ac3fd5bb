"""Reading a whole topic as a table: every partition from the start, no consumer group.

:func:`read_topic` feeds one topic to a callback (and can follow it); :func:`read_topics` takes a
snapshot of several, merged in produce-time order (how a store is rebuilt from its topics).

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
import heapq
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from madina.bus.codec import InvalidRecord, decode
from madina.bus.topics import TopicSpec
from madina.settings import kafka_security_options

log = logging.getLogger(__name__)

OnRecord = Callable[[str, Any], None]  # (key, decoded message or None for a tombstone); may raise InvalidRecord
T = TypeVar("T")


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

    def feed(spec: TopicSpec, record: Any) -> None:
        _feed(spec, record, on_record)

    await _read(bootstrap, (spec,), feed, caught_up=caught_up, follow=follow, wait_for_topic=wait_for_topic)


async def read_topics(bootstrap: str, specs: Sequence[TopicSpec], parse: Callable[[Any], T]) -> list[T]:
    """Every readable record of ``specs`` up to their current end, as ``parse`` makes it, in produce-time order.

    Each partition keeps its own order (one entity's records stay in sequence); across partitions
    and topics records interleave by timestamp, which is how a live consumer saw them. A record
    ``parse`` refuses is skipped like any unreadable one (a live consumer dead-lettered it).
    """
    streams: dict[tuple[str, int], list[tuple[int, int, T]]] = defaultdict(list)

    def keep(spec: TopicSpec, record: Any) -> None:
        def on_record(_key: str, message: Any) -> None:
            if message is not None:
                streams[(spec.name, record.partition)].append((record.timestamp, record.offset, parse(message)))

        _feed(spec, record, on_record)

    await _read(bootstrap, specs, keep, follow=False, wait_for_topic=False)
    merged = heapq.merge(*streams.values(), key=lambda item: item[0])
    return [value for _, _, value in merged]


async def _read(
    bootstrap: str,
    specs: Sequence[TopicSpec],
    feed: Callable[[TopicSpec, Any], None],
    *,
    caught_up: asyncio.Event | None = None,
    follow: bool,
    wait_for_topic: bool,
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka_security_options(),
    )
    try:
        await consumer.start()  # inside: a start that fails (no broker) must still close the client
        by_topic = {spec.name: spec for spec in specs}
        assignment = [tp for spec in specs for tp in await _all_partitions(consumer, spec.name, wait_for_topic)]
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
            for tp, records in batches.items():
                for record in records:
                    feed(by_topic[tp.topic], record)
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
