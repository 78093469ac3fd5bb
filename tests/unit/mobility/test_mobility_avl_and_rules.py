"""AVL matching and the route step: delay alerts, cancellation, silence, route grouping, bunching."""

from __future__ import annotations

import json
from datetime import timedelta

from google.transit import gtfs_realtime_pb2 as rt

from madina.alerts import AlertState, Severity
from services.mobility.convert import feed_from_pb
from services.mobility.domain.avl import PathIndex, match_position
from services.mobility.domain.evaluator import MobilityConfig, RouteState, apply_route_events, tick_route
from services.mobility.domain.realtime import VehiclePosition
from services.mobility.domain.servicedays import TripKey, run_of

DAY = "20261126"  # a Thursday


def _run(schedule, trip_id, day=DAY):
    run = run_of(schedule, TripKey(trip_id, day))
    assert run is not None
    return run


def _point_between(schedule, run, index, fraction):
    a = schedule.stops[run.trip.stop_times[index].stop_id]
    b = schedule.stops[run.trip.stop_times[index + 1].stop_id]
    return a.lat + (b.lat - a.lat) * fraction, a.lon + (b.lon - a.lon) * fraction


def _vehicle_feed(vehicle_id, lat, lon, at, trip_id=None, route_id=None):
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.timestamp = int(at.timestamp())
    vp = feed.entity.add(id=vehicle_id).vehicle
    vp.vehicle.id = vehicle_id
    vp.position.latitude, vp.position.longitude = lat, lon
    vp.timestamp = int(at.timestamp())
    if trip_id:
        vp.trip.trip_id = trip_id
    if route_id:
        vp.trip.route_id = route_id
    _, positions, _ = feed_from_pb(rt.FeedMessage.FromString(feed.SerializeToString()))
    return positions[0]


def _late_update(trip_id, stop_sequence, delay, at, vehicle="BK-E07", relationship=0):
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.timestamp = int(at.timestamp())
    tu = feed.entity.add(id=trip_id).trip_update
    tu.trip.trip_id, tu.trip.start_date, tu.trip.schedule_relationship = trip_id, DAY, relationship
    tu.vehicle.id = vehicle
    tu.timestamp = int(at.timestamp())
    if relationship == 0:
        stu = tu.stop_time_update.add(stop_sequence=stop_sequence)
        stu.arrival.delay = delay
    updates, _, _ = feed_from_pb(rt.FeedMessage.FromString(feed.SerializeToString()))
    return updates[0]


def test_position_on_shape_gives_delay_at_last_passed_stop(schedule) -> None:
    run = _run(schedule, "1-0800")
    lat, lon = _point_between(schedule, run, 3, 0.5)  # between stops 4 and 5, on the shape's corner path? near it
    scheduled_mid = (
        run.departure(run.trip.stop_times[3])
        + (run.arrival(run.trip.stop_times[4]) - run.departure(run.trip.stop_times[3])) / 2
    )
    at = scheduled_mid + timedelta(minutes=6)
    match = match_position(
        schedule, PathIndex(schedule), _vehicle_feed("BK-E01", lat, lon, at, trip_id="1-0800"), max_offset_m=400
    )
    assert match is not None and match.key == TripKey("1-0800", DAY)
    assert match.last_stop.stop_sequence == 4
    assert 4 * 60 <= match.delay_s <= 8 * 60


def test_position_without_trip_is_matched_along_the_stop_sequence_of_its_route(schedule) -> None:
    run = _run(schedule, "2-0815")
    lat, lon = _point_between(schedule, run, 2, 0.5)
    at = run.departure(run.trip.stop_times[2]) + timedelta(seconds=60)
    match = match_position(schedule, PathIndex(schedule), _vehicle_feed("BK-E02", lat, lon, at, route_id="BK-2"))
    assert match is not None and match.key.trip_id == "2-0815"
    assert abs(match.delay_s) < 120


