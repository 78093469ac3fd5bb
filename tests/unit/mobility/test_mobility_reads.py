"""The API's read RPCs honour their filters (city, route), served from a runtime filled by hand (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from madina.auth import write_credentials
from madina.geo import load_cities
from madina_proto.mobility.v1 import mobility_service_pb2 as pb
from madina_proto.mobility.v1 import status_pb2
from services.mobility.api.grpc import MobilityServicer
from services.mobility.api.main import build_runtime
from services.mobility.api.state import MobilityRuntime
from services.mobility.domain.cities import route_cities
from services.mobility.domain.gtfs import Schedule, load_feed
from services.mobility.settings import MobilitySettings
from tests.unit.mobility.conftest import GTFS_DIR


@pytest.fixture
async def runtime(tmp_path: Path) -> MobilityRuntime:
    write_credentials(tmp_path / "credentials.yaml", {"dashboard": ["mobility:read"]})
    return build_runtime(MobilitySettings(kafka_bootstrap="127.0.0.1:1", credentials_file=tmp_path / "credentials.yaml",
                                           grpc_insecure=True))


def _late_bus(runtime: MobilityRuntime, route_id: str, vehicle_id: str, delay_s: int) -> None:
    trip = runtime.schedule.trips_by_route[route_id][0]
    status = status_pb2.RouteStatusChanged(route_id=route_id)
    status.vehicles.add(vehicle_id=vehicle_id, route_id=route_id, trip_id=trip.trip_id, start_date="20261130",
                        delay_s=delay_s)
    runtime.latest.put(route_id, status)


def test_every_sample_route_belongs_to_its_feeds_city(schedule: Schedule) -> None:
    assert route_cities(load_cities(), schedule) == {
        "BK-1": "berkane", "BK-2": "berkane", "BK-3": "berkane", "CA-T1": "casablanca"}


def test_a_feed_not_named_after_a_city_belongs_to_the_city_of_its_stops() -> None:
    feed = load_feed(GTFS_DIR / "berkane", feed_id="oriental-electric-2026")
    assert set(route_cities(load_cities(), Schedule.of([feed])).values()) == {"berkane"}


async def test_list_route_delays_keeps_only_the_routes_of_the_city_asked(runtime: MobilityRuntime) -> None:
    _late_bus(runtime, "BK-1", "BK-E1", 420)
    _late_bus(runtime, "CA-T1", "CA-R1", 600)
    servicer = MobilityServicer(runtime)

    async def routes(request: pb.ListRouteDelaysRequest) -> list[tuple[str, list[str]]]:
        response = await servicer.ListRouteDelays(request, None)  # type: ignore[arg-type]
        return [(r.route_id, [t.vehicle_id for t in r.trips]) for r in response.routes]

    assert await routes(pb.ListRouteDelaysRequest(city_id="berkane")) == [("BK-1", ["BK-E1"])]
    assert await routes(pb.ListRouteDelaysRequest(city_id="casablanca")) == [("CA-T1", ["CA-R1"])]
    assert await routes(pb.ListRouteDelaysRequest()) == [("BK-1", ["BK-E1"]), ("CA-T1", ["CA-R1"])]
    assert await routes(pb.ListRouteDelaysRequest(city_id="berkane", route_ids=["CA-T1"])) == []
    assert await routes(pb.ListRouteDelaysRequest(city_id="rabat")) == []
