"""``madina.energy.v1.EnergyService`` for partner gateways, control rooms and dashboards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc

from madina.grpc.auth import agency_of_current_call
from madina.grpc.errors import check_request
from madina.inputs import InvalidInput, time_from_request
from madina_proto.energy.v1 import energy_service_pb2 as pb
from madina_proto.energy.v1 import energy_service_pb2_grpc as pb_grpc
from services.energy.api import views
from services.energy.api.publisher import (
    Rejected,
    check_generation,
    check_lamp_report,
    plan_schedule,
    publish_commands,
    publish_generation,
    publish_lamp_reports,
)
from services.energy.api.state import EnergyRuntime
from services.energy.convert import command_to_pb, generation_from_pb, lamp_telemetry_from_pb, schedule_from_pb
from services.energy.domain.telemetry import GenerationReading, LampTelemetry
from services.energy.plugin import CONTROL, PUBLISH, READ

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EnergyService"].full_name
REQUIRED_SCOPES = {
    f"/{SERVICE_NAME}/SetDimmingSchedule": CONTROL,
    f"/{SERVICE_NAME}/PublishTelemetry": PUBLISH,
    f"/{SERVICE_NAME}/GetLampStatus": READ,
    f"/{SERVICE_NAME}/ListFaults": READ,
    f"/{SERVICE_NAME}/GetConsumption": READ,
    f"/{SERVICE_NAME}/GetGeneration": READ,
}
PUBLISH_CHUNK = 500


def _window(request: pb.GetConsumptionRequest | pb.GetGenerationRequest) -> tuple[datetime | None, datetime | None]:
    start = time_from_request(request.start_time, "start_time") if request.HasField("start_time") else None
    end = time_from_request(request.end_time, "end_time") if request.HasField("end_time") else None
    return start, end


class EnergyServicer(pb_grpc.EnergyServiceServicer):
    def __init__(self, runtime: EnergyRuntime) -> None:
        self.runtime = runtime

    async def PublishTelemetry(
        self, request_iterator: AsyncIterator[pb.PublishTelemetryRequest], context: grpc.aio.ServicerContext
    ) -> pb.PublishTelemetryResponse:
        lamps: list[LampTelemetry] = []
        sites: list[GenerationReading] = []
        index = 0
        try:
            async for request in request_iterator:
                where = f"reports[{index}]"
                which = request.WhichOneof("report")
                if which is None:
                    raise Rejected(f"{where}: no report set")
                message = getattr(request, which)
                check_request(message, f"{where}.")
                if message.HasField("observe_time"):
                    time_from_request(message.observe_time, f"{where}.observe_time")
                if which == "streetlight":
                    lamp = lamp_telemetry_from_pb(message, f"{where}.")
                    check_lamp_report(lamp, self.runtime.network, where)
                    lamps.append(lamp)
                else:
                    site = generation_from_pb(message, f"{where}.")
                    check_generation(site, self.runtime.network, where)
                    sites.append(site)
                index += 1
                if index > self.runtime.settings.energy_max_batch_reports:
                    raise Rejected(f"reports: at most {self.runtime.settings.energy_max_batch_reports} per call")
        except (Rejected, InvalidInput, ValueError) as error:
            # Nothing of a bad stream is published: the client resends it whole once fixed.
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        accepted = 0
        if lamps:
            accepted += await publish_lamp_reports(self.runtime.producer, self.runtime.network, lamps)
        if sites:
            accepted += await publish_generation(self.runtime.producer, sites)
        return pb.PublishTelemetryResponse(accepted_count=accepted)

    async def SetDimmingSchedule(
        self, request: pb.SetDimmingScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetDimmingScheduleResponse:
        issuer = agency_of_current_call() or ""
        try:
            check_request(request)
            if not request.HasField("start_time") or not request.HasField("end_time"):
                raise Rejected("start_time, end_time: required")
            if not request.schedule.reason:
                raise Rejected("schedule.reason: required, for the audit trail")
            start = time_from_request(request.start_time, "start_time")
            end = time_from_request(request.end_time, "end_time")
            schedule = schedule_from_pb(request.schedule, issuer)
            commands = plan_schedule(schedule, self.runtime.network, start, end, self.runtime.sun, datetime.now(UTC))
        except (Rejected, InvalidInput) as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        await publish_commands(self.runtime.producer, commands)
        return pb.SetDimmingScheduleResponse(commands=[command_to_pb(c) for c in commands])

    async def GetLampStatus(
        self, request: pb.GetLampStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetLampStatusResponse:
        return pb.GetLampStatusResponse(status=await self._answer(
            context, lambda: views.lamp_status(self.runtime, request.lamp_id)))

    async def ListFaults(
        self, request: pb.ListFaultsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFaultsResponse:
        return await self._answer(context, lambda: views.faults(self.runtime, request))  # type: ignore[no-any-return]

    async def GetConsumption(
        self, request: pb.GetConsumptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetConsumptionResponse:
        def build() -> pb.GetConsumptionResponse:
            start, end = _window(request)
            return views.consumption(self.runtime, request.entity_kind, request.entity_id, request.period, start, end)

        return await self._answer(context, build)  # type: ignore[no-any-return]

    async def GetGeneration(
        self, request: pb.GetGenerationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetGenerationResponse:
        def build() -> pb.GetGenerationResponse:
            start, end = _window(request)
            return views.generation(self.runtime, request.site_id, request.period, start, end)

        return await self._answer(context, build)  # type: ignore[no-any-return]

    async def _answer(self, context: grpc.aio.ServicerContext, build):  # type: ignore[no-untyped-def]
        try:
            return build()
        except views.NotFound as error:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        except (Rejected, InvalidInput) as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