def _delay_positions(schedule, trip_id, delays_s, vehicle="BK-E07"):
    """Positions at stop 4..: each placed where the schedule puts the bus ``delay`` seconds ago."""
    run = _run(schedule, trip_id)
    events = []
    for index, delay in enumerate(delays_s):
        st = run.trip.stop_times[2 + index]
        stop = schedule.stops[st.stop_id]
        at = run.departure(st) + timedelta(seconds=delay)
        events.append(VehiclePosition(vehicle, stop.lat, stop.lon, at, trip_id=trip_id, start_date=DAY))
    return events


def test_trip_delay_raises_after_two_late_updates_and_escalates_at_ten_minutes(schedule) -> None:
    paths = PathIndex(schedule)
    state = RouteState.new("BK-3")
    first = apply_route_events(
        state, [_late_update("3-0815", 3, 420, _run(schedule, "3-0815").start + timedelta(minutes=6))], schedule, paths
    )
    assert first.transitions == []
    second_at = _run(schedule, "3-0815").start + timedelta(minutes=8)
    second = apply_route_events(first.state, [_late_update("3-0815", 5, 420, second_at)], schedule, paths)
    [raised] = second.transitions
    assert raised.state is AlertState.RAISED and raised.severity is Severity.MINOR and raised.domain == "mobility"
    assert raised.message.startswith("Line 3 trip 3-0815: 7 min late at ")
    assert ", since " in raised.message
    assert raised.details.labels["route_id"] == "BK-3" and raised.details.labels["trip_id"] == "3-0815"
    assert raised.details.labels["vehicle_id"] == "BK-E07" and raised.details.labels["stop_id"]
    third = apply_route_events(
        second.state, [_late_update("3-0815", 6, 660, second_at + timedelta(minutes=1))], schedule, paths
    )
    assert third.transitions == []  # one update at 11 min is not yet two
    fourth = apply_route_events(
        third.state, [_late_update("3-0815", 7, 690, second_at + timedelta(minutes=2))], schedule, paths
    )
    assert [t.state for t in fourth.transitions] == [AlertState.ESCALATED]
    assert fourth.transitions[0].severity is Severity.MAJOR
    # Back under 2 min: clears only once held for clear_after (3 min).
    fifth = apply_route_events(
        fourth.state, [_late_update("3-0815", 7, 60, second_at + timedelta(minutes=3))], schedule, paths
    )
    assert fifth.transitions == []
    sixth = apply_route_events(
        fifth.state, [_late_update("3-0815", 8, 30, second_at + timedelta(minutes=6))], schedule, paths
    )
    assert [t.state for t in sixth.transitions] == [AlertState.CLEARED]


def test_state_round_trips_through_json(schedule) -> None:
    paths = PathIndex(schedule)
    at = _run(schedule, "3-0815").start + timedelta(minutes=8)
    result = apply_route_events(RouteState.new("BK-3"), [_late_update("3-0815", 5, 420, at)], schedule, paths)
    raw = json.loads(json.dumps(result.state.to_dict()))
    assert RouteState.from_dict(raw) == result.state


def test_cancelled_trip_gets_its_own_alert(schedule) -> None:
    at = _run(schedule, "3-0815").start - timedelta(minutes=10)
    result = apply_route_events(
        RouteState.new("BK-3"),
        [_late_update("3-0815", 0, 0, at, relationship=rt.TripDescriptor.CANCELED)],
        schedule,
        PathIndex(schedule),
    )
    [raised] = result.transitions
    assert raised.rule_id == "trip-canceled" and "cancelled" in raised.message


def test_vehicle_silent_mid_trip_raises_a_data_gap_and_clears_when_back(schedule) -> None:
    paths = PathIndex(schedule)
    positions = _delay_positions(schedule, "1-0800", [0, 30])
    result = apply_route_events(RouteState.new("BK-1"), positions, schedule, paths)
    last = positions[-1].timestamp
    quiet = tick_route(result.state, last + timedelta(seconds=60), schedule, paths)
    assert quiet.transitions == []
    silent = tick_route(quiet.state, last + timedelta(seconds=100), schedule, paths)
    [gap] = silent.transitions
    assert gap.rule_id == "data-gap" and gap.details.labels["vehicle_id"] == "BK-E07"
    back = apply_route_events(silent.state, _delay_positions(schedule, "1-0800", [0, 30, 60])[2:], schedule, paths)
    assert [t.state for t in back.transitions] == [AlertState.CLEARED]


