"""Headway-based runs (frequencies.txt ``exact_times=0``) as the API reports them: by headway, never by delay.

The processor judges such a run by its spacing only (``evaluator.headway_based``): its departures
are nominal, the service promises a headway, so a delay against them means nothing; it raises no
trip-delay alert and gives the run no delay in the route's status. The API says the same:
``GetTripStatus`` gives no current delay and no stop delays (the predicted times stay) and says the
run is headway-based, with its headway; ``ListRouteDelays`` counts such runs apart from the
delays; the trip-updates feed out (protobuf and ``?format=json``) gives their predictions as times
only, so a journey planner never reads a schedule deviation for them: a delay the producer sent
becomes the time it implies.
"""

from __future__ import annotations

from google.transit import gtfs_realtime_pb2

from madina_proto.mobility.v1 import events_pb2
from services.mobility.convert import trip_update_from_wire
from services.mobility.domain.delays import StopStatus, resolve_trip, trip_key_of
from services.mobility.domain.evaluator import headway_based
from services.mobility.domain.gtfs import Schedule, format_gtfs_time
from services.mobility.domain.servicedays import TripKey


def headway_of(schedule: Schedule, trip_id: str) -> int | None:
    """The run's scheduled headway in seconds when it is headway-based, else None."""
    if not headway_based(schedule, TripKey(trip_id, "")):
        return None
    return schedule.trips[trip_id].headway_s


def without_delays(
    entity: gtfs_realtime_pb2.FeedEntity, wire: events_pb2.TripUpdateReceived, schedule: Schedule
) -> gtfs_realtime_pb2.FeedEntity:
    """A headway-based run's outgoing TripUpdate with times only: ``delay`` goes; a StopTimeEvent that
    had only a delay gets the time it implies (or goes, when none can be had); a StopTimeUpdate
    left with no event goes unless it says SKIPPED or NO_DATA."""
    update = entity.trip_update
    update.ClearField("delay")
    stops = _predicted_stops(wire, schedule)
    kept = []
    for stu in update.stop_time_update:
        stop = stops.get(("seq", stu.stop_sequence)) if stu.HasField("stop_sequence") else None
        stop = stop or stops.get(("id", stu.stop_id))
        for name in ("arrival", "departure"):
            if not stu.HasField(name):
                continue
            event = getattr(stu, name)
            prediction = getattr(stop, name) if stop is not None else None
            if event.HasField("delay") and not event.HasField("time") and prediction is not None:
                event.time = int(prediction.time.timestamp())
            event.ClearField("delay")
            if not event.HasField("time"):
                stu.ClearField(name)  # type: ignore[arg-type]
        scheduled = stu.schedule_relationship == gtfs_realtime_pb2.TripUpdate.StopTimeUpdate.SCHEDULED
        if stu.HasField("arrival") or stu.HasField("departure") or not scheduled:
            kept.append(stu)
    del update.stop_time_update[:]
    update.stop_time_update.extend(kept)
    return entity


def _predicted_stops(wire: events_pb2.TripUpdateReceived, schedule: Schedule) -> dict[tuple[str, object], StopStatus]:
    """The run's stops as the update predicts them, by stop sequence and by stop id (judged at the
    update's own time, so an old update still gives the times it gave)."""
    update = trip_update_from_wire(wire)
    key = trip_key_of(update)
    if key is None:
        return {}
    status = resolve_trip(schedule, update, update.timestamp, key=key)
    stops: dict[tuple[str, object], StopStatus] = {}
    for stop in status.stops:
        stops.setdefault(("seq", stop.stop_sequence), stop)
        stops.setdefault(("id", stop.stop_id), stop)
    return stops


def name_as_gtfs_realtime(trip: gtfs_realtime_pb2.TripDescriptor, schedule: Schedule) -> None:
    """A frequency run (exact or not) leaves named as GTFS-Realtime names frequency-based trips: its
    template's ``trip_id`` with the run's ``start_time``. Madina's own run id (``<template>@HH:MM:SS``)
    is in no static feed, so a journey planner could not match it; the ingest maps the GTFS-Realtime
    naming back to the run (``Schedule.run_id``)."""
    run = schedule.trips.get(trip.trip_id)
    if run is None or run.template_trip_id is None:
        return
    trip.trip_id = run.template_trip_id
    trip.start_time = format_gtfs_time(run.start_s)
