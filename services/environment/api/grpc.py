"""``madina.environment.v1.EnvironmentService`` for partner sensor networks and dashboards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc

from madina.bus.alert_events import timestamp
from madina.grpc.errors import check_request
from madina.inputs import InvalidInput, echo, time_from_request
from madina_proto.environment.v1 import environment_service_pb2 as pb
from madina_proto.environment.v1 import environment_service_pb2_grpc as pb_grpc
from madina_proto.environment.v1 import station_pb2
from services.environment.api.publisher import ObservationRejected, publish
from services.environment.api.state import EnvironmentRuntime
from services.environment.convert import PROTO_KIND, observation_from_pb, station_to_pb
from services.environment.domain.measurands import Observation, StationKind
from services.environment.plugin import PUBLISH, READ

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EnvironmentService"].full_name
REQUIRED_SCOPES = {
    f"/{SERVICE_NAME}/PublishObservations": PUBLISH,
    f"/{SERVICE_NAME}/ListStations": READ,
    f"/{SERVICE_NAME}/GetStationStatus": READ,
    f"/{SERVICE_NAME}/WatchStation": READ,
}
_KIND_OF_FIELD = {
    "air_quality": StationKind.AIR,
    "water_quality": StationKind.WATER,
    "noise": StationKind.NOISE,
}
PUBLISH_CHUNK = 500


class EnvironmentServicer(pb_grpc.EnvironmentServiceServicer):
    def __init__(self, runtime: EnvironmentRuntime) -> None:
        self.runtime = runtime

    async def PublishObservations(
        self,
        request_iterator: AsyncIterator[pb.PublishObservationsRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.PublishObservationsResponse:
        pending: list[Observation] = []
        accepted = 0
        index = 0
        try:
            async for request in request_iterator:
                observation = self._observation(request, index)
                pending.append(observation)
                index += 1
                if len(pending) >= PUBLISH_CHUNK:
                    accepted += await publish(self.runtime.producer, pending)
                    pending = []
        except (ObservationRejected, InvalidInput) as error:
            await self._reject(context, pending, accepted, str(error))
        if pending:
            accepted += await publish(self.runtime.producer, pending)
        return pb.PublishObservationsResponse(accepted_count=accepted)

    def _observation(self, request: pb.PublishObservationsRequest, index: int) -> Observation:
        """The request's observation, or ObservationRejected / InvalidInput naming the bad field."""
        where = f"observations[{index}]"
        which = request.WhichOneof("observation")
        if which is None:
            raise ObservationRejected(f"{where}: no observation set")
        message = getattr(request, which)
        if not message.HasField("observe_time"):
            raise ObservationRejected(f"{where}.observe_time: required")
        check_request(message, f"{where}.")
        time_from_request(message.observe_time, f"{where}.observe_time")
        observation = observation_from_pb(message, _KIND_OF_FIELD[which])
        self.runtime.check_observation(observation, where, datetime.now(UTC))
        return observation

    async def _reject(
        self, context: grpc.aio.ServicerContext, pending: list[Observation], accepted: int, reason: str
    ) -> None:
        # What came before the bad observation was valid: publish it rather than lose it.
        if pending:
            accepted += await publish(self.runtime.producer, pending)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{reason} ({accepted} accepted before it)")

    async def ListStations(
        self, request: pb.ListStationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListStationsResponse:
        stations = [
            station_to_pb(station)
            for station in self.runtime.stations.values()
            if request.city_id in ("", station.city)
            and request.kind
            in (station_pb2.STATION_KIND_UNSPECIFIED, *(PROTO_KIND[k] for k in station.kinds))
        ]
        return pb.ListStationsResponse(stations=stations)

    async def GetStationStatus(
        self, request: pb.GetStationStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStationStatusResponse:
        await self._require_station(request.station_id, context)
        return pb.GetStationStatusResponse(status=self.runtime.status_of(request.station_id))

    async def WatchStation(
        self, request: pb.WatchStationRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchStationResponse]:
        await self._require_station(request.station_id, context)
        queue = self.runtime.watch(request.station_id)
        try:
            yield pb.WatchStationResponse(
                status=self.runtime.status_of(request.station_id), update_time=timestamp(datetime.now(UTC))
            )
            while True:
                status = await queue.get()
                yield pb.WatchStationResponse(status=status, update_time=timestamp(datetime.now(UTC)))
        except asyncio.CancelledError:
            raise
        finally:
            self.runtime.unwatch(request.station_id, queue)

    async def _require_station(self, station_id: str, context: grpc.aio.ServicerContext) -> None:
        if not station_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "station_id: required")
        if station_id not in self.runtime.stations:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"station_id: unknown station {echo(station_id)}")
