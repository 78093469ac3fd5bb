"""The mobility domain's topics: buses keyed by ``route_id``, tickets by card, car parks by car park.

One route's trip updates, vehicle positions and clock ticks share a key and a partition, so the
processor keeps one route state (:class:`~services.mobility.domain.evaluator.RouteState`) and the
route-level rules (several trips late at once, bunching) see every vehicle of the route in one
place. The ingest fills ``route_id`` from the static feed when a partner leaves it out. Inputs
carry batches of one route's entities from one published feed: the processor pays its per-record
cost once per batch.

The same processor keeps three other kinds of entity in its table, each keyed by its own id on
its own inputs: a card (``mobility.ticket-validations.v1``, for the fraud check), a route's
ridership (``mobility.ridership-validations.v1``, the card step's accepted validations re-keyed
``ridership/<route>``, counted per route and stop) and a car park (``mobility.parking-occupancy.v1``).
Their keys cannot meet a route's: card hashes are hex digests, ridership keys hold a ``/``, and
car parks come from a registry.
"""

from __future__ import annotations

from google.transit import gtfs_realtime_pb2

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

TICKET_VALIDATIONS = TopicSpec(
    name="mobility.ticket-validations.v1",
    message_type=events_pb2.TicketValidated,
    key="card_hash",
    description="Ticket validations on board (hashed card, vehicle, route, stop, position, time).",
    retention_ms=7 * DAY_MS,
)
RIDERSHIP_VALIDATIONS = TopicSpec(
    name="mobility.ridership-validations.v1",
    message_type=events_pb2.TicketValidated,
    key="ridership/route_id",  # composite: "ridership/<route_id>" (before, "<route_id>/<stop_id>")
    description="Validations the processor accepted (not repeats), re-keyed by route for ridership.",
    # As long as its source: after an outage the card step does not re-send what it already
    # re-keyed, so an unread tail deleted earlier than the source would be validations never counted.
    retention_ms=TICKET_VALIDATIONS.retention_ms,
)
# The key is the hour itself, so compaction alone would keep one record per route, stop and hour
# forever (and the API, which reads the topic whole at start, would hold them all). Compaction keeps
# each hour's final total; deletion drops hours older than the retention, as energy's history does.
RIDERSHIP_KEPT_DAYS = 62
RIDERSHIP = TopicSpec(
    name="mobility.ridership.v1",
    message_type=events_pb2.RidershipCounted,
    # Composite: "ridership/<route_id>/<stop_id>/<hour start, RFC 3339>", the counting entity first;
    # per-stop counting wrote "<route_id>/<stop_id>/<hour start>". A stop's hour is the sum of its
    # records under both forms (processor/counts_stream.py, upgrading).
    key="ridership/route_id/stop_id/hour_start",
    description=f"Validations per route, stop and agency-local hour (latest per key is its total); compacted, "
                f"hours older than {RIDERSHIP_KEPT_DAYS} days deleted.",
    cleanup_policy="compact,delete",
    retention_ms=RIDERSHIP_KEPT_DAYS * DAY_MS,
)
PARKING_OCCUPANCY = TopicSpec(
    name="mobility.parking-occupancy.v1",
    message_type=events_pb2.ParkingOccupancyObserved,
    key="car_park_id",
    description="Car-park counts (occupied and total spaces).",
    retention_ms=7 * DAY_MS,
)
CAR_PARK_STATUS = TopicSpec(
    name="mobility.car-park-status.v1",
    message_type=status_pb2.CarParkStatusChanged,
    key="car_park_id",  # of its car_park field
    description="Latest availability per car park, with its active car-park-full alert; compacted.",
    cleanup_policy="compact",
    retention_ms=-1,
)
# The API's, not the processor's: what each publisher pushed, so that every API replica (and one
# restarted) resolves a later id-only deletion (services/mobility/api/incrementality.py).
PUSHED_ENTITIES = TopicSpec(
    name="mobility.pushed-entities.v1",
    message_type=gtfs_realtime_pb2.FeedEntity,
    key="publisher/entity_id",  # composite: "<publishing principal, percent-encoded>/<entity id>"
    description="Each publisher's GTFS-Realtime entities as sent for their trip and vehicle (is_deleted once "
                "deleted), read by every API replica; compacted, an entity no longer pushed deleted after 7 days.",
    cleanup_policy="compact,delete",
    retention_ms=7 * DAY_MS,
)

# Everything the processor reads must be co-partitioned with its table.
PROCESSOR_INPUTS = (TRIP_UPDATES, VEHICLE_POSITIONS, ROUTE_TICKS, TICKET_VALIDATIONS, RIDERSHIP_VALIDATIONS,
                    PARKING_OCCUPANCY)
ALL = (*PROCESSOR_INPUTS, ROUTE_STATUS, RIDERSHIP, CAR_PARK_STATUS, PUSHED_ENTITIES)
