"""HTTP for sensors, dashboards and collection operators.

- ``POST /v1/readings``: one reading or ``{"readings": [...]}`` (scope waste:publish). A bad field
  is a 422 naming it, and nothing of a rejected request is published; accepted readings go to
  ``waste.container-levels.v1``, one record per container.
- ``GET /v1/containers``, ``GET /v1/containers/{id}``: status with fill rate and predicted full
  time, from the compacted status topic (scope waste:read).
- ``POST /v1/collection-plans``: plan a round from a depot and publish it (scope waste:plan);
  a load the trucks cannot carry is a 422 with the solver's reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, ConfigDict, Field

from madina.auth import Principal
from madina.http import install_common, openapi_schema, require_scope
from madina.inputs import InvalidInput, echo
from madina_proto.waste.v1 import waste_service_pb2 as pb
from services.waste.api.publisher import ReadingIn, ReadingRejected, parse_readings, publish
from services.waste.api.state import UnknownDepot, WasteRuntime
from services.waste.domain.containers import Stream
from services.waste.domain.planning import CapacityError
from services.waste.plugin import PLAN, PUBLISH, READ


class Accepted(BaseModel):
    accepted: int = Field(description="Readings accepted and published.")


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depot_id: str = Field(min_length=1, max_length=64, description="Depot the round starts from.")
    horizon_h: float = Field(gt=0, le=14 * 24, allow_inf_nan=False, description="Hours to the next round.")
    truck_ids: list[str] = Field(default_factory=list, max_length=100, description="Trucks to use; empty: all.")


def _runtime(request: Request) -> WasteRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


# Module level: FastAPI resolves (string) annotations against module globals.
PUBLISHER = require_scope(PUBLISH)
READER = require_scope(READ)
PLANNER = require_scope(PLAN)
Runtime = Annotated[WasteRuntime, Depends(_runtime)]

BODY_SCHEMA = {
    "oneOf": [
        {"$ref": "#/components/schemas/ContainerReading"},
        {
            "type": "object", "required": ["readings"], "additionalProperties": False,
            "properties": {"readings": {"type": "array", "minItems": 1,
                                        "items": {"$ref": "#/components/schemas/ContainerReading"}}},
        },
    ]
}


def ingest_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["ingest"])

    @router.post(
        "/readings", status_code=status.HTTP_202_ACCEPTED, summary="Publish container readings",
        description='One `ContainerReading` or `{"readings": [...]}`. Needs scope waste:publish.',
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": BODY_SCHEMA}}}},
    )
    async def readings(
        request: Request, runtime: Runtime, _: Annotated[Principal, Depends(PUBLISHER)]
    ) -> Accepted:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not valid JSON") from None
        try:
            parsed = parse_readings(body, runtime.containers, runtime.settings.waste_max_batch_readings,
                                    datetime.now(UTC), runtime.settings.event_time_bounds())
        except (InvalidInput, ReadingRejected) as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid reading: {error}") from None
        return Accepted(accepted=await publish(runtime.producer, parsed))

    return router


def read_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["containers"])

    @router.get("/containers", summary="Containers with fill, fill rate and predicted full time")
    async def containers(
        runtime: Runtime, _: Annotated[Principal, Depends(READER)],
        city: str | None = None, district: str | None = None, stream: Stream | None = None,
    ) -> dict[str, Any]:
        return {"containers": [
            runtime.status_json(c.id) for c in runtime.containers.values()
            if city in (None, c.city) and district in (None, c.district) and stream in (None, c.stream)
        ]}

    @router.get("/containers/{container_id}", summary="One container's latest values, prediction and alerts")
    async def container(
        container_id: str, runtime: Runtime, _: Annotated[Principal, Depends(READER)]
    ) -> dict[str, Any]:
        if container_id not in runtime.containers:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown container {echo(container_id)}")
        return runtime.status_json(container_id)

    @router.get("/districts", summary="Per district: mean fill, containers full, needing collection, at fire risk")
    async def districts(
        runtime: Runtime, _: Annotated[Principal, Depends(READER)], city: str = ""
    ) -> dict[str, Any]:
        return MessageToDict(pb.ListDistrictSummariesResponse(districts=runtime.district_summaries(city)),
                             preserving_proto_field_name=True, always_print_fields_with_no_presence=True)

    return router


def plan_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["collection"])

    @router.post(
        "/collection-plans", summary="Plan a collection round and publish it",
        description="Containers predicted full within the horizon, routed over the depot's trucks; the plan "
                    "goes to waste.collection-plans.v1 (history) and waste.latest-collection-plans.v1 (the "
                    "depot's current round). Needs scope waste:plan.",
    )
    async def plan(request: PlanRequest, runtime: Runtime, _: Annotated[Principal, Depends(PLANNER)]) -> dict[str, Any]:
        try:
            planned = await runtime.plan(request.depot_id, timedelta(hours=request.horizon_h), request.truck_ids)
        except UnknownDepot as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        except (CapacityError, ValueError) as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        return MessageToDict(planned, preserving_proto_field_name=True)

    return router


def create_http_app(runtime: WasteRuntime) -> FastAPI:
    app = FastAPI(
        title="Madina waste service", version="1.0.0",
        description="Container fill readings in; fill rates, predictions and collection plans out.",
    )
    app.state.runtime = runtime
    install_common(app, credentials=runtime.credentials, health_check=runtime.health,
                   max_body_bytes=runtime.settings.max_body_bytes)
    app.include_router(ingest_router())
    app.include_router(read_router())
    app.include_router(plan_router())
    # The ingest route reads its body itself (one reading or a list), so FastAPI does not know the
    # model its documented body refers to; add it.
    app.openapi = lambda: openapi_schema(  # type: ignore[method-assign]
        app, {"ContainerReading": ReadingIn.model_json_schema(ref_template="#/components/schemas/{model}")})
    return app
