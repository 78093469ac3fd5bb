"""Mobility HTTP: GTFS-Realtime and AVL in (scope mobility:publish), GTFS-Realtime feeds out (mobility:read).

- ``POST /v1/gtfs-rt``: a GTFS-Realtime FeedMessage, ``application/x-protobuf`` (or the same
  message as JSON, ``application/json``, in the field names of the bindings' ``MessageToDict``).
  A body that does not parse is a 400 naming the problem; entities that cannot be keyed by route
  are dead-lettered with the reason (see :mod:`.publisher`) and counted in the answer. Withdrawals
  are its ``is_deleted`` entities, per publishing principal (:mod:`.incrementality`).
- ``POST /v1/vehicle-positions``: one raw AVL fix as JSON; a bad field is a 422 naming it.
- ``POST /v1/ticket-validations`` and ``POST /v1/parking-occupancy``: lists as JSON, taken whole
  or refused with a 422 naming the first bad item and field.
- ``GET /gtfs-rt/{trip-updates,vehicle-positions,alerts}.pb``: FULL_DATASET FeedMessages from the
  routes' latest status; ``?format=json`` gives the same feed as JSON for people. A headway-based
  run's trip update has times, no delays (:mod:`.headway`).
- ``GET /v1/car-parks`` and ``GET /v1/ridership``: GetParkingAvailability and GetRidership as JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.transit import gtfs_realtime_pb2
from pydantic import BaseModel, ConfigDict, Field

from madina.auth import Principal
from madina.contract import InvalidRecord
from madina.http import require_scope
from madina_proto.mobility.v1 import mobility_service_pb2 as pb
from services.mobility.api.grpc import parking_availability, ridership_response
from services.mobility.api.headway import headway_of, name_as_gtfs_realtime, without_delays
from services.mobility.api.publisher import (
    FeedRejected,
    ParkingOccupancyIn,
    RouteBatches,
    ingest_feed,
    ingest_parking,
    ingest_validations,
    parking_observation,
    parse_feed,
    publish,
    route_batches,
)
from services.mobility.api.state import MobilityRuntime
from services.mobility.convert import alert_entity, feed_message, trip_update_entity, vehicle_entity
from services.mobility.domain.realtime import VehiclePosition
from services.mobility.domain.tickets import Validation
from services.mobility.plugin import PUBLISH, READ

PROTOBUF = "application/x-protobuf"


class Accepted(BaseModel):
    trip_updates: int = Field(description="Trip updates published.")
    vehicle_positions: int = Field(description="Vehicle positions published.")
    withdrawn: int = Field(default=0, description=(
        "Trip updates and vehicle positions withdrawn: the feed's is_deleted entities, as this publisher last "
        "sent them (never another publisher's). A pushed FULL_DATASET withdraws nothing by absence."))
    dead_lettered: list[str] = Field(description="Entities that could not be keyed by route, with the reason.")


class VehiclePositionIn(BaseModel):
    """One raw AVL fix."""

    model_config = ConfigDict(extra="forbid")
    vehicle_id: str = Field(min_length=1, max_length=200)
    trip_id: str | None = Field(default=None, min_length=1, max_length=200, description="Trip being served.")
    route_id: str | None = Field(default=None, min_length=1, max_length=200, description="When trip_id is absent.")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    timestamp: datetime = Field(description="When the fix was taken, RFC 3339 with offset.")
    bearing: float | None = Field(default=None, ge=0, lt=360)
    speed: float | None = Field(default=None, ge=0, le=100, description="m/s")


class TicketValidationIn(BaseModel):
    """One validation on board; the card arrives hashed (salted by the operator), never as its number."""

    model_config = ConfigDict(extra="forbid")
    validation_id: str = Field(min_length=1, max_length=200, description="Unique id, for deduplication.")
    card_hash: str = Field(min_length=16, max_length=128)
    vehicle_id: str = Field(min_length=1, max_length=200)
    route_id: str = Field(min_length=1, max_length=200)
    stop_id: str = Field(default="", max_length=200, description="Stop at or after which it happened.")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    timestamp: datetime = Field(description="When the card was validated, RFC 3339 with offset.")


class TicketValidationsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_validations: list[TicketValidationIn] = Field(min_length=1, max_length=10_000)


class ParkingOccupanciesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parking_occupancies: list[ParkingOccupancyIn] = Field(min_length=1, max_length=10_000)


class Counted(BaseModel):
    published: int = Field(description="Items published.")


def _utc(moment: datetime, where: str) -> datetime:
    if moment.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{where}timestamp: needs a UTC offset")
    return moment.astimezone(UTC)


def _runtime(request: Request) -> MobilityRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


# Module level: FastAPI resolves (string) annotations against module globals.
PUBLISHER = require_scope(PUBLISH)
READER = require_scope(READ)


def _accepted(batches: RouteBatches, withdrawn: int = 0) -> Accepted:
    return Accepted(
        trip_updates=batches.trip_updates_count,
        vehicle_positions=batches.positions_count,
        withdrawn=withdrawn,
        dead_lettered=[reason for _, _, _, reason in batches.dead],
    )


def ingest_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["ingest"])

    @router.post(
        "/gtfs-rt", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
        summary="Publish a GTFS-Realtime FeedMessage (TripUpdates, VehiclePositions)",
        openapi_extra={"requestBody": {"required": True, "content": {PROTOBUF: {"schema": {"type": "string",
                                                                                          "format": "binary"}}}}},
    )
    async def gtfs_rt(
        request: Request,
        runtime: Annotated[MobilityRuntime, Depends(_runtime)],
        principal: Annotated[Principal, Depends(PUBLISHER)],
    ) -> Accepted:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in (PROTOBUF, "application/octet-stream", "application/json"):
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                                f"content-type must be {PROTOBUF} (or application/json)")
        body = await request.body()
        try:
            if content_type == "application/json":
                body = _feed_from_json(body)
            feed = parse_feed(body, runtime.settings.mobility_max_feed_entities)
        except FeedRejected as error:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
        pushed = await ingest_feed(runtime.producer, runtime.schedule, feed,
                                   runtime.pushed_feed(principal.principal_id), principal.principal_id)
        return _accepted(pushed.batches, pushed.withdrawn)

    @router.post("/vehicle-positions", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
                 summary="Publish one raw AVL position")
    async def vehicle_position(
        body: VehiclePositionIn,
        runtime: Annotated[MobilityRuntime, Depends(_runtime)],
        _: Annotated[Principal, Depends(PUBLISHER)],
    ) -> Accepted:
        if body.timestamp.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "timestamp: needs a UTC offset")
        if not body.trip_id and not body.route_id:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "trip_id or route_id: required")
        position = VehiclePosition(
            vehicle_id=body.vehicle_id, lat=body.lat, lon=body.lon, timestamp=body.timestamp.astimezone(UTC),
            trip_id=body.trip_id, route_id=body.route_id, bearing_deg=body.bearing, speed_mps=body.speed,
        )
        batches = route_batches(runtime.schedule, positions=[position])
        if batches.dead:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, batches.dead[0][3])
        await publish(runtime.producer, batches)
        return _accepted(batches)

    @router.post("/ticket-validations", status_code=status.HTTP_202_ACCEPTED, response_model=Counted,
                 summary="Publish ticket validations (hashed cards)")
    async def ticket_validations(
        body: TicketValidationsIn,
        runtime: Annotated[MobilityRuntime, Depends(_runtime)],
        _: Annotated[Principal, Depends(PUBLISHER)],
    ) -> Counted:
        validations = [
            Validation(validation_id=v.validation_id, card_hash=v.card_hash, vehicle_id=v.vehicle_id,
                       route_id=v.route_id, lat=v.lat, lon=v.lon, stop_id=v.stop_id,
                       time=_utc(v.timestamp, f"ticket_validations[{index}]."))
            for index, v in enumerate(body.ticket_validations)
        ]
        try:
            return Counted(published=await ingest_validations(runtime.producer, runtime.schedule, validations))
        except InvalidRecord as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None

    @router.post("/parking-occupancy", status_code=status.HTTP_202_ACCEPTED, response_model=Counted,
                 summary="Publish car-park counts")
    async def parking_occupancy(
        body: ParkingOccupanciesIn,
        runtime: Annotated[MobilityRuntime, Depends(_runtime)],
        _: Annotated[Principal, Depends(PUBLISHER)],
    ) -> Counted:
        try:
            observations = [parking_observation(o, f"parking_occupancies[{index}].")
                            for index, o in enumerate(body.parking_occupancies)]
            return Counted(published=await ingest_parking(runtime.producer, runtime.car_parks, observations))
        except InvalidRecord as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None

    return router


def _feed_from_json(body: bytes) -> bytes:
    import json

    try:
        feed = ParseDict(json.loads(body), gtfs_realtime_pb2.FeedMessage())
    except (ValueError, ParseError) as error:
        raise FeedRejected(f"body is not a GTFS-Realtime FeedMessage as JSON: {error}") from None
    return feed.SerializeToString()


def reads_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["reads"])

    @router.get("/car-parks", summary="Free spaces per car park (GetParkingAvailability)")
    async def car_parks(
        runtime: Annotated[MobilityRuntime, Depends(_runtime)],
        _: Annotated[Principal, Depends(READER)],
        city_id: str = "",
    ) -> Response:
        return Response(content=_json(pb.GetParkingAvailabilityResponse(
            car_parks=parking_availability(runtime, city_id))), media_type="application/json")

    @router.get("/ridership", summary="Validations per route (and stop) and hour (GetRidership)")
    async def ridership(
        runtime: Annotated[MobilityRuntime, Depends(_runtime)],
        _: Annotated[Principal, Depends(READER)],
        route_id: str = "",
        stop_id: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Response:
        response = ridership_response(
            runtime, route_id, stop_id, None if start is None else int(_utc(start, "start.").timestamp()),
            None if end is None else int(_utc(end, "end.").timestamp()))
        return Response(content=_json(response), media_type="application/json")

    return router


def feed_of(runtime: MobilityRuntime, which: str) -> gtfs_realtime_pb2.FeedMessage:
    statuses = runtime.statuses()
    now = datetime.now(UTC)
    schedule = runtime.schedule

    def named(entity: gtfs_realtime_pb2.FeedEntity) -> gtfs_realtime_pb2.FeedEntity:
        if entity.HasField("trip_update"):
            name_as_gtfs_realtime(entity.trip_update.trip, schedule)
        elif entity.HasField("vehicle"):
            name_as_gtfs_realtime(entity.vehicle.trip, schedule)
        else:
            for informed in entity.alert.informed_entity:
                if informed.HasField("trip"):
                    name_as_gtfs_realtime(informed.trip, schedule)
        return entity

    if which == "trip-updates":
        return feed_message((named(without_delays(trip_update_entity(u), u, schedule)
                                   if headway_of(schedule, u.trip_id) is not None else trip_update_entity(u))
                             for s in statuses for u in s.trip_updates), now)
    if which == "vehicle-positions":
        return feed_message((named(vehicle_entity(v)) for s in statuses for v in s.vehicles), now)
    return feed_message((named(alert_entity(a)) for s in statuses for a in s.active_alerts), now)


def feeds_router() -> APIRouter:
    router = APIRouter(prefix="/gtfs-rt", tags=["feeds"])

    @router.get("/{which}.pb", summary="GTFS-Realtime feed (FULL_DATASET); ?format=json for people",
                responses={200: {"content": {PROTOBUF: {}}}})
    async def feed(
        which: Literal["trip-updates", "vehicle-positions", "alerts"],
        runtime: Annotated[MobilityRuntime, Depends(_runtime)],
        _: Annotated[Principal, Depends(READER)],
        format: Literal["pb", "json"] = "pb",
    ) -> Response:
        message = feed_of(runtime, which)
        if format == "json":
            return Response(content=_json(message), media_type="application/json")
        return Response(content=message.SerializeToString(), media_type=PROTOBUF)

    return router


def _json(message: Any) -> str:
    import json

    return json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=1)


def create_http_app(runtime: MobilityRuntime) -> FastAPI:
    from madina.http import install_common

    app = FastAPI(
        title="Madina mobility service",
        version="1.0.0",
        description="GTFS-Realtime and AVL in; GTFS-Realtime feeds, trip status and route delays out.",
    )
    app.state.runtime = runtime
    install_common(app, credentials=runtime.credentials, health_check=runtime.health,
                   max_body_bytes=runtime.settings.max_body_bytes)
    app.include_router(ingest_router())
    app.include_router(feeds_router())
    app.include_router(reads_router())
    return app
