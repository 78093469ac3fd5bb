"""Per-record work of the mobility processor for cards, routes' ridership and car parks, free of faust.

The mobility processor's table holds four kinds of entity, each on its own inputs (see
:mod:`services.mobility.topics`); :func:`mobility_step` sends a record to its kind's step and
refuses one whose key already holds another kind:

- a **card** (``mobility.ticket-validations.v1``): a repeated validation id changes nothing; a
  validation too far and too fast from the card's previous one on another vehicle raises the
  ``ticket-fraud`` alert; every new validation is re-published keyed by its route's ridership;
- a **route's ridership** (``mobility.ridership-validations.v1``, key ``ridership/<route>``: the
  route's own key holds its buses): each validation counted once in its agency-local hour, at its
  stop and for the route (:class:`~services.mobility.domain.tickets.RouteRidership`, 26 h kept).
  A counted validation publishes its stop's hour total on the compacted ``mobility.ridership.v1``
  (the history, deleted after 62 days), the ``ridership`` KPI of the stop's newest hour (key
  ``ridership/<route>/<stop>``) and the ``ridership`` KPI of the route's newest hour (key
  ``ridership/<route>``, named for the line), the hour in their ``observe_time``: ``kpis.v1`` is
  compacted and never deleted, so a key per hour would grow it forever; a late validation of an
  older hour updates the history only. A card step replayed after a crash re-sends what it had
  sent; the route remembers the ids it counted last, so each still counts once;
- a **car park** (``mobility.parking-occupancy.v1``): its latest count, the ``car-park-full``
  alert when it stays full, its availability on the compacted ``mobility.car-park-status.v1`` and
  the ``car-park-free`` KPI; on ``mobility.route-ticks.v1`` (the runner has one clock, the routes',
  so car parks are ticked on it by their own key) the ``data-gap`` alert when its counts stop.

**Why one ridership entity per route.** The route's KPI must count every validation once, across
kill -9. The runner gives that to a count kept in the state of the entity that receives the
record (offset guard, state and outputs written together), so the route's count lives where its
validations arrive, beside its stops' counts: one state changes both, and they cannot disagree.
Counting per stop and gathering the stops for the route would take another hop (a topic, and a
second replay to dedup). The cost is that a route's validations go through one partition: a line
sees hundreds a minute at its busiest, a worker applies thousands a second.

**No route records on** ``mobility.ridership.v1``. A route's hour is the sum of its stops' (each
validation is counted at one stop of its route, an empty ``stop_id`` being one), which is what
``GetRidership`` serves for a route; a route total beside them would be a second copy of the same
count that every reader would have to know to skip.

**Upgrading from per-stop counting** (before, each ``<route>/<stop>`` was an entity of its own,
its validations keyed so, its history keyed ``<route>/<stop>/<hour>``). The stop states stay in
the changelog under their keys, never counted on again (:class:`RetiredStopCounts`: read as they
are, so a record under such a key is dead-lettered, not a crash). The route's entity starts at
zero, so the history is keyed by the entity that counts, ``ridership/<route>/<stop>/<hour>``: the
stops' totals of the hours they counted stay under the old keys, and the API sums both forms, so
``GetRidership`` stays exact across the upgrade. What restarts: the KPIs of the hour in progress
(a stop's and the route's) count from the upgrade until the next hour begins. What is lost unless
handled: a validation re-keyed the old way and not yet read at the upgrade is dead-lettered (its
key is not its entity); stop the old processor with its ``mobility.ridership-validations.v1``
read to the end (it reads its own output within milliseconds), or re-send the ``.dlq``'s records
keyed ``ridership/<route>``. A card step replayed across the upgrade (a kill -9 of the old
processor) re-sends under the new key what the old stops may have counted: those few count twice.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
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
    RouteRidership,
    apply_card_validation,
    count_route_validation,
    route_ridership_key,
    route_stop_key,
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
class RetiredStopCounts:
    """A stop's counts from before routes counted their ridership (key ``<route>/<stop>``), kept as read:
    no record is counted on it again (module docstring, upgrading)."""

    data: Mapping[str, Any]


@dataclass(frozen=True)
class Unseen:
    """An entity the table has never held: its kind is decided by the first record's topic."""

    entity_id: str


MobilityEntity = StoredRoute | CardState | RouteRidership | StoredCarPark | RetiredStopCounts | Unseen
_KIND = "kind"  # beside the state's own keys; a value without it is a route (the first kind stored)
_KINDS: dict[str, Callable[[Mapping[str, Any]], MobilityEntity]] = {
    "card": CardState.from_dict,
    "ridership": RouteRidership.from_dict,
    "car-park": StoredCarPark.from_dict,
    "stop": lambda data: RetiredStopCounts(dict(data)),
}


