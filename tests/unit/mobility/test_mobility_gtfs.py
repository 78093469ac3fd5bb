"""GTFS loading: the sample feeds load, broken feeds are refused whole with file, line and field."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from madina.geo import load_cities
from services.mobility.domain.gtfs import GtfsError, load_feed, parse_gtfs_time
from tests.unit.mobility.conftest import GTFS_DIR


def _copy(tmp_path: Path, feed: str = "berkane") -> Path:
    target = tmp_path / feed
    shutil.copytree(GTFS_DIR / feed, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_sample_feeds_load_small_with_weekday_and_weekend_service(schedule) -> None:
    assert {route.short_name for route in schedule.routes.values()} == {"1", "2", "3", "T1"}
    assert len(schedule.trips) < 600
    assert {trip.service_id for trip in schedule.trips.values()} == {"WEEKDAY", "WEEKEND"}
    assert all(route.timezone == "Africa/Casablanca" for route in schedule.routes.values())
    assert schedule.shape_of(schedule.trips["1-0800"]) is not None


def test_every_sample_stop_lies_in_a_district_of_its_city(schedule) -> None:
    cities = load_cities()
    for stop in schedule.stops.values():
        city = cities["berkane" if stop.stop_id.startswith("BK-") else "casablanca"]
        assert any(d.contains(stop.lat, stop.lon) for d in city.districts), stop


def test_line_1_runs_around_the_clock_with_times_past_midnight(schedule) -> None:
    trips = schedule.trips_by_route["BK-1"]
    assert max(trip.end_s for trip in trips) > 27 * 3600
    for service in ("WEEKDAY", "WEEKEND"):
        spans = sorted((t.start_s, t.end_s) for t in trips if t.service_id == service)
        covered_until = spans[0][1]
        for start, end in spans[1:]:
            assert start <= covered_until, f"{service}: no bus between {covered_until} and {start}"
            covered_until = max(covered_until, end)
        assert spans[0][0] + 24 * 3600 <= covered_until + 30 * 60


def test_times_past_24h_parse_and_malformed_times_do_not() -> None:
    assert parse_gtfs_time("25:10:00") == 90600
    assert parse_gtfs_time("7:05:00") == 25500
    for bad in ("8:7:00", "08:60:00", "xx", "08:00"):
        with pytest.raises(ValueError):
            parse_gtfs_time(bad)


def test_zip_feed_loads_like_the_folder(tmp_path: Path) -> None:
    archive = tmp_path / "casablanca.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for file in (GTFS_DIR / "casablanca").iterdir():
            handle.write(file, file.name)
    assert len(load_feed(archive).trips) == len(load_feed(GTFS_DIR / "casablanca").trips)


def test_missing_required_file_is_named(tmp_path: Path) -> None:
    feed = _copy(tmp_path)
    (feed / "routes.txt").unlink()
    with pytest.raises(GtfsError, match=r"berkane/routes.txt: required file missing"):
        load_feed(feed)


def test_missing_calendar_files_are_named(tmp_path: Path) -> None:
    feed = _copy(tmp_path)
    (feed / "calendar.txt").unlink()
    (feed / "calendar_dates.txt").unlink()
    with pytest.raises(GtfsError, match=r"neither calendar.txt nor calendar_dates.txt"):
        load_feed(feed)


def test_missing_column_is_named(tmp_path: Path) -> None:
    feed = _copy(tmp_path)
    _edit(
        feed / "stop_times.txt",
        "trip_id,arrival_time,departure_time,stop_id,",
        "trip_id,arrival_time,departure_time,stop,",
    )
    with pytest.raises(GtfsError, match=r"berkane/stop_times.txt:1: stop_id: required column missing"):
        load_feed(feed)


def test_broken_references_name_file_line_and_field(tmp_path: Path) -> None:
    feed = _copy(tmp_path)
    _edit(feed / "trips.txt", "BK-1,WEEKDAY,1-0400,", "BK-9,WEEKDAY,1-0400,")
    _edit(feed / "trips.txt", "BK-1,WEEKDAY,1-0430,", "BK-1,HOLIDAY,1-0430,")
    _edit(feed / "stop_times.txt", "1-0400,04:02:30,04:02:50,BK-HH2", "1-0400,04:02:30,04:02:50,BK-XX2")
    with pytest.raises(GtfsError) as raised:
        load_feed(feed)
    message = str(raised.value)
    assert "berkane/trips.txt:2: route_id: 'BK-9' is not in routes.txt" in message
    assert "berkane/trips.txt:3: service_id: 'HOLIDAY' is in neither calendar.txt nor calendar_dates.txt" in message
    assert "berkane/stop_times.txt:3: stop_id: 'BK-XX2' is not in stops.txt" in message


def test_stop_times_going_back_in_time_are_refused(tmp_path: Path) -> None:
    feed = _copy(tmp_path)
    _edit(feed / "stop_times.txt", "1-0400,04:05:20,04:05:40,BK-HH3", "1-0400,04:01:20,04:01:40,BK-HH3")
    with pytest.raises(
        GtfsError, match=r"stop_times.txt:4: arrival_time: 04:01:20 is before the previous stop's departure 04:02:50"
    ):
        load_feed(feed)


def test_malformed_time_is_refused_with_its_line(tmp_path: Path) -> None:
    feed = _copy(tmp_path)
    _edit(feed / "stop_times.txt", "1-0400,04:05:20,", "1-0400,4:5:20,")
    with pytest.raises(GtfsError, match=r"stop_times.txt:4: arrival_time: '4:5:20' is not H:MM:SS"):
        load_feed(feed)


def test_untimed_intermediate_stops_are_interpolated(tmp_path: Path) -> None:
    feed = _copy(tmp_path)
    _edit(feed / "stop_times.txt", "1-0400,04:05:20,04:05:40,BK-HH3", "1-0400,,,BK-HH3")
    trip = load_feed(feed).trips["1-0400"]
    third = trip.stop_times[2]
    assert third.interpolated
    assert trip.stop_times[1].departure_s < third.arrival_s < trip.stop_times[3].arrival_s
