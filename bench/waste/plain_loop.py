"""The comparison processor: one plain aiokafka ``getmany`` loop applying the waste processor's step.

    python -m bench.waste.plain_loop --bootstrap HOST:PORT

It reads ``waste.container-levels.v1``, applies the very step the faust worker runs
(``services.waste.processor.app.waste_processor(...).step``: every container rule, fill rate,
status and KPI built) to an in-memory dict of states, publishes each alert to ``PLAIN_ALERTS`` and
one empty record per applied input record to ``PLAIN_APPLIED``. No changelog, no status, KPI or
collection records, no offsets committed: the lower bound of a consumer loop running this rule here.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from madina.bus.codec import InvalidRecord, decode, encode, standard_headers
from madina.bus.topics import ALERTS, TopicSpec
from madina.streams.entities import EntityRecord
from madina_proto.alerts.v1 import alerts_pb2
from services.waste.processor.app import waste_processor
from services.waste.settings import WasteProcessorSettings
from services.waste.topics import CONTAINER_LEVELS

SOURCE = "bench-plain-loop"
PLAIN_ALERTS = TopicSpec(
    name="bench.waste-plain-alerts.v1", message_type=alerts_pb2.AlertEvent, key="alert_id",
    description="Alert events of the waste benchmark's plain aiokafka loop.",
)
PLAIN_APPLIED = TopicSpec(
    name="bench.waste-plain-applied.v1", message_type=alerts_pb2.AlertEvent, key="container_id",
    description="One empty record per input record the plain loop applied.",
)
READY_LINE = "plain loop ready"
MAX_RECORDS_PER_POLL = 100


async def run(bootstrap: str, partitions: int, max_age_s: float) -> None:
    processor = waste_processor(WasteProcessorSettings(
        waste_max_reading_age_s=max_age_s, waste_max_future_skew_s=86_400))
    states: dict[str, Any] = {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    await consumer.start()
    assignment = [TopicPartition(CONTAINER_LEVELS.name, p) for p in range(partitions)]
    consumer.assign(assignment)
    await consumer.seek_to_beginning(*assignment)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(READY_LINE, flush=True)
    try:
        while not stop.is_set():
            polled = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS_PER_POLL)
            pending = []
            for records in polled.values():
                for record in records:
                    try:
                        batch = decode(CONTAINER_LEVELS, record.value, record.headers)
                        entity = batch.container_id
                        state = states.get(entity) or processor.new_state(entity)
                        step = processor.step(state, EntityRecord(entity, CONTAINER_LEVELS, batch, datetime.now(UTC)))
                    except InvalidRecord:
                        continue
                    states[entity] = step.state
                    for event in step.alerts:
                        pending.append(await producer.send(
                            PLAIN_ALERTS.name, encode(event), key=event.alert_id.encode(),
                            headers=standard_headers(ALERTS, SOURCE, int(event.event_time.ToMilliseconds()))))
                    pending.append(await producer.send(PLAIN_APPLIED.name, b"", key=record.key))
                    await asyncio.sleep(0)
            for future in pending:
                await future
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-age-s", type=float, default=30 * 86_400)
    args = parser.parse_args()
    asyncio.run(run(args.bootstrap, args.partitions, args.max_age_s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
