"""The comparison processor: one plain aiokafka ``getmany`` loop applying the energy circuit rule.

    python -m bench.energy.plain_loop --bootstrap HOST:PORT

It reads ``energy.streetlight-telemetry.v1``, applies the same step the faust processor runs
(``services.energy.processor.app.circuit_stepper``: every lamp and circuit rule, metering,
confirmations) to an in-memory dict of ``CircuitState``, publishes each alert to ``PLAIN_ALERTS``
and one empty record per applied input record to ``PLAIN_APPLIED``. No changelog, no status or
KPI records, no offsets committed: the lower bound of a consumer loop running this rule here.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from madina.bus.codec import InvalidRecord, decode, encode, standard_headers
from madina.bus.topics import ALERTS, TopicSpec
from madina.streams.entities import EntityRecord
from madina_proto.alerts.v1 import alerts_pb2
from services.energy.domain.circuit import CircuitState
from services.energy.domain.config import load_config
from services.energy.domain.network import load_network
from services.energy.domain.sun import SunCalendar
from services.energy.processor.app import circuit_stepper
from services.energy.topics import STREETLIGHT_TELEMETRY

SOURCE = "bench-plain-loop"
PLAIN_ALERTS = TopicSpec(
    name="bench.energy-plain-alerts.v1", message_type=alerts_pb2.AlertEvent, key="alert_id",
    description="Alert events of the energy benchmark's plain aiokafka loop.",
)
PLAIN_APPLIED = TopicSpec(
    name="bench.energy-plain-applied.v1", message_type=alerts_pb2.AlertEvent, key="circuit_id",
    description="One empty record per input record the plain loop applied.",
)
READY_LINE = "plain loop ready"
MAX_RECORDS_PER_POLL = 100


async def run(bootstrap: str, partitions: int) -> None:
    step = circuit_stepper(load_network(), load_config(), SunCalendar())
    states: dict[str, CircuitState] = {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    await consumer.start()
    assignment = [TopicPartition(STREETLIGHT_TELEMETRY.name, p) for p in range(partitions)]
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
                        batch = decode(STREETLIGHT_TELEMETRY, record.value, record.headers)
                        circuit_id = batch.circuit_id
                        state = states.get(circuit_id) or CircuitState.new(circuit_id)
                        result = step(state, EntityRecord(circuit_id, STREETLIGHT_TELEMETRY, batch, datetime.now(UTC)))
                    except InvalidRecord:
                        continue
                    states[circuit_id] = result.state
                    for event in result.alerts:
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
    args = parser.parse_args()
    asyncio.run(run(args.bootstrap, args.partitions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
