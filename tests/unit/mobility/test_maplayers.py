"""The Buses map layer: vehicles of a route status, built as the route processor builds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from madina.bus.alert_events import timestamp
from madina.maplayers import Level
from madina_proto.mobility.v1 import mobility_service_pb2, status_pb2
from services.mobility.convert import position_to_wire
from services.mobility.domain.realtime import VehiclePosition
from services.mobility.maplayers import bus_features
from services.mobility.plugin import DOMAIN

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CASABLANCA_CENTRE = (33.5731, -7.5898)


def _vehicle(vehicle_id: str, delay_s: int | None, reported: datetime = NOW,
             where: tuple[float, float] | None = CASABLANCA_CENTRE) -> mobility_service_pb2.VehicleStatus:
    """As ``status_event`` does: the wire position of the vehicle's last fix, plus its trip's delay."""
    vehicle = mobility_service_pb2.VehicleStatus(vehicle_id=vehicle_id, route_id="casa-l3")
    if where is not None:
        wire = position_to_wire(VehiclePosition(vehicle_id, where[0], where[1], reported, route_id="casa-l3"))
        vehicle.position.CopyFrom(wire.position)
        vehicle.report_time.CopyFrom(wire.report_time)
    if delay_s is not None:
        vehicle.trip_id, vehicle.start_date, vehicle.delay_s = "casa-l3-t1", "20260302", delay_s
    return vehicle


def _status(*vehicles: mobility_service_pb2.VehicleStatus) -> status_pb2.RouteStatusChanged:
    return status_pb2.RouteStatusChanged(route_id="casa-l3", vehicles=list(vehicles), status_time=timestamp(NOW))


@pytest.mark.parametrize(("delay_s", "level", "status"), [
    (-90, Level.OK, "2 min early"),
    (20, Level.OK, "on time"),
    (150, Level.WATCH, "+2 min late"),
    (240, Level.WATCH, "+4 min late"),
    (420, Level.WARNING, "+7 min late"),
    (660, Level.CRITICAL, "+11 min late"),
])
def test_a_bus_is_coloured_by_its_delay_at_the_processors_thresholds(delay_s: int, level: Level, status: str) -> None:
    (feature,) = bus_features(_status(_vehicle("bus-12", delay_s)))
    assert (feature.level, feature.status) == (level, status)
    assert feature.feature_id == "mobility/bus/bus-12"
    assert feature.label == "Bus bus-12 (route casa-l3)"
    assert feature.points == (CASABLANCA_CENTRE,)
    assert feature.city_id == "casablanca"
    assert feature.observe_time == NOW
    assert feature.details["trip"] == "casa-l3-t1"


def test_a_bus_silent_past_the_gap_limit_or_unmatched_is_unknown() -> None:
    silent = _vehicle("bus-7", 0, reported=NOW - timedelta(minutes=4))
    unmatched = _vehicle("bus-8", None)
    features = {f.feature_id: f for f in bus_features(_status(silent, unmatched))}
    assert features["mobility/bus/bus-7"].level is Level.UNKNOWN
    assert features["mobility/bus/bus-7"].status == "no position for 4 min"
    assert features["mobility/bus/bus-8"].level is Level.UNKNOWN
    assert features["mobility/bus/bus-8"].status == "not matched to a trip"


def test_a_vehicle_without_a_position_is_left_off_the_map() -> None:
    features = bus_features(_status(_vehicle("bus-1", 60, where=None), _vehicle("bus-2", 60)))
    assert [f.feature_id for f in features] == ["mobility/bus/bus-2"]
    assert bus_features(status_pb2.RouteStatusChanged(route_id="casa-l3")) == []


def test_every_declared_layer_loads_and_follows_a_mobility_topic() -> None:
    assert [layer.name for layer in DOMAIN.map_layers] == ["Buses"]
    for layer in DOMAIN.map_layers:
        assert layer.topic in DOMAIN.topics
        assert layer.load()(_status(_vehicle("bus-3", 0)))[0].domain == "mobility"


def test_a_bus_on_a_trip_without_a_delay_is_unknown_and_says_why() -> None:
    headway_run = _vehicle("bus-9", None)
    headway_run.trip_id, headway_run.start_date = "casa-l3-t1@08:00:00", "20260302"  # exact_times=0: no delay
    (feature,) = bus_features(_status(headway_run))
    assert (feature.level, feature.status) == (Level.UNKNOWN, "no timetable delay for its trip")
