"""The mobility processor's step without faust: refusals per entity, status, ticks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from madina.bus.alert_events import timestamp
from madina.streams.entities import EntityRecord
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.mobility.v1 import events_pb2, status_pb2
from services.mobility.api.publisher import route_batches
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.evaluator import MobilityConfig
from services.mobility.domain.realtime import StopTimeEvent, StopTimeUpdate, TripRelationship, TripUpdate
from services.mobility.domain.servicedays import TripKey, run_of
from services.mobility.processor.route_stream import StoredRoute, route_step, status_event, tick_message
from services.mobility.topics import ROUTE_TICKS, TRIP_UPDATES

DAY = "20261126"


def _update(trip_id: str, at: datetime, delay_s: int) -> TripUpdate:
    event = StopTimeEvent(delay_s=delay_s)
    return TripUpdate(trip_id, DAY, TripRelationship.SCHEDULED, at,
                      stop_time_updates=(StopTimeUpdate(stop_sequence=1, arrival=event, departure=event),))


def test_unknown_trip_in_a_batch_is_refused_alone_and_the_first_update_of_a_run_is_in_the_status(schedule) -> None:
    step = route_step(schedule, PathIndex(schedule), MobilityConfig())
    run = run_of(schedule, TripKey("1-0800", DAY))
    assert run is not None
    at = run.start + timedelta(minutes=2)
    batch = route_batches(schedule, [_update("1-0800", at, 420)]).trip_updates["BK-1"]
    batch.trip_updates.add().CopyFrom(batch.trip_updates[0])
    batch.trip_updates[1].trip_id = "9-9999"
    result = step(StoredRoute.new("BK-1"), EntityRecord("BK-1", TRIP_UPDATES, batch, datetime.now(UTC)))
    [(reason, refused)] = result.rejected
    assert reason == "trip_updates[1].trip_id: unknown trip '9-9999'"
    assert isinstance(refused, events_pb2.TripUpdateReceivedBatch) and refused.trip_updates[0].trip_id == "9-9999"
    status = status_event(result.state)
    assert [u.trip_id for u in status.trip_updates] == ["1-0800"]
    assert StoredRoute.from_dict(result.state.to_dict(), "BK-1").to_dict() == result.state.to_dict()


def test_tick_far_ahead_of_the_clock_is_refused_before_it_touches_the_state(schedule) -> None:
    from madina.contract import InvalidRecord
    from madina.eventtime import EventTimeBounds

    step = route_step(schedule, PathIndex(schedule), MobilityConfig(), EventTimeBounds())
    now = datetime.now(UTC)
    forged = tick_message("BK-1", now + timedelta(days=3))
    with pytest.raises(InvalidRecord, match="tick_time"):
        step(StoredRoute.new("BK-1"), EntityRecord("BK-1", ROUTE_TICKS, forged, now))


def test_status_joined_from_stored_bytes_equals_the_status_built_message_by_message() -> None:
    # Payloads of 1-, 2- and 3-byte lengths (under 128, under 16,384, above), and an alert.
    updates = {
        f"t{n}@{DAY}": events_pb2.TripUpdateReceived(
            route_id="BK-1", trip_id=f"t{n}", start_date=DAY, feed_id="x" * size,
            update_time=timestamp(datetime(2026, 11, 26, 7, n, tzinfo=UTC)),
            stop_time_updates=[events_pb2.StopTimeUpdate(stop_sequence=n, stop_id="s")],
        )
        for n, size in ((3, 0), (1, 300), (2, 20_000))
    }
    alert = alerts_pb2.AlertEvent(alert_id="a1", revision=2, message="Line 1 trip t1: 7 min late" * 20)
    stored = StoredRoute.new("BK-1")
    stored.trip_updates = {key: update.SerializeToString() for key, update in updates.items()}
    stored.active_alerts = {"a1": alert.SerializeToString()}

    expected = status_pb2.RouteStatusChanged(route_id="BK-1")
    for key in sorted(updates):
        expected.trip_updates.append(updates[key])
    expected.active_alerts.append(alert)

    assert status_event(stored) == expected
    restored = StoredRoute.from_dict(json.loads(json.dumps(stored.to_dict())), "BK-1")
    assert restored.trip_updates == stored.trip_updates and status_event(restored) == expected


def _status_from_scratch(stored: StoredRoute) -> status_pb2.RouteStatusChanged:
    """The status built from the stored updates and alerts alone, none of the embedded parts kept."""
    return status_event(StoredRoute(stored.route, dict(stored.trip_updates), dict(stored.positions),
                                    dict(stored.active_alerts)))


def test_status_keeps_up_with_each_record_newer_updates_alerts_cleared_and_ended_runs(schedule) -> None:
    # The step keeps each update and alert already embedded as a status field: a stale one would
    # show an old delay, a cleared alert or an ended run in the status.
    step = route_step(schedule, PathIndex(schedule), MobilityConfig())
    first, second = run_of(schedule, TripKey("1-0800", DAY)), run_of(schedule, TripKey("1-0820", DAY))
    assert first is not None and second is not None
    at = first.start + timedelta(minutes=2)
    stored = StoredRoute.new("BK-1")
    delays = [(0, 420, 420), (1, 420, 0), (2, 60, 0), (8, 30, 0)]  # minutes after `at`, 1-0800's and 1-0820's delay
    seen_alerts = set()
    for minutes, late, other in delays:
        moment = at + timedelta(minutes=minutes)
        batch = route_batches(schedule, [_update("1-0800", moment, late), _update("1-0820", moment, other)])
        result = step(stored, EntityRecord("BK-1", TRIP_UPDATES, batch.trip_updates["BK-1"], datetime.now(UTC)))
        stored = result.state
        seen_alerts |= {(alert.alert_id, alert.state) for alert in result.alerts}
        status = status_event(stored)
        assert status == _status_from_scratch(stored)
        by_trip = {u.trip_id: u for u in status.trip_updates}
        assert by_trip["1-0800"].stop_time_updates[0].arrival.delay_s == late
        assert {a.alert_id for a in status.active_alerts} == set(stored.active_alerts)
    states = [state for _, state in seen_alerts]
    assert alerts_pb2.ALERT_STATE_RAISED in states and alerts_pb2.ALERT_STATE_CLEARED in states
    assert not status.active_alerts  # raised on the second late update, cleared once back on time
    end = max(first.end, second.end) + timedelta(hours=1)
    ticked = step(stored, EntityRecord("BK-1", ROUTE_TICKS, tick_message("BK-1", end), datetime.now(UTC))).state
    assert status_event(ticked) == _status_from_scratch(ticked) and not status_event(ticked).trip_updates
