"""The mobility processor's step without faust: refusals per entity, status, ticks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from madina.streams.entities import EntityRecord
from madina_proto.mobility.v1 import events_pb2
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
