"""The same rule without faust: one aiokafka loop applying ``apply_route_events`` to in-memory states.

Reads ``mobility.trip-updates.v1`` from the start, keeps each route's RouteState in a dict (no
changelog, no status, no exactly-once), publishes each transition's AlertEvent on
``bench.plain-alerts`` and one marker per record on ``bench.plain-applied``. Prints READY once
assigned. ``python -m bench.mobility.plain_loop --bootstrap HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.mobility.workload import ROUTE_LATE_COUNT
from madina_proto.mobility.v1 import events_pb2
from services.mobility.convert import mobility_alert_event, trip_update_from_wire
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.evaluator import MobilityConfig, RouteState, apply_route_events
from services.mobility.domain.gtfs import load_feeds
from services.mobility.settings import MobilityProcessorSettings
from services.mobility.topics import TRIP_UPDATES

READY_LINE = "READY"
PLAIN_ALERTS = "bench.plain-alerts"
PLAIN_APPLIED = "bench.plain-applied"


async def run(bootstrap: str) -> None:
    schedule = load_feeds(MobilityProcessorSettings().mobility_gtfs_feeds)
    paths = PathIndex(schedule)
    config = MobilityConfig(route_late_count=ROUTE_LATE_COUNT)
    states: dict[str, RouteState] = {}
    consumer = AIOKafkaConsumer(TRIP_UPDATES.name, bootstrap_servers=bootstrap, group_id="bench-plain-mobility",
                                auto_offset_reset="earliest", enable_auto_commit=True)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await consumer.start()
    await producer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    print(READY_LINE, flush=True)
    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=200, max_records=500)).values():
                for record in records:
                    batch = events_pb2.TripUpdateReceivedBatch.FromString(record.value)
                    route_id = batch.route_id
                    result = apply_route_events(states.get(route_id) or RouteState.new(route_id),
                                                [trip_update_from_wire(u) for u in batch.trip_updates],
                                                schedule, paths, config)
                    states[route_id] = result.state
                    for transition in result.transitions:
                        event = mobility_alert_event(transition)
                        await producer.send(PLAIN_ALERTS, event.SerializeToString(), key=event.alert_id.encode())
                    await producer.send(PLAIN_APPLIED, b"", key=record.key)
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    asyncio.run(run(parser.parse_args().bootstrap))


if __name__ == "__main__":
    main()
