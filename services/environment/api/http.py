"""HTTP ingest for devices: POST one observation or ``{"observations": [...]}`` per kind.

Bodies are validated against the measurand catalogue (ranges, units in names, known stations);
a bad field is a 422 naming it, and nothing of a rejected request is published. Accepted
observations are produced to ``environment.*.v1`` keyed by station, one record per station.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from pydantic import BaseModel, Field

from madina.auth import Principal
from madina.http import openapi_schema, require_scope
from madina.inputs import echo
from services.environment.api.publisher import MODELS, PATHS, ObservationRejected, parse_observations, publish
from services.environment.api.state import EnvironmentRuntime
from services.environment.domain.measurands import StationKind
from services.environment.plugin import PUBLISH, READ


class Accepted(BaseModel):
    accepted: int = Field(description="Observations accepted and published.")


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
            observations = parse_observations(kind, body, runtime.settings.environment_max_batch_observations)
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
