"""Per-record work of the mobility processor for cards, stops' ridership and car parks, free of faust.

The mobility processor's table holds four kinds of entity, each on its own inputs (see
:mod:`services.mobility.topics`); :func:`mobility_step` sends a record to its kind's step and
refuses one whose key already holds another kind:

- a **card** (``mobility.ticket-validations.v1``): a repeated validation id changes nothing; a
  validation too far and too fast from the card's previous one on another vehicle raises the
  ``ticket-fraud`` alert; every new validation is re-published keyed by its route and stop;
- a **route's stop** (``mobility.ridership-validations.v1``): validations counted per agency-local
  hour, the total published on the compacted ``mobility.ridership.v1`` (one key per route, stop
  and hour: the history, deleted after 62 days) and as the ``ridership`` KPI of the stop's newest
  hour (key ``ridership/<route>/<stop>``, the hour in its ``observe_time``: ``kpis.v1`` is compacted
  and never deleted, so a key per hour would grow it forever; a late validation of an older hour
  updates the history only). A card step replayed after a crash re-sends what it had sent; the
  stop remembers the ids it counted last, so each still counts once;
- a **car park** (``mobility.parking-occupancy.v1``): its latest count, the ``car-park-full``
  alert when it stays full, its availability on the compacted ``mobility.car-park-status.v1`` and
  the ``car-park-free`` KPI; on ``mobility.route-ticks.v1`` (the runner has one clock, the routes',
  so car parks are ticked on it by their own key) the ``data-gap`` alert when its counts stop.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.message import Message

from madina.alerts import AlertState, AlertTransition
from madina.bus.alert_events import timestamp
from madina.bus.topics import KPIS, TopicSpec
from madina.contract import InvalidRecord, required_time
from madina.eventtime import EventTimeBounds, event_time_problem
from madina.geo import City, district_at
from madina.streams.entities import EntityRecord, Step
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from madina_proto.kpis.v1 import kpis_pb2
from services.mobility.convert import (
    car_park_status,
    mobility_alert_event,
    parking_from_wire,
    ridership_counted,
    validation_from_wire,
)
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.parking import (
    CAR_PARK_FULL_RULE,
    CarPark,
    CarParkState,
    ParkingPolicy,
    apply_parking,
    check_parking_silence,
)
from services.mobility.domain.tickets import (
    CardState,
    FraudPolicy,
    StopRidership,
    apply_card_validation,
    count_validation,
    ridership_entity,
)
from services.mobility.processor.route_stream import StoredRoute
from services.mobility.topics import (
    CAR_PARK_STATUS,
    PARKING_OCCUPANCY,
    RIDERSHIP,
    RIDERSHIP_VALIDATIONS,
    ROUTE_TICKS,
    TICKET_VALIDATIONS,
)


@dataclass
class StoredCarPark:
    """A car park's table value: its state and its active alert (latest revision, base64), if any."""

    park: CarParkState
    active_alert: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"park": self.park.to_dict(), "active_alert": self.active_alert}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoredCarPark:
        return cls(CarParkState.from_dict(data["park"]), data.get("active_alert", ""))


@dataclass(frozen=True)
class Unseen:
    """An entity the table has never held: its kind is decided by the first record's topic."""

    entity_id: str


MobilityEntity = StoredRoute | CardState | StopRidership | StoredCarPark | Unseen
_KIND = "kind"  # beside the state's own keys; a value without it is a route (the first kind stored)
_KINDS: dict[str, Callable[[Mapping[str, Any]], MobilityEntity]] = {
    "card": CardState.from_dict,
    "stop": StopRidership.from_dict,
    "car-park": StoredCarPark.from_dict,
}


def entity_to_dict(entity: MobilityEntity) -> dict[str, Any]:
    if isinstance(entity, StoredRoute):
        return entity.to_dict()
    if isinstance(entity, Unseen):
        return {}
    kind = {CardState: "card", StopRidership: "stop", StoredCarPark: "car-park"}[type(entity)]
    return {_KIND: kind, **entity.to_dict()}


def entity_from_dict(data: Mapping[str, Any], entity_id: str) -> MobilityEntity:
    kind = data.get(_KIND)
    if kind is None:
        return StoredRoute.from_dict(data, entity_id)
    return _KINDS[kind]({k: v for k, v in data.items() if k != _KIND})


