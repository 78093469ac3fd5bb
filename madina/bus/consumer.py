"""A plain aiokafka consumer loop for services that do not need faust.

Records are decoded in batches; one that does not decode, or that ``parse`` rejects, goes to
the topic's dead-letter twin and the loop carries on with the next. ``parse`` turns the message
into a domain value, which the handler finds on ``ConsumedEvent.record``; whatever it raises on a
record (an InvalidRecord or a converter's own bug) parks that record rather than stopping the
service on it at every start. Offsets are committed only
after the handler returned, so a crash replays rather than loses (handlers are idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer

from madina.bus.codec import InvalidRecord, decode
from madina.bus.producer import EventProducer
from madina.bus.topics import TopicSpec
from madina.observability.metrics import BUS_METRICS
from madina.settings import kafka_security_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumedEvent:
    spec: TopicSpec
    key: str | None
    message: Any
    headers: Sequence[tuple[str, bytes]]
    partition: int
    offset: int
    timestamp_ms: int
    raw_key: bytes | None = None
    raw_value: bytes | None = None
    """The record as received, for a handler that must dead-letter it after all."""
    record: Any = None
    """What the consumer's ``parse`` made of ``message``; ``message`` itself without a parse step."""

    def __post_init__(self) -> None:
        if self.record is None:
            object.__setattr__(self, "record", self.message)


Handler = Callable[[list[ConsumedEvent]], Awaitable[None]]
Parser = Callable[[Any], Any]


class EventConsumer:
    """Consume registry topics as a group member, dead-lettering what cannot be processed."""

    def __init__(
        self,
        bootstrap: str,
        specs: Sequence[TopicSpec],
        *,
        group_id: str,
        handler: Handler,
        producer: EventProducer,
        parse: Parser | None = None,
        auto_offset_reset: str = "earliest",
        max_records: int = 2000,
    ) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._handler = handler
        self._producer = producer
        self._parse = parse
        self._max_records = max_records
        self._consumer = AIOKafkaConsumer(
            *self._specs,
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            client_id=group_id,
            **kafka_security_options(),
        )
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        await self._consumer.start()
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=200, max_records=self._max_records)
                self.ready.set()
                if batches:
                    await self._process(batches)
        finally:
            await self._consumer.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def _process(self, batches: dict[Any, list[Any]]) -> None:
        events: list[ConsumedEvent] = []
        for tp, records in batches.items():
            spec = self._specs[tp.topic]
            BUS_METRICS.consumed.labels(spec.name).inc(len(records))
            for record in records:
                try:
                    message = decode(spec, record.value, record.headers, record.key)
                    parsed = message if self._parse is None else self._parse(message)
                except Exception as error:
                    reason = str(error) if isinstance(error, InvalidRecord) else f"unconvertible: {error!r}"
                    if not isinstance(error, InvalidRecord):
                        log.exception("parsing failed on a record", extra={"topic": spec.name})
                    await self._producer.send_dead_letter(
                        spec,
                        key=record.key,
                        value=record.value,
                        headers=record.headers,
                        reason=reason,
                        partition=tp.partition,
                        offset=record.offset,
                    )
                    continue
                key = record.key.decode("utf-8", "replace") if record.key is not None else None
                events.append(
                    ConsumedEvent(
                        spec, key, message, record.headers, tp.partition, record.offset, record.timestamp,
                        record.key, record.value, parsed,
                    )
                )
        started = time.perf_counter()
        if events:
            await self._handler(events)
        for tp in batches:
            BUS_METRICS.handle_seconds.labels(tp.topic).observe(time.perf_counter() - started)
        # Dead letters must be durable before the offsets that skip them are committed.
        await self._producer.flush()
        await self._consumer.commit()