def test_several_late_trips_of_one_route_make_one_route_alert(schedule) -> None:
    paths = PathIndex(schedule)
    config = MobilityConfig(route_late_count=3)
    trips = ["1-0800", "1-0820", "1-0840"]
    state = RouteState.new("BK-1")
    base = _run(schedule, "1-0840").start + timedelta(minutes=2)
    transitions = []
    for minute in (0, 1):
        updates = [
            _late_update(t, 6, 400, base + timedelta(minutes=minute), vehicle=f"V{n}") for n, t in enumerate(trips)
        ]
        result = apply_route_events(state, updates, schedule, paths, config)
        state = result.state
        transitions.extend(result.transitions)
    route_alerts = [t for t in transitions if t.rule_id == "route-delays"]
    assert [t.state for t in route_alerts] == [AlertState.RAISED]
    assert route_alerts[0].details.labels["trip_ids"] == "1-0800,1-0820,1-0840"
    open_trip_alerts = {t.alert_id for t in transitions if t.rule_id == "trip-delay" and t.state is AlertState.RAISED}
    closed = {t.alert_id for t in transitions if t.rule_id == "trip-delay" and t.state is AlertState.CLEARED}
    assert open_trip_alerts == closed  # folded into the route alert


def test_two_buses_close_together_raise_bunching(schedule) -> None:
    paths = PathIndex(schedule)
    leader = _run(schedule, "1-0800")
    follower = _run(schedule, "1-0820")
    at = follower.start + timedelta(minutes=5)
    lat, lon = _point_between(schedule, leader, 2, 0.8)
    lat2, lon2 = _point_between(schedule, leader, 2, 0.6)
    events = [
        VehiclePosition("BK-E01", lat, lon, at, trip_id="1-0800", start_date=DAY),
        VehiclePosition("BK-E02", lat2, lon2, at, trip_id="1-0820", start_date=DAY),
    ]
    result = apply_route_events(RouteState.new("BK-1"), events, schedule, paths, MobilityConfig(max_offset_m=400))
    bunching = [t for t in result.transitions if t.rule_id == "bunching"]
    assert len(bunching) == 1 and "BK-E01" in bunching[0].message and "BK-E02" in bunching[0].message


def test_step_is_deterministic(schedule) -> None:
    paths = PathIndex(schedule)
    events = _delay_positions(schedule, "1-0800", [400, 420, 430])
    a = apply_route_events(RouteState.new("BK-1"), events, schedule, paths)
    b = apply_route_events(RouteState.new("BK-1"), list(reversed(events)), schedule, paths)
    assert a.state == b.state and a.transitions == b.transitions


def test_the_same_late_update_twice_is_one_observation_and_a_same_time_correction_replaces_it(schedule) -> None:
    # An HTTP retry or a re-pushed unchanged feed delivers an update again: that must not make
    # "two consecutive late updates".
    paths = PathIndex(schedule)
    at = _run(schedule, "3-0815").start + timedelta(minutes=6)
    late = _late_update("3-0815", 3, 420, at)
    once = apply_route_events(RouteState.new("BK-3"), [late], schedule, paths)
    again = apply_route_events(once.state, [late], schedule, paths)
    assert once.transitions == [] and again.transitions == []
    # The same timestamp with another delay corrects the last observation: still one, on time now.
    corrected = apply_route_events(again.state, [_late_update("3-0815", 3, 30, at)], schedule, paths)
    assert corrected.transitions == []
    later = apply_route_events(
        corrected.state, [_late_update("3-0815", 5, 420, at + timedelta(minutes=2))], schedule, paths)
    assert later.transitions == []  # on time, then late: not two late in a row
    [raised] = apply_route_events(
        later.state, [_late_update("3-0815", 6, 420, at + timedelta(minutes=3))], schedule, paths).transitions
    assert raised.state is AlertState.RAISED