def entity_to_dict(entity: MobilityEntity) -> dict[str, Any]:
    if isinstance(entity, StoredRoute):
        return entity.to_dict()
    if isinstance(entity, Unseen):
        return {}
    if isinstance(entity, RetiredStopCounts):
        return {_KIND: "stop", **entity.data}
    kind = {CardState: "card", RouteRidership: "ridership", StoredCarPark: "car-park"}[type(entity)]
    return {_KIND: kind, **entity.to_dict()}


def entity_from_dict(data: Mapping[str, Any], entity_id: str) -> MobilityEntity:
    kind = data.get(_KIND)
    if kind is None:
        return StoredRoute.from_dict(data, entity_id)
    return _KINDS[kind]({k: v for k, v in data.items() if k != _KIND})


def mobility_entity_of(spec: TopicSpec, value: Any) -> str:
    """The entity of a record: ``ridership/<route>`` on the ridership input, else the topic's key field."""
    if spec is RIDERSHIP_VALIDATIONS:
        return route_ridership_key(value.route_id)
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
            return ridership_step(stored, record)
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

    def check_stop(stop_id: str) -> None:
        # Every stop of a route is counted in the route's one state: stop ids that are in no
        # schedule (up to 200 characters each) would grow it past the producer's request size,
        # and a state that cannot be written stops the processor. An empty stop id is a
        # validation on board.
        if stop_id and stop_id not in schedule.stops:
            raise InvalidRecord(f"stop_id: unknown stop {stop_id[:200]!r}")

    def card_step(stored: MobilityEntity, record: EntityRecord) -> Step[CardState]:
        validation = validation_from_wire(record.value)
        check_time(record, validation.time, "validate_time")
        if validation.route_id not in schedule.routes:
            raise InvalidRecord(f"route_id: unknown route {validation.route_id[:200]!r}")
        check_stop(validation.stop_id)
        if isinstance(stored, Unseen):
            stored = CardState.new(record.entity_id)
        if not isinstance(stored, CardState):
            raise _kind_mismatch(record.entity_id, stored, "card")
        result = apply_card_validation(stored, validation, config.fraud)
        if result.duplicate:
            return Step(result.state)
        alerts = [mobility_alert_event(result.transition)] if result.transition is not None else []
        return Step(result.state, alerts, [(RIDERSHIP_VALIDATIONS, route_ridership_key(validation.route_id),
                                            record.value)])

    def ridership_step(stored: MobilityEntity, record: EntityRecord) -> Step[RouteRidership]:
        validation = validation_from_wire(record.value)
        route = schedule.routes.get(validation.route_id)
        if route is None:
            raise InvalidRecord(f"route_id: unknown route {validation.route_id[:200]!r}")
        check_stop(validation.stop_id)
        if isinstance(stored, Unseen):
            stored = RouteRidership(validation.route_id)
        if not isinstance(stored, RouteRidership):
            raise _kind_mismatch(record.entity_id, stored, "route's ridership")
        hour = count_route_validation(stored, validation, ZoneInfo(route.timezone), config.ridership_kept)
        if hour is None:
            return Step(stored)
        stop_id = validation.stop_id
        stop_key = route_stop_key(route.route_id, stop_id)
        count = stored.stops[stop_id][hour]
        counted = ridership_counted(route.route_id, stop_id, hour, count)
        records: list[tuple[TopicSpec, str, Message]] = [
            (RIDERSHIP, f"{record.entity_id}/{stop_id}/{hour.isoformat()}", counted)]
        if hour == stored.newest_hour(stop_id):
            stop = schedule.stops.get(stop_id)
            where = f" at {stop.name}" if stop is not None else ""
            records.append((KPIS, f"ridership/{stop_key}", _ridership_kpi(
                f"Ridership ({route.display_name}{where})", "route-stop", stop_key, count, hour)))
        if hour == stored.newest_hour():
            records.append((KPIS, f"ridership/{route.route_id}", _ridership_kpi(
                f"Ridership ({route.display_name})", "route", route.route_id, stored.totals[hour], hour)))
        return Step(stored, records=records)

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


def _ridership_kpi(display_name: str, kind: str, entity_id: str, count: int, hour: datetime) -> kpis_pb2.KpiObserved:
    return kpis_pb2.KpiObserved(
        domain="mobility", kpi_id="ridership", display_name=display_name,
        entity=common_pb2.EntityRef(domain="mobility", kind=kind, entity_id=entity_id),
        value=count, unit="validations/h", observe_time=timestamp(hour))


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

