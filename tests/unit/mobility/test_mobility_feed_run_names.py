"""Frequency runs leave the feeds out named as GTFS-Realtime names frequency-based trips."""

from __future__ import annotations

from pathlib import Path

from google.transit import gtfs_realtime_pb2 as rt

from services.mobility.api.headway import name_as_gtfs_realtime
from tests.unit.mobility.test_mobility_headway_runs import FIRST, SECOND, _schedule


def test_a_run_is_named_by_its_template_and_start_time(tmp_path: Path) -> None:
    for exact_times in (0, 1):
        schedule = _schedule(tmp_path, exact_times)
        for run_id, start in ((FIRST, "02:00:00"), (SECOND, "02:10:00")):
            trip = rt.TripDescriptor(trip_id=run_id, start_date="20261126")
            name_as_gtfs_realtime(trip, schedule)
            assert (trip.trip_id, trip.start_time, trip.start_date) == ("1-0400", start, "20261126")
            assert schedule.run_id(trip.trip_id, trip.start_time) == run_id  # what the ingest maps it back to


def test_a_timetabled_or_unknown_trip_keeps_its_name(tmp_path: Path) -> None:
    schedule = _schedule(tmp_path, exact_times=0)
    timetabled = next(t.trip_id for t in schedule.trips.values() if t.template_trip_id is None)
    for trip_id in (timetabled, "not-in-any-feed"):
        trip = rt.TripDescriptor(trip_id=trip_id)
        name_as_gtfs_realtime(trip, schedule)
        assert trip.trip_id == trip_id and not trip.HasField("start_time")
