"""The one way Madina produces events: protobuf values, entity keys, standard headers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message

from madina.bus.codec import Headers, encode, standard_headers
from madina.bus.signing import signed
from madina.bus.topics import TopicSpec
from madina.observability.metrics import BUS_METRICS
from madina.settings import kafka_security_options

log = logging.getLogger(__name__)

HEADER_DLQ_REASON = "madina-dlq-reason"
HEADER_DLQ_TOPIC = "madina-dlq-original-topic"
HEADER_DLQ_PARTITION = "madina-dlq-original-partition"
HEADER_DLQ_OFFSET = "madina-dlq-original-offset"
MAX_REASON_BYTES = 2000


def dead_letter_headers(
    spec: TopicSpec,
    headers: Sequence[tuple[str, bytes]] | None,
    reason: str,
    partition: int | None = None,
    offset: int | None = None,
) -> Headers:
    """The original headers plus why and where from, for any producer that parks a record; counts and logs it."""
    dlq_headers: Headers = [(k, v) for k, v in (headers or ()) if not k.startswith("madina-dlq-")]
    dlq_headers += [
        (HEADER_DLQ_REASON, reason.encode()[:MAX_REASON_BYTES]),
        (HEADER_DLQ_TOPIC, spec.name.encode()),
    ]
    if partition is not None:
        dlq_headers.append((HEADER_DLQ_PARTITION, str(partition).encode()))
    if offset is not None:
        dlq_headers.append((HEADER_DLQ_OFFSET, str(offset).encode()))
    BUS_METRICS.dead_lettered.labels(spec.name, reason.split(":", 1)[0][:60]).inc()
    log.warning(
        "record dead-lettered", extra={"topic": spec.name, "partition": partition, "offset": offset, "reason": reason}
    )
    return dlq_headers


class EventProducer:
    """An idempotent, acks=all aiokafka producer that speaks the registry's topics."""

    def __init__(
        self, bootstrap: str, source: str, *, linger_ms: int = 5, max_batch_bytes: int = 1 << 20
    ) -> None:
        self.source = source
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=max_batch_bytes,
            client_id=source,
            **kafka_security_options(),
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def send(
        self, spec: TopicSpec, key: str, message: Message, *, event_time_ms: int | None = None
    ) -> asyncio.Future:
        """Queue one event; the returned future resolves to its RecordMetadata once acknowledged."""
        if not isinstance(message, spec.message_type):
            raise TypeError(
                f"{spec.name} carries {spec.message_type.DESCRIPTOR.full_name}, not {type(message).__name__}"
            )
        BUS_METRICS.produced.labels(spec.name).inc()
        value, raw_key = encode(message), key.encode()
        return await self._producer.send(
            spec.name,
            value=value,
            key=raw_key,
            headers=signed(spec.name, raw_key, value, standard_headers(spec, self.source, event_time_ms)),
            timestamp_ms=event_time_ms,
        )

    async def send_and_wait(
        self, spec: TopicSpec, key: str, message: Message, **kwargs: int | None
    ) -> object:
        return await (await self.send(spec, key, message, **kwargs))

    async def send_dead_letter(
        self,
        spec: TopicSpec,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
        reason: str,
        partition: int | None = None,
        offset: int | None = None,
    ) -> asyncio.Future:
        """Park a record that could not be processed on ``<topic>.dlq``, bytes untouched, reason in headers."""
        dlq_headers = dead_letter_headers(spec, headers, reason, partition, offset)
        return await self._producer.send(spec.dead_letter.name, value=value, key=key, headers=dlq_headers)

    async def flush(self) -> None:
        await self._producer.flush()
