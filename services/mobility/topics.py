"""The mobility domain's topics, all keyed by ``route_id``.

One route's trip updates, vehicle positions and clock ticks share a key and a partition, so the
processor keeps one route state (:class:`~services.mobility.domain.evaluator.RouteState`) and the
route-level rules (several trips late at once, bunching) see every vehicle of the route in one
place. The ingest fills ``route_id`` from the static feed when a partner leaves it out. Inputs
carry batches of one route's entities from one published feed: the processor pays its per-record
cost once per batch.
"""

from __future__ import annotations

from madina.bus.topics import DAY_MS, TopicSpec
from madina_proto.mobility.v1 import events_pb2, status_pb2

TRIP_UPDATES = TopicSpec(
    name="mobility.trip-updates.v1",
    message_type=events_pb2.TripUpdateReceivedBatch,
    key="route_id",
    description="GTFS-Realtime TripUpdates, batched per route and published feed.",
    retention_ms=7 * DAY_MS,
)
VEHICLE_POSITIONS = TopicSpec(
    name="mobility.vehicle-positions.v1",
    message_type=events_pb2.VehiclePositionReportedBatch,
    key="route_id",
    description="Vehicle positions (GTFS-Realtime VehiclePositions and raw AVL), batched per route.",
    retention_ms=3 * DAY_MS,
)
ROUTE_TICKS = TopicSpec(
    name="mobility.route-ticks.v1",
    message_type=events_pb2.RouteClockTick,
    key="route_id",
    description="Processor clock ticks per route: silent vehicles, ended runs, stale delays.",
    retention_ms=1 * DAY_MS,
)
ROUTE_STATUS = TopicSpec(
    name="mobility.route-status.v1",
    message_type=status_pb2.RouteStatusChanged,
    key="route_id",
    description="Latest status per route (trip updates, vehicles, active alerts); compacted.",
    cleanup_policy="compact",
    retention_ms=-1,
)

# Everything the processor reads must be co-partitioned with its route table.
PROCESSOR_INPUTS = (TRIP_UPDATES, VEHICLE_POSITIONS, ROUTE_TICKS)
ALL = (*PROCESSOR_INPUTS, ROUTE_STATUS)
