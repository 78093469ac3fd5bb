"""GTFS-Realtime protobuf (``gtfs-realtime-bindings``) and Madina's mobility events <-> plain domain values.

The only place that reads ``gtfs_realtime_pb2``, so ``services/mobility/domain`` stays free of
protobuf. Field presence is read with ``HasField`` because GTFS-Realtime is proto2: a delay of 0
("exactly on time") and an absent delay ("unknown") must stay different.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.transit import gtfs_realtime_pb2

from madina.alerts import AlertTransition
from madina.bus.alert_events import timestamp, to_alert_event
from madina.contract import InvalidRecord, coordinates, finite, required_time, time_from_pb
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from madina_proto.mobility.v1 import events_pb2, mobility_service_pb2, status_pb2
from services.mobility.domain.parking import CarPark, CarParkState, ParkingObservation
from services.mobility.domain.realtime import (
    StopRelationship,
    StopTimeEvent,
    StopTimeUpdate,
    TripRelationship,
    TripUpdate,
    VehiclePosition,
)
from services.mobility.domain.tickets import Validation

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


# --- Madina's own wire form (events.proto) <-> domain values ------------------------------------
# Enum values are named alike on both sides (TRIP_SCHEDULE_RELATIONSHIP_CANCELED <-> CANCELED);
# the zero value (*_UNSPECIFIED) reads as SCHEDULED, GTFS-Realtime's own default.

_TRIP_TO_WIRE = {r: events_pb2.TripScheduleRelationship.Value(f"TRIP_SCHEDULE_RELATIONSHIP_{r.value}")
                 for r in TripRelationship}
_TRIP_FROM_WIRE = {value: key for key, value in _TRIP_TO_WIRE.items()}
_STOP_TO_WIRE = {r: events_pb2.StopScheduleRelationship.Value(f"STOP_SCHEDULE_RELATIONSHIP_{r.value}")
                 for r in StopRelationship}
_STOP_FROM_WIRE = {value: key for key, value in _STOP_TO_WIRE.items()}


def _event_to_wire(event: StopTimeEvent) -> events_pb2.StopTimeEvent:
    wire = events_pb2.StopTimeEvent(delay_s=event.delay_s, uncertainty_s=event.uncertainty_s)
    if event.time is not None:
        wire.time.CopyFrom(timestamp(event.time))
    if event.scheduled_time is not None:
        wire.scheduled_time.CopyFrom(timestamp(event.scheduled_time))
    return wire


def _wire_time(message: Message, field: str, where: str) -> datetime | None:
    """``optional_time``, memoised (:func:`_time_of`)."""
    return _time_of(getattr(message, field), field, where) if message.HasField(field) else None


def _time_of(stamp: Timestamp, field: str, where: str) -> datetime:
    """``time_from_pb``, memoised by (seconds, nanos): a feed's entities share a handful of instants,
    and building each datetime again cost more than the rest of a trip update's conversion."""
    seconds, nanos = stamp.seconds, stamp.nanos
    moment = _TIMES.get((seconds, nanos))
    if moment is None:
        moment = time_from_pb(stamp, f"{where}{field}")  # checks the range, names the field
        if len(_TIMES) >= _TIMES_KEPT:
            _TIMES.clear()
        _TIMES[(seconds, nanos)] = moment
    return moment


_TIMES: dict[tuple[int, int], datetime] = {}
_TIMES_KEPT = 4096


def _event_from_wire(wire: events_pb2.StopTimeEvent, where: str) -> StopTimeEvent:
    has = wire.HasField
    return StopTimeEvent(
        wire.delay_s if has("delay_s") else None,
        _time_of(wire.time, "time", where) if has("time") else None,
        wire.uncertainty_s if has("uncertainty_s") else None,
        _time_of(wire.scheduled_time, "scheduled_time", where) if has("scheduled_time") else None,
    )


def _stop_time_update_from_wire(wire: events_pb2.StopTimeUpdate) -> StopTimeUpdate:
    has = wire.HasField
    return StopTimeUpdate(
        wire.stop_sequence if has("stop_sequence") else None,
        wire.stop_id or None,
        _event_from_wire(wire.arrival, "arrival.") if has("arrival") else None,
        _event_from_wire(wire.departure, "departure.") if has("departure") else None,
        _STOP_FROM_WIRE.get(wire.schedule_relationship, StopRelationship.SCHEDULED),
    )


