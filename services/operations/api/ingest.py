"""From ``alerts.v1`` and ``alerts.actions.v1`` into the store, and from the store to watchers.

:class:`AlertIngest` is the consumer group member (group ``madina-operations``): each polled
batch is decoded, checked against the contract (a bad record goes to the topic's ``.dlq`` with
the reason, the good ones around it flow), applied in one store transaction off the event loop,
and its changes handed to the :class:`~services.operations.api.hub.ChangeHub`. A store that is
unavailable is waited for; a batch the store refuses for any other reason is applied again one
record at a time, and the record it refuses is dead-lettered too, so no record the contract let
through can stall the consumer. Offsets are
committed only after that, and the store ignores what it has already applied, so a crash replays
without doubling anything.

:func:`rebuild_store` replays both topics from the beginning into an empty store: the store is a
projection of the topics, and this is how a lost or new database is rebuilt::

    python -m services.operations.api.rebuild     # uses MADINA_DATABASE_URL, which must be empty
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from madina.bus import (
    ALERT_ACTIONS,
    ALERTS,
    ConsumedEvent,
    EventConsumer,
    EventProducer,
    InvalidRecord,
    decode,
)
from madina.bus.topics import TopicSpec
from services.operations.api.hub import ChangeHub
from services.operations.store import AlertStore, record_from_message
from services.operations.store.mapping import Record

log = logging.getLogger(__name__)

ALERT_TOPICS = (ALERTS, ALERT_ACTIONS)
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# What "the store is unavailable" looks like; any other error is about the records.
STORE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


class AlertIngest:
    """Consumes the alert topics into ``store`` and fans the changes out through ``hub``."""

    def __init__(
        self, bootstrap: str, store: AlertStore, hub: ChangeHub, producer: EventProducer, *,
        group_id: str = "madina-operations", max_records: int = 2000,
    ) -> None:
        self.store = store
        self.hub = hub
        self._producer = producer
        self.applied_batches = 0
        # The validator already turned each message into a domain record; the handler reuses it.
        self._records: dict[int, Record] = {}
        self.consumer = EventConsumer(
            bootstrap, ALERT_TOPICS, group_id=group_id, handler=self._handle, producer=producer,
            validate=self._validate, max_records=max_records,
        )

    @property
    def ready(self) -> asyncio.Event:
        return self.consumer.ready

    async def run(self) -> None:
        await self.consumer.run()

    def stop(self) -> None:
        self.consumer.stop()

    def _validate(self, message: Any) -> None:
        self._records[id(message)] = record_from_message(message)

    async def _handle(self, events: list[ConsumedEvent]) -> None:
        records = [self._records.pop(id(event.message), event.message) for event in events]
        try:
            changes = await self._apply(records)
        except Exception:
            # apply_batch is one transaction, so nothing of the batch was written.
            log.exception("the store refused a batch; applying its records one by one", extra={
                "records": len(records)})
            changes = []
            for event, record in zip(events, records, strict=True):
                try:
                    changes += await self._apply([record])
                except Exception as error:
                    await self._producer.send_dead_letter(
                        event.spec, key=event.raw_key, value=event.raw_value, headers=event.headers,
                        reason=f"store refused the record: {error!r}", partition=event.partition,
                        offset=event.offset,
                    )
        self.applied_batches += 1
        await self.hub.publish(changes)

    async def _apply(self, records: list[Record]) -> list[Any]:
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(self.store.apply_batch, records)
            except STORE_UNAVAILABLE:
                # Offsets are not committed until this returns, so waiting loses nothing.
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                log.exception("store unavailable; retrying the batch", extra={"retry_in_s": delay})
                attempt += 1
                await asyncio.sleep(delay)


async def read_topics(bootstrap: str, specs: tuple[TopicSpec, ...] = ALERT_TOPICS) -> list[Any]:
    """Every readable record of ``specs`` up to their current end, merged in produce-time order.

    Each partition keeps its own order (one alert's events and actions stay in sequence); across
    partitions and topics records interleave by timestamp, which is how live consumption saw them.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        by_topic = {spec.name: spec for spec in specs}
        assignment = [TopicPartition(spec.name, p) for spec in specs
                      for p in sorted(consumer.partitions_for_topic(spec.name) or ())]
        if not assignment:
            return []
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        end = await consumer.end_offsets(assignment)
        streams: dict[TopicPartition, list[tuple[int, int, Any]]] = {tp: [] for tp in assignment}
        remaining = {tp for tp in assignment if end[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    try:
                        message = decode(by_topic[tp.topic], record.value, record.headers, record.key)
                        record_from_message(message)
                    except InvalidRecord:
                        continue  # it went to the dead-letter topic when it was consumed live
                    streams[tp].append((record.timestamp, record.offset, message))
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    merged: Iterator[tuple[int, int, Any]] = heapq.merge(*streams.values(), key=lambda item: item[0])
    return [message for _, _, message in merged]


async def rebuild_store(bootstrap: str, store: AlertStore | str) -> int:
    """Replay both alert topics from the beginning into an empty store; returns the changes made."""
    owned = isinstance(store, str)
    target = AlertStore(store) if isinstance(store, str) else store
    try:
        if await asyncio.to_thread(target.latest_seq) != 0:
            raise ValueError("rebuild needs an empty store; replaying into a used one mixes histories")
        records = await read_topics(bootstrap)
        changes = await asyncio.to_thread(target.rebuild_from, records)
        log.info("store rebuilt from topics", extra={"records": len(records), "changes": changes})
        return changes
    finally:
        if owned:
            target.close()
