"""The comparison processor: one plain aiokafka ``getmany`` loop applying the environment rule.

    python -m bench.environment.plain_loop --bootstrap HOST:PORT --stations-file FILE

It reads the same observation topics as the faust processor, applies the same pure evaluator
(``apply_observations``, profiles the settings select by default) to an in-memory dict of
``StationState``, and publishes each transition as the same ``AlertEvent`` to ``PLAIN_ALERTS``,
plus one empty record per applied input record to ``PLAIN_APPLIED`` (the counterpart of the
processor's station-status record, which the benchmark counts). It keeps no changelog, builds no
station status, AQI or KPI records and commits no offsets: it is the lower bound of what a
consumer loop running this rule costs on this machine, not a replacement for the processor.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from madina.bus.codec import InvalidRecord, decode, encode, standard_headers
from madina.bus.topics import ALERTS, TopicSpec
from madina_proto.alerts.v1 import alerts_pb2
from services.environment.convert import alert_event, observations_from_batch
from services.environment.domain.evaluator import EvaluatorConfig, StationState, apply_observations
from services.environment.domain.profiles import load_profiles, select_rules
from services.environment.domain.stations import load_stations
from services.environment.settings import EnvironmentSettings
from services.environment.topics import OBSERVATION_TOPICS

SOURCE = "bench-plain-loop"
PLAIN_ALERTS = TopicSpec(
    name="bench.plain-alerts.v1", message_type=alerts_pb2.AlertEvent, key="alert_id",
    description="Alert events of the benchmark's plain aiokafka loop.",
)
PLAIN_APPLIED = TopicSpec(
    name="bench.plain-applied.v1", message_type=alerts_pb2.AlertEvent, key="station_id",
    description="One empty record per input record the plain loop applied.",
)
READY_LINE = "plain loop ready"
MAX_RECORDS_PER_POLL = 100


async def run(bootstrap: str, stations_file: Path, partitions: int) -> None:
    stations = {s.id: s for s in load_stations(stations_file)}
    default_profiles = EnvironmentSettings.model_fields["environment_profiles"].default
    rules = select_rules(load_profiles([]), default_profiles)
    config = EvaluatorConfig()
    specs = {spec.name: spec for spec in OBSERVATION_TOPICS}
    states: dict[str, StationState] = {}

    # Assigned, not subscribed: one process owns every partition, so there is no group to rebalance.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    # The same delivery settings as the faust processor's producer (madina.streams).
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    await consumer.start()
    assignment = [TopicPartition(topic, p) for topic in specs for p in range(partitions)]
    consumer.assign(assignment)
    await consumer.seek_to_beginning(*assignment)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(READY_LINE, flush=True)
    try:
        while not stop.is_set():
            # Few records per poll, so outputs leave while the next ones are evaluated.
            polled = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS_PER_POLL)
            pending = []
            for records in polled.values():
                for record in records:
                    spec = specs[record.topic]
                    try:
                        batch = decode(spec, record.value, record.headers)
                    except InvalidRecord:
                        continue
                    station = stations.get(batch.station_id)
                    if station is None:
                        continue
                    state = states.get(station.id) or StationState.new(station.id)
                    result = apply_observations(state, observations_from_batch(batch), rules, station, config)
                    states[station.id] = result.state
                    for transition in result.transitions:
                        event = alert_event(transition, station)
                        pending.append(await producer.send(
                            PLAIN_ALERTS.name, encode(event), key=event.alert_id.encode(),
                            headers=standard_headers(ALERTS, SOURCE, int(event.event_time.ToMilliseconds()))))
                    pending.append(await producer.send(PLAIN_APPLIED.name, b"", key=record.key))
                    await asyncio.sleep(0)  # let the producer's sender run between records
            # At-least-once as the processor: outputs are on the topic before the next poll.
            for future in pending:
                await future
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--stations-file", type=Path, required=True)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(run(args.bootstrap, args.stations_file, args.partitions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
