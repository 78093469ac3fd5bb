"""HTTP ingest for devices: POST one observation or ``{"observations": [...]}`` per kind.

Bodies are validated against the measurand catalogue (ranges, units in names, known stations);
a bad field is a 422 naming it, and nothing of a rejected request is published. Accepted
observations are produced to ``environment.*.v1`` keyed by station, one record per station.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, create_model

from madina.auth import Principal
from madina.http import openapi_schema, parse_items, require_scope
from madina.inputs import InvalidInput, UtcTime, echo
from services.environment.api.publisher import ObservationRejected, publish
from services.environment.api.state import EnvironmentRuntime
from services.environment.convert import MEASURANDS_OF
from services.environment.domain.measurands import MEASURANDS, Observation, StationKind
from services.environment.plugin import PUBLISH, READ

PATHS = {StationKind.AIR: "air-quality", StationKind.WATER: "water-quality", StationKind.NOISE: "noise"}


def _observation_model(kind: StationKind) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "station_id": (str, Field(min_length=1, max_length=64, description="Station identifier.")),
        "observe_time": (UtcTime, Field(description="When it was measured, RFC 3339 with offset.")),
    }
    for name in MEASURANDS_OF[kind]:
        measurand = MEASURANDS[name]
        fields[name] = (
            float | None,
            Field(
                default=None,
                ge=measurand.minimum,
                le=measurand.maximum,
                allow_inf_nan=False,
                strict=True,
                description=f"{measurand.label}, {measurand.unit or 'unitless'}",
            ),
        )
    title = "".join(part.title() for part in PATHS[kind].split("-")) + "Observation"
    return create_model(title, __config__=ConfigDict(extra="forbid", title=title), **fields)


MODELS = {kind: _observation_model(kind) for kind in StationKind}


class Accepted(BaseModel):
    accepted: int = Field(description="Observations accepted and published.")


def _parse(kind: StationKind, body: Any, max_batch: int) -> list[Observation]:
    try:
        items = parse_items(body, MODELS[kind], "observations", max_batch)
    except InvalidInput as error:
        raise ObservationRejected(str(error)) from None
    observations = []
    for where, parsed in items:
        values = {
            name: value
            for name, value in parsed.model_dump(exclude={"station_id", "observe_time"}).items()
            if value is not None
        }
        if not values:
            raise ObservationRejected(
                f"{where + '.' if where else ''}values: at least one measurand is required"
            )
        observations.append(
            Observation(
                station_id=parsed.station_id,  # type: ignore[attr-defined]
                observe_time=parsed.observe_time.astimezone(UTC),  # type: ignore[attr-defined]
                kind=kind,
                values=values,
            )
        )
    return observations


def _runtime(request: Request) -> EnvironmentRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


# Module level: FastAPI resolves (string) annotations against module globals.
PUBLISHER = require_scope(PUBLISH)
READER = require_scope(READ)


def _ingest_endpoint(kind: StationKind):  # type: ignore[no-untyped-def]
    async def ingest(
        request: Request,
        runtime: Annotated[EnvironmentRuntime, Depends(_runtime)],
        principal: Annotated[Principal, Depends(PUBLISHER)],
    ) -> Accepted:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not valid JSON") from None
        try:
            observations = _parse(kind, body, runtime.settings.environment_max_batch_observations)
            now = datetime.now(UTC)
            batched = isinstance(body, dict) and "observations" in body
            for index, observation in enumerate(observations):
                runtime.check_observation(observation, f"observations[{index}]" if batched else "", now)
        except ObservationRejected as error:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid observation: {error}"
            ) from None
        return Accepted(accepted=await publish(runtime.producer, observations))

    return ingest


def ingest_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["ingest"])
    for kind in StationKind:
        model = MODELS[kind]
        ingest = _ingest_endpoint(kind)
        router.add_api_route(
            f"/{PATHS[kind]}",
            ingest,
            methods=["POST"],
            status_code=status.HTTP_202_ACCEPTED,
            response_model=Accepted,
            summary=f"Publish {kind.value} observations",
            description=f'One `{model.__name__}` or `{{"observations": [...]}}`. Needs scope environment:publish.',
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": f"#/components/schemas/{model.__name__}"},
                                    {
                                        "type": "object",
                                        "required": ["observations"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "observations": {
                                                "type": "array",
                                                "minItems": 1,
                                                "items": {"$ref": f"#/components/schemas/{model.__name__}"},
                                            }
                                        },
                                    },
                                ]
                            }
                        }
                    },
                }
            },
        )
    return router


def read_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["stations"])

    @router.get("/stations", summary="Stations and their metadata")
    async def stations(
        runtime: Annotated[EnvironmentRuntime, Depends(_runtime)],
        _: Annotated[Principal, Depends(READER)],
        city: str | None = None,
    ) -> dict[str, Any]:
        return {
            "stations": [runtime.station_json(s) for s in runtime.stations.values() if city in (None, s.city)]
        }

    @router.get(
        "/stations/{station_id}/status", summary="Latest values, rolling means, AQI and active alerts"
    )
    async def station_status(
        station_id: str,
        runtime: Annotated[EnvironmentRuntime, Depends(_runtime)],
        _: Annotated[Principal, Depends(READER)],
    ) -> dict[str, Any]:
        if station_id not in runtime.stations:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown station {echo(station_id)}")
        return runtime.status_json(station_id)

    return router


def create_http_app(runtime: EnvironmentRuntime) -> FastAPI:
    from madina.http import install_common

    app = FastAPI(
        title="Madina environment service",
        version="1.0.0",
        description="Air, water and noise observations in; station status out.",
    )
    app.state.runtime = runtime
    install_common(
        app,
        credentials=runtime.credentials,
        health_check=runtime.health,
        max_body_bytes=runtime.settings.max_body_bytes,
    )
    app.include_router(ingest_router())
    app.include_router(read_router())
    app.openapi = lambda: _openapi_with_observation_schemas(app)  # type: ignore[method-assign]
    return app


def _openapi_with_observation_schemas(app: FastAPI) -> dict[str, Any]:
    # Ingest routes read their body themselves (to tell one observation from a batch), so FastAPI
    # does not know the models their documented request bodies refer to; add them.
    return openapi_schema(app, {
        model.__name__: model.model_json_schema(ref_template="#/components/schemas/{model}")
        for model in MODELS.values()
    })
