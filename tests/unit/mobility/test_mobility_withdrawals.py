"""Withdrawn realtime (GTFS-Realtime is_deleted, or gone from a FULL_DATASET feed): found by the pull
poller, published as removal events, and removed from the route's state, status and feeds out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.transit import gtfs_realtime_pb2 as rt

from madina.alerts import AlertState
from madina.streams.entities import EntityRecord
from services.mobility.api.publisher import route_batches, withdrawal_batches
from services.mobility.api.pull import FeedPoller
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.evaluator import TRIP_DELAY_RULE, MobilityConfig, RouteState, apply_route_events
from services.mobility.domain.gtfs import Schedule
from services.mobility.domain.realtime import (
    StopTimeEvent,
    StopTimeUpdate,
    TripRelationship,
    TripUpdate,
    VehiclePosition,
)
from services.mobility.domain.servicedays import ScheduledRun, TripKey, run_of
from services.mobility.processor.route_stream import StoredRoute, route_step, status_event
from services.mobility.topics import TRIP_UPDATES, VEHICLE_POSITIONS

DAY = "20261126"  # a Thursday
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def _feed(trips: dict[str, str], incrementality: int = rt.FeedHeader.FULL_DATASET, at: datetime = T0,
          deleted: tuple[str, ...] = (), vehicles: tuple[str, ...] = ()) -> rt.FeedMessage:
    """Entity id -> trip id; ``deleted`` entity ids marked is_deleted (id only)."""
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version, feed.header.timestamp = "2.0", int(at.timestamp())
    feed.header.incrementality = incrementality  # type: ignore[assignment]
    for entity_id, trip_id in trips.items():
        update = feed.entity.add(id=entity_id).trip_update
        update.trip.trip_id, update.trip.start_date = trip_id, DAY
        update.stop_time_update.add(stop_sequence=1).departure.delay = 60
    for vehicle_id in vehicles:
        vehicle = feed.entity.add(id=f"vp-{vehicle_id}").vehicle
        vehicle.vehicle.id, vehicle.trip.trip_id = vehicle_id, "1-0800"
        vehicle.position.latitude, vehicle.position.longitude = 34.93, -2.33
        vehicle.timestamp = int(at.timestamp())
    for entity_id in deleted:
        feed.entity.add(id=entity_id, is_deleted=True)
    return feed


def _poller() -> FeedPoller:
    return FeedPoller("http://feed", interval_s=15, max_backoff_s=300, max_entities=100)


def _withdrawn_trips(feed: rt.FeedMessage) -> list[str]:
    return [e.trip_update.trip.trip_id or e.vehicle.vehicle.id for e in feed.entity]


def test_a_full_dataset_withdraws_what_it_no_longer_carries_as_last_known() -> None:
    poller = _poller()
    first = poller.changed_entities(_feed({"a": "1-0800", "b": "1-0820"}, vehicles=("BK-E01",)))
    assert len(first.changed.entity) == 3 and not first.withdrawn.entity
    second = poller.changed_entities(_feed({"a": "1-0800"}, at=T0 + timedelta(seconds=30)))
    assert not second.changed.entity  # "a" unchanged
    assert _withdrawn_trips(second.withdrawn) == ["1-0820", "BK-E01"]
    assert second.withdrawn.entity[0].trip_update.stop_time_update[0].departure.delay == 60  # as last known
    assert set(poller.entities) == {"a"}


def test_a_differential_withdraws_its_is_deleted_entities_and_keeps_the_rest() -> None:
    poller = _poller()
    poller.changed_entities(_feed({"a": "1-0800", "b": "1-0820"}))
    changes = poller.changed_entities(_feed({}, rt.FeedHeader.DIFFERENTIAL, deleted=("b",)))
    assert _withdrawn_trips(changes.withdrawn) == ["1-0820"] and not changes.changed.entity
    assert set(poller.entities) == {"a"}


def test_a_deleted_entity_never_seen_is_withdrawn_by_its_own_selectors_and_one_without_them_is_not() -> None:
    feed = _feed({}, rt.FeedHeader.DIFFERENTIAL, deleted=("ghost",))
    with_selectors = feed.entity.add(id="late", is_deleted=True)
    with_selectors.trip_update.trip.trip_id = "1-0840"
    changes = _poller().changed_entities(feed)
    assert _withdrawn_trips(changes.withdrawn) == ["1-0840"]


def test_a_trip_still_carried_under_another_entity_id_is_not_withdrawn() -> None:
    poller = _poller()
    poller.changed_entities(_feed({"a": "1-0800"}))
    changes = poller.changed_entities(_feed({"a-renamed": "1-0800"}))
    assert not changes.withdrawn.entity and len(changes.changed.entity) == 1


def test_withdrawal_batches_mark_each_entity_deleted_at_the_feeds_time_and_leave_unknown_trips_out(
    schedule: Schedule,
) -> None:
    withdrawn = _feed({"a": "1-0800", "x": "9-9999"}, vehicles=("BK-E01",))
    at = T0 + timedelta(minutes=1)
    batches = withdrawal_batches(withdrawn, schedule, at, feed_id="http://feed")
    [update] = batches.trip_updates["BK-1"].trip_updates
    [position] = batches.positions["BK-1"].vehicle_positions
    assert update.deleted and update.trip_id == "1-0800" and update.update_time.ToDatetime(UTC) == at
    assert position.deleted and position.vehicle_id == "BK-E01" and position.report_time.ToDatetime(UTC) == at
    assert not batches.dead and batches.trip_updates_count == 1


def _run(schedule: Schedule, trip_id: str) -> ScheduledRun:
    run = run_of(schedule, TripKey(trip_id, DAY))
    assert run is not None
    return run


def _late(trip_id: str, at: datetime, delay_s: int = 420, deleted: bool = False) -> TripUpdate:
    event = StopTimeEvent(delay_s=delay_s)
    return TripUpdate(trip_id, DAY, TripRelationship.SCHEDULED, at, vehicle_id="BK-E07", deleted=deleted,
                      stop_time_updates=(StopTimeUpdate(stop_sequence=3, arrival=event),))


def test_a_withdrawn_trip_update_leaves_the_route_state_and_closes_its_delay_alert(schedule: Schedule) -> None:
    paths, start = PathIndex(schedule), _run(schedule, "3-0815").start
    state = RouteState.new("BK-3")
    for minutes in (6, 8):
        state = apply_route_events(state, [_late("3-0815", start + timedelta(minutes=minutes))], schedule, paths).state
    key = TripKey("3-0815", DAY).text
    episode = state.trips[key].delay_episode
    assert episode is not None and episode.active
    result = apply_route_events(state, [_late("3-0815", start + timedelta(minutes=9), deleted=True)], schedule, paths)
    assert key not in result.state.trips
    [cleared] = [t for t in result.transitions if t.rule_id == TRIP_DELAY_RULE]
    assert cleared.state is AlertState.CLEARED and "realtime withdrawn by the producer" in cleared.message
    assert {kpi.kpi_id: kpi.value for kpi in result.kpis} == {"late-trips": 0.0}


def test_a_withdrawal_older_than_the_runs_latest_update_changes_nothing(schedule: Schedule) -> None:
    paths, start = PathIndex(schedule), _run(schedule, "3-0815").start
    state = apply_route_events(RouteState.new("BK-3"), [_late("3-0815", start + timedelta(minutes=8))],
                               schedule, paths).state
    stale = apply_route_events(state, [_late("3-0815", start + timedelta(minutes=7), deleted=True)], schedule, paths)
    assert stale.state.trips == state.trips and stale.transitions == []


def test_a_withdrawn_vehicle_leaves_the_route_state(schedule: Schedule) -> None:
    paths = PathIndex(schedule)
    stop = schedule.stops[_run(schedule, "1-0800").trip.stop_times[2].stop_id]
    at = _run(schedule, "1-0800").departure(_run(schedule, "1-0800").trip.stop_times[2])
    seen = VehiclePosition("BK-E01", stop.lat, stop.lon, at, trip_id="1-0800", start_date=DAY)
    state = apply_route_events(RouteState.new("BK-1"), [seen], schedule, paths).state
    assert "BK-E01" in state.vehicles
    gone = VehiclePosition("BK-E01", stop.lat, stop.lon, at + timedelta(seconds=30), trip_id="1-0800",
                           start_date=DAY, deleted=True)
    assert "BK-E01" not in apply_route_events(state, [gone], schedule, paths).state.vehicles


def test_the_processor_drops_a_withdrawn_trip_update_and_vehicle_from_the_route_status(schedule: Schedule) -> None:
    step = route_step(schedule, PathIndex(schedule), MobilityConfig())
    run = _run(schedule, "1-0800")
    stop = schedule.stops[run.trip.stop_times[2].stop_id]
    at = run.departure(run.trip.stop_times[2])
    position = VehiclePosition("BK-E01", stop.lat, stop.lon, at, trip_id="1-0800", start_date=DAY)
    live = route_batches(schedule, [_late("1-0800", at), _late("1-0820", at)], [position])
    stored = StoredRoute.new("BK-1")
    for spec, batch in ((TRIP_UPDATES, live.trip_updates["BK-1"]), (VEHICLE_POSITIONS, live.positions["BK-1"])):
        stored = step(stored, EntityRecord("BK-1", spec, batch, at)).state
    assert [u.trip_id for u in status_event(stored).trip_updates] == ["1-0800", "1-0820"]
    later = at + timedelta(minutes=1)
    gone = route_batches(schedule, [_late("1-0820", later, deleted=True)],
                         [VehiclePosition("BK-E01", stop.lat, stop.lon, later, route_id="BK-1", deleted=True)])
    for spec, batch in ((TRIP_UPDATES, gone.trip_updates["BK-1"]), (VEHICLE_POSITIONS, gone.positions["BK-1"])):
        stored = step(stored, EntityRecord("BK-1", spec, batch, later)).state
    status = status_event(stored)
    assert [u.trip_id for u in status.trip_updates] == ["1-0800"]
    assert not status.vehicles
