"""Per-record work of the mobility processor, free of faust: the step :mod:`madina.streams.entities` runs.

One input record is one route's batch of trip updates or vehicle positions from one published
feed, or a clock tick. The pure evaluator (:func:`apply_route_events`, :func:`tick_route`) turns
the route's state into a new state, alert transitions and KPIs; this module maps them to the
records to publish and keeps what the API serves beside the evaluator's state: the latest trip
update per trip run, the latest position per vehicle and the active alerts, all published as
the route's status (``mobility.route-status.v1``) after every record that changed something.

An entity naming a trip the static feed does not have, or a trip of another route, is refused
(dead-lettered alone with the reason, as a batch of one); the batch's other entities still flow.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from madina.alerts import AlertState, AlertTransition
from madina.bus.alert_events import timestamp
from madina.bus.topics import KPIS, TopicSpec
from madina.contract import InvalidRecord, required_time
from madina.eventtime import EventTimeBounds, event_time_problem
from madina.streams.entities import EntityRecord, Step
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from madina_proto.kpis.v1 import kpis_pb2
from madina_proto.mobility.v1 import events_pb2, mobility_service_pb2, status_pb2
from services.mobility.convert import (
    mobility_alert_event,
    position_from_wire,
    trip_update_from_wire,
)
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.delays import trip_key_of
from services.mobility.domain.evaluator import Kpi, MobilityConfig, RouteState, apply_route_events, tick_route
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.realtime import TripUpdate, VehiclePosition
from services.mobility.topics import ROUTE_STATUS, ROUTE_TICKS

KPI_NAMES = {"late-trips": "Late trips", "mean-delay": "Mean delay"}


@dataclass
class StoredRoute:
    """A route's table value: the evaluator's state plus what the API serves from the route's status."""

    route: RouteState
    # Kept in wire form (serialized TripUpdateReceived / VehiclePositionReported / AlertEvent; base64
    # in the table's JSON): the status is built from them after every record, and joining bytes
    # costs far less than rebuilding messages.
    trip_updates: dict[str, bytes]  # trip key -> latest trip update
    positions: dict[str, bytes]  # vehicle id -> latest position
    active_alerts: dict[str, bytes]  # alert id -> AlertEvent (latest revision)
    # The same as fields of the status (:func:`_embedded`), made when they change, not per record;
    # not stored (rebuilt on demand after a restore).
    trip_update_parts: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    active_alert_parts: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def new(cls, route_id: str) -> StoredRoute:
        return cls(RouteState.new(route_id), {}, {}, {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], route_id: str) -> StoredRoute:
        return cls(
            RouteState.from_dict(data["route"]),
            _decoded(data.get("trip_updates", {})),
            _decoded(data.get("positions", {})),
            _decoded(data.get("active_alerts", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route.to_dict(),
            "trip_updates": _encoded(self.trip_updates),
            "positions": _encoded(self.positions),
            "active_alerts": _encoded(self.active_alerts),
        }


def _decoded(values: Mapping[str, str]) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in values.items()}


def _encoded(values: Mapping[str, bytes]) -> dict[str, str]:
    return {key: base64.b64encode(value).decode() for key, value in values.items()}


Accepted = list[tuple[TripUpdate | VehiclePosition, Message]]  # domain value, its wire form


def events_of(batch: Message, route_id: str, schedule: Schedule) -> tuple[Accepted, list[tuple[str, Message]]]:
    """The batch's entities (domain value and wire form), and those refused (reason, batch of that one entity)."""
    accepted: Accepted = []
    rejected: list[tuple[str, Message]] = []
    trip_updates = isinstance(batch, events_pb2.TripUpdateReceivedBatch)
    items = batch.trip_updates if trip_updates else batch.vehicle_positions  # type: ignore[attr-defined]
    convert: Callable[[Any], TripUpdate | VehiclePosition] = (
        trip_update_from_wire if trip_updates else position_from_wire)
    trips = schedule.trips
    for index, item in enumerate(items):
        try:
            event = convert(item)
            trip = trips.get(event.trip_id) if event.trip_id else None
            if trip is None or trip.route_id != route_id:  # else check_route has nothing to say
                check_route(event, route_id, schedule)
            if event.route_id != route_id:
                event = replace(event, route_id=route_id)
                item = type(item)()
                item.CopyFrom(items[index])
                item.route_id = route_id
        except InvalidRecord as error:  # named with the item's place only when there is a problem
            where = f"{'trip_updates' if trip_updates else 'vehicle_positions'}[{index}]."
            single = type(batch)(route_id=route_id)
            (single.trip_updates if trip_updates else single.vehicle_positions).append(item)  # type: ignore[attr-defined]
            rejected.append((f"{where}{error}", single))
            continue
        accepted.append((event, item))
    return accepted, rejected



def check_route(event: TripUpdate | VehiclePosition, route_id: str, schedule: Schedule, where: str = "") -> None:
    """InvalidRecord unless the entity's trip is in the static feed and on ``route_id``."""
    if event.trip_id:
        trip = schedule.trips.get(event.trip_id)
        if trip is None:
            raise InvalidRecord(f"{where}trip_id: unknown trip {event.trip_id[:200]!r}")
        if trip.route_id != route_id:
            raise InvalidRecord(f"{where}trip_id: trip {event.trip_id!r} runs on route {trip.route_id!r}, "
                                f"not {route_id[:200]!r}")
    elif route_id not in schedule.routes:
        raise InvalidRecord(f"{where}route_id: unknown route {route_id[:200]!r}")


def route_step(
    schedule: Schedule, paths: PathIndex, config: MobilityConfig, bounds: EventTimeBounds | None = None
) -> Callable[[StoredRoute, EntityRecord], Step[StoredRoute]]:
    """The processor's step: a tick checks for silence and ended runs, a batch goes through the rules."""

    def step(stored: StoredRoute, record: EntityRecord) -> Step[StoredRoute]:
        route_id = record.entity_id
        if route_id not in schedule.routes:
            raise InvalidRecord(f"route_id: unknown route {route_id[:200]!r}")
        if record.spec is ROUTE_TICKS:
            now = required_time(record.value, "tick_time")
            if bounds is not None and (problem := event_time_problem(now, record.now, bounds)):
                raise InvalidRecord(f"tick_time: {problem}")
            result = tick_route(stored.route, now, schedule, paths, config)
            rejected: list[tuple[str, Message]] = []
        else:
            events, rejected = events_of(record.value, route_id, schedule)
            if not events:
                return Step(stored, rejected=rejected)
            result = apply_route_events(stored.route, [event for event, _ in events], schedule, paths, config)
        stored.route = result.state
        if record.spec is not ROUTE_TICKS:
            _remember(stored, events)  # the runs the new state tracks
        alerts = [_collect(stored, transition) for transition in result.transitions]
        _forget_ended(stored)
        records: list[tuple[TopicSpec, str, Message]] = [
            (KPIS, f"{kpi.kpi_id}/{route_id}", kpi_message(kpi, schedule)) for kpi in result.kpis
        ]
        if record.spec is not ROUTE_TICKS or result.transitions:
            records.append((ROUTE_STATUS, route_id, status_event(stored)))
        return Step(stored, alerts, records, rejected)

    return step


def _remember(stored: StoredRoute, events: Accepted) -> None:
    trips = stored.route.trips
    for event, wire in sorted(events, key=lambda pair: pair[0].timestamp):
        if event.deleted:  # a withdrawal: the evaluator dropped the run or vehicle, or kept it (stale withdrawal)
            continue
        if isinstance(event, TripUpdate):
            key = trip_key_of(event)
            if key is not None and key.text in trips:
                encoded = wire.SerializeToString()
                stored.trip_updates[key.text] = encoded
                stored.trip_update_parts[key.text] = _embedded(_TRIP_UPDATES_FIELD, encoded)
        else:
            stored.positions[event.vehicle_id] = wire.SerializeToString()


def _forget_ended(stored: StoredRoute) -> None:
    """What the evaluator dropped (ended runs, vehicles gone) leaves the status too."""
    trips = stored.route.trips
    for key in [key for key in stored.trip_updates if key not in trips]:
        del stored.trip_updates[key]
        stored.trip_update_parts.pop(key, None)
    for vehicle_id in [v for v in stored.positions if v not in stored.route.vehicles]:
        del stored.positions[vehicle_id]


def _collect(stored: StoredRoute, transition: AlertTransition) -> alerts_pb2.AlertEvent:
    event = mobility_alert_event(transition)
    if transition.state is AlertState.CLEARED:
        stored.active_alerts.pop(event.alert_id, None)
        stored.active_alert_parts.pop(event.alert_id, None)
    else:
        encoded = stored.active_alerts[event.alert_id] = event.SerializeToString()
        stored.active_alert_parts[event.alert_id] = _embedded(_ACTIVE_ALERTS_FIELD, encoded)
    return event


_STATUS_FIELDS = status_pb2.RouteStatusChanged.DESCRIPTOR.fields_by_name
_TRIP_UPDATES_FIELD = _STATUS_FIELDS["trip_updates"].number
_ACTIVE_ALERTS_FIELD = _STATUS_FIELDS["active_alerts"].number


def _embedded(field_number: int, payload: bytes) -> bytes:
    """A serialized message as a field of an enclosing message (protobuf's length-delimited wire
    form: tag, varint length, bytes). Serialized messages concatenate into one message, so the
    status parses once from joined parts instead of parsing and copying each update."""
    length = len(payload)
    if length < 0x80:  # most trip updates: the length takes one byte
        return bytes(((field_number << 3) | 2, length)) + payload
    head = bytearray(((field_number << 3) | 2,))  # field numbers < 16 take one byte
    while length >= 0x80:
        head.append((length & 0x7F) | 0x80)
        length >>= 7
    head.append(length)
    return bytes(head) + payload


def _parts(field_number: int, values: Mapping[str, bytes], parts: dict[str, bytes], keys: Iterable[str]) -> list[bytes]:
    """``values[key]`` embedded as ``field_number`` for each key, from ``parts`` (made once per value)."""
    out = []
    for key in keys:
        part = parts.get(key)
        if part is None:  # not made since the state was restored
            part = parts[key] = _embedded(field_number, values[key])
        out.append(part)
    return out


def status_event(stored: StoredRoute) -> status_pb2.RouteStatusChanged:
    route = stored.route
    parts = _parts(_TRIP_UPDATES_FIELD, stored.trip_updates, stored.trip_update_parts, sorted(stored.trip_updates))
    parts += _parts(_ACTIVE_ALERTS_FIELD, stored.active_alerts, stored.active_alert_parts, stored.active_alerts)
    status = status_pb2.RouteStatusChanged.FromString(b"".join(parts))
    status.route_id = route.route_id
    for vehicle_id in sorted(stored.positions):
        position = events_pb2.VehiclePositionReported.FromString(stored.positions[vehicle_id])
        vehicle = mobility_service_pb2.VehicleStatus(
            vehicle_id=vehicle_id, route_id=route.route_id, position=position.position,
            report_time=position.report_time,
        )
        track = route.vehicles.get(vehicle_id)
        trip = route.trips.get(track.trip_key) if track is not None and track.trip_key else None
        if trip is not None:
            vehicle.trip_id, vehicle.start_date = trip.key.trip_id, trip.key.start_date
            if trip.delay_s is not None:
                vehicle.delay_s = trip.delay_s
            vehicle.last_stop_id = trip.delay_stop_id or ""
        status.vehicles.append(vehicle)
    if route.watermark is not None:
        status.status_time.CopyFrom(timestamp(route.watermark))
    return status


def kpi_message(kpi: Kpi, schedule: Schedule) -> kpis_pb2.KpiObserved:
    route = schedule.routes.get(kpi.route_id)
    return kpis_pb2.KpiObserved(
        domain="mobility",
        kpi_id=kpi.kpi_id,
        display_name=f"{KPI_NAMES.get(kpi.kpi_id, kpi.kpi_id)} ({route.display_name if route else kpi.route_id})",
        entity=common_pb2.EntityRef(domain="mobility", kind="route", entity_id=kpi.route_id),
        value=kpi.value,
        unit=kpi.unit,
        observe_time=timestamp(kpi.observe_time),
    )


def tick_message(route_id: str, now: datetime) -> events_pb2.RouteClockTick:
    return events_pb2.RouteClockTick(route_id=route_id, tick_time=timestamp(now))

