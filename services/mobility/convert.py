"""GTFS-Realtime protobuf (``gtfs-realtime-bindings``) -> plain mobility domain values.

The only place that reads ``gtfs_realtime_pb2``, so ``services/mobility/domain`` stays free of
protobuf. Field presence is read with ``HasField`` because GTFS-Realtime is proto2: a delay of 0
("exactly on time") and an absent delay ("unknown") must stay different.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.transit import gtfs_realtime_pb2

from services.mobility.domain.realtime import (
    StopRelationship,
    StopTimeEvent,
    StopTimeUpdate,
    TripRelationship,
    TripUpdate,
    VehiclePosition,
)

_TRIP_RELATIONSHIP = {
    value: TripRelationship(name) for name, value in gtfs_realtime_pb2.TripDescriptor.ScheduleRelationship.items()
}
_STOP_RELATIONSHIP = {
    value: StopRelationship(name)
    for name, value in gtfs_realtime_pb2.TripUpdate.StopTimeUpdate.ScheduleRelationship.items()
}


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _event(message: gtfs_realtime_pb2.TripUpdate.StopTimeEvent) -> StopTimeEvent:
    return StopTimeEvent(
        delay_s=message.delay if message.HasField("delay") else None,
        time=_instant(message.time) if message.HasField("time") else None,
        uncertainty_s=message.uncertainty if message.HasField("uncertainty") else None,
        scheduled_time=_instant(message.scheduled_time) if message.HasField("scheduled_time") else None,
    )


def trip_update_from_pb(message: gtfs_realtime_pb2.TripUpdate, header_time: datetime) -> TripUpdate:
    """One TripUpdate; ``header_time`` (the FeedHeader's) stands in for a missing entity timestamp."""
    trip = message.trip
    updates = tuple(
        StopTimeUpdate(
            stop_sequence=stu.stop_sequence if stu.HasField("stop_sequence") else None,
            stop_id=stu.stop_id if stu.HasField("stop_id") else None,
            arrival=_event(stu.arrival) if stu.HasField("arrival") else None,
            departure=_event(stu.departure) if stu.HasField("departure") else None,
            relationship=_STOP_RELATIONSHIP[stu.schedule_relationship],
        )
        for stu in message.stop_time_update
    )
    properties = message.trip_properties if message.HasField("trip_properties") else None
    return TripUpdate(
        trip_id=trip.trip_id,
        start_date=trip.start_date if trip.HasField("start_date") else None,
        relationship=_TRIP_RELATIONSHIP[trip.schedule_relationship],
        timestamp=_instant(message.timestamp) if message.HasField("timestamp") else header_time,
        route_id=trip.route_id if trip.HasField("route_id") else None,
        direction_id=trip.direction_id if trip.HasField("direction_id") else None,
        start_time=trip.start_time if trip.HasField("start_time") else None,
        vehicle_id=message.vehicle.id if message.HasField("vehicle") and message.vehicle.HasField("id") else None,
        delay_s=message.delay if message.HasField("delay") else None,
        stop_time_updates=updates,
        new_trip_id=properties.trip_id if properties is not None and properties.HasField("trip_id") else None,
        new_start_date=properties.start_date if properties is not None and properties.HasField("start_date") else None,
        new_start_time=properties.start_time if properties is not None and properties.HasField("start_time") else None,
    )


def vehicle_position_from_pb(message: gtfs_realtime_pb2.VehiclePosition, header_time: datetime) -> VehiclePosition:
    """One VehiclePosition (speed in m/s as GTFS-Realtime gives it)."""
    trip = message.trip if message.HasField("trip") else None
    position = message.position
    vehicle_id = message.vehicle.id if message.HasField("vehicle") else ""
    return VehiclePosition(
        vehicle_id=vehicle_id,
        lat=position.latitude,
        lon=position.longitude,
        timestamp=_instant(message.timestamp) if message.HasField("timestamp") else header_time,
        trip_id=trip.trip_id if trip is not None and trip.HasField("trip_id") else None,
        start_date=trip.start_date if trip is not None and trip.HasField("start_date") else None,
        route_id=trip.route_id if trip is not None and trip.HasField("route_id") else None,
        bearing_deg=position.bearing if position.HasField("bearing") else None,
        speed_mps=position.speed if position.HasField("speed") else None,
    )


def feed_from_pb(
    feed: gtfs_realtime_pb2.FeedMessage,
) -> tuple[list[TripUpdate], list[VehiclePosition], list[str]]:
    """Trip updates and vehicle positions of a FeedMessage, and the ids of entities skipped (deleted ones)."""
    header_time = _instant(feed.header.timestamp)
    trip_updates: list[TripUpdate] = []
    positions: list[VehiclePosition] = []
    skipped: list[str] = []
    for entity in feed.entity:
        if entity.is_deleted:
            skipped.append(entity.id)
            continue
        if entity.HasField("trip_update"):
            trip_updates.append(trip_update_from_pb(entity.trip_update, header_time))
        if entity.HasField("vehicle") and entity.vehicle.HasField("position"):
            positions.append(vehicle_position_from_pb(entity.vehicle, header_time))
    return trip_updates, positions, skipped
