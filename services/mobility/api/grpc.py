"""``madina.mobility.v1.MobilityService`` for partner operators and dashboards.

PublishFeed takes the same GTFS-Realtime FeedMessages, AVL fixes, ticket validations and car-park
counts as HTTP ingest (one code path, :mod:`.publisher`; ``is_deleted`` entities are resolved
against what the same authenticated agency published before). Reads come from the compacted
topics the processor publishes (:mod:`.state`): trip status is the GTFS-Realtime delay semantics
(``resolve_trip``) applied to the trip's latest update, without delays for a headway-based run
(:mod:`.headway`); parking availability is each car park's
latest status; ridership sums the hourly totals per route (and stop, when asked).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc

from madina.bus.alert_events import timestamp
from madina.contract import InvalidRecord
from madina.grpc.auth import agency_of_current_call
from madina_proto.mobility.v1 import mobility_service_pb2 as pb
from madina_proto.mobility.v1 import mobility_service_pb2_grpc as pb_grpc
from services.mobility.api.headway import headway_of
from services.mobility.api.publisher import (
    FeedRejected,
    RouteBatches,
    ingest_feed,
    ingest_parking,
    ingest_validations,
    parse_feed,
    publish,
    route_batches,
)
from services.mobility.api.state import MobilityRuntime
from services.mobility.convert import parking_from_wire, position_from_wire, trip_update_from_wire, validation_from_wire
from services.mobility.domain.delays import Prediction, TripStatus, resolve_trip, trip_key_of
from services.mobility.domain.servicedays import runs_active
from services.mobility.plugin import PUBLISH, READ

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MobilityService"].full_name
REQUIRED_SCOPES = {
    f"/{SERVICE_NAME}/PublishFeed": PUBLISH,
    f"/{SERVICE_NAME}/GetTripStatus": READ,
    f"/{SERVICE_NAME}/ListRouteDelays": READ,
    f"/{SERVICE_NAME}/WatchVehicles": READ,
    f"/{SERVICE_NAME}/GetParkingAvailability": READ,
    f"/{SERVICE_NAME}/GetRidership": READ,
}


class MobilityServicer(pb_grpc.MobilityServiceServicer):
    def __init__(self, runtime: MobilityRuntime) -> None:
        self.runtime = runtime

    async def PublishFeed(
        self, request_iterator: AsyncIterator[pb.PublishFeedRequest], context: grpc.aio.ServicerContext
    ) -> pb.PublishFeedResponse:
        response = pb.PublishFeedResponse()
        runtime = self.runtime
        index = 0
        async for request in request_iterator:
            which = request.WhichOneof("item")
            where = f"items[{index}].{which}."
            batches: RouteBatches | None = None
            try:
                if which == "gtfs_realtime_feed_message":
                    feed = parse_feed(request.gtfs_realtime_feed_message, runtime.settings.mobility_max_feed_entities)
                    publisher = agency_of_current_call() or ""
                    pushed = await ingest_feed(runtime.producer, runtime.schedule, feed,
                                               runtime.pushed_feed(publisher), publisher)
                    response.trip_updates_count += pushed.batches.trip_updates_count
                    response.vehicle_positions_count += pushed.batches.positions_count
                    response.withdrawals_count += pushed.withdrawn
                elif which == "vehicle_position":
                    position = position_from_wire(request.vehicle_position, where)
                    batches = route_batches(runtime.schedule, positions=[position])
                elif which == "ticket_validation":
                    validation = validation_from_wire(request.ticket_validation, where)
                    response.ticket_validations_count += await ingest_validations(
                        runtime.producer, runtime.schedule, [validation])
                elif which == "parking_occupancy":
                    observation = parking_from_wire(request.parking_occupancy, where)
                    response.parking_occupancies_count += await ingest_parking(
                        runtime.producer, runtime.car_parks, [observation])
                else:
                    raise FeedRejected("no item")
            except (FeedRejected, InvalidRecord) as error:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"items[{index}]: {error} ({index} accepted before it)")
            if batches is not None:
                await publish(runtime.producer, batches)
                response.trip_updates_count += batches.trip_updates_count
                response.vehicle_positions_count += batches.positions_count
            index += 1
        return response

    async def GetTripStatus(
        self, request: pb.GetTripStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTripStatusResponse:
        trip = self.runtime.schedule.trips.get(request.trip_id)
        if trip is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown trip {request.trip_id[:200]!r}")
            raise AssertionError("abort raises")
        headway_s = headway_of(self.runtime.schedule, trip.trip_id)
        status = self.runtime.latest.get(trip.route_id)
        now = datetime.now(UTC)
        runs = [wire for wire in (status.trip_updates if status is not None else ())
                if wire.trip_id == request.trip_id and request.start_date in ("", wire.start_date)]
        if len(runs) > 1:  # no start date asked, and the status holds several days' runs of the trip
            active = {run.key.start_date for run in runs_active(self.runtime.schedule, now, trip.route_id)
                      if run.trip.trip_id == trip.trip_id}
            runs.sort(key=lambda wire: (wire.start_date in active, wire.start_date))
        if runs:
            update = trip_update_from_wire(runs[-1])
            resolved = resolve_trip(self.runtime.schedule, update, now, key=trip_key_of(update),
                                    stale_after=self.runtime.settings.rules().stale_after)
            return pb.GetTripStatusResponse(status=trip_status_to_pb(resolved, trip.route_id, headway_s))
        return pb.GetTripStatusResponse(status=pb.TripStatus(
            trip_id=request.trip_id, start_date=request.start_date, route_id=trip.route_id,
            state=pb.TRIP_STATE_UNKNOWN, reason="no real-time update for this trip",
            headway_based=headway_s is not None, scheduled_headway_s=headway_s))

    async def ListRouteDelays(
        self, request: pb.ListRouteDelaysRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRouteDelaysResponse:
        wanted = set(request.route_ids)
        raise_delay_s = self.runtime.settings.mobility_raise_delay_s
        schedule = self.runtime.schedule
        response = pb.ListRouteDelaysResponse()
        route_cities = self.runtime.route_cities
        for status in self.runtime.statuses():
            if (wanted and status.route_id not in wanted) or (
                    request.city_id and route_cities.get(status.route_id) != request.city_id):
                continue
            route = schedule.routes[status.route_id]
            runs = {(u.trip_id, u.start_date) for u in status.trip_updates}
            runs |= {(v.trip_id, v.start_date) for v in status.vehicles if v.trip_id}
            headway_runs = {run for run in runs if headway_of(schedule, run[0]) is not None}
            delays = [v for v in status.vehicles if v.HasField("delay_s") and (v.trip_id, v.start_date) not in
                      headway_runs]
            out = response.routes.add(route_id=status.route_id, route_short_name=route.short_name,
                                      headway_based_trips_count=len(headway_runs))
            for vehicle in delays:
                out.trips.add(trip_id=vehicle.trip_id, start_date=vehicle.start_date, vehicle_id=vehicle.vehicle_id,
                              delay_s=vehicle.delay_s, stop_id=vehicle.last_stop_id, measure_time=vehicle.report_time)
            out.late_trips_count = sum(1 for v in delays if v.delay_s >= raise_delay_s)
            out.mean_delay_s = sum(v.delay_s for v in delays) / len(delays) if delays else 0.0
        return response

    async def WatchVehicles(
        self, request: pb.WatchVehiclesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchVehiclesResponse]:
        wanted = set(request.route_ids)
        queue = self.runtime.latest.watch()
        try:
            for status in self.runtime.statuses():
                if not wanted or status.route_id in wanted:
                    for vehicle in status.vehicles:
                        yield pb.WatchVehiclesResponse(vehicle=vehicle)
            while True:
                status = await queue.get()
                if not wanted or status.route_id in wanted:
                    for vehicle in status.vehicles:
                        yield pb.WatchVehiclesResponse(vehicle=vehicle)
        except asyncio.CancelledError:
            raise
        finally:
            self.runtime.latest.unwatch("", queue)

    async def GetParkingAvailability(
        self, request: pb.GetParkingAvailabilityRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetParkingAvailabilityResponse:
        if request.car_park_id and request.car_park_id not in self.runtime.car_parks:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown car park {request.car_park_id[:200]!r}")
        return pb.GetParkingAvailabilityResponse(car_parks=parking_availability(
            self.runtime, request.city_id, request.car_park_id))

    async def GetRidership(
        self, request: pb.GetRidershipRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRidershipResponse:
        if request.route_id and request.route_id not in self.runtime.schedule.routes:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown route {request.route_id[:200]!r}")
        start = request.start_time.seconds if request.HasField("start_time") else None
        end = request.end_time.seconds if request.HasField("end_time") else None
        return ridership_response(self.runtime, request.route_id, request.stop_id, start, end)


def ridership_response(
    runtime: MobilityRuntime, route_id: str = "", stop_id: str = "", start: int | None = None, end: int | None = None
) -> pb.GetRidershipResponse:
    response = pb.GetRidershipResponse()
    for route, stop, hour, count in runtime.ridership_counts(route_id, stop_id, start, end):
        item = response.counts.add(route_id=route, stop_id=stop, validations_count=count)
        item.hour_start_time.seconds = hour
    return response


def parking_availability(runtime: MobilityRuntime, city_id: str = "", car_park_id: str = "") -> list[
        pb.CarParkAvailability]:
    """The registered car parks asked for, in id order; one never counted has no observe_time."""
    out = []
    for park in sorted(runtime.car_parks.values(), key=lambda p: p.car_park_id):
        if (city_id and park.city_id != city_id) or (car_park_id and park.car_park_id != car_park_id):
            continue
        status = runtime.car_park_status.get(park.car_park_id)
        if status is not None:
            out.append(status.car_park)
        else:
            out.append(pb.CarParkAvailability(car_park_id=park.car_park_id, display_name=park.display_name,
                                              capacity_spaces_count=park.capacity))
    return out


def _prediction(prediction: Prediction | None, with_delay: bool = True) -> pb.StopPrediction | None:
    if prediction is None:
        return None
    return pb.StopPrediction(time=timestamp(prediction.time), delay_s=prediction.delay_s if with_delay else None,
                             uncertainty_s=prediction.uncertainty_s)


def trip_status_to_pb(status: TripStatus, route_id: str, headway_s: int | None = None) -> pb.TripStatus:
    """The trip's status; a headway-based run (``headway_s``, :mod:`.headway`) has predicted times, no delays."""
    timed = headway_s is None
    out = pb.TripStatus(
        trip_id=status.key.trip_id, start_date=status.key.start_date, route_id=status.route_id or route_id,
        state=pb.TripState.Value(f"TRIP_STATE_{status.state.value}"), reason=status.reason,
        vehicle_id=status.vehicle_id or "", headway_based=not timed, scheduled_headway_s=headway_s,
    )
    if status.update_time is not None:
        out.update_time.CopyFrom(timestamp(status.update_time))
    found = status.delay_at(datetime.now(UTC)) if timed else None
    if found is not None:
        out.current_delay_s = found[1]
    for stop in status.stops:
        item = out.stops.add(stop_sequence=stop.stop_sequence, stop_id=stop.stop_id,
                             state=pb.StopState.Value(f"STOP_STATE_{stop.state.value}"),
                             arrival=_prediction(stop.arrival, timed), departure=_prediction(stop.departure, timed))
        if stop.scheduled_arrival is not None:
            item.scheduled_arrival_time.CopyFrom(timestamp(stop.scheduled_arrival))
        if stop.scheduled_departure is not None:
            item.scheduled_departure_time.CopyFrom(timestamp(stop.scheduled_departure))
    return out