def mobility_entity_of(spec: TopicSpec, value: Any) -> str:
    """The entity of a record: ``<route>/<stop>`` on the ridership input, else the topic's key field."""
    if spec is RIDERSHIP_VALIDATIONS:
        return ridership_entity(value.route_id, value.stop_id)
    if spec is PARKING_OCCUPANCY or spec is TICKET_VALIDATIONS:
        return str(getattr(value, spec.key))
    return str(value.route_id)


@dataclass(frozen=True)
class CountsConfig:
    fraud: FraudPolicy = field(default_factory=FraudPolicy)
    parking: ParkingPolicy = field(default_factory=ParkingPolicy)
    ridership_kept: timedelta = timedelta(hours=26)


def _kind_mismatch(entity_id: str, stored: MobilityEntity, wanted: str) -> InvalidRecord:
    return InvalidRecord(f"key {entity_id[:200]!r} is a {type(stored).__name__} in the processor, not a {wanted}")


def mobility_step(
    route: Callable[[StoredRoute, EntityRecord], Step[StoredRoute]],
    schedule: Schedule,
    car_parks: Mapping[str, CarPark],
    cities: Mapping[str, City],
    config: CountsConfig = CountsConfig(),
    bounds: EventTimeBounds | None = None,
) -> Callable[[MobilityEntity, EntityRecord], Step[Any]]:
    """The processor's step: each record goes to the step of its topic's kind of entity."""

    def step(stored: MobilityEntity, record: EntityRecord) -> Step[Any]:
        if record.spec is TICKET_VALIDATIONS:
            return card_step(stored, record)
        if record.spec is RIDERSHIP_VALIDATIONS:
            return stop_step(stored, record)
        if record.spec is PARKING_OCCUPANCY:
            return car_park_step(stored, record)
        if record.spec is ROUTE_TICKS and record.entity_id in car_parks:
            return car_park_tick(stored, record)
        if isinstance(stored, Unseen):
            stored = StoredRoute.new(record.entity_id)
        if not isinstance(stored, StoredRoute):
            raise _kind_mismatch(record.entity_id, stored, "route")
        return route(stored, record)

    def check_time(record: EntityRecord, moment: Any, field: str) -> None:
        if bounds is not None and (problem := event_time_problem(moment, record.now, bounds)):
            raise InvalidRecord(f"{field}: {problem}")

    def card_step(stored: MobilityEntity, record: EntityRecord) -> Step[CardState]:
        validation = validation_from_wire(record.value)
        check_time(record, validation.time, "validate_time")
        if validation.route_id not in schedule.routes:
            raise InvalidRecord(f"route_id: unknown route {validation.route_id[:200]!r}")
        if isinstance(stored, Unseen):
            stored = CardState.new(record.entity_id)
        if not isinstance(stored, CardState):
            raise _kind_mismatch(record.entity_id, stored, "card")
        result = apply_card_validation(stored, validation, config.fraud)
        if result.duplicate:
            return Step(result.state)
        alerts = [mobility_alert_event(result.transition)] if result.transition is not None else []
        stop_key = ridership_entity(validation.route_id, validation.stop_id)
        return Step(result.state, alerts, [(RIDERSHIP_VALIDATIONS, stop_key, record.value)])

    def stop_step(stored: MobilityEntity, record: EntityRecord) -> Step[StopRidership]:
        validation = validation_from_wire(record.value)
        route = schedule.routes.get(validation.route_id)
        if route is None:
            raise InvalidRecord(f"route_id: unknown route {validation.route_id[:200]!r}")
        if isinstance(stored, Unseen):
            stored = StopRidership(validation.route_id, validation.stop_id)
        if not isinstance(stored, StopRidership):
            raise _kind_mismatch(record.entity_id, stored, "stop")
        state, hour = count_validation(stored, validation, ZoneInfo(route.timezone), config.ridership_kept)
        if hour is None:
            return Step(state)
        count = state.counts[hour]
        counted = ridership_counted(validation.route_id, validation.stop_id, hour, count)
        records: list[tuple[TopicSpec, str, Message]] = [
            (RIDERSHIP, f"{record.entity_id}/{hour.isoformat()}", counted)]
        if hour == max(state.counts):
            stop = schedule.stops.get(validation.stop_id)
            where = f" at {stop.name}" if stop is not None else ""
            kpi = kpis_pb2.KpiObserved(
                domain="mobility", kpi_id="ridership", display_name=f"Ridership ({route.display_name}{where})",
                entity=common_pb2.EntityRef(domain="mobility", kind="route-stop", entity_id=record.entity_id),
                value=count, unit="validations/h", observe_time=timestamp(hour),
            )
            records.append((KPIS, f"ridership/{record.entity_id}", kpi))
        return Step(state, records=records)

    def car_park_step(stored: MobilityEntity, record: EntityRecord) -> Step[StoredCarPark]:
        observation = parking_from_wire(record.value)
        check_time(record, observation.time, "observe_time")
        park = car_parks.get(observation.car_park_id)
        if park is None:
            raise InvalidRecord(f"car_park_id: unknown car park {observation.car_park_id[:200]!r}")
        if isinstance(stored, Unseen):
            stored = StoredCarPark(CarParkState.new(park.car_park_id))
        if not isinstance(stored, StoredCarPark):
            raise _kind_mismatch(record.entity_id, stored, "car park")
        state, transitions = apply_parking(stored.park, observation, config.parking, park.display_name)
        district = _district(cities, park)
        alerts, active_alert = _car_park_alerts(transitions, park, district, stored.active_alert)
        new = StoredCarPark(state, active_alert)
        alert = alerts_pb2.AlertEvent.FromString(base64.b64decode(active_alert)) if active_alert else None
        status = car_park_status(state, park, district, config.parking.full_ratio, alert)
        kpi = kpis_pb2.KpiObserved(
            domain="mobility", kpi_id="car-park-free", display_name=f"Free spaces ({park.display_name})",
            district=district, entity=common_pb2.EntityRef(domain="mobility", kind="car-park",
                                                           entity_id=park.car_park_id),
            value=state.free or 0, unit="spaces", observe_time=timestamp(observation.time),
        )
        records: list[tuple[TopicSpec, str, Message]] = [
            (CAR_PARK_STATUS, park.car_park_id, status), (KPIS, f"car-park-free/{park.car_park_id}", kpi)]
        return Step(new, alerts, records)

    def car_park_tick(stored: MobilityEntity, record: EntityRecord) -> Step[StoredCarPark]:
        now = required_time(record.value, "tick_time")
        check_time(record, now, "tick_time")
        park = car_parks[record.entity_id]
        if isinstance(stored, Unseen):
            stored = StoredCarPark(CarParkState.new(park.car_park_id))
        if not isinstance(stored, StoredCarPark):
            raise _kind_mismatch(record.entity_id, stored, "car park")
        state, transition = check_parking_silence(stored.park, now, config.parking, park.display_name)
        transitions = [transition] if transition is not None else []
        alerts, active_alert = _car_park_alerts(transitions, park, _district(cities, park), stored.active_alert)
        return Step(StoredCarPark(state, active_alert), alerts)

    return step


def _car_park_alerts(
    transitions: list[AlertTransition], park: CarPark, district: common_pb2.District | None, active_alert: str
) -> tuple[list[alerts_pb2.AlertEvent], str]:
    """The transitions as events placed in the car park's district, and the active car-park-full alert after them."""
    events = []
    for transition in transitions:
        transition = replace(transition, details=transition.details.refine(
            city_id=park.city_id, district_id=district.district_id if district else ""))
        event = mobility_alert_event(transition)
        events.append(event)
        if transition.rule_id == CAR_PARK_FULL_RULE:
            active = transition.state is not AlertState.CLEARED
            active_alert = base64.b64encode(event.SerializeToString()).decode() if active else ""
    return events, active_alert


def _district(cities: Mapping[str, City], park: CarPark) -> common_pb2.District | None:
    city = cities.get(park.city_id)
    district = district_at(city, park.lat, park.lon) if city is not None else None
    if city is None or district is None:
        return None
    return common_pb2.District(city_id=city.id, district_id=district.id, display_name=district.name)