def trip_update_to_wire(update: TripUpdate, feed_id: str = "") -> events_pb2.TripUpdateReceived:
    """The event form of a trip update (``route_id`` must be filled in: it is the record key)."""
    wire = events_pb2.TripUpdateReceived(
        route_id=update.route_id or "",
        trip_id=update.trip_id,
        start_date=update.start_date or "",
        start_time=update.start_time or "",
        direction_id=update.direction_id,
        schedule_relationship=_TRIP_TO_WIRE[update.relationship],
        vehicle_id=update.vehicle_id or "",
        update_time=timestamp(update.timestamp),
        delay_s=update.delay_s,
        new_trip_id=update.new_trip_id or "",
        new_start_date=update.new_start_date or "",
        new_start_time=update.new_start_time or "",
        feed_id=feed_id,
        deleted=update.deleted,
    )
    for stu in update.stop_time_updates:
        item = wire.stop_time_updates.add(
            stop_id=stu.stop_id or "", schedule_relationship=_STOP_TO_WIRE[stu.relationship]
        )
        if stu.stop_sequence is not None:
            item.stop_sequence = stu.stop_sequence
        if stu.arrival is not None:
            item.arrival.CopyFrom(_event_to_wire(stu.arrival))
        if stu.departure is not None:
            item.departure.CopyFrom(_event_to_wire(stu.departure))
    return wire


def trip_update_from_wire(wire: events_pb2.TripUpdateReceived, where: str = "") -> TripUpdate:
    """A trip update event as a domain value, or InvalidRecord naming the field."""
    trip_id = wire.trip_id
    if not trip_id:
        raise InvalidRecord(f"{where}trip_id: required")
    stop_time_updates = wire.stop_time_updates
    try:
        updates = tuple([_stop_time_update_from_wire(stu) for stu in stop_time_updates])
    except InvalidRecord:  # the field's full path only when there is a problem to name
        for index, stu in enumerate(stop_time_updates):
            try:
                _stop_time_update_from_wire(stu)
            except InvalidRecord as error:
                raise InvalidRecord(f"{where}stop_time_updates[{index}].{error}") from None
        raise
    has = wire.HasField
    if not has("update_time"):
        raise InvalidRecord(f"{where}update_time: required")
    return TripUpdate(  # positional, in the order of TripUpdate's fields: it runs for every entity
        trip_id,
        wire.start_date or None,
        _TRIP_FROM_WIRE.get(wire.schedule_relationship, TripRelationship.SCHEDULED),
        _time_of(wire.update_time, "update_time", where),
        wire.route_id or None,
        wire.direction_id if has("direction_id") else None,
        wire.start_time or None,
        wire.vehicle_id or None,
        wire.delay_s if has("delay_s") else None,
        updates,
        wire.new_trip_id or None,
        wire.new_start_date or None,
        wire.new_start_time or None,
        wire.deleted,
    )


def position_to_wire(position: VehiclePosition) -> events_pb2.VehiclePositionReported:
    return events_pb2.VehiclePositionReported(
        route_id=position.route_id or "",
        vehicle_id=position.vehicle_id,
        trip_id=position.trip_id or "",
        start_date=position.start_date or "",
        position=common_pb2.GeoPoint(latitude_deg=position.lat, longitude_deg=position.lon),
        report_time=timestamp(position.timestamp),
        bearing_deg=position.bearing_deg,
        speed_mps=position.speed_mps,
        deleted=position.deleted,
    )


def position_from_wire(wire: events_pb2.VehiclePositionReported, where: str = "") -> VehiclePosition:
    if not wire.vehicle_id:
        raise InvalidRecord(f"{where}vehicle_id: required")
    if not wire.HasField("position"):
        raise InvalidRecord(f"{where}position: required")
    lat, lon = coordinates(wire.position.latitude_deg, wire.position.longitude_deg, f"{where}position")
    return VehiclePosition(
        vehicle_id=wire.vehicle_id,
        lat=lat,
        lon=lon,
        timestamp=required_time(wire, "report_time", where),
        trip_id=wire.trip_id or None,
        start_date=wire.start_date or None,
        route_id=wire.route_id or None,
        bearing_deg=finite(wire.bearing_deg, f"{where}bearing_deg") if wire.HasField("bearing_deg") else None,
        speed_mps=finite(wire.speed_mps, f"{where}speed_mps") if wire.HasField("speed_mps") else None,
        deleted=wire.deleted,
    )


# --- Feeds out: Madina's state -> GTFS-Realtime ------------------------------------------------

_TRIP_TO_GTFS = {value: gtfs_realtime_pb2.TripDescriptor.ScheduleRelationship.Value(key.value)
                 for key, value in _TRIP_TO_WIRE.items()}
