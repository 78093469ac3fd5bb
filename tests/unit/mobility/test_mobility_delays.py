"""GTFS-Realtime delay semantics, each rule from a real FeedMessage through services.mobility.convert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.transit import gtfs_realtime_pb2 as rt

from services.mobility.convert import feed_from_pb
from services.mobility.domain.delays import StopState, TripState, resolve_trip
from services.mobility.domain.servicedays import TripKey, run_of

KEY = TripKey("3-0815", "20261126")  # Thursday; stops 1..8
NOW = datetime(2026, 11, 26, 7, 20, tzinfo=UTC)  # 08:20 local


def _feed(*updates: dict, timestamp: datetime = NOW, trip: dict | None = None, relationship: int = 0, delay=None):
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.timestamp = int(timestamp.timestamp())
    entity = feed.entity.add(id="e1")
    tu = entity.trip_update
    tu.trip.trip_id = (trip or {}).get("trip_id", KEY.trip_id)
    if (trip or {}).get("start_date", KEY.start_date):
        tu.trip.start_date = (trip or {}).get("start_date", KEY.start_date)
    tu.trip.schedule_relationship = relationship
    tu.vehicle.id = "BK-E07"
    if delay is not None:
        tu.delay = delay
    for props in (trip or {}).get("properties", []):
        for name, value in props.items():
            setattr(tu.trip_properties, name, value)
    for update in updates:
        stu = tu.stop_time_update.add()
        for name, value in update.items():
            if name in ("arrival", "departure"):
                for field, v in value.items():
                    setattr(getattr(stu, name), field, v)
            else:
                setattr(stu, name, value)
    trip_updates, _, _ = feed_from_pb(rt.FeedMessage.FromString(feed.SerializeToString()))
    return trip_updates[0]


def _resolve(schedule, update, now=NOW, **kwargs):
    return resolve_trip(schedule, update, now, **kwargs)


def test_no_trip_update_is_unknown_never_on_time(schedule) -> None:
    status = resolve_trip(schedule, None, NOW, key=KEY)
    assert status.state is TripState.UNKNOWN
    assert all(stop.state is StopState.UNKNOWN and stop.arrival is None for stop in status.stops)
    assert status.delay_at(NOW) is None


def test_delay_propagates_downstream_until_the_next_update(schedule) -> None:
    update = _feed({"stop_sequence": 3, "arrival": {"delay": 300}}, {"stop_sequence": 6, "arrival": {"delay": 60}})
    stops = _resolve(schedule, update).stops
    assert [s.state for s in stops[:2]] == [StopState.UNKNOWN, StopState.UNKNOWN]
    assert stops[2].state is StopState.UPDATED and stops[2].arrival.delay_s == 300
    assert stops[2].departure.delay_s == 300  # arrival delay carries to the departure
    assert [s.arrival.delay_s for s in stops[3:5]] == [300, 300]
    assert all(s.state is StopState.PROPAGATED for s in stops[3:5])
    assert [s.arrival.delay_s for s in stops[5:]] == [60, 60, 60]
    assert stops[3].arrival.time == stops[3].scheduled_arrival + timedelta(seconds=300)


def test_time_is_the_prediction_and_the_delay_is_derived_from_it(schedule) -> None:
    run = run_of(schedule, KEY)
    scheduled = run.arrival(run.trip.stop_times[3])
    predicted = scheduled + timedelta(seconds=420)
    update = _feed({"stop_sequence": 4, "arrival": {"time": int(predicted.timestamp()), "delay": 5, "uncertainty": 30}})
    stop = _resolve(schedule, update).stops[3]
    assert stop.arrival.time == predicted
    assert stop.arrival.delay_s == 420
    assert stop.arrival.uncertainty_s == 30


def test_uncertainty_is_carried_to_propagated_stops(schedule) -> None:
    update = _feed({"stop_sequence": 2, "departure": {"delay": 120, "uncertainty": 90}})
    stops = _resolve(schedule, update).stops
    assert stops[5].arrival.uncertainty_s == 90 and stops[5].arrival.delay_s == 120


def test_zero_delay_is_on_time_not_unknown(schedule) -> None:
    stops = _resolve(schedule, _feed({"stop_sequence": 1, "departure": {"delay": 0}})).stops
    assert stops[-1].arrival.delay_s == 0


def test_skipped_stop_has_no_times_and_delay_propagates_over_it(schedule) -> None:
    update = _feed(
        {"stop_sequence": 2, "arrival": {"delay": 240}},
        {"stop_sequence": 4, "schedule_relationship": rt.TripUpdate.StopTimeUpdate.SKIPPED},
    )
    stops = _resolve(schedule, update).stops
    assert stops[3].state is StopState.SKIPPED and stops[3].arrival is None
    assert stops[4].state is StopState.PROPAGATED and stops[4].arrival.delay_s == 240


def test_no_data_propagates_until_a_stop_with_data(schedule) -> None:
    update = _feed(
        {"stop_sequence": 2, "arrival": {"delay": 240}},
        {"stop_sequence": 4, "schedule_relationship": rt.TripUpdate.StopTimeUpdate.NO_DATA},
        {"stop_sequence": 7, "arrival": {"delay": 30}},
    )
    stops = _resolve(schedule, update).stops
    assert stops[3].state is StopState.NO_DATA
    assert [s.state for s in stops[4:6]] == [StopState.UNKNOWN, StopState.UNKNOWN]
    assert stops[6].arrival.delay_s == 30 and stops[7].arrival.delay_s == 30


def test_trip_level_delay_applies_until_the_first_stop_update(schedule) -> None:
    update = _feed({"stop_sequence": 5, "arrival": {"delay": 60}}, delay=200)
    stops = _resolve(schedule, update).stops
    assert [s.arrival.delay_s for s in stops] == [200, 200, 200, 200, 60, 60, 60, 60]


def test_stop_id_matches_when_stop_sequence_is_absent(schedule) -> None:
    stops = _resolve(schedule, _feed({"stop_id": "BK-HQ1", "arrival": {"delay": 420}})).stops
    assert stops[6].stop_id == "BK-HQ1" and stops[6].arrival.delay_s == 420


def test_canceled_trip_cancels_every_stop(schedule) -> None:
    status = _resolve(schedule, _feed(relationship=rt.TripDescriptor.CANCELED))
    assert status.state is TripState.CANCELED
    assert {s.state for s in status.stops} == {StopState.CANCELED}
    assert status.delay_at(NOW) is None


def test_added_trip_takes_its_stops_and_times_from_the_update(schedule) -> None:
    at = int((NOW + timedelta(minutes=10)).timestamp())
    update = _feed(
        {"stop_sequence": 1, "stop_id": "BK-CV2", "departure": {"time": at}},
        {"stop_sequence": 2, "stop_id": "BK-CV3", "arrival": {"time": at + 180}},
        trip={"trip_id": "extra-1"},
        relationship=rt.TripDescriptor.ADDED,
    )
    status = _resolve(schedule, update)
    assert status.state is TripState.ADDED
    assert [s.stop_id for s in status.stops] == ["BK-CV2", "BK-CV3"]
    assert status.stops[1].arrival.delay_s is None  # no schedule to be late against


def test_duplicated_trip_copies_the_schedule_to_the_new_start(schedule) -> None:
    update = _feed(
        {"stop_sequence": 1, "departure": {"delay": 0}},
        trip={"properties": [{"trip_id": "3-0815-dup", "start_date": "20261126", "start_time": "09:45:00"}]},
        relationship=rt.TripDescriptor.DUPLICATED,
    )
    status = _resolve(schedule, update)
    assert status.state is TripState.DUPLICATED
    assert status.key == TripKey("3-0815-dup", "20261126")
    assert status.stops[0].scheduled_departure == datetime(2026, 11, 26, 8, 45, tzinfo=UTC)


def test_stale_update_makes_the_trip_unknown_again(schedule) -> None:
    update = _feed({"stop_sequence": 3, "arrival": {"delay": 600}}, timestamp=NOW - timedelta(minutes=11))
    status = _resolve(schedule, update, stale_after=timedelta(minutes=10))
    assert status.state is TripState.UNKNOWN and "older" in status.reason
    fresh = _resolve(schedule, update, now=NOW - timedelta(minutes=5), stale_after=timedelta(minutes=10))
    assert fresh.state is TripState.PREDICTED


def test_yesterdays_trip_past_midnight_is_matched_on_its_service_date(schedule) -> None:
    key = TripKey("1-2530", "20261126")  # leaves 01:30 on the 27th, local
    now = datetime(2026, 11, 27, 0, 35, tzinfo=UTC)
    update = _feed(
        {"stop_sequence": 2, "arrival": {"delay": 360}},
        trip={"trip_id": key.trip_id, "start_date": key.start_date},
        timestamp=now,
    )
    status = _resolve(schedule, update, now=now)
    assert status.state is TripState.PREDICTED and status.key == key
    assert status.stops[1].scheduled_arrival == datetime(2026, 11, 27, 0, 32, 30, tzinfo=UTC)
    stop, delay = status.delay_at(now)
    assert stop.stop_sequence == 2 and delay == 360


def test_delay_at_the_vehicle_is_the_next_stop_not_yet_left(schedule) -> None:
    update = _feed({"stop_sequence": 1, "departure": {"delay": 420}}, {"stop_sequence": 7, "arrival": {"delay": 480}})
    run = run_of(schedule, KEY)
    between = run.departure(run.trip.stop_times[5]) + timedelta(seconds=500)
    stop, delay = _resolve(schedule, update, now=between, stale_after=timedelta(hours=1)).delay_at(between)
    assert stop.stop_sequence == 7 and delay == 480
