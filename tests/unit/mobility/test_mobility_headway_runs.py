"""Runs of frequencies.txt with exact_times=0 are judged by headway: no schedule-delay alert, bunching still."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from google.transit import gtfs_realtime_pb2 as rt

from madina.alerts import AlertState
from services.mobility.convert import feed_from_pb
from services.mobility.domain.avl import PathIndex, scheduled_headway_s
from services.mobility.domain.evaluator import (
    BUNCHING_RULE,
    TRIP_DELAY_RULE,
    RouteState,
    apply_route_events,
    headway_based,
)
from services.mobility.domain.gtfs import Schedule, load_feeds
from services.mobility.domain.realtime import TripUpdate, VehiclePosition
from services.mobility.domain.servicedays import ScheduledRun, TripKey, run_of

BERKANE = Path(__file__).resolve().parents[3] / "services" / "mobility" / "data" / "gtfs" / "berkane"
DAY = "20261126"  # a Thursday: the template 1-0400 runs on weekdays
FIRST, SECOND = "1-0400@02:00:00", "1-0400@02:10:00"


def _schedule(tmp_path: Path, exact_times: int) -> Schedule:
    folder = tmp_path / f"berkane-{exact_times}"
    shutil.copytree(BERKANE, folder)
    (folder / "frequencies.txt").write_text(
        f"trip_id,start_time,end_time,headway_secs,exact_times\n1-0400,02:00:00,03:00:00,600,{exact_times}\n",
        encoding="utf-8")
    return load_feeds([folder])


def _run(schedule: Schedule, trip_id: str) -> ScheduledRun:
    run = run_of(schedule, TripKey(trip_id, DAY))
    assert run is not None
    return run


def _late_update(trip_id: str, stop_sequence: int, delay_s: int, at_offset: timedelta, run: ScheduledRun) -> TripUpdate:
    at = run.start + at_offset
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.timestamp = int(at.timestamp())
    update = feed.entity.add(id=trip_id).trip_update
    update.trip.trip_id, update.trip.start_date = trip_id, DAY  # the run, as the ingest names it
    update.vehicle.id = "BK-E09"
    update.timestamp = int(at.timestamp())
    update.stop_time_update.add(stop_sequence=stop_sequence).arrival.delay = delay_s
    updates, _, _ = feed_from_pb(rt.FeedMessage.FromString(feed.SerializeToString()))
    return updates[0]


def _late_twice(schedule: Schedule) -> list[tuple[str, AlertState]]:
    run = _run(schedule, FIRST)
    paths = PathIndex(schedule)
    first = apply_route_events(RouteState.new("BK-1"), [_late_update(FIRST, 3, 480, timedelta(minutes=6), run)],
                               schedule, paths)
    second = apply_route_events(first.state, [_late_update(FIRST, 5, 480, timedelta(minutes=9), run)],
                                schedule, paths)
    assert second.state.trips[TripKey(FIRST, DAY).text].key.trip_id == FIRST  # the update found its run
    return [(t.rule_id, t.state) for t in first.transitions + second.transitions if t.rule_id != "route-delays"]


def test_a_late_headway_based_run_raises_no_schedule_delay_alert(tmp_path: Path) -> None:
    assert _late_twice(_schedule(tmp_path, exact_times=1)) == [(TRIP_DELAY_RULE, AlertState.RAISED)]
    headway = _schedule(tmp_path, exact_times=0)
    assert headway_based(headway, TripKey(FIRST, DAY))
    assert _late_twice(headway) == []


def test_a_headway_based_run_has_no_delay_in_the_route_state_or_kpis(tmp_path: Path) -> None:
    schedule = _schedule(tmp_path, exact_times=0)
    run = _run(schedule, FIRST)
    result = apply_route_events(RouteState.new("BK-1"), [_late_update(FIRST, 3, 900, timedelta(minutes=6), run)],
                                schedule, PathIndex(schedule))
    assert result.state.trips[TripKey(FIRST, DAY).text].delay_s is None
    assert {kpi.kpi_id: kpi.value for kpi in result.kpis} == {"late-trips": 0.0}


def test_two_headway_based_buses_close_together_are_bunched(tmp_path: Path) -> None:
    schedule = _schedule(tmp_path, exact_times=0)
    leader_run, follower_run = _run(schedule, FIRST), _run(schedule, SECOND)
    at = leader_run.departure(leader_run.trip.stop_times[4]) + timedelta(minutes=4)  # the leader 4 min late
    here = schedule.stops[leader_run.trip.stop_times[4].stop_id]
    previous = schedule.stops[follower_run.trip.stop_times[3].stop_id]
    behind = ((previous.lat + here.lat) / 2, (previous.lon + here.lon) / 2)  # about a minute behind, 9 min early
    positions = [VehiclePosition("BK-E09", here.lat, here.lon, at, trip_id=FIRST, start_date=DAY),
                 VehiclePosition("BK-E10", *behind, at, trip_id=SECOND, start_date=DAY)]
    result = apply_route_events(RouteState.new("BK-1"), positions, schedule, PathIndex(schedule))
    [bunched] = [t for t in result.transitions if t.rule_id == BUNCHING_RULE]
    assert bunched.state is AlertState.RAISED
    assert "BK-E09 and BK-E10 bunched" in bunched.message and "10 min headway" in bunched.message
    assert not [t for t in result.transitions if t.rule_id == TRIP_DELAY_RULE]


def test_the_first_run_of_a_frequency_window_has_the_windows_headway(tmp_path: Path) -> None:
    schedule = _schedule(tmp_path, exact_times=0)
    assert scheduled_headway_s(schedule, _run(schedule, FIRST)) == 600  # no earlier run that day, still 10 min
