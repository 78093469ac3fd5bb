"""Station seed data, shared city geography and observation validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from madina.alerts import AlertDetails
from madina.geo import GeoDataError, district_at, load_cities
from services.environment.domain.measurands import (
    Observation,
    StationKind,
    validate_observation,
    validate_values,
)
from services.environment.domain.stations import StationDataError, load_stations


def test_seed_has_berkane_and_casablanca_stations_with_unique_ids():
    stations = load_stations()
    by_city: dict[str, int] = {}
    for station in stations:
        by_city[station.city] = by_city.get(station.city, 0) + 1
    assert by_city["berkane"] >= 6 and by_city["casablanca"] >= 10
    assert len({s.id for s in stations}) == len(stations)


def test_every_station_lies_inside_its_district_outline():
    cities = load_cities()
    for station in load_stations():
        district = district_at(cities[station.city], station.lat, station.lon)
        assert district is not None and district.id == station.district, station.id


def test_reporting_intervals_match_station_kind():
    for station in load_stations():
        expected = timedelta(seconds=300) if StationKind.WATER in station.kinds else timedelta(seconds=60)
        assert station.reporting_interval == expected, station.id


def test_cities_have_districts_with_polygons_around_their_centres():
    cities = load_cities()
    assert set(cities) == {"berkane", "casablanca"}
    sidi_bernoussi = cities["casablanca"].district("sidi-bernoussi")
    assert 4 <= len(sidi_bernoussi.polygon) <= 8
    assert sidi_bernoussi.contains(*sidi_bernoussi.center)
    assert district_at(cities["berkane"], 0.0, 0.0) is None


def test_bad_geography_names_city_district_and_field(tmp_path):
    path = tmp_path / "cities.yaml"
    path.write_text(
        "cities:\n  - id: x\n    name: X\n    country: MA\n    region: R\n    timezone: UTC\n"
        "    center: [1, 1]\n    districts:\n      - {id: d, name: D, center: [5, 5], "
        "polygon: [[0, 0], [0, 2], [2, 2], [2, 0]]}\n",
        encoding="utf-8",
    )
    with pytest.raises(GeoDataError, match="city 'x' district 'd' field 'center'"):
        load_cities(path)


def _station_file(tmp_path: Path, **overrides: str) -> Path:
    fields = {
        "id": "cas-air-test",
        "name": "Test",
        "city": "casablanca",
        "district": "anfa",
        "location": "[33.587, -7.648]",
        "kinds": "[air]",
        "measurands": "[pm25_ugm3]",
        "reporting_interval": "60s",
    } | overrides
    body = "\n".join(f"    {key}: {value}" for key, value in fields.items())
    path = tmp_path / "stations.yaml"
    path.write_text("stations:\n  -\n" + body + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"district": "gauthier"}, "district"),
        ({"city": "rabat"}, "city"),
        ({"measurands": "[laeq_db]"}, "measurands"),
        ({"kinds": "[air, soil]"}, "kinds"),
        ({"reporting_interval": "soon"}, "reporting_interval"),
        ({"location": "[95, 0]"}, "location"),
    ],
)
def test_bad_station_error_names_station_and_field(tmp_path, overrides, field):
    with pytest.raises(StationDataError, match=f"station 'cas-air-test' field '{field}'"):
        load_stations(_station_file(tmp_path, **overrides))


def test_valid_operator_station_file_loads(tmp_path):
    [station] = load_stations(_station_file(tmp_path))
    assert station.alert_details() == AlertDetails(
        source_kind="station", city_id="casablanca", district_id="anfa", labels={"station_name": "Test"}
    )


def test_plausible_values_pass_validation():
    assert validate_values("air", {"pm25_ugm3": 35.0, "co_mgm3": 0.4}) == []
    assert validate_values(StationKind.WATER, {"ph": 7.2, "ecoli_cfu_100ml": 0}) == []


@pytest.mark.parametrize(
    ("kind", "values", "message"),
    [
        ("air", {"pm25_ugm3": -1.0}, "values.pm25_ugm3: -1.0 outside plausible range 0..2000"),
        ("water", {"ph": 15.0}, "values.ph: 15.0 outside plausible range 0..14"),
        ("air", {"pm25_ugm3": float("nan")}, "values.pm25_ugm3: must be finite"),
        ("air", {"ph": 7.0}, "values.ph: is a water measurand, not air"),
        ("air", {"benzene_ugm3": 1.0}, "values.benzene_ugm3: unknown measurand"),
        ("soil", {"pm25_ugm3": 1.0}, "kind: unknown kind 'soil'"),
        ("air", {}, "values: at least one measurand is required"),
    ],
)
def test_implausible_values_are_reported_by_field(kind, values, message):
    assert any(error.startswith(message) for error in validate_values(kind, values))


def test_observation_validation_requires_station_and_aware_time():
    observation = Observation("", datetime(2025, 1, 1), StationKind.AIR, {"pm25_ugm3": 1.0})
    errors = validate_observation(observation)
    assert "station_id: must not be empty" in errors
    assert "observe_time: must be timezone-aware" in errors
    ok = Observation("cas-air-anfa", datetime(2025, 1, 1, tzinfo=UTC), StationKind.AIR, {"pm25_ugm3": 1.0})
    assert validate_observation(ok) == []


def test_a_deployment_serving_one_city_loads_only_its_stations():
    everything = load_stations()
    berkane = load_stations(serving=["berkane"])
    assert berkane and all(station.city == "berkane" for station in berkane)
    assert {s.id for s in berkane} == {s.id for s in everything if s.city == "berkane"}
    assert len(berkane) < len(everything)
