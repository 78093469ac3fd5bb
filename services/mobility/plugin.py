"""How the mobility domain plugs into Madina (entry point ``madina.domains: mobility``)."""

from __future__ import annotations

from madina.domains import PUBLISHERS, READERS, Component, Domain, Scope
from madina.maplayers import MapLayer
from services.mobility.topics import ALL, ROUTE_STATUS


def _settings():  # type: ignore[no-untyped-def]
    from madina.settings import load_settings
    from services.mobility.settings import MobilityPorts

    return load_settings(MobilityPorts)


def _api_health() -> str:
    return f"http://127.0.0.1:{_settings().mobility_http_port}/healthz"


def _api_urls() -> dict[str, str]:
    settings = _settings()
    return {
        "mobility GTFS-Realtime in/out": f"http://127.0.0.1:{settings.mobility_http_port}/docs",
        "mobility gRPC (TLS)": f"127.0.0.1:{settings.mobility_grpc_port}",
    }


def _processor_health() -> str:
    return f"http://127.0.0.1:{_settings().mobility_processor_port}/healthz"


DOMAIN = Domain(
    name="mobility",
    topics=ALL,
    components=[
        Component(
            name="mobility-api",
            entry_point="services.mobility.api.main:main",
            description="GTFS-Realtime ingest and feeds out (8082), MobilityService gRPC (50052)",
            health_url=_api_health,
            urls=_api_urls,
        ),
        Component(
            name="mobility-processor",
            entry_point="services.mobility.processor.app:main",
            description="faust worker: trip delays, cancellations, route delays, bunching, silent buses; "
                        "ticket fraud and ridership; car-park availability and full car parks",
            health_url=_processor_health,
        ),
    ],
    simulator="services.mobility.simulator:create",
    start_order=20,
    scopes=[
        Scope("mobility:publish", "Publish GTFS-Realtime feeds, vehicle positions, ticket validations and "
                                  "car-park counts (POST /v1/gtfs-rt, /v1/vehicle-positions, "
                                  "/v1/ticket-validations, /v1/parking-occupancy, PublishFeed).", PUBLISHERS),
        Scope("mobility:read", "Read trip status, route delays, vehicles, car parks and ridership (feeds out, "
                               "GetTripStatus, ListRouteDelays, WatchVehicles, GetParkingAvailability, "
                               "GetRidership).", READERS),
    ],
    map_layers=[MapLayer("Buses", ROUTE_STATUS, "services.mobility.maplayers:bus_features")],
)
PUBLISH = DOMAIN.scope("mobility:publish")
READ = DOMAIN.scope("mobility:read")
