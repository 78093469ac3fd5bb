"""``madina.waste.v1.WasteService`` for sensor networks, dashboards and collection operators."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from madina.contract import InvalidRecord
from madina.grpc.errors import check_request
from madina.inputs import InvalidInput, echo
from madina_proto.waste.v1 import container_pb2
from madina_proto.waste.v1 import waste_service_pb2 as pb
from madina_proto.waste.v1 import waste_service_pb2_grpc as pb_grpc
from services.waste.api.publisher import ReadingRejected, check_reading, publish
from services.waste.api.state import UnknownDepot, WasteRuntime
from services.waste.convert import container_to_pb, reading_from_pb
from services.waste.domain.planning import CapacityError
from services.waste.domain.readings import Reading
from services.waste.plugin import PLAN, PUBLISH, READ

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["WasteService"].full_name
REQUIRED_SCOPES = {
    f"/{SERVICE_NAME}/PublishReadings": PUBLISH,
    f"/{SERVICE_NAME}/ListContainers": READ,
    f"/{SERVICE_NAME}/GetContainer": READ,
    f"/{SERVICE_NAME}/ListDistrictSummaries": READ,
    f"/{SERVICE_NAME}/PlanCollection": PLAN,
}


class WasteServicer(pb_grpc.WasteServiceServicer):
    def __init__(self, runtime: WasteRuntime) -> None:
        self.runtime = runtime

    async def PublishReadings(
        self, request: pb.PublishReadingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PublishReadingsResponse:
        settings = self.runtime.settings
        if len(request.readings) > settings.waste_max_batch_readings:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"readings: at most {settings.waste_max_batch_readings} per request")
        readings: list[Reading] = []
        now = datetime.now(UTC)
        try:
            check_request(request)
            for index, message in enumerate(request.readings):
                where = f"readings[{index}]"
                if not message.HasField("observe_time"):
                    raise ReadingRejected(f"{where}.observe_time: required")
                reading = reading_from_pb(message, f"{where}.")
                check_reading(reading, self.runtime.containers, where, now, settings.event_time_bounds())
                readings.append(reading)
        except (ReadingRejected, InvalidInput, InvalidRecord) as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{error} (nothing published)")
        return pb.PublishReadingsResponse(accepted_count=await publish(self.runtime.producer, readings))

    async def ListContainers(
        self, request: pb.ListContainersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListContainersResponse:
        wanted_stream = request.stream
        containers = [
            container_to_pb(c) for c in self.runtime.containers.values()
            if request.city_id in ("", c.city) and request.district_id in ("", c.district)
        ]
        if wanted_stream != container_pb2.WASTE_STREAM_UNSPECIFIED:
            containers = [c for c in containers if c.stream == wanted_stream]
        return pb.ListContainersResponse(containers=containers)

    async def GetContainer(
        self, request: pb.GetContainerRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetContainerResponse:
        if not request.container_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "container_id: required")
        if request.container_id not in self.runtime.containers:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"container_id: unknown container {echo(request.container_id)}")
        return pb.GetContainerResponse(status=self.runtime.status_of(request.container_id))

    async def ListDistrictSummaries(
        self, request: pb.ListDistrictSummariesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDistrictSummariesResponse:
        return pb.ListDistrictSummariesResponse(districts=self.runtime.district_summaries(request.city_id))

    async def PlanCollection(
        self, request: pb.PlanCollectionRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlanCollectionResponse:
        try:
            check_request(request)
            plan = await self.runtime.plan(request.depot_id, request.horizon.ToTimedelta(), list(request.truck_ids))
        except UnknownDepot as error:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        except CapacityError as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        except (ValueError, InvalidInput) as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return pb.PlanCollectionResponse(plan=plan)
