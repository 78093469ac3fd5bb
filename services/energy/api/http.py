"""HTTP for street-light gateways, PV meters and operators.

- ``POST /v1/streetlight-telemetry`` and ``POST /v1/generation`` (scope energy:publish): one report
  or ``{"reports": [...]}``; a bad field is a 422 naming it and nothing of the request is
  published; accepted reports become one record per circuit (per site for PV).
- ``POST /v1/dimming-schedules`` (scope energy:control): the schedule's commands for a window go
  out on ``energy.lighting-commands.v1``, issued by the authenticated principal.
- ``GET`` lamp status, faults, consumption and generation (scope energy:read).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from pydantic import BaseModel, ConfigDict, Field

from madina.auth import Principal
from madina.http import install_common, require_scope
from madina.inputs import InvalidInput, UtcTime
from madina_proto.energy.v1 import energy_service_pb2 as pb
from services.energy.api import views
from services.energy.api.publisher import (
    GenerationReport,
    Number,
    Rejected,
    StreetlightReport,
    parse_generation,
    parse_lamp_reports,
    plan_schedule,
    publish_commands,
    publish_generation,
    publish_lamp_reports,
)
from services.energy.api.state import EnergyRuntime
from services.energy.convert import command_to_pb
from services.energy.domain.dimming import DimmingSchedule, ScheduleStep
from services.energy.plugin import CONTROL, PUBLISH, READ

_STRICT = ConfigDict(extra="forbid")


class ScheduleStepBody(BaseModel):
    model_config = _STRICT
    trigger: str = Field(max_length=16, description='"sunset", "sunrise", "dusk", "dawn" or local "HH:MM".')
    dimming_pct: Number = Field(description="Level from the trigger on, percent; 0 switches off.")


class DimmingScheduleBody(BaseModel):
    model_config = _STRICT
    schedule_id: str = Field(min_length=1, max_length=64)
    city_id: str = Field(min_length=1, max_length=64)
    district_id: str = Field(default="", max_length=64)
    circuit_ids: list[str] = Field(default_factory=list, max_length=1000)
    steps: list[ScheduleStepBody] = Field(min_length=1, max_length=24)
    reason: str = Field(min_length=1, max_length=500, description="Why, for the audit trail.")
    start_time: UtcTime
    end_time: UtcTime


class Accepted(BaseModel):
    accepted: int = Field(description="Reports accepted and published.")


def _runtime(request: Request) -> EnergyRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


PUBLISHER = require_scope(PUBLISH)
READER = require_scope(READ)
CONTROLLER = require_scope(CONTROL)
# Module level: FastAPI resolves (string) annotations against module globals.
Reader = Annotated[Principal, Depends(READER)]
Runtime = Annotated[EnergyRuntime, Depends(_runtime)]


def _json(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not valid JSON") from None


def _unprocessable(what: str, error: Exception) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid {what}: {error}")


def ingest_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["ingest"])

    @router.post("/streetlight-telemetry", status_code=status.HTTP_202_ACCEPTED,
                 summary="Publish street-light reports", openapi_extra=_one_or_list(StreetlightReport))
    async def streetlight(
        request: Request,
        runtime: Annotated[EnergyRuntime, Depends(_runtime)],
        _: Annotated[Principal, Depends(PUBLISHER)],
    ) -> Accepted:
        body = await _body(request)
        try:
            reports = parse_lamp_reports(body, runtime.network, runtime.settings.energy_max_batch_reports)
        except (InvalidInput, Rejected) as error:
            raise _unprocessable("report", error) from None
        return Accepted(accepted=await publish_lamp_reports(runtime.producer, runtime.network, reports))

    @router.post("/generation", status_code=status.HTTP_202_ACCEPTED,
                 summary="Publish PV generation reports", openapi_extra=_one_or_list(GenerationReport))
    async def generation(
        request: Request,
        runtime: Annotated[EnergyRuntime, Depends(_runtime)],
        _: Annotated[Principal, Depends(PUBLISHER)],
    ) -> Accepted:
        body = await _body(request)
        try:
            generation_reports = parse_generation(body, runtime.network, runtime.settings.energy_max_batch_reports)
        except (InvalidInput, Rejected) as error:
            raise _unprocessable("report", error) from None
        return Accepted(accepted=await publish_generation(runtime.producer, generation_reports))

    return router


def control_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["control"])

    @router.post("/dimming-schedules", status_code=status.HTTP_202_ACCEPTED,
                 summary="Set a dimming schedule: its commands for the window go out to the circuits")
    async def set_schedule(
        body: DimmingScheduleBody,
        runtime: Annotated[EnergyRuntime, Depends(_runtime)],
        principal: Annotated[Principal, Depends(CONTROLLER)],
    ) -> dict[str, Any]:
        schedule = DimmingSchedule(
            schedule_id=body.schedule_id, city=body.city_id,
            steps=tuple(ScheduleStep(s.trigger, s.dimming_pct) for s in body.steps),
            issuer=principal.principal_id, reason=body.reason, district=body.district_id,
            circuit_ids=tuple(body.circuit_ids),
        )
        try:
            commands = plan_schedule(schedule, runtime.network, body.start_time, body.end_time, runtime.sun,
                                     datetime.now(UTC))
        except Rejected as error:
            raise _unprocessable("schedule", error) from None
        await publish_commands(runtime.producer, commands)
        return _json(pb.SetDimmingScheduleResponse(commands=[command_to_pb(c) for c in commands]))

    return router


def read_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["status"])

    def answer(build: Any) -> dict[str, Any]:
        try:
            return _json(build())
        except views.NotFound as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        except Rejected as error:
            raise _unprocessable("request", error) from None

    @router.get("/lamps/{lamp_id}/status", summary="A lamp's latest report and open alerts")
    async def lamp_status(lamp_id: str, runtime: Runtime, _: Reader) -> dict[str, Any]:
        return answer(lambda: pb.GetLampStatusResponse(status=views.lamp_status(runtime, lamp_id)))

    @router.get("/faults", summary="Open energy alerts (lamps, circuits, PV sites)")
    async def faults(runtime: Runtime, _: Reader, city_id: str = "", district_id: str = "",
                     page_size: Annotated[int, Query(ge=1, le=views.MAX_PAGE)] = 100,
                     page_token: str = "") -> dict[str, Any]:
        request = pb.ListFaultsRequest(city_id=city_id, district_id=district_id, page_size=page_size,
                                       page_token=page_token)
        return answer(lambda: views.faults(runtime, request))

    @router.get("/consumption", summary="Energy, baseline, savings and CO2 avoided per hour or day")
    async def consumption(runtime: Runtime, _: Reader, entity_kind: str, entity_id: str,
                          period: Annotated[str, Query(pattern="^(hour|day)$")] = "hour",
                          start_time: UtcTime | None = None, end_time: UtcTime | None = None) -> dict[str, Any]:
        which = pb.PERIOD_DAY if period == "day" else pb.PERIOD_HOUR
        return answer(lambda: views.consumption(runtime, entity_kind, entity_id, which, start_time, end_time))

    @router.get("/pv-sites/{site_id}/generation", summary="PV energy against clear-sky expectation per hour")
    async def generation(site_id: str, runtime: Runtime, _: Reader,
                         start_time: UtcTime | None = None, end_time: UtcTime | None = None) -> dict[str, Any]:
        return answer(lambda: views.generation(runtime, site_id, pb.PERIOD_HOUR, start_time, end_time))

    return router


def _one_or_list(model: type[BaseModel]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
        ref,
        {"type": "object", "required": ["reports"], "additionalProperties": False,
         "properties": {"reports": {"type": "array", "minItems": 1, "items": ref}}},
    ]}}}}}


def create_http_app(runtime: EnergyRuntime) -> FastAPI:
    from madina.http import openapi_schema

    app = FastAPI(title="Madina energy service", version="1.0.0",
                  description="Street-light and PV telemetry in; dimming commands out; lamp status, faults, "
                              "consumption and generation.")
    app.state.runtime = runtime
    install_common(app, credentials=runtime.credentials, health_check=runtime.health,
                   max_body_bytes=runtime.settings.max_body_bytes)
    app.include_router(ingest_router())
    app.include_router(control_router())
    app.include_router(read_router())
    app.openapi = lambda: openapi_schema(app, {  # type: ignore[method-assign]
        model.__name__: model.model_json_schema(ref_template="#/components/schemas/{model}")
        for model in (StreetlightReport, GenerationReport)
    })
    return app
