"""The API's view of a headway-based run (frequencies.txt exact_times=0): times, never delays."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from google.transit import gtfs_realtime_pb2 as rt

from services.mobility.api.grpc import trip_status_to_pb
from services.mobility.api.headway import headway_of, without_delays
from services.mobility.convert import trip_update_entity, trip_update_to_wire
from services.mobility.domain.delays import resolve_trip
from services.mobility.domain.realtime import (
    StopRelationship,
    StopTimeEvent,
    StopTimeUpdate,
    TripRelationship,
    TripUpdate,
)
from tests.unit.mobility.test_mobility_headway_runs import DAY, FIRST, _run, _schedule

STOP = rt.TripUpdate.StopTimeUpdate


def _update(after_start: timedelta, run_start: datetime, *stops: StopTimeUpdate) -> TripUpdate:
    return TripUpdate(FIRST, DAY, TripRelationship.SCHEDULED, run_start + after_start, route_id="BK-1",
                      delay_s=300, stop_time_updates=stops)


def test_only_headway_based_runs_have_a_headway(tmp_path: Path) -> None:
    assert headway_of(_schedule(tmp_path, exact_times=0), FIRST) == 600
    assert headway_of(_schedule(tmp_path, exact_times=1), FIRST) is None


def test_a_headway_runs_feed_entity_keeps_times_and_turns_delays_into_the_times_they_imply(tmp_path: Path) -> None:
    schedule = _schedule(tmp_path, exact_times=0)
    run = _run(schedule, FIRST)
    given = run.departure(run.trip.stop_times[4]) + timedelta(minutes=2)
    update = _update(
        timedelta(minutes=5), run.start,
        StopTimeUpdate(stop_sequence=3, departure=StopTimeEvent(delay_s=300)),
        StopTimeUpdate(stop_sequence=5, arrival=StopTimeEvent(delay_s=120, time=given)),
        StopTimeUpdate(stop_sequence=6, relationship=StopRelationship.SKIPPED),
    )
    wire = trip_update_to_wire(update)
    entity = without_delays(trip_update_entity(wire), wire, schedule)
    out = entity.trip_update
    assert not out.HasField("delay")
    assert [(s.stop_sequence, s.schedule_relationship) for s in out.stop_time_update] == [
        (3, STOP.SCHEDULED), (5, STOP.SCHEDULED), (6, STOP.SKIPPED)]
    implied = run.departure(run.trip.stop_times[2]) + timedelta(seconds=300)
    assert out.stop_time_update[0].departure.time == int(implied.timestamp())
    assert out.stop_time_update[1].arrival.time == int(given.timestamp())
    assert not any(s.arrival.HasField("delay") or s.departure.HasField("delay") for s in out.stop_time_update)


def test_a_headway_runs_status_has_predicted_times_and_no_delay(tmp_path: Path) -> None:
    schedule = _schedule(tmp_path, exact_times=0)
    run = _run(schedule, FIRST)
    late = StopTimeUpdate(stop_sequence=3, arrival=StopTimeEvent(delay_s=480))
    update = _update(timedelta(minutes=5), run.start, late)
    resolved = resolve_trip(schedule, update, update.timestamp)
    timed = trip_status_to_pb(resolved, "BK-1")
    headway = trip_status_to_pb(resolved, "BK-1", headway_of(schedule, FIRST))
    # The same status as a timed run's has the delay; the headway run's has the times only.
    assert [s.arrival.delay_s for s in timed.stops if s.arrival.HasField("delay_s")][-1] == 480
    assert headway.headway_based and headway.scheduled_headway_s == 600 and not headway.HasField("current_delay_s")
    assert [s.arrival.time for s in headway.stops] == [s.arrival.time for s in timed.stops]
    assert not any(s.arrival.HasField("delay_s") or s.departure.HasField("delay_s") for s in headway.stops)
