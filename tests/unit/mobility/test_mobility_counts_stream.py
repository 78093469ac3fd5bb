"""The processor's step for cards, stops' ridership and car parks (no broker): what each record publishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from madina.bus.topics import KPIS
from madina.contract import InvalidRecord
from madina.geo import load_cities
from madina.streams.entities import EntityRecord
from madina_proto.alerts.v1 import alerts_pb2
from services.mobility.convert import parking_to_wire, validation_to_wire
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.evaluator import MobilityConfig
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.parking import ParkingObservation, ParkingPolicy, load_car_parks
from services.mobility.domain.tickets import Validation
from services.mobility.processor.counts_stream import (
    CountsConfig,
    StoredCarPark,
    Unseen,
    entity_from_dict,
    entity_to_dict,
    mobility_entity_of,
    mobility_step,
)
from services.mobility.processor.route_stream import StoredRoute, route_step, tick_message
from services.mobility.topics import (
    CAR_PARK_STATUS,
    PARKING_OCCUPANCY,
    RIDERSHIP,
    RIDERSHIP_VALIDATIONS,
    ROUTE_TICKS,
    TICKET_VALIDATIONS,
)
from services.operations.api.kpis import check_kpi

NOW = datetime(2026, 11, 26, 8, 20, tzinfo=UTC)
CARD = "a1" * 32


def _step(schedule: Schedule, **config: object):  # type: ignore[no-untyped-def]
    route = route_step(schedule, PathIndex(schedule), MobilityConfig())
    return mobility_step(route, schedule, load_car_parks(), load_cities(), CountsConfig(**config))  # type: ignore[arg-type]


def _validation(vid: str, vehicle: str, route: str, stop: str, lat: float, lon: float, minutes: float) -> Validation:
    return Validation(vid, CARD, vehicle, route, lat, lon, NOW + timedelta(minutes=minutes), stop)


def _run(step, state, spec, value):  # type: ignore[no-untyped-def]
    entity = mobility_entity_of(spec, value)
    result = step(state if state is not None else Unseen(entity), EntityRecord(entity, spec, value, NOW))
    return entity, result


def test_card_step_forwards_new_validations_by_route_and_stop_and_raises_fraud_once(schedule: Schedule) -> None:
    step = _step(schedule)
    first = validation_to_wire(_validation("v1", "BK-E01", "BK-1", "BK-HH1", 34.9335, -2.3360, 0))
    entity, result = _run(step, None, TICKET_VALIDATIONS, first)
    assert entity == CARD and not result.alerts
    assert [(spec, key) for spec, key, _ in result.records] == [(RIDERSHIP_VALIDATIONS, "BK-1/BK-HH1")]
    _, retry = _run(step, result.state, TICKET_VALIDATIONS, first)
    assert not retry.records and not retry.alerts
    clone = validation_to_wire(_validation("v2", "CA-T07", "CA-T1", "", 33.5990, -7.6090, 5))
    _, fraud = _run(step, retry.state, TICKET_VALIDATIONS, clone)
    assert [a.rule_id for a in fraud.alerts] == ["ticket-fraud"]
    assert fraud.alerts[0].state == alerts_pb2.ALERT_STATE_RAISED
    assert "BK-E01" in fraud.alerts[0].message and "CA-T07" in fraud.alerts[0].message
    assert entity_from_dict(entity_to_dict(fraud.state), CARD) == fraud.state


def test_stop_step_counts_each_validation_once_per_local_hour_and_publishes_the_total(schedule: Schedule) -> None:
    step = _step(schedule)
    state = None
    totals = []
    for vid, minutes in [("a", 0), ("b", 10), ("a", 11), ("c", 45)]:  # "a" again: a replayed card step
        wire = validation_to_wire(_validation(vid, "BK-E01", "BK-1", "BK-HH1", 34.9335, -2.3360, minutes))
        entity, result = _run(step, state, RIDERSHIP_VALIDATIONS, wire)
        state = result.state
        totals += [(key, msg.validations_count) for spec, key, msg in result.records if spec is RIDERSHIP]
        assert all(spec in (RIDERSHIP, KPIS) for spec, _, _ in result.records)
    # 08:20 UTC is 09:20 in Africa/Casablanca (UTC+1): 08:00 local starts at 08:00 UTC; 09:05 is the next hour.
    assert entity == "BK-1/BK-HH1"
    assert totals == [("BK-1/BK-HH1/2026-11-26T08:00:00+00:00", 1), ("BK-1/BK-HH1/2026-11-26T08:00:00+00:00", 2),
                      ("BK-1/BK-HH1/2026-11-26T09:00:00+00:00", 1)]
    assert state is not None and entity_from_dict(entity_to_dict(state), entity) == state


def test_ridership_kpi_has_one_key_per_route_stop_showing_its_newest_hour(schedule: Schedule) -> None:
    # kpis.v1 is compacted and never deleted: a key per hour would grow it forever. The hourly
    # history is on mobility.ridership.v1; the KPI is the stop's newest hour, the hour in its time.
    step = _step(schedule)
    state = None
    kpis = []
    for vid, minutes in [("a", 0), ("b", 45), ("c", 10), ("d", 50)]:  # "c": a late validation of the older hour
        wire = validation_to_wire(_validation(vid, "BK-E01", "BK-1", "BK-HH1", 34.9335, -2.3360, minutes))
        _, result = _run(step, state, RIDERSHIP_VALIDATIONS, wire)
        state = result.state
        kpis += [(key, msg.observe_time.ToDatetime(UTC), msg.value) for spec, key, msg in result.records
                 if spec is KPIS]
        for spec, key, msg in result.records:
            if spec is KPIS:  # what the operations dashboard's reader accepts under that key
                assert check_kpi(key, msg) is msg
    eight, nine = datetime(2026, 11, 26, 8, tzinfo=UTC), datetime(2026, 11, 26, 9, tzinfo=UTC)
    assert kpis == [("ridership/BK-1/BK-HH1", eight, 1), ("ridership/BK-1/BK-HH1", nine, 1),
                    ("ridership/BK-1/BK-HH1", nine, 2)]


def test_car_park_step_publishes_availability_and_raises_when_it_stays_full(schedule: Schedule) -> None:
    step = _step(schedule, parking=ParkingPolicy(full_for=timedelta(minutes=10), clear_after=timedelta(minutes=5)))
    state = None
    raised = []
    for minutes, occupied in [(0, 180), (5, 180), (11, 180), (20, 100), (26, 100)]:
        wire = parking_to_wire(ParkingObservation("BK-P1", NOW + timedelta(minutes=minutes), occupied, 180))
        _, result = _run(step, state, PARKING_OCCUPANCY, wire)
        state = result.state
        raised += [(minutes, a.state) for a in result.alerts]
        status = next(msg for spec, _, msg in result.records if spec is CAR_PARK_STATUS)
        assert status.car_park.free_spaces_count == 180 - occupied
        assert status.car_park.district.city_id == "berkane"
    assert raised == [(11, alerts_pb2.ALERT_STATE_RAISED), (26, alerts_pb2.ALERT_STATE_CLEARED)]
    assert isinstance(state, StoredCarPark) and state.active_alert == ""


def test_a_key_holding_another_kind_of_entity_is_refused(schedule: Schedule) -> None:
    step = _step(schedule)
    wire = parking_to_wire(ParkingObservation("BK-P1", NOW, 10, 180))
    with pytest.raises(InvalidRecord, match="StoredRoute"):
        step(StoredRoute.new("BK-P1"), EntityRecord("BK-P1", PARKING_OCCUPANCY, wire, NOW))
    with pytest.raises(InvalidRecord, match="car_park_id: unknown car park"):
        _run(step, None, PARKING_OCCUPANCY, parking_to_wire(ParkingObservation("NOPE", NOW, 1, 2)))


def _tick(step, state, entity_id, at):  # type: ignore[no-untyped-def]
    tick = tick_message(entity_id, at)
    return step(state if state is not None else Unseen(entity_id), EntityRecord(entity_id, ROUTE_TICKS, tick, at))


def test_a_car_park_ticked_on_the_routes_clock_raises_data_gap_in_its_district_when_counts_stop(
    schedule: Schedule,
) -> None:
    step = _step(schedule, parking=ParkingPolicy(silent_after=timedelta(minutes=20)))
    _, result = _run(step, None, PARKING_OCCUPANCY, parking_to_wire(ParkingObservation("BK-P1", NOW, 10, 180)))
    quiet = _tick(step, result.state, "BK-P1", NOW + timedelta(minutes=15))
    assert isinstance(quiet.state, StoredCarPark) and not quiet.alerts and not quiet.records
    silent = _tick(step, quiet.state, "BK-P1", NOW + timedelta(minutes=25))
    [raised] = silent.alerts
    assert raised.state == alerts_pb2.ALERT_STATE_RAISED and raised.rule_id == "data-gap"
    assert raised.district.city_id == "berkane" and raised.district.district_id
    assert silent.state.active_alert == ""  # the status's active alert is the car-park-full one
    back = parking_to_wire(ParkingObservation("BK-P1", NOW + timedelta(minutes=26), 12, 180))
    _, counted = _run(step, silent.state, PARKING_OCCUPANCY, back)
    assert [(a.rule_id, a.state) for a in counted.alerts] == [("data-gap", alerts_pb2.ALERT_STATE_CLEARED)]
    assert entity_from_dict(entity_to_dict(counted.state), "BK-P1") == counted.state


def test_a_route_tick_still_goes_to_the_route(schedule: Schedule) -> None:
    result = _tick(_step(schedule), None, "BK-1", NOW)
    assert isinstance(result.state, StoredRoute)