_STOP_TO_GTFS = {value: gtfs_realtime_pb2.TripUpdate.StopTimeUpdate.ScheduleRelationship.Value(key.value)
                 for key, value in _STOP_TO_WIRE.items()}


def feed_message(entities: Iterable[gtfs_realtime_pb2.FeedEntity], now: datetime) -> gtfs_realtime_pb2.FeedMessage:
    """A FULL_DATASET FeedMessage (GTFS-Realtime 2.0) of ``entities``."""
    feed = gtfs_realtime_pb2.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.incrementality = gtfs_realtime_pb2.FeedHeader.FULL_DATASET
    feed.header.timestamp = int(now.timestamp())
    feed.entity.extend(entities)
    return feed


def _seconds(stamp: Timestamp) -> int:
    return int(stamp.seconds)


def trip_update_entity(wire: events_pb2.TripUpdateReceived) -> gtfs_realtime_pb2.FeedEntity:
    entity = gtfs_realtime_pb2.FeedEntity(id=f"{wire.trip_id}:{wire.start_date}")
    update = entity.trip_update
    update.trip.trip_id = wire.trip_id
    update.trip.route_id = wire.route_id
    if wire.start_date:
        update.trip.start_date = wire.start_date
    if wire.start_time:
        update.trip.start_time = wire.start_time
    if wire.HasField("direction_id"):
        update.trip.direction_id = wire.direction_id
    update.trip.schedule_relationship = _TRIP_TO_GTFS.get(wire.schedule_relationship, 0)  # type: ignore[assignment]
    if wire.vehicle_id:
        update.vehicle.id = wire.vehicle_id
    update.timestamp = _seconds(wire.update_time)
    if wire.HasField("delay_s"):
        update.delay = wire.delay_s
    for stu in wire.stop_time_updates:
        out = update.stop_time_update.add(schedule_relationship=_STOP_TO_GTFS.get(stu.schedule_relationship, 0))
        if stu.HasField("stop_sequence"):
            out.stop_sequence = stu.stop_sequence
        if stu.stop_id:
            out.stop_id = stu.stop_id
        for name in ("arrival", "departure"):
            if stu.HasField(name):
                source, target = getattr(stu, name), getattr(out, name)
                if source.HasField("delay_s"):
                    target.delay = source.delay_s
                if source.HasField("time"):
                    target.time = _seconds(source.time)
                if source.HasField("uncertainty_s"):
                    target.uncertainty = source.uncertainty_s
    return entity


def vehicle_entity(vehicle: mobility_service_pb2.VehicleStatus) -> gtfs_realtime_pb2.FeedEntity:
    entity = gtfs_realtime_pb2.FeedEntity(id=vehicle.vehicle_id)
    out = entity.vehicle
    out.vehicle.id = vehicle.vehicle_id
    out.trip.route_id = vehicle.route_id
    if vehicle.trip_id:
        out.trip.trip_id = vehicle.trip_id
    if vehicle.start_date:
        out.trip.start_date = vehicle.start_date
    out.position.latitude = vehicle.position.latitude_deg
    out.position.longitude = vehicle.position.longitude_deg
    if vehicle.last_stop_id:
        out.stop_id = vehicle.last_stop_id
    out.timestamp = _seconds(vehicle.report_time)
    return entity


# Which GTFS-Realtime cause and effect each mobility rule's alert announces.
_CAUSE_EFFECT = {
    "trip-delay": ("UNKNOWN_CAUSE", "SIGNIFICANT_DELAYS"),
    "route-delays": ("UNKNOWN_CAUSE", "SIGNIFICANT_DELAYS"),
    "bunching": ("UNKNOWN_CAUSE", "REDUCED_SERVICE"),
    "trip-canceled": ("UNKNOWN_CAUSE", "NO_SERVICE"),
    "data-gap": ("TECHNICAL_PROBLEM", "UNKNOWN_EFFECT"),
}


def alert_entity(event: alerts_pb2.AlertEvent) -> gtfs_realtime_pb2.FeedEntity:
    """A Madina alert as a GTFS-Realtime Alert: who it concerns (route, trip, stop), when, why."""
    entity = gtfs_realtime_pb2.FeedEntity(id=event.alert_id)
    alert = entity.alert
    period = alert.active_period.add(start=_seconds(event.raise_time))
    if event.HasField("clear_time"):
        period.end = _seconds(event.clear_time)
    labels = event.labels
    informed = alert.informed_entity.add()
    if labels.get("route_id"):
        informed.route_id = labels["route_id"]
    if labels.get("trip_id"):
        informed.trip.trip_id = labels["trip_id"]
        if labels.get("start_date"):
            informed.trip.start_date = labels["start_date"]
    if labels.get("stop_id"):
        informed.stop_id = labels["stop_id"]
    cause, effect = _CAUSE_EFFECT.get(event.rule_id, ("UNKNOWN_CAUSE", "UNKNOWN_EFFECT"))
    alert.cause = gtfs_realtime_pb2.Alert.Cause.Value(cause)  # type: ignore[assignment]
    alert.effect = gtfs_realtime_pb2.Alert.Effect.Value(effect)  # type: ignore[assignment]
    alert.header_text.translation.add(text=event.message, language="en")
    alert.description_text.translation.add(text=event.message, language="en")
    return entity


def mobility_alert_event(transition: AlertTransition) -> alerts_pb2.AlertEvent:
    """The wire form of a mobility transition (route, trip, vehicle and stop are in its labels)."""
    return to_alert_event(transition)


# --- Ticket validations and car parks ------------------------------------------------------------


def validation_to_wire(validation: Validation) -> events_pb2.TicketValidated:
    return events_pb2.TicketValidated(
        validation_id=validation.validation_id, card_hash=validation.card_hash, vehicle_id=validation.vehicle_id,
        route_id=validation.route_id, stop_id=validation.stop_id,
        position=common_pb2.GeoPoint(latitude_deg=validation.lat, longitude_deg=validation.lon),
        validate_time=timestamp(validation.time),
    )


def validation_from_wire(wire: events_pb2.TicketValidated, where: str = "") -> Validation:
    for name in ("validation_id", "card_hash", "vehicle_id", "route_id"):
        if not getattr(wire, name):
            raise InvalidRecord(f"{where}{name}: required")
    if not wire.HasField("position"):
        raise InvalidRecord(f"{where}position: required")
    lat, lon = coordinates(wire.position.latitude_deg, wire.position.longitude_deg, f"{where}position")
    return Validation(
        validation_id=wire.validation_id, card_hash=wire.card_hash, vehicle_id=wire.vehicle_id,
        route_id=wire.route_id, lat=lat, lon=lon, time=required_time(wire, "validate_time", where),
        stop_id=wire.stop_id,
    )


def ridership_counted(route_id: str, stop_id: str, hour: datetime, count: int) -> events_pb2.RidershipCounted:
    return events_pb2.RidershipCounted(route_id=route_id, stop_id=stop_id, hour_start_time=timestamp(hour),
                                       validations_count=count)


def parking_to_wire(observation: ParkingObservation) -> events_pb2.ParkingOccupancyObserved:
    return events_pb2.ParkingOccupancyObserved(
        car_park_id=observation.car_park_id, observe_time=timestamp(observation.time),
        occupied_spaces_count=observation.occupied, capacity_spaces_count=observation.capacity,
    )


def parking_from_wire(wire: events_pb2.ParkingOccupancyObserved, where: str = "") -> ParkingObservation:
    if not wire.car_park_id:
        raise InvalidRecord(f"{where}car_park_id: required")
    if wire.capacity_spaces_count <= 0:
        raise InvalidRecord(f"{where}capacity_spaces_count: must be positive")
    if wire.occupied_spaces_count > wire.capacity_spaces_count:
        raise InvalidRecord(f"{where}occupied_spaces_count: {wire.occupied_spaces_count} is more than the "
                            f"{wire.capacity_spaces_count} spaces")
    return ParkingObservation(wire.car_park_id, required_time(wire, "observe_time", where),
                              wire.occupied_spaces_count, wire.capacity_spaces_count)


def car_park_status(
    state: CarParkState, park: CarPark, district: common_pb2.District | None, full_ratio: float,
    active_alert: alerts_pb2.AlertEvent | None,
) -> status_pb2.CarParkStatusChanged:
    availability = mobility_service_pb2.CarParkAvailability(
        car_park_id=park.car_park_id, display_name=park.display_name, district=district,
        free_spaces_count=state.free or 0, capacity_spaces_count=state.capacity or park.capacity,
        full=state.occupied is not None and state.occupied >= full_ratio * (state.capacity or park.capacity),
    )
    if state.observe_time is not None:
        availability.observe_time.CopyFrom(timestamp(state.observe_time))
    return status_pb2.CarParkStatusChanged(car_park=availability, active_alert=active_alert)
